import { announce, byId } from '../dom.js';
import { describeError } from '../form-errors.js';
import { ApiError, type GatehouseClient, type VerifyEmailStatus } from '../gatehouse-client.js';
import type { Screens } from './screens.js';

const RESULTS: Record<VerifyEmailStatus, string> = {
  verified: 'Your email address is verified. Thank you!',
  email_changed: 'Your email address has been changed: mail for your account now goes to the new address.',
  awaiting_other_confirmation:
    'This address is confirmed. The change applies once the link mailed to your other address is opened too.',
};

/** Answers about the link itself (or the address it was for): a retry cannot help. */
const DEAD_LINK = new Set(['VERIFICATION_TOKEN_EXPIRED', 'VERIFICATION_TOKEN_INVALID', 'EMAIL_TAKEN']);

/**
 * /verify-email#token=…, the page of a verification or email-change link. Loading it uses
 * nothing up (link-preview and mail scanners fetch links): the token is POSTed only when the
 * user presses "Confirm my email address".
 */
export function createVerifyView({ client, screens }: { client: GatehouseClient; screens: Screens }): {
  show(token: string | null): void;
} {
  const start = byId('verify-start');
  const button = byId('verify-button', HTMLButtonElement);
  const errorBox = byId('verify-error');
  const problem = byId('verify-problem');
  const problemText = byId('verify-problem-text');
  const result = byId('verify-result');
  const resultText = byId('verify-result-text');
  let token: string | null = null;

  function deadLink(text: string): void {
    start.hidden = true;
    problemText.textContent = text;
    problem.hidden = false;
    problemText.focus();
  }

  button.addEventListener('click', () => {
    const current = token;
    if (current === null || button.getAttribute('aria-disabled') === 'true') return;
    button.setAttribute('aria-disabled', 'true');
    errorBox.hidden = true;
    void client
      .verifyEmail(current)
      .then(
        (status) => {
          token = null;
          start.hidden = true;
          resultText.textContent = RESULTS[status] ?? 'Your email address is confirmed.';
          result.hidden = false;
          resultText.focus();
          announce(resultText.textContent);
        },
        (error: unknown) => {
          if (error instanceof ApiError && DEAD_LINK.has(error.code)) {
            token = null;
            deadLink(describeError(error));
            return;
          }
          // 429, network, 5xx: the token may still be good; the button stays for a retry.
          errorBox.textContent = describeError(error);
          errorBox.hidden = false;
          errorBox.focus();
        },
      )
      .finally(() => button.removeAttribute('aria-disabled'));
  });

  return {
    show(linkToken) {
      token = linkToken;
      start.hidden = false;
      errorBox.hidden = true;
      problem.hidden = true;
      result.hidden = true;
      screens.show('verify', { focus: false });
      if (token === null) {
        deadLink('This page needs the link from your mail: open that link again.');
        announce(problemText.textContent ?? '');
      }
    },
  };
}
