import { announce, busy, byId, formValues } from '../dom.js';
import { clearErrors, describeError, showErrors } from '../form-errors.js';
import { ApiError, type Me, type PendingEmailChange, type User } from '../gatehouse-client.js';
import type { SignedInDeps, SignedInPart } from './signed-in.js';

/** The user as the profile view hands it over: `GET /users/me`, or a User without the pending state. */
export type EmailState = User & Partial<Pick<Me, 'pendingEmail'>>;

export interface EmailPart extends SignedInPart {
  /** Shows the address, whether it is verified, and a pending change (kept when `user` does not say). */
  render(user: EmailState): void;
}

/**
 * The email address card (and the address in the profile facts): whether it is verified, with
 * "Verify" (a link to the current address) when not; a pending change with "Cancel"; and the
 * change form (new address + current password → `POST /users/me/email`), which tells which
 * mailed links must be opened for the change to apply.
 */
export function createEmailView({ client, guarded }: SignedInDeps): EmailPart {
  const form = byId('email-form', HTMLFormElement);
  const errorBox = byId('email-error');
  const notice = byId('email-notice');
  const unverified = byId('email-unverified');
  const pendingBox = byId('email-pending');
  const verifyButton = byId('email-verify', HTMLButtonElement);
  const cancelButton = byId('email-pending-cancel', HTMLButtonElement);
  let user: EmailState | null = null;
  let pending: PendingEmailChange | null = null;

  function say(kind: 'notice' | 'error', text: string): void {
    const [shown, other] = kind === 'notice' ? [notice, errorBox] : [errorBox, notice];
    other.hidden = true;
    shown.textContent = text;
    shown.hidden = false;
    if (kind === 'error') errorBox.focus();
    else announce(text);
  }

  function quiet(): void {
    notice.hidden = true;
    errorBox.hidden = true;
  }

  function render(next: EmailState): void {
    user = next;
    const email = next.email;
    const verified = next.emailVerified === true;
    byId('profile-email').textContent = email ?? '—';
    const state = byId('profile-email-state');
    state.hidden = !email;
    state.textContent = verified ? 'Verified' : 'Not verified';
    state.className = `badge ${verified ? 'verified' : 'unverified'}`;
    unverified.hidden = !email || verified;

    if (next.pendingEmail !== undefined) {
      pending =
        next.pendingEmail === null
          ? null
          : pending?.pendingEmail === next.pendingEmail
            ? pending // what the change request said is better than a guess
            : {
                pendingEmail: next.pendingEmail,
                confirmationsRequired: email && verified ? ['new', 'current'] : ['new'],
              };
    }
    renderPending();

    byId('email-form-title').textContent = email ? 'Change email address' : 'Add an email address';
    byId('email-submit').textContent = email ? 'Change email address' : 'Add email address';
  }

  function renderPending(): void {
    pendingBox.hidden = !pending;
    if (!pending) return;
    byId('email-pending-address').textContent = pending.pendingEmail;
    byId('email-pending-needs').textContent = confirmationText(pending, user?.email ?? null);
  }

  async function reload(): Promise<void> {
    render(await client.me());
  }

  verifyButton.addEventListener('click', () => {
    if (verifyButton.getAttribute('aria-disabled') === 'true') return;
    verifyButton.setAttribute('aria-disabled', 'true');
    quiet();
    void guarded(
      async () => {
        await client.requestVerification();
        say('notice', `We sent a link to ${user?.email ?? 'your address'}: open it to confirm the address.`);
      },
      (error) => {
        say('error', describeError(error));
        // Verified meanwhile (in another tab, say) or no address any more: show what is true now.
        if (error instanceof ApiError && (error.code === 'EMAIL_ALREADY_VERIFIED' || error.code === 'NO_EMAIL')) {
          void guarded(reload, () => undefined);
        }
      },
    ).finally(() => verifyButton.removeAttribute('aria-disabled'));
  });

  cancelButton.addEventListener('click', () => {
    if (cancelButton.getAttribute('aria-disabled') === 'true') return;
    cancelButton.setAttribute('aria-disabled', 'true');
    quiet();
    void guarded(
      async () => {
        await client.cancelEmailChange();
        pending = null;
        renderPending();
        say('notice', 'The change of email address was cancelled: its links no longer work.');
        byId('email-title').focus();
      },
      (error) => say('error', describeError(error)),
    ).finally(() => cancelButton.removeAttribute('aria-disabled'));
  });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const values = formValues(form);
    const newEmail = (values.newEmail ?? '').trim();
    const password = values.password ?? '';
    void busy(form, () =>
      guarded(
        async () => {
          clearErrors(form);
          quiet();
          pending = await client.changeEmail(newEmail, password);
          renderPending();
          form.reset();
          const links = pending.confirmationsRequired.length > 1 ? 'Confirmation links sent' : 'Confirmation link sent';
          say('notice', `${links}: your address changes once you open ${links.endsWith('s sent') ? 'them' : 'it'}.`);
          byId('email-title').focus();
        },
        (error) => showErrors(form, error),
      ),
    );
  });

  return {
    render,
    load: reload,
    clear() {
      user = null;
      pending = null;
      quiet();
      pendingBox.hidden = true;
      unverified.hidden = true;
    },
  };
}

function confirmationText(change: PendingEmailChange, current: string | null): string {
  const both = change.confirmationsRequired.includes('current');
  return both
    ? `open the links we mailed to ${change.pendingEmail} and to your current address${current ? `, ${current}` : ''}: the address changes once both are confirmed.`
    : `open the link we mailed to ${change.pendingEmail}: the address changes once it is confirmed.`;
}
