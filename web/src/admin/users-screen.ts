import { announce, byId, formValues, h, time } from '../dom.js';
import { clearErrors, describeError, showErrors } from '../form-errors.js';
import { ApiError, type AdminSession, type AdminUser, type AdminUserPatch } from '../gatehouse-client.js';
import { describeAgent } from '../views/sessions-view.js';
import { confirmAction } from './confirm.js';
import { badge, fact, shortAgent } from './format.js';
import type { AdminDeps, AdminScreen } from './screen.js';

const PAGE_SIZE = 20;

/**
 * The Users screen: a search (`GET /users?q=`), one page of accounts at a time (Next and
 * Previous follow the cursors), and the panel of the account opened from the list: enable or
 * disable it, make or remove an administrator (beside the last-admin rule), reset its
 * two-step sign-in, its live sessions (end one, end all), and a link to its audit events.
 */
export function createUsersScreen({ client, guarded }: AdminDeps): AdminScreen {
  const form = byId('user-search', HTMLFormElement);
  const searchInput = byId('user-search-q', HTMLInputElement);
  const rows = byId('user-rows', HTMLTableSectionElement);
  const summary = byId('users-summary');
  const prev = byId('users-prev', HTMLButtonElement);
  const next = byId('users-next', HTMLButtonElement);

  const detail = byId('user-detail');
  const title = byId('user-detail-title');
  const facts = byId('user-facts');
  const accountText = byId('user-account-text');
  const accountError = byId('user-account-error');
  const toggleDisabled = byId('user-toggle-disabled', HTMLButtonElement);
  const selfNote = byId('user-self-note');
  const roleText = byId('user-role-text');
  const roleError = byId('user-role-error');
  const toggleAdmin = byId('user-toggle-admin', HTMLButtonElement);
  const mfaText = byId('user-mfa-text');
  const mfaError = byId('user-mfa-error');
  const resetMfa = byId('user-reset-mfa', HTMLButtonElement);
  const mfaHint = byId('user-mfa-hint');
  const sessionsTitle = byId('user-sessions-title');
  const sessionsError = byId('user-sessions-error');
  const sessionsEmpty = byId('user-sessions-empty');
  const sessionList = byId('user-session-list', HTMLUListElement);
  const endAll = byId('user-sessions-end-all', HTMLButtonElement);
  const auditLink = byId('user-audit-link', HTMLAnchorElement);

  /** The search on show ('' for every account). */
  let query = '';
  /** The cursor of each page seen, in order (the first page's is null); the last is the one on show. */
  let cursors: Array<string | null> = [null];
  let nextCursor: string | null = null;
  let users = new Map<string, AdminUser>();
  /** The account in the panel. */
  let selected: AdminUser | null = null;
  let loaded = false;
  /** Bumped by each list load and by `clear`: answers for an older one are dropped. */
  let generation = 0;
  /** Likewise for the panel (another account opened meanwhile). */
  let panelGeneration = 0;

  const isSelf = (user: AdminUser) => user.id === client.userId;
  const isAdmin = (user: AdminUser) => user.roles.includes('admin');
  const nameOf = (user: AdminUser) => user.username;

  // ---- the list ------------------------------------------------------------------------------

  async function loadPage(cursor: string | null, index: number, focusFirst: boolean): Promise<void> {
    generation += 1;
    const current = generation;
    await guarded(
      async () => {
        const page = await client.adminListUsers({ q: query || undefined, cursor, limit: PAGE_SIZE });
        if (current !== generation) return;
        clearErrors(form);
        cursors = [...cursors.slice(0, index), cursor];
        nextCursor = page.nextCursor;
        users = new Map(page.items.map((u) => [u.id, u]));
        rows.replaceChildren(...page.items.map(row));
        loaded = true;
        prev.disabled = index === 0;
        next.disabled = !nextCursor;
        summary.textContent = summaryText(page.items.length, index + 1);
        if (focusFirst) {
          rows.querySelector<HTMLElement>('button')?.focus();
          announce(summary.textContent);
        }
      },
      (error) => {
        if (current !== generation) return;
        showErrors(form, error);
      },
    );
  }

  function summaryText(count: number, page: number): string {
    const matching = query ? ` matching “${query}”` : '';
    if (count === 0)
      return page === 1 ? (query ? `No account matches “${query}”.` : 'No account yet.') : 'No more accounts.';
    const accounts = `${count} account${count === 1 ? '' : 's'}${matching}`;
    return page === 1 && !nextCursor ? `${accounts}.` : `Page ${page}: ${accounts}.`;
  }

  function row(user: AdminUser): HTMLTableRowElement {
    const open = h(
      'button',
      { type: 'button', class: 'link', 'aria-describedby': `user-row-${user.id}-email` },
      user.username,
    );
    open.addEventListener('click', () => openUser(user.id));
    return h(
      'tr',
      { 'data-user-id': user.id, class: selected?.id === user.id ? 'selected' : null },
      h(
        'th',
        { scope: 'row' },
        open,
        user.displayName ? h('span', { class: 'sub' }, user.displayName) : null,
        isSelf(user) ? h('span', { class: 'sub' }, '(you)') : null,
      ),
      h(
        'td',
        { id: `user-row-${user.id}-email` },
        user.email ?? '—',
        user.email ? ' ' : null,
        user.email ? (user.emailVerified ? badge('verified', 'verified') : badge('unverified', 'unverified')) : null,
      ),
      h('td', {}, ...roleBadges(user)),
      h('td', {}, user.mfaEnabled ? badge('On', 'on') : 'Off'),
      h('td', {}, time(user.createdAt)),
    );
  }

  function roleBadges(user: AdminUser): HTMLElement[] {
    const list = [isAdmin(user) ? badge('Admin', 'role role-admin') : badge('User', 'role')];
    if (user.kind === 'service') list.push(badge('Service', 'role'));
    return list;
  }

  function replaceRow(user: AdminUser): void {
    const old = rows.querySelector(`tr[data-user-id="${CSS.escape(user.id)}"]`);
    if (old) old.replaceWith(row(user));
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    query = (formValues(form).q ?? '').trim();
    cursors = [null];
    void loadPage(null, 0, false).then(() => announce(summary.textContent ?? ''));
  });

  next.addEventListener('click', () => {
    if (nextCursor) void loadPage(nextCursor, cursors.length, true);
  });
  prev.addEventListener('click', () => {
    if (cursors.length > 1) void loadPage(cursors[cursors.length - 2] ?? null, cursors.length - 2, true);
  });

  // ---- the panel -----------------------------------------------------------------------------

  function openUser(id: string): void {
    const user = users.get(id);
    if (!user) return;
    selected = user;
    for (const tr of rows.querySelectorAll('tr')) tr.classList.toggle('selected', tr.dataset.userId === id);
    for (const box of [accountError, roleError, mfaError, sessionsError]) box.hidden = true;
    renderPanel();
    detail.hidden = false;
    title.focus();
    void loadAccount(id);
    void loadSessions();
  }

  /** GET /users/:id: whether the account is disabled, which the list does not say. */
  async function loadAccount(id: string): Promise<void> {
    await guarded(
      async () => {
        const fresh = await client.adminGetUser(id);
        users.set(fresh.id, fresh);
        if (selected?.id !== fresh.id) return;
        selected = fresh;
        replaceRow(fresh);
        renderPanel();
      },
      (error) => {
        if (selected?.id === id) showRefusal(accountError, error, selected);
      },
    );
  }

  function renderPanel(): void {
    const user = selected;
    if (!user) return;
    const self = isSelf(user);
    title.textContent = self ? `${user.username} (you)` : user.username;
    facts.replaceChildren(
      fact('User id', h('code', {}, user.id)),
      fact('Display name', user.displayName ?? '—'),
      fact(
        'Email',
        user.email ?? '—',
        user.email ? ' ' : null,
        user.email ? (user.emailVerified ? badge('verified', 'verified') : badge('unverified', 'unverified')) : null,
      ),
      fact('Kind', user.kind === 'service' ? "A machine client's service user" : 'Person'),
      fact('Created', time(user.createdAt)),
    );

    const disabled = user.disabled === true;
    const known = user.disabled !== undefined;
    accountText.textContent = !known
      ? 'Checking the account…'
      : disabled
        ? 'Disabled: cannot sign in, and every session of theirs has ended.'
        : 'Enabled: can sign in.';
    toggleDisabled.textContent = disabled ? 'Enable account' : 'Disable account';
    toggleDisabled.className = disabled ? 'secondary' : 'danger';
    // One's own account is not disabled from here: it would sign this console out at once.
    toggleDisabled.hidden = !known || (self && !disabled);
    selfNote.hidden = !(known && self && !disabled);

    const admin = isAdmin(user);
    roleText.textContent = admin
      ? 'Administrator: may use this console and every admin call.'
      : 'Not an administrator.';
    toggleAdmin.textContent = admin ? 'Remove administrator' : 'Make administrator';
    toggleAdmin.className = admin ? 'danger' : 'secondary';

    const mfa = user.mfaEnabled === true;
    mfaText.textContent = mfa
      ? self
        ? 'On. Turn your own off on your account page.'
        : 'On: signing in asks for a code from their authenticator app.'
      : 'Off.';
    resetMfa.hidden = !mfa || self;
    mfaHint.hidden = resetMfa.hidden;

    auditLink.href = `#audit?${new URLSearchParams({ userId: user.id }).toString()}`;
    auditLink.replaceChildren(
      'Audit events for this user',
      h('span', { class: 'visually-hidden' }, ` (${user.username})`),
    );
  }

  /** A refusal in words, for the admin calls of the panel. */
  function refusal(error: unknown, user: AdminUser): string {
    if (error instanceof ApiError) {
      if (error.code === 'LAST_ADMIN') {
        return `${isSelf(user) ? 'You are' : `${user.username} is`} the last enabled administrator, and Gatehouse always keeps one: make another account an administrator first.`;
      }
      if (error.code === 'CANNOT_TARGET_SELF') return 'Not on your own account: use your account page for that.';
      if (error.code === 'USER_NOT_FOUND') return 'This account no longer exists.';
      if (error.code === 'MFA_NOT_ENABLED') return 'Two-step sign-in is already off for this account.';
    }
    return describeError(error);
  }

  function showRefusal(box: HTMLElement, error: unknown, user: AdminUser): void {
    box.textContent = refusal(error, user);
    box.hidden = false;
    announce(box.textContent);
  }

  /** PATCH /users/:id, then the list and the panel show the answer; focus stays on `button`. */
  async function update(
    user: AdminUser,
    patch: AdminUserPatch,
    box: HTMLElement,
    button: HTMLButtonElement,
    done: string,
  ): Promise<void> {
    box.hidden = true;
    button.setAttribute('aria-disabled', 'true');
    await guarded(
      async () => {
        const answer = await client.adminUpdateUser(user.id, patch);
        // PATCH answers the User object, without `disabled`: what was asked is what happened.
        const updated: AdminUser = { ...user, ...answer, disabled: answer.disabled ?? patch.disabled ?? user.disabled };
        users.set(updated.id, updated);
        replaceRow(updated);
        if (selected?.id === updated.id) {
          selected = updated;
          renderPanel();
        }
        announce(done);
        if (!button.hidden) button.focus();
        if (patch.disabled === true) void loadSessions();
        // The server revoked this console's token if its own roles changed: take the new one now.
        if (isSelf(updated) && patch.roles) await client.refresh();
      },
      (error) => showRefusal(box, error, user),
    );
    button.removeAttribute('aria-disabled');
  }

  toggleDisabled.addEventListener('click', () => {
    const user = selected;
    if (!user || toggleDisabled.getAttribute('aria-disabled') === 'true') return;
    const name = nameOf(user);
    if (user.disabled) {
      void update(user, { disabled: false }, accountError, toggleDisabled, `${name} is enabled again.`);
      return;
    }
    void confirmAction({
      title: `Disable ${name}?`,
      text: 'They are signed out everywhere at once, and cannot sign in until the account is enabled again.',
      confirm: 'Disable account',
    }).then(async (yes) => {
      if (yes)
        await update(user, { disabled: true }, accountError, toggleDisabled, `${name} is disabled and signed out.`);
    });
  });

  toggleAdmin.addEventListener('click', () => {
    const user = selected;
    if (!user || toggleAdmin.getAttribute('aria-disabled') === 'true') return;
    const name = nameOf(user);
    const making = !isAdmin(user);
    void confirmAction(
      making
        ? {
            title: `Make ${name} an administrator?`,
            text: 'Administrators manage every account, machine client and tenant, and read the audit log.',
            confirm: 'Make administrator',
            danger: false,
          }
        : {
            title: isSelf(user) ? 'Remove your own administrator role?' : `Remove ${name}'s administrator role?`,
            text: isSelf(user)
              ? 'You lose access to this console at once.'
              : 'They can no longer use this console or any admin call. Their sessions stay.',
            confirm: 'Remove administrator',
          },
    ).then(async (yes) => {
      if (!yes) return;
      await update(
        user,
        { roles: making ? ['user', 'admin'] : ['user'] },
        roleError,
        toggleAdmin,
        making ? `${name} is now an administrator.` : `${name} is no longer an administrator.`,
      );
    });
  });

  resetMfa.addEventListener('click', () => {
    const user = selected;
    if (!user) return;
    const name = nameOf(user);
    void confirmAction({
      title: `Reset ${name}'s two-step sign-in?`,
      text: 'Their authenticator and recovery codes are removed, and they are signed out everywhere: they sign in with their password alone, and can turn two-step sign-in on again.',
      confirm: 'Reset two-step sign-in',
    }).then(async (yes) => {
      if (!yes) return;
      mfaError.hidden = true;
      await guarded(
        async () => {
          await client.adminResetMfa(user.id);
          const updated = { ...user, mfaEnabled: false };
          users.set(updated.id, updated);
          replaceRow(updated);
          if (selected?.id === updated.id) {
            selected = updated;
            renderPanel();
          }
          mfaText.focus();
          announce(`${name}'s two-step sign-in is off, and their sessions have ended.`);
          void loadSessions();
        },
        (error) => showRefusal(mfaError, error, user),
      );
    });
  });
  mfaText.tabIndex = -1;

  byId('user-detail-close').addEventListener('click', () => {
    const id = selected?.id;
    panelGeneration += 1;
    selected = null;
    detail.hidden = true;
    for (const tr of rows.querySelectorAll('tr.selected')) tr.classList.remove('selected');
    const back = id ? rows.querySelector<HTMLElement>(`tr[data-user-id="${CSS.escape(id)}"] button`) : null;
    (back ?? searchInput).focus();
  });

  // ---- sessions ------------------------------------------------------------------------------

  async function loadSessions(): Promise<void> {
    const user = selected;
    if (!user) return;
    panelGeneration += 1;
    const current = panelGeneration;
    sessionsError.hidden = true;
    await guarded(
      async () => {
        const sessions = await client.adminUserSessions(user.id);
        if (current !== panelGeneration) return;
        sessionList.replaceChildren(...sessions.map((s) => sessionItem(user, s)));
        sessionsEmpty.hidden = sessions.length > 0;
        endAll.hidden = sessions.length === 0;
      },
      (error) => {
        if (current !== panelGeneration) return;
        showRefusal(sessionsError, error, user);
      },
    );
  }

  function sessionItem(user: AdminUser, session: AdminSession): HTMLLIElement {
    const device = describeAgent(session.userAgent);
    const mine = session.id === client.sessionId;
    const end = h(
      'button',
      { type: 'button', class: 'secondary' },
      'End session',
      h(
        'span',
        { class: 'visually-hidden' },
        ` on ${device}, last used ${new Date(session.lastUsedAt).toLocaleString()}`,
      ),
    );
    const li = h(
      'li',
      { class: 'item session', 'data-session-id': session.id },
      h(
        'div',
        { class: 'item-head' },
        h('span', { class: 'item-title' }, device),
        mine ? badge('This browser', 'current') : null,
      ),
      h(
        'p',
        { class: 'meta' },
        session.ip ? `${session.ip} · ` : '',
        'signed in ',
        time(session.createdAt),
        ' · last used ',
        time(session.lastUsedAt),
      ),
      h('p', { class: 'meta agent', title: session.userAgent ?? '' }, shortAgent(session.userAgent, 90)),
      h('div', { class: 'actions' }, end),
    );
    end.addEventListener('click', () => {
      end.disabled = true;
      sessionsError.hidden = true;
      void guarded(
        async () => {
          try {
            await client.adminEndUserSession(user.id, session.id);
          } catch (error) {
            if (!(error instanceof ApiError && error.status === 404)) throw error; // already over
          }
          li.remove();
          sessionsEmpty.hidden = sessionList.children.length > 0;
          endAll.hidden = sessionList.children.length === 0;
          sessionsTitle.focus();
          announce(`Ended ${user.username}'s session on ${device}.`);
        },
        (error) => {
          end.disabled = false;
          showRefusal(sessionsError, error, user);
        },
      );
    });
    return li;
  }

  byId('user-sessions-reload').addEventListener('click', () => {
    void loadSessions().then(() => announce('Session list updated.'));
  });

  endAll.addEventListener('click', () => {
    const user = selected;
    if (!user) return;
    void confirmAction({
      title: `End every session of ${user.username}?`,
      text: 'They are signed out on all their devices at once. The account stays enabled: they can sign in again.',
      confirm: 'End all sessions',
    }).then(async (yes) => {
      if (!yes) return;
      sessionsError.hidden = true;
      await guarded(
        async () => {
          await client.adminEndUserSessions(user.id);
          await loadSessions();
          sessionsTitle.focus();
          announce(`Ended every session of ${user.username}.`);
        },
        (error) => showRefusal(sessionsError, error, user),
      );
    });
  });

  return {
    enter() {
      if (!loaded) void loadPage(null, 0, false);
    },
    clear() {
      generation += 1;
      panelGeneration += 1;
      query = '';
      cursors = [null];
      nextCursor = null;
      users = new Map();
      selected = null;
      loaded = false;
      form.reset();
      clearErrors(form);
      rows.replaceChildren();
      summary.textContent = '';
      prev.disabled = true;
      next.disabled = true;
      detail.hidden = true;
      sessionList.replaceChildren();
    },
  };
}
