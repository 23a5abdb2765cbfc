import { announce, busy, byId, formValues, h, time } from './dom.js';
import { clearErrors, describeError, showErrors } from './form-errors.js';
import {
  ApiError,
  GatehouseClient,
  type Resource,
  type Session,
  type SignedOutDetail,
  type User,
  type Visibility,
} from './gatehouse-client.js';

const client = new GatehouseClient();

type View = 'loading' | 'login' | 'signup' | 'app';
const VIEWS: Record<View, string> = {
  loading: 'loading-view',
  login: 'login-view',
  signup: 'signup-view',
  app: 'app-view',
};
let current: View = 'loading';
/** Focus follows view changes the user caused, not the first render of the page. */
let started = false;

function showView(view: View, { focus = true } = {}): void {
  for (const [name, id] of Object.entries(VIEWS)) byId(id).hidden = name !== view;
  byId('account-bar').hidden = view !== 'app';
  const changed = current !== view;
  current = view;
  document.title = {
    loading: 'Gatehouse',
    login: 'Sign in · Gatehouse',
    signup: 'Create an account · Gatehouse',
    app: 'Your account · Gatehouse',
  }[view];
  if (focus && changed) byId(VIEWS[view]).querySelector<HTMLElement>('h1')?.focus();
}

/** #signup and #login pick the form while signed out; the signed-in view has no hash. */
function showAuthView(options: { focus?: boolean } = {}): void {
  showView(location.hash === '#signup' ? 'signup' : 'login', options);
}

function setNotice(text: string | null): void {
  const notice = byId('login-notice');
  notice.textContent = text ?? '';
  notice.hidden = !text;
}

/** Runs a signed-in action; an auth failure has already sent the page to the login form. */
async function guarded(work: () => Promise<void>, onError: (error: unknown) => void): Promise<void> {
  try {
    await work();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401 && !client.signedIn) return;
    onError(error);
  }
}

// ---- sign in / sign up -------------------------------------------------------------

const loginForm = byId<HTMLFormElement>('login-form');
const signupForm = byId<HTMLFormElement>('signup-form');

loginForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const { username = '', password = '' } = formValues(loginForm);
  void busy(loginForm, async () => {
    try {
      clearErrors(loginForm);
      await client.login(username.trim(), password);
      loginForm.reset();
    } catch (error) {
      showErrors(loginForm, error);
    }
  });
});

signupForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const values = formValues(signupForm);
  const email = values.email?.trim();
  const displayName = values.displayName?.trim();
  void busy(signupForm, async () => {
    try {
      clearErrors(signupForm);
      await client.signup({
        username: (values.username ?? '').trim(),
        password: values.password ?? '',
        ...(email ? { email } : {}),
        ...(displayName ? { displayName } : {}),
      });
      signupForm.reset();
    } catch (error) {
      showErrors(signupForm, error);
    }
  });
});

window.addEventListener('hashchange', () => {
  if (current === 'login' || current === 'signup') {
    setNotice(null);
    showAuthView();
  }
});

// ---- the signed-in view ----------------------------------------------------------------

let me: User | null = null;

async function enterApp(): Promise<void> {
  setNotice(null);
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  showView('app', { focus: started });
  await Promise.allSettled([loadProfile(), loadResources(true), loadSessions()]);
}

function leaveApp(detail: SignedOutDetail): void {
  me = null;
  byId('whoami').textContent = '';
  byId('resource-list').replaceChildren();
  byId('session-list').replaceChildren();
  for (const form of document.querySelectorAll('form')) {
    form.reset();
    clearErrors(form);
  }
  setNotice(
    {
      logout: 'You have signed out.',
      expired: 'Your session has ended. Please sign in again.',
      'other-tab': 'You were signed out in another tab.',
    }[detail.reason],
  );
  showAuthView();
}

client.addEventListener('signedin', () => {
  void enterApp();
});
client.addEventListener('signedout', (event) => {
  leaveApp((event as CustomEvent<SignedOutDetail>).detail);
});

byId('logout-button').addEventListener('click', () => {
  void client.logout().catch((error: unknown) => {
    // Signed out here either way; the server may not have heard it.
    setNotice(`You are signed out on this page, but the server could not confirm it: ${describeError(error)}`);
  });
});

