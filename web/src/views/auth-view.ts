import { announce, busy, byId, formValues } from '../dom.js';
import { clearErrors, showErrors } from '../form-errors.js';
import { ApiError, type GatehouseClient } from '../gatehouse-client.js';
import type { Screen, Screens } from './screens.js';

/** The signed-out screens chosen by the hash (the links between the forms change it). */
const BY_HASH: Record<string, Screen> = { '#signup': 'signup', '#forgot': 'forgot' };
const SIGNED_OUT: ReadonlySet<Screen> = new Set<Screen>(['login', 'signup', 'forgot']);

/**
 * The signed-out screens: the sign-in and sign-up forms (and the screen of #forgot, whose
 * form is the forgot view's). A sign-in refused with EMAIL_NOT_VERIFIED offers a new link.
 */
export interface AuthView {
  /** Shows the sign-up form for #signup, the forgot-password form for #forgot, else the sign-in form. */
  show(options?: { focus?: boolean }): void;
  /** The notice above the sign-in form (why the user is there); null hides it. */
  setNotice(text: string | null): void;
}

/**
 * A successful sign-in needs nothing from here: the client fires `signedin` and app.ts
 * shows the signed-in view.
 */
export function createAuthView({ client, screens }: { client: GatehouseClient; screens: Screens }): AuthView {
  const loginForm = byId('login-form', HTMLFormElement);
  const signupForm = byId('signup-form', HTMLFormElement);
  const notice = byId('login-notice');
  const resendForm = byId('resend-form', HTMLFormElement);
  const resendDone = byId('resend-done');

  const view: AuthView = {
    show(options = {}) {
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
        await client.login(username.trim(), password);
        loginForm.reset();
      } catch (error) {
        showErrors(loginForm, error);
        // Only with REQUIRE_EMAIL_VERIFICATION=true: the right password, an unconfirmed address.
        if (error instanceof ApiError && error.code === 'EMAIL_NOT_VERIFIED') offerNewLink(username.trim());
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
