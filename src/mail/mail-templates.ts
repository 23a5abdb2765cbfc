/** The mails Gatehouse sends: a subject, plain text, and minimal HTML (no remote images). */
export interface MailContent {
  subject: string;
  text: string;
  html: string;
}

const PRODUCT = 'Gatehouse';

const escapeHtml = (value: string): string =>
  value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** One paragraph per entry; a `link` is shown as a button-like link and as plain text. */
function compose(
  subject: string,
  paragraphs: string[],
  link?: { url: string; label: string },
  after: string[] = [],
): MailContent {
  const text =
    [...paragraphs, ...(link ? [`${link.label}:\n${link.url}`] : []), ...after, `— ${PRODUCT}`].join('\n\n') + '\n';
  const p = (t: string) => `<p>${escapeHtml(t)}</p>`;
  const html =
    `<!doctype html><html><body style="font-family:sans-serif;line-height:1.5">` +
    paragraphs.map(p).join('') +
    (link
      ? `<p><a href="${escapeHtml(link.url)}">${escapeHtml(link.label)}</a></p>` +
        `<p style="font-size:90%">${escapeHtml('If the link does not open, copy this address into your browser:')}<br>${escapeHtml(link.url)}</p>`
      : '') +
    after.map(p).join('') +
    `<p>— ${PRODUCT}</p></body></html>`;
  return { subject: `${PRODUCT}: ${subject}`, text, html };
}

const IGNORE = 'If you did not ask for this, you can ignore this message: nothing changes.';

export const mailTemplates = {
  tenantInvitation: (tenantName: string, inviter: string, link: string, hours: number): MailContent =>
    compose(
      `join ${tenantName}`,
      [`${inviter} invites you to join the organisation "${tenantName}".`],
      { url: link, label: 'Accept the invitation' },
      [
        `Sign in (or create an account) with this email address, verify it, then accept. The link works once and expires in ${hours} hours.`,
        'If you do not know this organisation, you can ignore this message.',
      ],
    ),
  verifyEmail: (link: string, hours: number): MailContent =>
    compose(
      'confirm your email address',
      ['Please confirm that this email address is yours.'],
      { url: link, label: 'Confirm my email address' },
      [`The link works once and expires in ${hours} hours.`, IGNORE],
    ),
  resetPassword: (link: string, minutes: number): MailContent =>
    compose(
      'reset your password',
      ['Someone (hopefully you) asked to reset the password of your account.'],
      { url: link, label: 'Choose a new password' },
      [
        `The link works once and expires in ${minutes} minutes. Choosing a new password signs you out everywhere.`,
        IGNORE,
      ],
    ),
  confirmNewEmail: (link: string, minutes: number): MailContent =>
    compose(
      'confirm your new email address',
      ['Please confirm that this address should become the email address of your account.'],
      {
        url: link,
        label: 'Confirm the new address',
      },
      [`The link works once and expires in ${minutes} minutes.`, IGNORE],
    ),
  confirmEmailChange: (link: string, newEmail: string, minutes: number): MailContent =>
    compose(
      'confirm the change of your email address',
      [`Someone asked to change the email address of your account to ${newEmail}.`],
      {
        url: link,
        label: 'Yes, change my email address',
      },
      [
        `The link works once and expires in ${minutes} minutes.`,
        'If this was not you, do not open the link, and change your password.',
      ],
    ),
  emailChanged: (newEmail: string): MailContent =>
    compose('your email address was changed', [
      `The email address of your account is now ${newEmail}. Mail for the account no longer comes to this address.`,
      'If this was not you, contact your administrator at once.',
    ]),
  passwordChanged: (): MailContent =>
    compose('your password was changed', [
      'The password of your account was just changed, and every session was signed out.',
      'If this was not you, reset your password at once and contact your administrator.',
    ]),
  mfaEnabled: (): MailContent =>
    compose('two-step sign-in turned on', [
      'Two-step sign-in was turned on for your account: signing in now also asks for a code from your authenticator app. Every other session was signed out.',
      'If this was not you, reset your password at once and contact your administrator.',
    ]),
  mfaDisabled: (): MailContent =>
    compose('two-step sign-in turned off', [
      'Two-step sign-in was turned off for your account: signing in asks only for the password again. Every other session was signed out.',
      'If this was not you, reset your password at once, turn two-step sign-in on again, and contact your administrator.',
    ]),
  mfaResetByAdmin: (): MailContent =>
    compose('two-step sign-in was reset', [
      'An administrator removed the two-step sign-in of your account (for example after a lost phone), and every session was signed out.',
      'Sign in with your password and turn two-step sign-in on again. If you did not ask for this, contact your administrator.',
    ]),
  noAccount: (): MailContent =>
    compose('password reset requested', [
      'Someone asked to reset a password with this email address, but there is no account with it.',
      IGNORE,
    ]),
};
