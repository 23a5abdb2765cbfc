import { announce, busy, byId, formValues } from '../dom.js';
import { clearErrors, localError, showErrors } from '../form-errors.js';
import { ApiError, type GatehouseClient, type MfaChallenge, type MfaProof } from '../gatehouse-client.js';
import type { Screen, Screens } from './screens.js';

/** The signed-out screens chosen by the hash (the links between the forms change it). */
const BY_HASH: Record<string, Screen> = { '#signup': 'signup', '#forgot': 'forgot' };
const SIGNED_OUT: ReadonlySet<Screen> = new Set<Screen>(['login', 'signup', 'forgot']);

/**
 * The signed-out screens: the sign-in and sign-up forms (and the screen of #forgot, whose
 * form is the forgot view's). A sign-in refused with EMAIL_NOT_VERIFIED offers a new link.
 * An account with two-step sign-in gets a second form after the password: the code from the
 * authenticator app, or (by a switch) a recovery code.
 */
export interface AuthView {
  /** Shows the sign-up form for #signup, the forgot-password form for #forgot, else the sign-in form. */
  show(options?: { focus?: boolean }): void;
  /** The notice above the sign-in form (why the user is there); null hides it. */
  setNotice(text: string | null): void;
}

/**
 * A successful sign-in needs nothing from here: the client fires `signedin` and app.ts
 * shows the signed-in view. One with a recovery code also calls `onRecoveryCodeUsed`.
 */
