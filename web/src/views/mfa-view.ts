import { announce, busy, byId, formValues, h, time } from '../dom.js';
import { clearErrors, describeError, localError, showErrors } from '../form-errors.js';
import { ApiError, type MfaStatus, type TotpEnrolment } from '../gatehouse-client.js';
import { clearQrCode, drawQrCode } from '../qr.js';
import type { SignedInDeps, SignedInPart } from './signed-in.js';

export interface MfaPart extends SignedInPart {
  /** After a sign-in with a recovery code: says how many are left (a warning at 3 or fewer). */
  recoveryCodeUsed(remaining: number): void;
}

/** Fewer unused recovery codes than this many + 1 and the page warns (the contract's ≤3). */
const FEW_CODES = 3;

/** What the card shows besides the status: a step of a set-up, or new recovery codes. */
type Mode = 'status' | 'setup' | 'codes';

/**
 * The two-step sign-in card: whether it is on; turning it on (password → QR code and setup
 * key → a code from the app → the recovery codes, shown once); new recovery codes; turning
 * it off (password + a code). The setup key stays in this page: it is drawn here (no QR
 * service), kept in the DOM only while the set-up lasts, and sent to no one but Gatehouse.
 */
export function createMfaView({
  client,
  guarded,
  onOtherSessionsEnded,
}: SignedInDeps & {
  /** Turning two-step sign-in on or off signed the user's other sessions out. */
  onOtherSessionsEnded: () => void;
}): MfaPart {
  const title = byId('mfa-title');
  const badge = byId('mfa-state');
  const statusText = byId('mfa-status-text');
  const errorBox = byId('mfa-error');
  const notice = byId('mfa-notice');
  const enrolForm = byId('mfa-enrol-form', HTMLFormElement);
  const setup = byId('mfa-setup');
  const canvas = byId('mfa-qr', HTMLCanvasElement);
  const secret = byId('mfa-secret');
  const secretDetails = byId('mfa-secret-details');
  const confirmForm = byId('mfa-confirm-form', HTMLFormElement);
  const codesBox = byId('mfa-codes');
  const codeList = byId('mfa-code-list', HTMLOListElement);
  const codesStatus = byId('mfa-codes-status');
  const manage = byId('mfa-manage');
  const regenerateForm = byId('mfa-regenerate-form', HTMLFormElement);
  const disableForm = byId('mfa-disable-form', HTMLFormElement);
  const recoveryNotice = byId('recovery-notice');

  let status: MfaStatus | null = null;
  let mode: Mode = 'status';
  /** The recovery codes on show (mode 'codes'), for Copy and Download; forgotten after. */
  let codes: string[] | null = null;

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

  function render(): void {
    renderStatus();
    enrolForm.hidden = !(mode === 'status' && status !== null && !status.enabled);
    setup.hidden = mode !== 'setup';
    codesBox.hidden = mode !== 'codes';
    manage.hidden = !(mode === 'status' && status?.enabled === true);
  }

  function renderStatus(): void {
    badge.hidden = status === null;
    if (status === null) {
      statusText.textContent = 'Loading…';
      return;
    }
    badge.textContent = status.enabled ? 'On' : 'Off';
    badge.className = `badge ${status.enabled ? 'on' : 'off'}`;
    if (!status.enabled) {
      statusText.textContent = 'Signing in needs only your password.';
      return;
    }
    const left = status.recoveryCodesRemaining;
    statusText.replaceChildren(
      'Signing in also asks for a code from your authenticator app',
      ...(status.totp ? [' (set up ', time(status.totp.confirmedAt), ')'] : []),
      '. ',
      left === 0
        ? 'You have no recovery codes left: make new ones.'
        : `${left} unused recovery code${left === 1 ? '' : 's'} left.`,
    );
  }

  /** Ends a set-up or the codes on show: the secret and the codes leave the page. */
  function forgetFlow(): void {
    clearQrCode(canvas);
    secret.textContent = '';
    secretDetails.textContent = '';
    codeList.replaceChildren();
    codesStatus.textContent = '';
    codes = null;
    mode = 'status';
  }

  function showSetup(enrolment: TotpEnrolment): void {
    forgetFlow();
    mode = 'setup';
    drawQrCode(canvas, enrolment.otpauthUri);
    // Groups of 4, as apps show them: easier to copy by hand (apps ignore the spaces).
    secret.textContent = enrolment.secret.replace(/(.{4})(?=.)/g, '$1 ');
    const algorithm = enrolment.algorithm.toUpperCase() === 'SHA1' ? '' : `, ${enrolment.algorithm}`;
    secretDetails.textContent = `Time-based, ${enrolment.digits} digits, a new code every ${enrolment.period} seconds${algorithm}.`;
    confirmForm.reset();
    clearErrors(confirmForm);
    render();
    byId('mfa-setup-title').focus();
    announce('Scan the QR code with your authenticator app, then enter the code it shows.');
  }

  function showCodes(next: string[], message: string): void {
    forgetFlow();
    mode = 'codes';
    codes = next;
    codeList.replaceChildren(...next.map((code) => h('li', {}, code)));
    render();
    byId('mfa-codes-title').focus();
    announce(`${message} Save your ${next.length} recovery codes: they are shown only now.`);
  }

  async function reload(): Promise<void> {
    status = await client.mfaStatus();
    render();
  }

  function load(): Promise<void> {
    return guarded(reload, (error) => say('error', describeError(error)));
  }

  /** The 6 digits of an authenticator code (spaces allowed, as some apps show "123 456"), else null. */
  function totpCode(form: HTMLFormElement): string | null {
    const code = (formValues(form).code ?? '').replace(/\s+/g, '');
    if (/^\d{6}$/.test(code)) return code;
    showErrors(form, localError('code', 'must be the 6 digits your authenticator app shows'));
    return null;
  }

  function selectField(form: HTMLFormElement, name: string): void {
    form.querySelector<HTMLInputElement>(`input[name="${name}"]`)?.select();
  }

  enrolForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const password = formValues(enrolForm).password ?? '';
    void busy(enrolForm, () =>
      guarded(
        async () => {
          clearErrors(enrolForm);
          quiet();
          const enrolment = await client.enrolTotp(password);
          enrolForm.reset();
          showSetup(enrolment);
        },
        (error) => {
          showErrors(enrolForm, error);
          if (error instanceof ApiError && error.code === 'MFA_ALREADY_ENABLED') void load();
        },
      ),
    );
  });

  confirmForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const code = totpCode(confirmForm);
    if (code === null) return;
    void busy(confirmForm, () =>
      guarded(
        async () => {
          clearErrors(confirmForm);
          quiet();
          const recoveryCodes = await client.confirmTotp(code);
          status = {
            enabled: true,
            totp: { confirmedAt: new Date().toISOString(), lastUsedAt: null },
            recoveryCodesRemaining: recoveryCodes.length,
          };
          recoveryNotice.hidden = true;
          showCodes(recoveryCodes, 'Two-step sign-in is on.');
          onOtherSessionsEnded();
          void guarded(reload, () => undefined); // the server's dates
        },
        (error) => {
          if (error instanceof ApiError && error.code === 'MFA_ENROLLMENT_NOT_FOUND') {
            forgetFlow();
            render();
            say('error', describeError(error));
            return;
          }
          showErrors(confirmForm, error);
          selectField(confirmForm, 'code');
        },
      ),
    );
  });

  byId('mfa-setup-cancel').addEventListener('click', () => {
    forgetFlow();
    render();
    title.focus();
    announce('Set-up cancelled: two-step sign-in stays off.');
  });

  byId('mfa-codes-copy').addEventListener('click', () => {
    if (!codes) return;
    const text = codes.join('\n');
    const copying = navigator.clipboard?.writeText(text) ?? Promise.reject(new Error('no clipboard'));
    void copying.then(
      () => {
        codesStatus.textContent = 'Copied to the clipboard.';
      },
      () => {
        codesStatus.textContent = 'This browser would not copy them: select the codes and copy them yourself.';
      },
    );
  });

  byId('mfa-codes-download').addEventListener('click', () => {
    if (!codes) return;
    const text = [
      `Gatehouse recovery codes (${location.host})`,
      `Made ${new Date().toISOString()}`,
      '',
      'Each code signs you in once, in place of a code from your authenticator app.',
      'Keep them somewhere safe: anyone with your password and one of them can sign in as you.',
      '',
      ...codes,
      '',
    ].join('\n');
    const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
    const link = h('a', { href: url, download: 'gatehouse-recovery-codes.txt', hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    codesStatus.textContent = 'Downloaded as gatehouse-recovery-codes.txt.';
  });

  byId('mfa-codes-done').addEventListener('click', () => {
    forgetFlow();
    render();
    title.focus();
    announce('Two-step sign-in is on.');
  });

  regenerateForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const code = totpCode(regenerateForm);
    if (code === null) return;
    void busy(regenerateForm, () =>
      guarded(
        async () => {
          clearErrors(regenerateForm);
          quiet();
          const recoveryCodes = await client.regenerateRecoveryCodes(code);
          regenerateForm.reset();
          if (status) status = { ...status, recoveryCodesRemaining: recoveryCodes.length };
          recoveryNotice.hidden = true;
          showCodes(recoveryCodes, 'New recovery codes made: the old ones no longer work.');
        },
        (error) => {
          showErrors(regenerateForm, error);
          selectField(regenerateForm, 'code');
          if (error instanceof ApiError && error.code === 'MFA_NOT_ENABLED') void load();
        },
      ),
    );
  });

  disableForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const values = formValues(disableForm);
    const password = values.password ?? '';
    // An authenticator code ("123 456" too) or a recovery code: the server tells them apart.
    const raw = (values.code ?? '').trim();
    const code = /^[\d\s]+$/.test(raw) ? raw.replace(/\s+/g, '') : raw;
    if (!code) {
      showErrors(disableForm, localError('code', 'is needed: a code from your authenticator app, or a recovery code'));
      return;
    }
    void busy(disableForm, () =>
      guarded(
        async () => {
          clearErrors(disableForm);
          quiet();
          await client.disableMfa(password, code);
          disableForm.reset();
          status = { enabled: false, totp: null, recoveryCodesRemaining: 0 };
          recoveryNotice.hidden = true;
          render();
          say('notice', 'Two-step sign-in is off: signing in needs only your password.');
          title.focus();
          onOtherSessionsEnded();
          void guarded(reload, () => undefined);
        },
        (error) => {
          showErrors(disableForm, error);
          if (error instanceof ApiError && error.code === 'MFA_NOT_ENABLED') void load();
        },
      ),
    );
  });

  byId('recovery-notice-action').addEventListener('click', () => {
    if (mode !== 'status') forgetFlow();
    render();
    regenerateForm.scrollIntoView({ block: 'center' });
    byId('mfa-regenerate-code').focus();
  });

  return {
    load,
    clear() {
      forgetFlow();
      status = null;
      quiet();
      recoveryNotice.hidden = true;
      byId('recovery-notice-text').textContent = '';
      render();
    },
    recoveryCodeUsed(remaining) {
      const few = remaining <= FEW_CODES;
      const left =
        remaining === 0
          ? 'You have no recovery codes left'
          : `${few ? 'Only ' : ''}${remaining} unused recovery code${remaining === 1 ? '' : 's'} left`;
      const text = few
        ? `You signed in with a recovery code, which no longer works. ${left}: make new ones so that you are not locked out. Lost your authenticator app? Turn two-step sign-in off below with a recovery code, then set it up again.`
        : `You signed in with a recovery code, which no longer works. ${left}.`;
      byId('recovery-notice-text').textContent = text;
      recoveryNotice.classList.toggle('warning', few);
      byId('recovery-notice-action').hidden = !few;
      recoveryNotice.hidden = false;
      announce(text);
    },
  };
}
