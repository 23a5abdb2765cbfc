import { announce, busy, byId, formValues, h, time } from '../dom.js';
import { clearErrors, describeError, localError, showErrors } from '../form-errors.js';
import { ApiError, type LinkedIdentity, type Me } from '../gatehouse-client.js';
import type { SignedInDeps } from './signed-in.js';

export interface IdentitiesPart {
  /** Shows the identities and the link form (or why there is none) from `GET /users/me`. */
  render(me: Me): void;
  /** Forgets the signed-in user's data, on sign-out. */
  clear(): void;
}

/**
 * The "Linked sign-ins" card: the accounts at an organisation's OpenID provider that open this
 * Gatehouse account (`GET /users/me/identities`), each with "Unlink"; and a form to link one,
 * with a token from the provider (pasted: it works once, for 5 minutes) and this account's
 * password, which proves both accounts are the person's. An account without a password (made by
 * a federated sign-in) cannot link another one here; and its only identity cannot be unlinked
 * (409 LAST_LOGIN_METHOD, said in the row).
 */
export function createIdentitiesView({ client, guarded }: SignedInDeps): IdentitiesPart {
  const list = byId('identity-list', HTMLUListElement);
  const empty = byId('identities-empty');
  const errorBox = byId('identities-error');
  const form = byId('identity-link-form', HTMLFormElement);
  const passwordless = byId('identity-link-passwordless');

  function showError(error: unknown): void {
    errorBox.textContent = describeError(error);
    errorBox.hidden = false;
    errorBox.focus();
  }

  function renderList(identities: LinkedIdentity[]): void {
    errorBox.hidden = true;
    empty.hidden = identities.length > 0;
    list.replaceChildren(...identities.map(identityItem));
  }

  async function reload(): Promise<void> {
    renderList(await client.identities());
  }

  function identityItem(identity: LinkedIdentity): HTMLLIElement {
    const button = h(
      'button',
      { type: 'button', class: 'secondary' },
      'Unlink',
      h('span', { class: 'visually-hidden' }, ` ${identity.issuerName} account ${identity.subject}`),
    );
    const rowError = h('p', { class: 'form-error', role: 'alert', tabindex: '-1', hidden: true });
    const li = h(
      'li',
      { class: 'item identity', 'data-identity-id': identity.id },
      h('div', { class: 'item-head' }, h('h3', { title: identity.issuer }, identity.issuerName)),
      h('p', { class: 'identity-subject' }, 'Account at the provider: ', h('code', {}, identity.subject)),
      h(
        'p',
        { class: 'meta' },
        'linked ',
        time(identity.linkedAt),
        ' · last used ',
        identity.lastSeenAt ? time(identity.lastSeenAt) : 'never',
      ),
      h('div', { class: 'actions' }, button),
      rowError,
    );
    button.addEventListener('click', () => {
      if (button.getAttribute('aria-disabled') === 'true') return;
      button.setAttribute('aria-disabled', 'true');
      rowError.hidden = true;
      void guarded(
        async () => {
          try {
            await client.unlinkIdentity(identity.id);
          } catch (error) {
            if (!(error instanceof ApiError && error.status === 404)) throw error; // already gone
          }
          li.remove();
          empty.hidden = list.childElementCount > 0;
          byId('identities-title').focus();
          announce(`Unlinked your ${identity.issuerName} sign-in.`);
        },
        (error) => {
          rowError.textContent = describeError(error);
          rowError.hidden = false;
          rowError.focus();
        },
      ).finally(() => button.removeAttribute('aria-disabled'));
    });
    return li;
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const values = formValues(form);
    // Pasted tokens often come with a line break or spaces around them; inside, there are none.
    const subjectToken = (values.subjectToken ?? '').replace(/\s+/g, '');
    const password = values.password ?? '';
    if (!subjectToken) {
      showErrors(form, localError('subjectToken', 'is needed: paste it from your provider'));
      return;
    }
    if (!password) {
      showErrors(form, localError('password', 'is needed'));
      return;
    }
    void busy(form, () =>
      guarded(
        async () => {
          clearErrors(form);
          const linked = await client.linkIdentity(subjectToken, password);
          form.reset();
          await reload();
          byId('identities-title').focus();
          announce(`Linked your ${linked.issuerName} sign-in.`);
        },
        (error) => showErrors(form, error),
      ),
    );
  });

  return {
    render(me) {
      if (me.identities) renderList(me.identities);
      else void guarded(reload, showError);
      // Servers before federation do not say: those accounts all had a password.
      const hasPassword = me.hasPassword !== false;
      form.hidden = !hasPassword;
      passwordless.hidden = hasPassword;
    },
    clear() {
      list.replaceChildren();
      empty.hidden = true;
      errorBox.hidden = true;
    },
  };
}
