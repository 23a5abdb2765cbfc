import { byId } from '../dom.js';

/** The page's top-level sections: exactly one of them is shown at a time. */
export type Screen =
  'loading' | 'login' | 'signup' | 'forgot' | 'reset' | 'verify' | 'invitation' | 'federated' | 'app';

/**
 * The screens of a mailed link (/reset-password, /verify-email, /accept-invitation) and of the
 * federated sign-in's hand-off (/federated-signin): they hold a token, and keep the page.
 */
export const LINK_SCREENS: ReadonlySet<Screen> = new Set<Screen>(['reset', 'verify', 'invitation', 'federated']);

const SECTIONS: Record<Screen, string> = {
  loading: 'loading-view',
  login: 'login-view',
  signup: 'signup-view',
  forgot: 'forgot-view',
  reset: 'reset-view',
  verify: 'verify-view',
  invitation: 'invitation-view',
  federated: 'federated-view',
  app: 'app-view',
};

const TITLES: Record<Screen, string> = {
  loading: 'Gatehouse',
  login: 'Sign in · Gatehouse',
  signup: 'Create an account · Gatehouse',
  forgot: 'Forgot your password? · Gatehouse',
  reset: 'Choose a new password · Gatehouse',
  verify: 'Confirm your email address · Gatehouse',
  invitation: 'Accept an invitation · Gatehouse',
  federated: 'Signing in · Gatehouse',
  app: 'Your account · Gatehouse',
};

export interface Screens {
  /** The screen on show. */
  readonly current: Screen;
  /**
   * Shows `screen` (and the account bar with the signed-in one) and sets the page title.
   * Focus goes to the screen's heading when the screen changed, unless `focus` is false.
   */
  show(screen: Screen, options?: { focus?: boolean }): void;
}

/** app.ts makes one and hands it to the views that switch screens. */
export function createScreens(): Screens {
  let current: Screen = 'loading';
  return {
    get current() {
      return current;
    },
    show(screen, { focus = true } = {}) {
      for (const [name, id] of Object.entries(SECTIONS)) byId(id).hidden = name !== screen;
      byId('account-bar').hidden = screen !== 'app';
      const changed = current !== screen;
      current = screen;
      document.title = TITLES[screen];
      if (focus && changed) byId(SECTIONS[screen]).querySelector<HTMLElement>('h1')?.focus();
    },
  };
}
