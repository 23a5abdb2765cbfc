import { announce, busy, byId, formValues, h, time } from '../dom.js';
import { clearErrors, describeError, localError, showErrors } from '../form-errors.js';
import { ApiError, type ClientSecret, type OAuthClient } from '../gatehouse-client.js';
import { confirmAction } from './confirm.js';
import { badge, fact, isoToLocalInput, localInputToIso, secretState, timeOrDash } from './format.js';
import type { AdminDeps, AdminScreen } from './screen.js';

/** What each built-in scope lets a machine client do (others come from OAUTH_EXTRA_SCOPES). */
const SCOPE_HINTS: Record<string, string> = {
  profile: 'its own service user (GET /users/me)',
  'resources:read': 'read resources',
  'resources:write': 'create, change and delete resources',
  'tenants:read': 'read tenants it is a member of',
  'tenants:write': 'change tenants, members and invitations, as its tenant roles allow',
  'events:read': 'receive real-time events',
  'users:admin': 'administer users (with the admin role)',
  'clients:admin': 'administer machine clients (with the admin role)',
  introspection: 'introspect and revoke tokens at /oauth/introspect and /oauth/revoke',
};

/**
 * The Machine clients screen: the list (`GET /oauth/clients`), the form that creates one
 * (its first secret is shown once, with a copy button), and the panel of the client opened
 * from the list: disable or enable, delete, and its secrets (add one, shown once; set or clear
 * an expiry; revoke).
 */
