/**
 * The page: wires the views (web/src/views/) to one GatehouseClient and owns what they share,
 * passed to each explicitly: the client, the screen on show (`screens`), the sign-in guard,
 * and whether the page has finished starting. Each view keeps its own state to itself.
 *
 * The same page answers the mailed links, by path: /reset-password#token=…,
 * /verify-email#token=… and /accept-invitation#token=…; and the hand-off of a sign-in through
 * an organisation's provider, /federated-signin#subject_token=…. There the token is taken from
 * the fragment (and out of the address bar) before anything else runs, and a sign-in in another
 * tab does not replace the link's screen. The session is not restored (no refresh on load),
 * except on the invitation's page: accepting needs it (signed out, the page offers to sign in
 * first, and comes back to the invitation afterwards, its token still in memory only). The
 * federated hand-off opens a session with its token at once, then becomes the signed-in page (/).
 *
 * The tenant the session is in (the token's `tid`) decides which resources are listed: after a
 * switch (`tenantchanged`) the tenants and resources cards load again.
 *
 * The signed-in page is live (web/src/realtime.ts): its WebSocket opens when the page enters
 * the signed-in view and closes on sign-out; a session ended on the server (4410) signs the
 * page out at once, and the live view (views/live-view.ts) shows new sign-ins and keeps the
 * resource list current.
 */
import { announce, byId, takeFragmentToken } from './dom.js';
import { clearErrors, describeError } from './form-errors.js';
import { GatehouseClient, type SignedOutDetail, type SignedOutReason } from './gatehouse-client.js';
import { LiveConnection } from './realtime.js';
import { createActivityView } from './views/activity-view.js';
import { createAuthView } from './views/auth-view.js';
import { createDeleteAccountView } from './views/delete-account-view.js';
import { createEmailView } from './views/email-view.js';
import { createFederatedView } from './views/federated-view.js';
import { createForgotView } from './views/forgot-view.js';
import { createIdentitiesView } from './views/identities-view.js';
import { createInvitationView } from './views/invitation-view.js';
import { createLiveView } from './views/live-view.js';
import { createMfaView } from './views/mfa-view.js';
import { createProfileView } from './views/profile-view.js';
import { createResetView } from './views/reset-view.js';
import { createResourcesView } from './views/resources-view.js';
import { createScreens, LINK_SCREENS } from './views/screens.js';
import { createSessionsView } from './views/sessions-view.js';
import { guardedBy } from './views/signed-in.js';
import { createTenantsView } from './views/tenants-view.js';
import { createVerifyView } from './views/verify-view.js';

/**
 * The paths of the mailed links (APP_URL + path) and of the federated sign-in's hand-off; the
 * server answers them with this page. Each carries its token in the fragment, under this name.
 */
const LINK_PAGES: Record<string, { screen: 'reset' | 'verify' | 'invitation' | 'federated'; token: string }> = {
  '/reset-password': { screen: 'reset', token: 'token' },
  '/verify-email': { screen: 'verify', token: 'token' },
  '/accept-invitation': { screen: 'invitation', token: 'token' },
  '/federated-signin': { screen: 'federated', token: 'subject_token' },
};

const SIGN_IN_FOR_INVITATION = 'Sign in to accept the invitation: you come back to it afterwards.';

const PASSWORD_CHANGED = 'Your password was changed; sign in with the new one.';

const SIGNED_OUT_NOTICES: Record<SignedOutReason, string> = {
  logout: 'You have signed out.',
  deleted: 'Your account has been deleted.',
  expired: 'Your session has ended. Please sign in again.',
  'other-tab': 'You were signed out in another tab.',
};