export function createAuthView({
  client,
  screens,
  onRecoveryCodeUsed,
}: {
  client: GatehouseClient;
  screens: Screens;
  /** After a second step passed with a recovery code: how many unused ones are left. */
  onRecoveryCodeUsed?: (remaining: number) => void;
}): AuthView {
  const loginForm = byId('login-form', HTMLFormElement);
  const passwordInput = byId('login-password', HTMLInputElement);
  const mfaForm = byId('mfa-login-form', HTMLFormElement);
  const totpField = byId('mfa-login-totp');
  const recoveryField = byId('mfa-login-recovery');
  const codeInput = byId('mfa-login-code', HTMLInputElement);
  const recoveryInput = byId('mfa-login-recoveryCode', HTMLInputElement);
  const switchButton = byId('mfa-login-switch', HTMLButtonElement);
  /** The second step under way: the password was right, a code is wanted. */
  let challenge: MfaChallenge | null = null;
  let useRecoveryCode = false;
  const signupForm = byId('signup-form', HTMLFormElement);
  const notice = byId('login-notice');
  const resendForm = byId('resend-form', HTMLFormElement);
  const resendDone = byId('resend-done');

  const view: AuthView = {
    show(options = {}) {
      if (challenge) endSecondStep({ focus: false });
      screens.show(BY_HASH[location.hash] ?? 'login', options);
    },
    setNotice(text) {
      notice.textContent = text ?? '';
      notice.hidden = !text;
    },
  };

  loginForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const { username = '', password = '' } = formValues(loginForm);
    void busy(loginForm, async () => {
      try {
        clearErrors(loginForm);
        resendForm.hidden = true;
        const result = await client.login(username.trim(), password);
        if (result.status === 'mfa-required') startSecondStep(result.challenge);
        else loginForm.reset();
      } catch (error) {
        showErrors(loginForm, error);
        // Only with REQUIRE_EMAIL_VERIFICATION=true: the right password, an unconfirmed address.
        if (error instanceof ApiError && error.code === 'EMAIL_NOT_VERIFIED') offerNewLink(username.trim());
      }
    });
  });

  // ---- the second step ----------------------------------------------------

  function startSecondStep(next: MfaChallenge): void {
    challenge = next;
    passwordInput.value = ''; // not needed again, unless the step fails: then it is asked anew
    view.setNotice(null);
    loginForm.hidden = true;
    mfaForm.reset();
    clearErrors(mfaForm);
    const both = next.methods.includes('totp') && next.methods.includes('recovery_code');
    switchButton.hidden = !both;
    setMode(!next.methods.includes('totp'));
    mfaForm.hidden = false;
    (useRecoveryCode ? recoveryInput : codeInput).focus();
    announce(
      useRecoveryCode
        ? 'Password accepted. Enter one of your recovery codes.'
        : 'Password accepted. Enter the code from your authenticator app.',
    );
  }

  /** Back to the password form; with `error`, it says why (and gets the focus). */
  function endSecondStep({ error, focus = true }: { error?: unknown; focus?: boolean } = {}): void {
    challenge = null;
    mfaForm.reset();
    clearErrors(mfaForm);
    mfaForm.hidden = true;
    loginForm.hidden = false;
    if (error !== undefined) showErrors(loginForm, error);
    else if (focus) byId(byId('login-username', HTMLInputElement).value ? 'login-password' : 'login-username').focus();
  }

  function setMode(recovery: boolean): void {
    useRecoveryCode = recovery;
    totpField.hidden = recovery;
    recoveryField.hidden = !recovery;
    switchButton.textContent = recovery ? 'Use your authenticator app instead' : 'Use a recovery code instead';
  }

  switchButton.addEventListener('click', () => {
    clearErrors(mfaForm);
    setMode(!useRecoveryCode);
    const input = useRecoveryCode ? recoveryInput : codeInput;
    input.focus();
    announce(useRecoveryCode ? 'Enter one of your recovery codes.' : 'Enter the code from your authenticator app.');
  });

  byId('mfa-login-cancel').addEventListener('click', () => endSecondStep());

  /** The proof the form holds, or null after showing what is wrong with it (nothing sent). */
  function proofOf(): MfaProof | null {
    if (useRecoveryCode) {
      const recoveryCode = recoveryInput.value.trim();
      if (recoveryCode) return { recoveryCode };
      showErrors(mfaForm, localError('recoveryCode', 'is needed: one of the codes you saved'));
      return null;
    }
    // Some apps show "123 456": the spaces do not count. Anything but 6 digits would cost a try.
    const code = codeInput.value.replace(/\s+/g, '');
    if (/^\d{6}$/.test(code)) return { code };
    showErrors(mfaForm, localError('code', 'must be the 6 digits your authenticator app shows'));
    return null;
  }

  mfaForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const current = challenge;
    if (!current) return endSecondStep();
    const proof = proofOf();
    if (!proof) return;
    if (Date.now() >= current.expiresAt) {
      // The server would refuse it: no need to spend a request on it.
      endSecondStep({ error: new ApiError(401, 'MFA_TOKEN_INVALID', ['The sign-in attempt expired']) });
      return;
    }
    void busy(mfaForm, async () => {
      try {
        clearErrors(mfaForm);
        const { recoveryCodesRemaining } = await client.loginMfa(current, proof);
        // Signed in: the client has fired `signedin` and app.ts shows the signed-in view.
        challenge = null;
        mfaForm.reset();
        mfaForm.hidden = true;
        loginForm.hidden = false;
        loginForm.reset();
        if (recoveryCodesRemaining !== null) onRecoveryCodeUsed?.(recoveryCodesRemaining);
      } catch (error) {
        if (challenge !== current) return; // left meanwhile (Back, another screen)
        if (error instanceof ApiError && error.code === 'MFA_TOKEN_INVALID') {
          endSecondStep({ error });
          return;
        }
        showErrors(mfaForm, error);
        if (error instanceof ApiError && error.code === 'INVALID_MFA_CODE') {
          (useRecoveryCode ? recoveryInput : codeInput).select();
        }
      }
    });
  });

  function offerNewLink(login: string): void {
    resendForm.reset();
    clearErrors(resendForm);
    resendDone.hidden = true;
    if (login.includes('@')) byId('resend-email', HTMLInputElement).value = login;
    resendForm.hidden = false;
  }

  resendForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const email = (formValues(resendForm).email ?? '').trim();
    void busy(resendForm, async () => {
      try {
        clearErrors(resendForm);
        resendDone.hidden = true;
        // Anonymous: the same 202 whether or not the address is an account's.
        const { message } = await client.requestVerification(email);
        resendDone.textContent =
          message || 'If the address belongs to an account waiting for verification, a link has been sent.';
        resendDone.hidden = false;
        announce(resendDone.textContent);
      } catch (error) {
        showErrors(resendForm, error);
      }
    });
  });

  signupForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const values = formValues(signupForm);
    const email = values.email?.trim();
    const displayName = values.displayName?.trim();
    void busy(signupForm, async () => {
      try {
        clearErrors(signupForm);
        await client.signup({
          username: (values.username ?? '').trim(),
          password: values.password ?? '',
          ...(email ? { email } : {}),
          ...(displayName ? { displayName } : {}),
        });
        signupForm.reset();
      } catch (error) {
        showErrors(signupForm, error);
      }
    });
  });

  // The links between the two forms change the hash; signed in, the hash means nothing.
  window.addEventListener('hashchange', () => {
    if (SIGNED_OUT.has(screens.current)) {
      view.setNotice(null);
      view.show();
    }
  });

  return view;
}