// Profile

const profileForm = byId<HTMLFormElement>('profile-form');

function renderProfile(user: User): void {
  me = user;
  byId('whoami').textContent = user.displayName ?? user.username;
  byId('profile-username').textContent = user.username;
  byId('profile-email').textContent = user.email ?? '—';
  byId('profile-created').replaceChildren(time(user.createdAt));
  byId<HTMLInputElement>('profile-displayName').value = user.displayName ?? '';
}

async function loadProfile(): Promise<void> {
  await guarded(
    async () => renderProfile(await client.me()),
    (error) => showErrors(profileForm, error),
  );
}

profileForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const displayName = (formValues(profileForm).displayName ?? '').trim();
  if (me && displayName === (me.displayName ?? '')) {
    announce('Nothing to save.');
    return;
  }
  void busy(profileForm, () =>
    guarded(
      async () => {
        clearErrors(profileForm);
        renderProfile(await client.updateMe({ displayName: displayName === '' ? null : displayName }));
        announce('Display name saved.');
      },
      (error) => showErrors(profileForm, error),
    ),
  );
});

// Resources

const resourceForm = byId<HTMLFormElement>('resource-form');
const resourceList = byId<HTMLUListElement>('resource-list');
const moreButton = byId<HTMLButtonElement>('resources-more');
let nextCursor: string | null = null;

function updateEmptyState(): void {
  byId('resources-empty').hidden = resourceList.children.length > 0;
}

async function loadResources(reset: boolean): Promise<void> {
  const errorBox = byId('resources-error');
  await guarded(
    async () => {
      const page = await client.listResources(reset ? null : nextCursor);
      errorBox.hidden = true;
      if (reset) resourceList.replaceChildren();
      for (const resource of page.items) resourceList.append(resourceItem(resource));
      nextCursor = page.nextCursor;
      moreButton.hidden = !nextCursor;
      updateEmptyState();
    },
    (error) => {
      errorBox.textContent = describeError(error);
      errorBox.hidden = false;
    },
  );
}

moreButton.addEventListener('click', () => {
  const before = resourceList.children.length;
  void loadResources(false).then(() => {
    // Keep the keyboard user's place: focus the first newly loaded item.
    resourceList.children[before]?.querySelector<HTMLElement>('h3')?.focus();
  });
});

resourceForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const values = formValues(resourceForm);
  void busy(resourceForm, () =>
    guarded(
      async () => {
        clearErrors(resourceForm);
        const created = await client.createResource({
          title: values.title ?? '',
          body: values.body ?? '',
          visibility: (values.visibility ?? 'private') as Visibility,
        });
        resourceList.prepend(resourceItem(created));
        updateEmptyState();
        resourceForm.reset();
        announce(`Created “${created.title}”.`);
      },
      (error) => showErrors(resourceForm, error),
    ),
  ).then(() => {
    if (resourceForm.querySelector('[aria-invalid], .form-error:not([hidden])') === null) {
      byId('resource-title').focus();
    }
  });
});

function visibilityBadge(visibility: Visibility): HTMLElement {
  return h('span', { class: `badge ${visibility}` }, visibility === 'public' ? 'Public' : 'Private');
}

function resourceItem(resource: Resource): HTMLLIElement {
  const li = h('li', { class: 'item', 'data-id': resource.id });
  renderResource(li, resource);
  return li;
}

function renderResource(li: HTMLLIElement, resource: Resource): void {
  const titleId = `resource-${resource.id}-title`;
  const edit = h(
    'button',
    { type: 'button', class: 'secondary' },
    'Edit',
    h('span', { class: 'visually-hidden' }, ` “${resource.title}”`),
  );
  const remove = h(
    'button',
    { type: 'button', class: 'danger-link' },
    'Delete',
    h('span', { class: 'visually-hidden' }, ` “${resource.title}”`),
  );
  const actions = h('div', { class: 'actions' }, edit, remove);
  li.replaceChildren(
    h(
      'article',
      { 'aria-labelledby': titleId },
      h(
        'div',
        { class: 'item-head' },
        h('h3', { id: titleId, tabindex: -1 }, resource.title),
        visibilityBadge(resource.visibility),
      ),
      resource.body ? h('p', { class: 'item-body' }, resource.body) : null,
      h('p', { class: 'meta' }, 'Updated ', time(resource.updatedAt)),
      actions,
    ),
  );
  edit.addEventListener('click', () => renderEditor(li, resource));
  remove.addEventListener('click', () => confirmDelete(li, resource, actions, remove));
}

