import { busy, byId, formValues } from '../dom.js';
import { clearErrors, localError, showErrors, showFormError } from '../form-errors.js';
import { ApiError, type AccountDeletionProof, type Me } from '../gatehouse-client.js';
import type { SignedInDeps } from './signed-in.js';

export interface DeleteAccountPart {
  /** Asks for the password, or (an account without one) for the username typed again. */
  render(me: Me): void;
  clear(): void;
}

/** Refusals whose general sentence does not fit this form. */
const HERE: Record<string, string> = {
  LAST_OWNER:
    'You are the last owner of a tenant: make another member an owner, or delete the tenant, before deleting your account.',
};

const STEP_UP_PASSWORDLESS =
  'For your safety, deleting your account needs a recent sign-in: sign out, sign in again through your provider, then delete it within 5 minutes.';

/**
 * The "Delete your account" card. An account with a password gives it; one without (made by a
 * federated sign-in: `hasPassword` false) types its username instead, from a sign-in at its
 * provider less than 5 minutes old (else 403 STEP_UP_REQUIRED, which says to sign in again
 * through the provider). Once deleted, the client signs every tab out (`signedout`, reason
 * 'deleted'), and app.ts says so on the sign-in page.
 */
export function createDeleteAccountView({ client, guarded }: SignedInDeps): DeleteAccountPart {
  const form = byId('delete-form', HTMLFormElement);
  const passwordField = byId('delete-password-field');
  const confirmField = byId('delete-confirm-field');
  const username = byId('delete-confirm-username');
  /** The account on show; null until `GET /users/me` answered. */
  let me: Me | null = null;

  const passwordless = () => me?.hasPassword === false;

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!me) return;
    const values = formValues(form);
    let proof: AccountDeletionProof;
    if (passwordless()) {
      const confirm = (values.confirm ?? '').trim();
      if (!confirm) {
        showErrors(form, localError('confirm', 'is needed: type your username to confirm'));
        return;
      }
      proof = { confirm };
    } else {
      const password = values.password ?? '';
      if (!password) {
        showErrors(form, localError('password', 'is needed'));
        return;
      }
      proof = { password };
    }
    void busy(form, () =>
      guarded(
        async () => {
          clearErrors(form);
          // On success the client signs out: app.ts shows the sign-in page.
          await client.deleteAccount(proof);
        },
        (error) => {
          const code = error instanceof ApiError ? error.code : '';
          const own = code === 'STEP_UP_REQUIRED' && passwordless() ? STEP_UP_PASSWORDLESS : HERE[code];
          if (own) showFormError(form, own);
          else showErrors(form, error);
        },
      ),
    );
  });

  return {
    render(next) {
      me = next;
      const without = passwordless();
      passwordField.hidden = without;
      confirmField.hidden = !without;
      username.textContent = next.username;
    },
    clear() {
      me = null;
      username.textContent = '';
    },
  };
}
