import { announce, byId } from '../dom.js';
import { describeError } from '../form-errors.js';
import { ApiError, type GatehouseClient } from '../gatehouse-client.js';
import type { Screens } from './screens.js';

/** What this page says for each refusal (the token is the provider's sign-in, to the person). */
const MESSAGES: Record<string, string> = {
  FEDERATED_TOKEN_REUSED:
    'This sign-in was already used: each one works only once. Sign in through your organisation again.',
  FEDERATED_TOKEN_INVALID:
    'Your organisation’s sign-in could not be accepted: it is not valid, or it has expired. Sign in through your organisation again.',
  FEDERATED_USER_NOT_PROVISIONED:
    'There is no Gatehouse account for your organisation account yet. Ask an administrator to set one up for you.',
  FEDERATION_UNAVAILABLE:
    'Your organisation’s sign-in service cannot be reached right now, so your sign-in cannot be checked. Try again in a moment.',
  ACCOUNT_DISABLED: 'Your Gatehouse account has been disabled. Contact an administrator.',
};

const NO_TOKEN =
  'There is nothing to sign in with here: this page is opened by your organisation’s sign-in. Start again from the sign-in page.';

/**
 * A passing failure: the token was not used up (the provider's keys could not be fetched, too
 * many attempts, the network, the server): the same token may be tried again, while it lasts.
 */
function retryable(error: unknown): boolean {
  if (!(error instanceof ApiError)) return false;
  return (
    error.code === 'FEDERATION_UNAVAILABLE' ||
    error.code === 'NETWORK_ERROR' ||
    error.status === 429 ||
    error.status >= 500
  );
}

/**
 * /federated-signin#subject_token=…, where the organisation's sign-in (an app that runs the
 * OpenID login at the provider) sends the person back with the provider's token. app.ts hands
 * it the token, already taken out of the address bar; it is POSTed at once (it works once, for
 * a few minutes) to open a session, and lives in this view's memory only, until then.
 */
export function createFederatedView({
  client,
  screens,
  onSignedIn,
}: {
  client: GatehouseClient;
  screens: Screens;
  /** After the session opened (the client has fired `signedin`): the page goes to the signed-in view. */
  onSignedIn: () => void;
}): { show(token: string | null): void } {
  const working = byId('federated-working');
  const problem = byId('federated-problem');
  const problemText = byId('federated-problem-text');
  const retry = byId('federated-retry', HTMLButtonElement);
  let token: string | null = null;
  /** Bumped by each attempt: the answer of an older one (a new hand-off came meanwhile) is dropped. */
  let attempt = 0;

  function fail(text: string, canRetry: boolean): void {
    working.hidden = true;
    problemText.textContent = text;
    retry.hidden = !canRetry;
    problem.hidden = false;
    problemText.focus();
    announce(text);
  }

  async function exchange(): Promise<void> {
    const current = token;
    if (current === null) {
      fail(NO_TOKEN, false);
      return;
    }
    const mine = ++attempt;
    problem.hidden = true;
    working.hidden = false;
    try {
      await client.federatedSignIn(current);
      if (mine !== attempt) return;
      token = null; // used up
      onSignedIn();
    } catch (error) {
      if (mine !== attempt) return;
      const canRetry = retryable(error);
      if (!canRetry) token = null; // refused for good: spent, invalid, or no account
      fail((error instanceof ApiError ? MESSAGES[error.code] : undefined) ?? describeError(error), canRetry);
    }
  }

  retry.addEventListener('click', () => {
    if (retry.getAttribute('aria-disabled') === 'true') return;
    retry.setAttribute('aria-disabled', 'true');
    void exchange().finally(() => retry.removeAttribute('aria-disabled'));
  });

  return {
    show(handedToken) {
      token = handedToken;
      retry.hidden = true;
      screens.show('federated', { focus: false });
      void exchange();
    },
  };
}