function renderEditor(li: HTMLLIElement, resource: Resource): void {
  const prefix = `edit-${resource.id}`;
  const field = (name: string, label: string, control: HTMLElement) =>
    h('div', { class: 'field' }, h('label', { for: `${prefix}-${name}` }, label), control);
  const radio = (value: Visibility, label: string) =>
    h(
      'label',
      {},
      h('input', { type: 'radio', name: 'visibility', value, checked: resource.visibility === value }),
      ` ${label}`,
    );
  const title = h('input', {
    id: `${prefix}-title`,
    name: 'title',
    type: 'text',
    value: resource.title,
    autocomplete: 'off',
    required: true,
  });
  const body = h('textarea', { id: `${prefix}-body`, name: 'body', rows: 3 });
  body.value = resource.body;
  const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
  const form = h(
    'form',
    { id: prefix, class: 'editor', novalidate: true, 'aria-label': `Edit “${resource.title}”` },
    h('p', { class: 'form-error', role: 'alert', tabindex: -1, hidden: true }),
    field('title', 'Title', title),
    field('body', 'Text', body),
    h(
      'fieldset',
      { class: 'field visibility' },
      h('legend', {}, 'Visibility'),
      radio('private', 'Private'),
      radio('public', 'Public'),
    ),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Save changes'), cancel),
  );
  li.replaceChildren(form);
  title.focus();

  const close = (next: Resource) => {
    renderResource(li, next);
    li.querySelector<HTMLButtonElement>('.actions button')?.focus();
  };
  cancel.addEventListener('click', () => close(resource));
  form.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      event.preventDefault();
      close(resource);
    }
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const values = formValues(form);
    const patch: { title?: string; body?: string; visibility?: Visibility } = {};
    if (values.title !== resource.title) patch.title = values.title ?? '';
    if (values.body !== resource.body) patch.body = values.body ?? '';
    if (values.visibility !== resource.visibility) patch.visibility = values.visibility as Visibility;
    if (Object.keys(patch).length === 0) {
      close(resource);
      return;
    }
    void busy(form, () =>
      guarded(
        async () => {
          const updated = await client.updateResource(resource.id, patch);
          close(updated);
          announce(`Saved “${updated.title}”.`);
        },
        (error) => showErrors(form, error),
      ),
    );
  });
}

function confirmDelete(li: HTMLLIElement, resource: Resource, actions: HTMLElement, trigger: HTMLButtonElement): void {
  const yes = h(
    'button',
    { type: 'button', class: 'danger' },
    'Yes, delete',
    h('span', { class: 'visually-hidden' }, ` “${resource.title}”`),
  );
  const no = h('button', { type: 'button', class: 'secondary' }, 'Keep it');
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const original = [...actions.childNodes];
  actions.replaceChildren(h('span', { class: 'confirm' }, 'Delete this resource?'), yes, no, error);
  no.focus();
  const restore = () => {
    actions.replaceChildren(...original);
    trigger.focus();
  };
  no.addEventListener('click', restore);
  actions.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && actions.contains(yes)) {
      event.preventDefault();
      restore();
    }
  });
  yes.addEventListener('click', () => {
    yes.disabled = true;
    void guarded(
      async () => {
        await client.deleteResource(resource.id);
        // Focus goes to the next item, else the previous one, else the section heading.
        const neighbour = (li.nextElementSibling ?? li.previousElementSibling)?.querySelector<HTMLElement>('h3');
        li.remove();
        updateEmptyState();
        (neighbour ?? byId('resources-title')).focus();
        announce(`Deleted “${resource.title}”.`);
      },
      (failure) => {
        yes.disabled = false;
        error.textContent = describeError(failure);
        error.hidden = false;
      },
    );
  });
}

