import { announce, busy, byId, formValues, h, time } from '../dom.js';
import { clearErrors, describeError, localError, showErrors } from '../form-errors.js';
import type { AuditEvent, AuditFilter } from '../gatehouse-client.js';
import { eventText } from '../views/activity-view.js';
import { describeAgent } from '../views/sessions-view.js';
import { eventJson, isUuid, isoToLocalInput, localInputToIso, splitTypes } from './format.js';
import type { AdminDeps, AdminScreen } from './screen.js';

const PAGE_SIZE = 50;
/** The filters, as named in the address (`#audit?userId=…&type=login.*`) and in `GET /audit-events`. */
const KEYS = ['userId', 'actorId', 'type', 'from', 'to'] as const;

/**
 * The Audit log screen: the filters (the account the events are about, the account that made
 * them, event types or families, a time range), the events newest first with "Load more", each
 * with its details as JSON text. The filters live in the address, so that the Users screen's
 * "Audit events for this user" link (and the browser's Back) lead to a filtered log.
 */
export function createAuditScreen({ client, guarded }: AdminDeps): AdminScreen {
  const form = byId('audit-form', HTMLFormElement);
  const rows = byId('audit-rows', HTMLTableSectionElement);
  const summary = byId('audit-summary');
  const errorBox = byId('audit-error');
  const empty = byId('audit-empty');
  const more = byId('audit-more', HTMLButtonElement);

  /** The address parameters of the events on show (null: none loaded). */
  let loadedKey: string | null = null;
  let filter: AuditFilter = {};
  let cursor: string | null = null;
  let count = 0;
  let generation = 0;

  /** The filters of the address; invalid ones are left to the server (its 400 says which). */
  function filterOf(params: URLSearchParams): AuditFilter {
    return {
      userId: params.get('userId') || undefined,
      actorId: params.get('actorId') || undefined,
      type: splitTypes(params.get('type') ?? ''),
      from: params.get('from') || undefined,
      to: params.get('to') || undefined,
    };
  }

  function keyOf(params: URLSearchParams): string {
    const kept = new URLSearchParams();
    for (const key of KEYS) {
      const value = params.get(key);
      if (value) kept.set(key, value);
    }
    return kept.toString();
  }

  function fillForm(params: URLSearchParams): void {
    const set = (name: string, value: string) => {
      const input = form.elements.namedItem(name);
      if (input instanceof HTMLInputElement) input.value = value;
    };
    set('userId', params.get('userId') ?? '');
    set('actorId', params.get('actorId') ?? '');
    set('type', params.get('type') ?? '');
    set('from', isoToLocalInput(params.get('from')));
    set('to', isoToLocalInput(params.get('to')));
  }

  async function load(params: URLSearchParams): Promise<void> {
    generation += 1;
    const current = generation;
    loadedKey = keyOf(params);
    filter = filterOf(params);
    errorBox.hidden = true;
    await guarded(
      async () => {
        const page = await client.auditEvents({ ...filter, limit: PAGE_SIZE });
        if (current !== generation) return;
        clearErrors(form);
        cursor = page.nextCursor;
        more.hidden = !cursor;
        count = page.items.length;
        rows.replaceChildren(...page.items.map(row));
        empty.hidden = count > 0;
        summary.textContent = summaryText(page.items);
      },
      (error) => {
        if (current !== generation) return;
        loadedKey = null;
        rows.replaceChildren();
        summary.textContent = '';
        // A 400 names the filter at fault: it goes under that field.
        showErrors(form, error);
      },
    );
  }

  function summaryText(items: AuditEvent[]): string {
    const parts: string[] = [];
    if (filter.userId) {
      const name = items.find((e) => e.userId === filter.userId)?.username;
      parts.push(`about ${name ?? `account ${filter.userId}`}`);
    }
    if (filter.actorId) {
      const name = items.find((e) => e.actorId === filter.actorId)?.actorUsername;
      parts.push(`made by ${name ?? `account ${filter.actorId}`}`);
    }
    if (filter.type?.length) parts.push(`of type ${filter.type.join(', ')}`);
    const which = parts.length ? ` ${parts.join(', ')}` : '';
    const shown = `${count} event${count === 1 ? '' : 's'}${which}, newest first`;
    return cursor ? `${shown}; more with “Load more”.` : `${shown}.`;
  }

  function accountLink(id: string | null, name: string | null, key: 'userId' | 'actorId'): Node | string {
    if (!id) return '—';
    const label = name ?? 'deleted account';
    const query = new URLSearchParams({ [key]: id }).toString();
    return h(
      'a',
      { href: `#audit?${query}`, title: id },
      label,
      h('span', { class: 'visually-hidden' }, key === 'userId' ? ': events about them' : ': events they made'),
    );
  }

  function row(event: AuditEvent): HTMLTableRowElement {
    const details = h(
      'details',
      {},
      h('summary', {}, 'Show', h('span', { class: 'visually-hidden' }, ` the details of ${event.type}`)),
      h('pre', { class: 'json' }, eventJson(event)),
    );
    return h(
      'tr',
      { 'data-event-id': event.id, 'data-type': event.type },
      h('td', { class: 'when', tabindex: -1 }, time(event.createdAt)),
      h('td', {}, h('span', { class: 'event-text' }, eventText(event.type)), h('code', { class: 'type' }, event.type)),
      h('td', {}, accountLink(event.userId, event.username, 'userId')),
      h('td', {}, accountLink(event.actorId, event.actorUsername, 'actorId')),
      h('td', {}, event.ip ?? '—'),
      h('td', { title: event.userAgent ?? '' }, event.userAgent ? describeAgent(event.userAgent) : '—'),
      h('td', {}, event.requestId ? h('code', { class: 'request-id' }, event.requestId) : '—'),
      h('td', {}, details),
    );
  }

  more.addEventListener('click', () => {
    if (!cursor) return;
    const current = generation;
    void guarded(
      async () => {
        const page = await client.auditEvents({ ...filter, cursor, limit: PAGE_SIZE });
        if (current !== generation) return;
        cursor = page.nextCursor;
        more.hidden = !cursor;
        const first = rows.children.length;
        rows.append(...page.items.map(row));
        count += page.items.length;
        summary.textContent = summaryText(page.items);
        rows.children[first]?.querySelector<HTMLElement>('td.when')?.focus();
        announce(`${page.items.length} more events.`);
      },
      (error) => {
        errorBox.textContent = describeError(error);
        errorBox.hidden = false;
      },
    );
  });

  /** The form's filters as address parameters, or a refusal for the field at fault. */
  function readForm(): URLSearchParams | Error {
    const values = formValues(form);
    const params = new URLSearchParams();
    for (const key of ['userId', 'actorId'] as const) {
      const value = (values[key] ?? '').trim();
      if (value && !isUuid(value)) return localError(key, 'must be an account id (a UUID)');
      if (value) params.set(key, value);
    }
    const types = splitTypes(values.type ?? '');
    if (types.length) params.set('type', types.join(','));
    for (const key of ['from', 'to'] as const) {
      const at = localInputToIso(values[key] ?? '');
      if (at === undefined) return localError(key, 'must be a date and time');
      if (at) params.set(key, at);
    }
    return params;
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const params = readForm();
    if (params instanceof Error) {
      showErrors(form, params);
      return;
    }
    // Into the address (Back returns to the previous filters), without a `hashchange`.
    const query = params.toString();
    history.pushState(null, '', query ? `#audit?${query}` : '#audit');
    void busy(form, () => load(params)).then(() => {
      if (loadedKey !== null) announce(summary.textContent ?? '');
    });
  });

  byId('audit-clear').addEventListener('click', () => {
    form.reset();
    clearErrors(form);
    history.pushState(null, '', '#audit');
    void load(new URLSearchParams()).then(() => announce(summary.textContent ?? ''));
  });

  return {
    enter(params) {
      if (loadedKey === keyOf(params)) return;
      fillForm(params);
      void load(params);
    },
    clear() {
      generation += 1;
      loadedKey = null;
      filter = {};
      cursor = null;
      count = 0;
      form.reset();
      clearErrors(form);
      rows.replaceChildren();
      summary.textContent = '';
      more.hidden = true;
      empty.hidden = true;
      errorBox.hidden = true;
    },
  };
}
