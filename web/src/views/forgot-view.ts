import { announce, busy, byId, formValues } from '../dom.js';
import { clearErrors, showErrors } from '../form-errors.js';
import type { GatehouseClient } from '../gatehouse-client.js';

/** What the 202 says when its body has no message: the same sentence, whoever asked. */
const NEUTRAL = 'If the account exists and has an email address, a reset link has been sent.';

/**
 * "Forgot your password?" (#forgot, from the sign-in form): asks for the username or email
 * and shows the server's neutral answer, which never tells whether the account exists.
 * The screen itself is shown by the auth view, like the other signed-out forms.
 */
export function createForgotView({ client }: { client: GatehouseClient }): { clear(): void } {
  const form = byId('forgot-form', HTMLFormElement);
  const done = byId('forgot-done');

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const login = (formValues(form).login ?? '').trim();
    void busy(form, async () => {
      try {
        clearErrors(form);
        done.hidden = true;
        const { message } = await client.forgotPassword(login);
        done.textContent = `${message || NEUTRAL} Check your mailbox (and its spam folder); the link works once.`;
        done.hidden = false;
        form.reset();
        done.focus();
        announce(done.textContent);
      } catch (error) {
        // 400: the field; 429: "Too many attempts. Try again in N seconds."
        showErrors(form, error);
      }
    });
  });

  return {
    clear() {
      done.hidden = true;
      done.textContent = '';
    },
  };
}
