import { announce, byId } from '../dom.js';
import { describeError } from '../form-errors.js';
import { ApiError, type GatehouseClient, type Me } from '../gatehouse-client.js';
import type { Screens } from './screens.js';

/** Answers about the link itself: accepting again cannot help. */
const DEAD_LINK = new Set(['INVITATION_INVALID', 'INVITATION_EXPIRED']);

const NO_TOKEN = 'This page needs the link from your invitation mail: open that link again.';

export interface InvitationView {
  /** /accept-invitation#token=…: the link's screen (the token from the fragment, or null). */
  show(token: string | null): void;
  /** Whether a link's token waits to be accepted: a sign-in then comes back here. */
  readonly waiting: boolean;
  /** Back to the invitation after signing in. */
  resume(): void;
}

/**
 * /accept-invitation#token=…, the page of a tenant invitation. The token lives in this view's
 * memory only (never in storage, and out of the address bar at once); loading the page uses
 * nothing up (mail scanners fetch links): it is POSTed when the user presses "Accept
 * invitation". That needs a session, whose verified email is the invited address: signed out,
 * the page asks to sign in (or to create an account) first, then comes back here.
 */
export function createInvitationView({
  client,
  screens,
  onSignIn,
}: {
  client: GatehouseClient;
  screens: Screens;
  /** Shows the sign-in (or sign-up) form; the signed-in event then brings the user back (`resume`). */
  onSignIn: (mode: 'login' | 'signup') => void;
}): InvitationView {
  const checking = byId('invitation-checking');
  const errorBox = byId('invitation-error');
  const start = byId('invitation-start');
  const user = byId('invitation-user');
  const accept = byId('invitation-accept', HTMLButtonElement);
  const verify = byId('invitation-verify');
  const verifyText = byId('invitation-verify-text');
  const verifyButton = byId('invitation-verify-send', HTMLButtonElement);
  const signin = byId('invitation-signin');
  const problem = byId('invitation-problem');
  const problemText = byId('invitation-problem-text');
  const result = byId('invitation-result');
  const resultText = byId('invitation-result-text');
  const open = byId('invitation-open', HTMLButtonElement);

  let token: string | null = null;
  let state: 'checking' | 'signed-in' | 'signed-out' | 'dead' | 'done' = 'checking';
  /** The signed-in user, as last loaded (null until then). */
  let me: Me | null = null;
  /** Bumped by each render of the signed-in state: an older `me()` answer is dropped. */
  let generation = 0;
  /** The tenant joined, for "Work in …". */
  let joined: { id: string; name: string } | null = null;

  function only(part: HTMLElement | null): void {
    for (const section of [checking, start, signin, problem, result]) section.hidden = section !== part;
    errorBox.hidden = true;
    verify.hidden = true;
  }

  function showError(error: unknown): void {
    errorBox.textContent = describeError(error);
    errorBox.hidden = false;
    errorBox.focus();
  }

  function deadLink(text: string): void {
    token = null;
    state = 'dead';
    only(problem);
    problemText.textContent = text;
    problemText.focus();
  }

  function renderSignedIn(): void {
    state = 'signed-in';
    generation += 1;
    const current = generation;
    me = null;
    only(start);
    user.textContent = '…';
    void client.me().then(
      (loaded) => {
        if (current !== generation) return;
        me = loaded;
        const name = loaded.displayName ? `${loaded.displayName} (${loaded.username})` : loaded.username;
        user.textContent = loaded.email
          ? `${name}, ${loaded.email} (${loaded.emailVerified ? 'verified' : 'not verified yet'})`
          : `${name}, without an email address`;
      },
      (error: unknown) => {
        if (current !== generation || !client.signedIn) return;
        user.textContent = '(your account could not be loaded)';
        showError(error);
      },
    );
  }

  function renderSignedOut(): void {
    state = 'signed-out';
    generation += 1;
    me = null;
    only(signin);
  }

  // Another tab (or this one) signing in or out changes what the screen offers.
  client.addEventListener('signedin', () => {
    if (screens.current === 'invitation' && token !== null && state !== 'checking') renderSignedIn();
  });
  client.addEventListener('signedout', () => {
    if (screens.current === 'invitation' && token !== null && state !== 'checking') {
      renderSignedOut();
      byId('invitation-login').focus();
    }
  });

  accept.addEventListener('click', () => {
    const current = token;
    if (current === null || accept.getAttribute('aria-disabled') === 'true') return;
    accept.setAttribute('aria-disabled', 'true');
    errorBox.hidden = true;
    verify.hidden = true;
    void client
      .acceptInvitation(current)
      .then(
        ({ tenant, roles }) => {
          token = null;
          state = 'done';
          joined = { id: tenant.id, name: tenant.name };
          only(result);
          const role = roles.length ? roles.join(', ') : 'no role yet';
          resultText.textContent = `You joined ${tenant.name} (${tenant.slug}) as ${role}.`;
          open.textContent = `Work in ${tenant.name} now`;
          resultText.focus();
          announce(resultText.textContent);
        },
        (error: unknown) => {
          if (error instanceof ApiError && error.status === 401 && !client.signedIn) return; // signed out: shown
          if (error instanceof ApiError && DEAD_LINK.has(error.code)) {
            deadLink(describeError(error));
            return;
          }
          if (error instanceof ApiError && error.code === 'ALREADY_MEMBER') {
            deadLink('You are already a member of this tenant: there is nothing to accept.');
            return;
          }
          // The wrong (or an unverified) address, 429, network: the invitation stays usable.
          showError(error);
          if (error instanceof ApiError && error.code === 'INVITATION_EMAIL_MISMATCH') offerVerification();
        },
      )
      .finally(() => accept.removeAttribute('aria-disabled'));
  });

  /** When the signed-in account's address is not verified yet: a link to confirm it, then accept again. */
  function offerVerification(): void {
    if (!me?.email || me.emailVerified) return;
    verifyText.textContent = `Your address ${me.email} is not verified yet. If the invitation was sent to it, confirm it: open the link we mail you (this tab can stay open), then press “Accept invitation” again.`;
    verifyButton.hidden = false;
    verify.hidden = false;
  }

  verifyButton.addEventListener('click', () => {
    if (verifyButton.getAttribute('aria-disabled') === 'true') return;
    verifyButton.setAttribute('aria-disabled', 'true');
    void client
      .requestVerification()
      .then(
        () => {
          // (At most one link a minute: a request soon after the last one leaves that link in use.)
          verifyText.textContent = `A confirmation link is on its way to ${me?.email ?? 'your address'} (or was mailed in the last minute). Open it, then press “Accept invitation” again.`;
          verifyButton.hidden = true;
          announce(verifyText.textContent);
        },
        (error: unknown) => showError(error),
      )
      .finally(() => verifyButton.removeAttribute('aria-disabled'));
  });

  byId('invitation-other-account').addEventListener('click', () => {
    // Signed out here (and in the other tabs): the `signedout` event shows the sign-in offer.
    void client.logout().catch(() => undefined);
  });
  byId('invitation-login').addEventListener('click', () => onSignIn('login'));
  byId('invitation-signup').addEventListener('click', () => onSignIn('signup'));

  open.addEventListener('click', () => {
    const tenant = joined;
    if (!tenant || open.getAttribute('aria-disabled') === 'true') return;
    open.setAttribute('aria-disabled', 'true');
    void client
      .selectTenant(tenant.id)
      .then(
        () => location.assign('/'),
        (error: unknown) => showError(error),
      )
      .finally(() => open.removeAttribute('aria-disabled'));
  });

  return {
    show(linkToken) {
      token = linkToken;
      joined = null;
      screens.show('invitation', { focus: false });
      if (token === null) {
        deadLink(NO_TOKEN);
        announce(NO_TOKEN);
        return;
      }
      state = 'checking';
      only(checking);
      // Is there a session (the refresh cookie)? Nothing of the invitation is sent.
      void client.start().then(
        (signedIn) => {
          if (state !== 'checking') return;
          if (signedIn) renderSignedIn();
          else renderSignedOut();
        },
        (error: unknown) => {
          if (state !== 'checking') return;
          renderSignedOut();
          showError(error);
        },
      );
    },
    get waiting() {
      return token !== null && (state === 'signed-out' || state === 'signed-in');
    },
    resume() {
      screens.show('invitation');
      renderSignedIn();
    },
  };
}