// Sessions

const sessionList = byId<HTMLUListElement>('session-list');

function describeAgent(userAgent: string | null): string {
  if (!userAgent) return 'Unknown device';
  const browser = /Edg\//.test(userAgent)
    ? 'Edge'
    : /Firefox\//.test(userAgent)
      ? 'Firefox'
      : /Chrom(e|ium)\//.test(userAgent)
        ? 'Chrome'
        : /Safari\//.test(userAgent)
          ? 'Safari'
          : null;
  const os = /Android/.test(userAgent)
    ? 'Android'
    : /iPhone|iPad/.test(userAgent)
      ? 'iOS'
      : /Windows/.test(userAgent)
        ? 'Windows'
        : /Macintosh|Mac OS X/.test(userAgent)
          ? 'macOS'
          : /CrOS/.test(userAgent)
            ? 'ChromeOS'
            : /Linux/.test(userAgent)
              ? 'Linux'
              : null;
  if (browser && os) return `${browser} on ${os}`;
  return browser ?? os ?? userAgent.slice(0, 60);
}

async function loadSessions(): Promise<void> {
  const errorBox = byId('sessions-error');
  await guarded(
    async () => {
      const sessions = await client.sessions();
      errorBox.hidden = true;
      sessions.sort((a, b) => Number(b.current) - Number(a.current) || b.lastUsedAt.localeCompare(a.lastUsedAt));
      sessionList.replaceChildren(...sessions.map(sessionItem));
    },
    (error) => {
      errorBox.textContent = describeError(error);
      errorBox.hidden = false;
    },
  );
}

function sessionItem(session: Session): HTMLLIElement {
  const device = describeAgent(session.userAgent);
  const button = h(
    'button',
    { type: 'button', class: 'secondary' },
    'Sign out this device',
    h(
      'span',
      { class: 'visually-hidden' },
      session.current
        ? ' (this browser)'
        : ` (${device}, last active ${new Date(session.lastUsedAt).toLocaleString()})`,
    ),
  );
  const li = h(
    'li',
    { class: `item session${session.current ? ' current' : ''}`, 'data-session-id': session.id },
    h(
      'div',
      { class: 'item-head' },
      h('h3', { title: session.userAgent ?? '' }, device),
      session.current ? h('span', { class: 'badge current' }, 'This browser') : null,
    ),
    h(
      'p',
      { class: 'meta' },
      session.ip ? `${session.ip} · ` : '',
      'signed in ',
      time(session.createdAt),
      ' · last active ',
      time(session.lastUsedAt),
    ),
    h('div', { class: 'actions' }, button),
  );
  button.addEventListener('click', () => {
    button.disabled = true;
    if (session.current) {
      void client.logout().catch(() => undefined);
      return;
    }
    void guarded(
      async () => {
        try {
          await client.revokeSession(session.id);
        } catch (error) {
          if (!(error instanceof ApiError && error.status === 404)) throw error; // already gone
        }
        li.remove();
        byId('sessions-title').focus();
        announce(`Signed out ${device}.`);
      },
      (error) => {
        button.disabled = false;
        const errorBox = byId('sessions-error');
        errorBox.textContent = describeError(error);
        errorBox.hidden = false;
      },
    );
  });
  return li;
}

byId('sessions-reload').addEventListener('click', () => {
  void loadSessions().then(() => announce('Session list updated.'));
});

byId('logout-all').addEventListener('click', () => {
  const button = byId<HTMLButtonElement>('logout-all');
  button.disabled = true;
  void guarded(
    () => client.logoutAll(),
    (error) => {
      const errorBox = byId('sessions-error');
      errorBox.textContent = describeError(error);
      errorBox.hidden = false;
    },
  ).finally(() => {
    button.disabled = false;
  });
});

// ---- start ---------------------------------------------------------------------------

async function start(): Promise<void> {
  try {
    // true: the `signedin` event has already shown the signed-in view.
    if (await client.start()) return;
  } catch (error) {
    setNotice(describeError(error));
  }
  showAuthView({ focus: false });
}

void start().finally(() => {
  started = true;
});
