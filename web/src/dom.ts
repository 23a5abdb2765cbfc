/** Small DOM helpers: every piece of user data goes through textContent, never innerHTML. */

/**
 * The element `#id`, which must be there: `byId('login-form', HTMLFormElement)` also checks
 * that it is a <form> (and types it so), rather than trusting a cast.
 */
export function byId(id: string): HTMLElement;
export function byId<T extends HTMLElement>(id: string, type: new () => T): T;
export function byId(id: string, type: new () => HTMLElement = HTMLElement): HTMLElement {
  const element: Element | null = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from index.html`);
  if (!(element instanceof type)) {
    throw new Error(`#${id} is a <${element.tagName.toLowerCase()}>, not an ${type.name}`);
  }
  return element;
}

type Child = Node | string | null | undefined | false;
type Props = Record<string, string | boolean | number | null | undefined>;

/** `h('button', { type: 'button', class: 'x' }, 'Edit')`. Attributes, not properties; `true` sets a bare attribute. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child);
  }
  return element;
}

/** Screen-reader announcement through the page's polite live region. */
export function announce(text: string): void {
  const region = byId('announcer');
  region.textContent = '';
  // A fresh text node in a later task makes repeated identical messages be read again.
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function time(iso: string): HTMLTimeElement {
  const date = new Date(iso);
  return h('time', { datetime: iso }, Number.isNaN(date.getTime()) ? iso : dateFormat.format(date));
}

export function formValues(form: HTMLFormElement): Record<string, string> {
  const values: Record<string, string> = {};
  for (const [name, value] of new FormData(form)) {
    if (typeof value === 'string') values[name] = value;
  }
  return values;
}

/**
 * Marks a form busy while `work` runs; a second submit meanwhile is ignored (resolves
 * undefined). Controls are not disabled: that would throw away the keyboard focus.
 */
export async function busy<T>(form: HTMLFormElement, work: () => Promise<T>): Promise<T | undefined> {
  if (form.getAttribute('aria-busy') === 'true') return undefined;
  const buttons = [...form.querySelectorAll<HTMLButtonElement>('button[type="submit"]')];
  form.setAttribute('aria-busy', 'true');
  for (const b of buttons) b.setAttribute('aria-disabled', 'true');
  try {
    return await work();
  } finally {
    form.removeAttribute('aria-busy');
    for (const b of buttons) b.removeAttribute('aria-disabled');
  }
}

/**
 * The `token` of a mailed link (`/reset-password#token=…`, `/verify-email#token=…`), or the
 * `subject_token` of a federated sign-in (`/federated-signin#subject_token=…`), read from the
 * URL fragment only (never the query: a fragment is not sent to servers, logs or Referer),
 * then taken out of the address bar and the history entry, so that it is neither shown,
 * bookmarked nor shared. Reading it uses nothing up: the page POSTs it.
 */
export function takeFragmentToken(name = 'token'): string | null {
  const token = new URLSearchParams(location.hash.slice(1)).get(name);
  if (location.hash) history.replaceState(history.state, '', location.pathname + location.search);
  return token === null || token === '' ? null : token;
}