export function createClientsScreen({ client, guarded }: AdminDeps): AdminScreen {
  const rows = byId('client-rows', HTMLTableSectionElement);
  const listError = byId('clients-error');
  const empty = byId('clients-empty');
  const more = byId('clients-more', HTMLButtonElement);
  const form = byId('client-form', HTMLFormElement);
  const scopeBoxes = byId('client-scope-boxes');
  const scopesLoading = byId('client-scopes-loading');

  const once = byId('secret-once');
  const onceTitle = byId('secret-once-title');
  const onceClient = byId('secret-once-client');
  const onceClientId = byId('secret-once-client-id');
  const onceValue = byId('secret-once-value');
  const onceCopied = byId('secret-once-copied');

  const detail = byId('client-detail');
  const title = byId('client-detail-title');
  const detailError = byId('client-detail-error');
  const facts = byId('client-facts');
  const toggleDisabled = byId('client-toggle-disabled', HTMLButtonElement);
  const deleteButton = byId('client-delete', HTMLButtonElement);
  const secretsTitle = byId('client-secrets-title');
  const secretList = byId('client-secret-list', HTMLUListElement);
  const secretForm = byId('secret-form', HTMLFormElement);

  let clients = new Map<string, OAuthClient>();
  let cursor: string | null = null;
  let loaded = false;
  let scopesLoaded = false;
  let shown: OAuthClient | null = null;
  let generation = 0;

  function showListError(error: unknown): void {
    listError.textContent = describeError(error);
    listError.hidden = false;
  }

  function showDetailError(error: unknown): void {
    detailError.textContent =
      error instanceof ApiError && error.code === 'CLIENT_NOT_FOUND'
        ? 'This client (or this secret) no longer exists.'
        : describeError(error);
    detailError.hidden = false;
    detailError.focus();
  }

  // ---- the list ------------------------------------------------------------------------------

  async function load(): Promise<void> {
    generation += 1;
    const current = generation;
    await guarded(async () => {
      const page = await client.listClients();
      if (current !== generation) return;
      listError.hidden = true;
      cursor = page.nextCursor;
      more.hidden = !cursor;
      clients = new Map(page.items.map((c) => [c.id, c]));
      rows.replaceChildren(...page.items.map(row));
      empty.hidden = page.items.length > 0;
      loaded = true;
    }, showListError);
  }

  more.addEventListener('click', () => {
    if (!cursor) return;
    const current = generation;
    void guarded(async () => {
      const page = await client.listClients(cursor);
      if (current !== generation) return;
      cursor = page.nextCursor;
      more.hidden = !cursor;
      const first = rows.children.length;
      for (const c of page.items) {
        if (clients.has(c.id)) continue;
        clients.set(c.id, c);
        rows.append(row(c));
      }
      rows.children[first]?.querySelector<HTMLElement>('button')?.focus();
    }, showListError);
  });

  function liveSecrets(c: OAuthClient): number {
    return c.secrets.filter((s) => secretState(s) === 'live').length;
  }

  function row(c: OAuthClient): HTMLTableRowElement {
    const open = h('button', { type: 'button', class: 'link' }, c.name);
    open.addEventListener('click', () => void openClient(c.id));
    const live = liveSecrets(c);
    return h(
      'tr',
      { 'data-client-id': c.id, class: shown?.id === c.id ? 'selected' : null },
      h('th', { scope: 'row' }, open),
      h('td', {}, h('code', {}, c.clientId)),
      h('td', { class: 'scopes' }, c.allowedScopes.length ? c.allowedScopes.join(' ') : 'none'),
      h('td', {}, `${live} live`),
      h('td', {}, c.disabled ? badge('Disabled', 'disabled') : 'Enabled'),
      h('td', {}, time(c.createdAt)),
    );
  }

  function putRow(c: OAuthClient): void {
    clients.set(c.id, c);
    const old = rows.querySelector(`tr[data-client-id="${CSS.escape(c.id)}"]`);
    if (old) old.replaceWith(row(c));
    else rows.prepend(row(c));
    empty.hidden = true;
  }

  // ---- creating a client ---------------------------------------------------------------------

  async function loadScopes(): Promise<void> {
    try {
      const { scopes_supported: scopes } = await client.authorizationServerMetadata();
      scopeBoxes.replaceChildren(
        ...scopes.map((scope) => {
          const hint = SCOPE_HINTS[scope];
          return h(
            'label',
            {},
            h('input', { type: 'checkbox', name: 'allowedScopes', value: scope }),
            h('code', {}, scope),
            hint ? h('span', { class: 'scope-hint' }, `: ${hint}`) : null,
          );
        }),
      );
      scopesLoading.hidden = true;
      scopesLoaded = true;
    } catch (error) {
      scopesLoading.textContent = `The scopes could not be loaded: ${describeError(error)}`;
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const { name = '', description = '' } = formValues(form);
    const allowedScopes = [...form.querySelectorAll<HTMLInputElement>('input[name="allowedScopes"]:checked')].map(
      (input) => input.value,
    );
    void busy(form, () =>
      guarded(
        async () => {
          clearErrors(form);
          const created = await client.createClient({
            name: name.trim(),
            description: description.trim() || null,
            allowedScopes,
          });
          putRow(created.client);
          form.reset();
          showSecretOnce(created.client, created.secret.value);
          await openClient(created.client.id, { focus: false, fresh: created.client });
        },
        (error) => showErrors(form, error),
      ),
    );
  });

  // ---- the secret, shown once ----------------------------------------------------------------

  function showSecretOnce(c: OAuthClient, value: string): void {
    onceClient.textContent = c.name;
    onceClientId.textContent = c.clientId;
    onceValue.textContent = value;
    onceCopied.textContent = '';
    once.hidden = false;
    onceTitle.focus();
  }

  function hideSecretOnce(): void {
    // Out of the page: it stays only where the administrator put it.
    onceValue.textContent = '';
    onceCopied.textContent = '';
    once.hidden = true;
  }

  byId('secret-once-copy').addEventListener('click', () => {
    const value = onceValue.textContent ?? '';
    const select = () => {
      const range = document.createRange();
      range.selectNodeContents(onceValue);
      const selection = getSelection();
      selection?.removeAllRanges();
      selection?.addRange(range);
    };
    if (!navigator.clipboard) {
      select();
      onceCopied.textContent = 'The secret is selected: copy it with Ctrl+C (⌘C on a Mac).';
      return;
    }
    navigator.clipboard.writeText(value).then(
      () => {
        onceCopied.textContent = 'Copied to the clipboard.';
      },
      () => {
        select();
        onceCopied.textContent = 'The browser did not allow copying: the secret is selected, copy it with Ctrl+C (⌘C).';
      },
    );
  });

  byId('secret-once-done').addEventListener('click', () => {
    hideSecretOnce();
    (shown ? title : byId('client-list-title')).focus();
    announce('The secret is hidden.');
  });

  // ---- the panel -----------------------------------------------------------------------------

  async function openClient(id: string, options: { focus?: boolean; fresh?: OAuthClient } = {}): Promise<void> {
    detailError.hidden = true;
    clearErrors(secretForm);
    await guarded(
      async () => {
        const c = options.fresh ?? (await client.getClient(id));
        putRow(c);
        shown = c;
        for (const tr of rows.querySelectorAll('tr')) tr.classList.toggle('selected', tr.dataset.clientId === c.id);
        renderPanel();
        detail.hidden = false;
        if (options.focus !== false) title.focus();
      },
      (error) => {
        showListError(error);
      },
    );
  }

  /** Reads the client again (after a change to its secrets) and redraws the panel and its row. */
  async function reloadShown(): Promise<void> {
    if (!shown) return;
    const c = await client.getClient(shown.id);
    putRow(c);
    shown = c;
    renderPanel();
  }

  function renderPanel(): void {
    const c = shown;
    if (!c) return;
    title.textContent = c.name;
    facts.replaceChildren(
      fact('Client id', h('code', {}, c.clientId)),
      fact('Description', c.description ?? '—'),
      fact('Allowed scopes', c.allowedScopes.length ? c.allowedScopes.join(' ') : 'none'),
      fact('Token lifetime', c.accessTokenTtl === null ? 'The server default' : `${c.accessTokenTtl} seconds`),
      fact('Token exchange', c.tokenExchange ? 'Allowed' : 'Not allowed'),
      fact('Status', c.disabled ? badge('Disabled', 'disabled') : 'Enabled'),
      fact('Service user', h('code', {}, c.serviceUserId)),
      fact('Created', time(c.createdAt)),
    );
    toggleDisabled.textContent = c.disabled ? 'Enable client' : 'Disable client';
    secretList.replaceChildren(...c.secrets.map((s) => secretItem(c, s)));
  }

  function secretName(s: ClientSecret): string {
    return s.label ? `${s.label} (${s.prefix}…)` : `${s.prefix}…`;
  }

  function secretItem(c: OAuthClient, s: ClientSecret): HTMLLIElement {
    const state = secretState(s);
    const li = h(
      'li',
      { class: 'item secret', 'data-secret-id': s.id },
      h(
        'div',
        { class: 'item-head' },
        h('span', { class: 'item-title' }, s.label ?? 'Secret'),
        h('code', {}, `${s.prefix}…`),
        state === 'live'
          ? badge('Live', 'on')
          : state === 'expired'
            ? badge('Expired', 'off')
            : badge('Revoked', 'disabled'),
      ),
      h(
        'p',
        { class: 'meta' },
        'Created ',
        time(s.createdAt),
        ' · expires ',
        s.expiresAt ? time(s.expiresAt) : 'never',
        ' · last used ',
        timeOrDash(s.lastUsedAt),
        s.revokedAt ? ' · revoked ' : '',
        s.revokedAt ? time(s.revokedAt) : null,
      ),
    );
    if (state !== 'live') return li;
    const extra = ` of secret ${secretName(s)}`;
    const expiry = h(
      'button',
      { type: 'button', class: 'secondary' },
      'Set expiry',
      h('span', { class: 'visually-hidden' }, extra),
    );
    const revoke = h(
      'button',
      { type: 'button', class: 'danger-link' },
      'Revoke',
      h('span', { class: 'visually-hidden' }, ` secret ${secretName(s)}`),
    );
    const actions = h('div', { class: 'actions' }, expiry, revoke);
    li.append(actions);
    expiry.addEventListener('click', () => editExpiry(c, s, actions, expiry));
    revoke.addEventListener('click', () => {
      void confirmAction({
        title: `Revoke secret ${secretName(s)}?`,
        text: 'It stops working at once, with every token it obtained: whatever still uses it can no longer authenticate.',
        confirm: 'Revoke secret',
      }).then(async (yes) => {
        if (!yes) return;
        await guarded(async () => {
          await client.revokeClientSecret(c.id, s.id);
          await reloadShown();
          secretsTitle.focus();
          announce(`Secret ${secretName(s)} revoked.`);
        }, showDetailError);
      });
    });
    return li;
  }

  /** The expiry editor in place of the secret's buttons: a date and time, "Never expires", Cancel. */
  function editExpiry(c: OAuthClient, s: ClientSecret, actions: HTMLElement, trigger: HTMLButtonElement): void {
    const id = `expiry-${s.id}`;
    const input = h('input', {
      id,
      name: 'expiresAt',
      type: 'datetime-local',
      value: isoToLocalInput(s.expiresAt),
      'aria-describedby': `${id}-hint`,
    });
    const never = h('button', { type: 'button', class: 'secondary' }, 'Never expires');
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const editor = h(
      'form',
      { class: 'editor', novalidate: true, 'aria-label': `Expiry of secret ${secretName(s)}` },
      h('p', { class: 'form-error', role: 'alert', tabindex: -1, hidden: true }),
      h(
        'div',
        { class: 'field' },
        h('label', { for: id }, 'Expires'),
        input,
        h(
          'p',
          { class: 'hint', id: `${id}-hint` },
          'In this computer’s time zone. A time now or past ends the secret and its tokens at once.',
        ),
      ),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Save expiry'), never, cancel),
    );
    actions.replaceWith(editor);
    input.focus();
    const close = () => {
      editor.replaceWith(actions);
      trigger.focus();
    };
    cancel.addEventListener('click', close);
    editor.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        close();
      }
    });
    const save = (expiresAt: string | null) =>
      busy(editor, () =>
        guarded(
          async () => {
            await client.setClientSecretExpiry(c.id, s.id, expiresAt);
            await reloadShown();
            secretsTitle.focus();
            announce(
              expiresAt
                ? `Secret ${secretName(s)} now expires ${new Date(expiresAt).toLocaleString()}.`
                : `Secret ${secretName(s)} no longer expires.`,
            );
          },
          (error) => showErrors(editor, error),
        ),
      );
    editor.addEventListener('submit', (event) => {
      event.preventDefault();
      const at = localInputToIso(input.value);
      if (!at) {
        showErrors(editor, localError('expiresAt', 'must be a date and time; use “Never expires” for none'));
        return;
      }
      void save(at);
    });
    never.addEventListener('click', () => void save(null));
  }

  toggleDisabled.addEventListener('click', () => {
    const c = shown;
    if (!c) return;
    const disabling = !c.disabled;
    const ask = disabling
      ? confirmAction({
          title: `Disable ${c.name}?`,
          text: 'Every token of its secrets stops working at once, and it cannot get new ones until it is enabled again.',
          confirm: 'Disable client',
        })
      : Promise.resolve(true);
    void ask.then(async (yes) => {
      if (!yes) return;
      detailError.hidden = true;
      await guarded(async () => {
        const updated = await client.updateClient(c.id, { disabled: disabling });
        putRow(updated);
        if (shown?.id === updated.id) {
          shown = updated;
          renderPanel();
        }
        toggleDisabled.focus();
        announce(disabling ? `${c.name} is disabled: its tokens no longer work.` : `${c.name} is enabled again.`);
      }, showDetailError);
    });
  });

  deleteButton.addEventListener('click', () => {
    const c = shown;
    if (!c) return;
    void confirmAction({
      title: `Delete ${c.name}?`,
      text: 'Its secrets and tokens stop working at once. Its service user is disabled, not deleted, so the resources it owns stay. This cannot be undone.',
      confirm: 'Delete client',
    }).then(async (yes) => {
      if (!yes) return;
      await guarded(async () => {
        try {
          await client.deleteClient(c.id);
        } catch (error) {
          if (!(error instanceof ApiError && error.code === 'CLIENT_NOT_FOUND')) throw error; // already gone
        }
        clients.delete(c.id);
        rows.querySelector(`tr[data-client-id="${CSS.escape(c.id)}"]`)?.remove();
        empty.hidden = rows.children.length > 0;
        shown = null;
        detail.hidden = true;
        byId('client-list-title').focus();
        announce(`${c.name} is deleted.`);
      }, showDetailError);
    });
  });

  secretForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const c = shown;
    if (!c) return;
    const { label = '', expiresAt = '' } = formValues(secretForm);
    const at = localInputToIso(expiresAt);
    if (at === undefined) {
      showErrors(secretForm, localError('expiresAt', 'must be a date and time'));
      return;
    }
    void busy(secretForm, () =>
      guarded(
        async () => {
          clearErrors(secretForm);
          const issued = await client.addClientSecret(c.id, { label: label.trim() || null, expiresAt: at });
          secretForm.reset();
          showSecretOnce(c, issued.value);
          await reloadShown();
        },
        (error) => showErrors(secretForm, error),
      ),
    );
  });

  byId('client-detail-close').addEventListener('click', () => {
    const id = shown?.id;
    shown = null;
    detail.hidden = true;
    for (const tr of rows.querySelectorAll('tr.selected')) tr.classList.remove('selected');
    const back = id ? rows.querySelector<HTMLElement>(`tr[data-client-id="${CSS.escape(id)}"] button`) : null;
    (back ?? byId('client-list-title')).focus();
  });

  return {
    enter() {
      if (!loaded) void load();
      if (!scopesLoaded) void loadScopes();
    },
    clear() {
      generation += 1;
      clients = new Map();
      cursor = null;
      loaded = false;
      shown = null;
      hideSecretOnce();
      rows.replaceChildren();
      more.hidden = true;
      empty.hidden = true;
      listError.hidden = true;
      detail.hidden = true;
      form.reset();
      clearErrors(form);
      secretForm.reset();
      clearErrors(secretForm);
    },
  };
}
