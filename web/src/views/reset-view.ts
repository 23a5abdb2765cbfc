import { announce, busy, byId, formValues } from '../dom.js';
import { clearErrors, describeError, showErrors } from '../form-errors.js';
import { ApiError, type GatehouseClient } from '../gatehouse-client.js';
import type { Screens } from './screens.js';

/** The answers that make the link itself useless: the form goes, the way to a new link stays. */
const DEAD_LINK = new Set(['RESET_TOKEN_EXPIRED', 'RESET_TOKEN_INVALID']);

/**
 * /reset-password#token=…, the page of the mailed reset link. app.ts hands it the token,
 * already taken out of the address bar. Loading the page uses nothing up: the token is only
 * POSTed with the new password, when the user submits the form.
 */
export function createResetView({
  client,
  screens,
  onDone,
}: {
  client: GatehouseClient;
  screens: Screens;
  /** After the 204: every session is signed out; the page goes to the sign-in form. */
  onDone: () => void;
}): { show(token: string | null): void } {
  const form = byId('reset-form', HTMLFormElement);
  const problem = byId('reset-problem');
  const problemText = byId('reset-problem-text');
  let token: string | null = null;

  function deadLink(text: string): void {
    form.hidden = true;
    problemText.textContent = text;
    problem.hidden = false;
    problemText.focus();
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const newPassword = formValues(form).newPassword ?? '';
    const current = token;
    if (current === null) return;
    void busy(form, async () => {
      try {
        clearErrors(form);
        await client.resetPassword(current, newPassword);
        token = null; // used up
        form.reset();
        onDone();
      } catch (error) {
        if (error instanceof ApiError && DEAD_LINK.has(error.code)) {
          token = null;
          deadLink(describeError(error));
        } else {
          // VALIDATION_FAILED: the password rule under the field; 403, 429 ...: above the form.
          showErrors(form, error);
        }
      }
    });
  });

  return {
    show(linkToken) {
      token = linkToken;
      form.reset();
      clearErrors(form);
      form.hidden = false;
      problem.hidden = true;
      screens.show('reset', { focus: false });
      if (token === null) {
        // Typically a reload: the token left the address bar on the first load. It was not used.
        deadLink('This page needs the link from your mail: open that link again, or ask for a new one.');
        announce(problemText.textContent ?? '');
      }
    },
  };
}