function main(): void {
  const client = new GatehouseClient();
  const screens = createScreens();
  const signedIn = { client, guarded: guardedBy(client) };
  const sessions = createSessionsView(signedIn);
  const activity = createActivityView(signedIn);
  // Turning two-step sign-in on or off signs the other sessions out: the list shows it.
  const mfa = createMfaView({ ...signedIn, onOtherSessionsEnded: () => void sessions.load() });
  const auth = createAuthView({ client, screens, onRecoveryCodeUsed: (remaining) => mfa.recoveryCodeUsed(remaining) });
  const email = createEmailView(signedIn);
  const identities = createIdentitiesView(signedIn);
  const deletion = createDeleteAccountView(signedIn);
  const profile = createProfileView({ ...signedIn, email, readers: [identities, deletion] });
  const forgot = createForgotView({ client });
  const reset = createResetView({
    client,
    screens,
    onDone() {
      // The link's page becomes the sign-in page (its path would show the spent link again).
      history.replaceState(null, '', '/');
      auth.setNotice(PASSWORD_CHANGED);
      auth.show();
      announce(PASSWORD_CHANGED);
    },
  });
  const verify = createVerifyView({ client, screens });
  const resources = createResourcesView(signedIn);
  const tenants = createTenantsView({ ...signedIn, onContext: (tenant) => resources.setContext(tenant) });
  const live = new LiveConnection(client);
  const liveView = createLiveView({ live, client, resources });
  const invitation = createInvitationView({
    client,
    screens,
    onSignIn(mode) {
      // The path stays /accept-invitation: the invitation's token stays in this page's memory.
      history.replaceState(null, '', location.pathname + (mode === 'signup' ? '#signup' : ''));
      auth.setNotice(mode === 'login' ? SIGN_IN_FOR_INVITATION : null);
      auth.show();
    },
  });
  const federated = createFederatedView({
    client,
    screens,
    onSignedIn() {
      // The hand-off's page becomes the signed-in page: a reload there restores the session.
      history.replaceState(null, '', '/');
      void enterApp();
    },
  });
  /** Focus follows view changes the user caused, not the first render of the page. */
  let started = false;

  async function enterApp(): Promise<void> {
    auth.setNotice(null);
    if (location.hash) history.replaceState(null, '', location.pathname + location.search);
    screens.show('app', { focus: started });
    showAdminLink();
    live.start();
    await Promise.allSettled([
      profile.load(),
      mfa.load(),
      tenants.load(),
      resources.load(),
      sessions.load(),
      activity.load(),
    ]);
  }

  /** The admin console's link, for a token with the admin role (the console checks again, and so does the API). */
  function showAdminLink(): void {
    byId('admin-link').hidden = !client.roles.includes('admin');
  }
  client.addEventListener('tokenchanged', showAdminLink);

  function leaveApp(detail: SignedOutDetail): void {
    liveView.clear();
    profile.clear();
    identities.clear();
    deletion.clear();
    mfa.clear();
    tenants.clear();
    resources.clear();
    sessions.clear();
    activity.clear();
    showAdminLink();
    forgot.clear();
    for (const form of document.querySelectorAll('form')) {
      form.reset();
      clearErrors(form);
    }
    auth.setNotice(SIGNED_OUT_NOTICES[detail.reason]);
    auth.show();
  }

  // A link's screen stays put: another tab's sign-in or sign-out must not take its token away.
  // A sign-in asked for by the invitation's page goes back to it.
  client.addEventListener('signedin', () => {
    if (LINK_SCREENS.has(screens.current)) return;
    if (invitation.waiting) {
      auth.setNotice(null);
      invitation.resume();
    } else {
      void enterApp();
    }
  });
  client.addEventListener('signedout', (event) => {
    live.stop();
    if (!LINK_SCREENS.has(screens.current)) leaveApp((event as CustomEvent<SignedOutDetail>).detail);
  });

  // Another tenant selected (here, in another tab, or dropped by a refresh): its resources.
  client.addEventListener('tenantchanged', () => {
    if (screens.current === 'app') void Promise.allSettled([tenants.tenantChanged(), resources.load()]);
  });

  byId('logout-button').addEventListener('click', () => {
    void client.logout().catch((error: unknown) => {
      // Signed out here either way; the server may not have heard it.
      auth.setNotice(`You are signed out on this page, but the server could not confirm it: ${describeError(error)}`);
    });
  });

  async function start(): Promise<void> {
    try {
      // true: the `signedin` event has already shown the signed-in view.
      if (await client.start()) return;
    } catch (error) {
      auth.setNotice(describeError(error));
    }
    auth.show({ focus: false });
  }

  const linkPage = LINK_PAGES[location.pathname.replace(/\/+$/, '')];
  if (linkPage) {
    const { screen, token } = linkPage;
    // Only from the fragment, and before anything could rewrite the address (enterApp does).
    const view = { reset, verify, invitation, federated }[screen];
    view.show(takeFragmentToken(token));
    // Another link opened in this tab changes only the fragment: no new page load. (The
    // invitation's page may be on the sign-in form meanwhile: the new link takes over.)
    window.addEventListener('hashchange', () => {
      if (
        (screens.current === screen || screen === 'invitation') &&
        new URLSearchParams(location.hash.slice(1)).has(token)
      ) {
        view.show(takeFragmentToken(token));
      }
    });
    started = true;
    return;
  }

  void start().finally(() => {
    started = true;
  });
}

main();
