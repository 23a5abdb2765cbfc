import { announce, busy, byId, formValues, time } from '../dom.js';
import { clearErrors, showErrors } from '../form-errors.js';
import type { Me } from '../gatehouse-client.js';
import type { EmailPart, EmailState } from './email-view.js';
import type { SignedInDeps, SignedInPart } from './signed-in.js';

/** A part of the page shown from the whole `GET /users/me` (linked sign-ins, account deletion). */
export interface MeReader {
  render(me: Me): void;
}

/**
 * The profile card (and the name in the account bar): shows the user, edits the display name.
 * The email address is the email part's to show, from the same `GET /users/me`, and so is what
 * the `readers` show (they get each answer of `GET /users/me`, not the display-name saves).
 */
export function createProfileView({
  client,
  guarded,
  email,
  readers = [],
}: SignedInDeps & { email: EmailPart; readers?: MeReader[] }): SignedInPart {
  const form = byId('profile-form', HTMLFormElement);
  const whoami = byId('whoami');
  /** The user as last loaded or saved: a submit that changes nothing is not sent. */
  let me: EmailState | null = null;

  function render(user: EmailState): void {
    me = user;
    whoami.textContent = user.displayName ?? user.username;
    byId('profile-username').textContent = user.username;
    email.render(user);
    byId('profile-created').replaceChildren(time(user.createdAt));
    byId('profile-displayName', HTMLInputElement).value = user.displayName ?? '';
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const displayName = (formValues(form).displayName ?? '').trim();
    if (me && displayName === (me.displayName ?? '')) {
      announce('Nothing to save.');
      return;
    }
    void busy(form, () =>
      guarded(
        async () => {
          clearErrors(form);
          render(await client.updateMe({ displayName: displayName === '' ? null : displayName }));
          announce('Display name saved.');
        },
        (error) => showErrors(form, error),
      ),
    );
  });

  return {
    load: () =>
      guarded(
        async () => {
          const loaded = await client.me();
          render(loaded);
          for (const reader of readers) reader.render(loaded);
        },
        (error) => showErrors(form, error),
      ),
    clear() {
      me = null;
      whoami.textContent = '';
      email.clear();
    },
  };
}
