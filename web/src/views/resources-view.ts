import { announce, busy, byId, formValues, h, time } from '../dom.js';
import { clearErrors, describeError, showErrors } from '../form-errors.js';
import type { Resource, Tenant, Visibility } from '../gatehouse-client.js';
import type { SignedInDeps, SignedInPart } from './signed-in.js';

export interface ResourcesPart extends SignedInPart {
  /**
   * Names the tenant whose resources are listed (null: the personal ones). The list itself
   * follows the session's tenant (`client.tenantId`): `load()` again after a switch.
   */
  setContext(tenant: Tenant | null): void;
  /** A live `resource.created`: listed at the top when it is this list's (tenant or personal). */
  liveCreated(resource: Resource): void;
  /** A live `resource.updated`: the item shown again, when listed and not being edited. */
  liveUpdated(resource: Resource): void;
  /** A live `resource.deleted`: the item taken out, when listed. */
  liveDeleted(id: string): void;
  /**
   * After the live connection came back: the first page read again and compared, so that what
   * changed meanwhile is shown as if its events had come (nothing is redrawn otherwise).
   */
  catchUp(): Promise<void>;
}

/**
 * The resources card: the create form, the list (paged), and each item's edit and delete. The
 * list is the selected tenant's, or the personal one (the server decides from the token's `tid`).
 * Live events (web/src/realtime.ts, through app.ts) change it too: a change made elsewhere is
 * shown and announced; the echo of this page's own change finds it done already and is
 * skipped. An item being edited, or asked about before a delete, is not redrawn under the user,
 * and focus stays on the control it was on.
 */
export function createResourcesView({ client, guarded }: SignedInDeps): ResourcesPart {
  const form = byId('resource-form', HTMLFormElement);
  const list = byId('resource-list', HTMLUListElement);
  const moreButton = byId('resources-more', HTMLButtonElement);
  const errorBox = byId('resources-error');
  const heading = byId('resources-title');
  const privateLabel = byId('resource-private-label');
  /** Where "Load more" goes on from; null once the last page is in. */
  let nextCursor: string | null = null;
  /**
   * Bumped by each first-page load: the answers of an older one (a tenant switched away from
   * meanwhile) are dropped, and so is a resource created in the context left.
   */
  let generation = 0;
  /** The resource each item shows. */
  const shown = new WeakMap<HTMLLIElement, Resource>();
  /** Resources this page is deleting: their live `resource.deleted` is this page's own. */
  const deleting = new Set<string>();

  /** The list's order (the server's): newer `createdAt` first, then the greater id. Positive: `a` goes first. */
  function compare(a: Resource, b: Resource): number {
    return Date.parse(a.createdAt) - Date.parse(b.createdAt) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  }

  /**
   * Puts a new item where the list's order wants it; false when that is on a page not loaded
   * yet (older than every item shown while more pages remain).
   */
  function insertInOrder(li: HTMLLIElement, resource: Resource): boolean {
    for (const other of list.children) {
      const shownThere = other instanceof HTMLLIElement ? shown.get(other) : undefined;
      if (shownThere && compare(resource, shownThere) > 0) {
        list.insertBefore(li, other);
        return true;
      }
    }
    if (nextCursor !== null) return false;
    list.append(li);
    return true;
  }

  function itemOf(id: string): HTMLLIElement | null {
    for (const li of list.children) if (li instanceof HTMLLIElement && li.dataset.id === id) return li;
    return null;
  }

  /** Whether an item is being edited, or asks "Delete this resource?". */
  function busyItem(li: HTMLLIElement): boolean {
    return li.querySelector('form.editor, .confirm') !== null;
  }

  /** Draws an item again, focus kept on the same control (the heading or the n-th button). */
  function redraw(li: HTMLLIElement, resource: Resource): void {
    const controls = () => [...li.querySelectorAll<HTMLElement>('h3, button')];
    const focused = document.activeElement;
    const at = focused instanceof HTMLElement && li.contains(focused) ? controls().indexOf(focused) : -1;
    renderResource(li, resource);
    if (at >= 0) controls()[at]?.focus();
  }

  function updateEmptyState(): void {
    byId('resources-empty').hidden = list.children.length > 0;
  }

  /** The first page (`reset`: replacing the list) or the next one (appended). */
  async function loadPage(reset: boolean): Promise<void> {
    if (reset) {
      generation += 1;
      list.setAttribute('aria-busy', 'true');
    }
    const current = generation;
    await guarded(
      async () => {
        const page = await client.listResources(reset ? null : nextCursor);
        if (current !== generation) return;
        errorBox.hidden = true;
        if (reset) list.replaceChildren();
        for (const resource of page.items) list.append(resourceItem(resource));
        nextCursor = page.nextCursor;
        moreButton.hidden = !nextCursor;
        updateEmptyState();
      },
      (error) => {
        if (current !== generation) return;
        errorBox.textContent = describeError(error);
        errorBox.hidden = false;
      },
    );
    if (current === generation) list.removeAttribute('aria-busy');
  }

  moreButton.addEventListener('click', () => {
    const before = list.children.length;
    void loadPage(false).then(() => {
      // Keep the keyboard user's place: focus the first newly loaded item.
      list.children[before]?.querySelector<HTMLElement>('h3')?.focus();
    });
  });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const values = formValues(form);
    const current = generation;
    void busy(form, () =>
      guarded(
        async () => {
          clearErrors(form);
          const created = await client.createResource({
            title: values.title ?? '',
            body: values.body ?? '',
            visibility: (values.visibility ?? 'private') as Visibility,
          });
          // Created in the tenant that was selected when it was sent: a list since reloaded
          // for another one does not show it. Its live event may have listed it already.
          const listed = current === generation ? itemOf(created.id) : null;
          if (listed) redraw(listed, created);
          else if (current === generation) list.prepend(resourceItem(created));
          updateEmptyState();
          form.reset();
          announce(`Created “${created.title}”.`);
        },
        (error) => showErrors(form, error),
      ),
    ).then(() => {
      if (form.querySelector('[aria-invalid], .form-error:not([hidden])') === null) {
        byId('resource-title').focus();
      }
    });
  });

  function resourceItem(resource: Resource): HTMLLIElement {
    const li = h('li', { class: 'item', 'data-id': resource.id });
    renderResource(li, resource);
    return li;
  }

  function renderResource(li: HTMLLIElement, resource: Resource): void {
    shown.set(li, resource);
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
    const editor = h(
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
    li.replaceChildren(editor);
    title.focus();

    const close = (next: Resource) => {
      renderResource(li, next);
      li.querySelector<HTMLButtonElement>('.actions button')?.focus();
    };
    // Left unsaved: the resource as last known (a change made elsewhere meanwhile included).
    const leave = () => close(shown.get(li) ?? resource);
    cancel.addEventListener('click', leave);
    editor.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        leave();
      }
    });
    editor.addEventListener('submit', (event) => {
      event.preventDefault();
      const values = formValues(editor);
      const patch: { title?: string; body?: string; visibility?: Visibility } = {};
      if (values.title !== resource.title) patch.title = values.title ?? '';
      if (values.body !== resource.body) patch.body = values.body ?? '';
      if (values.visibility !== resource.visibility) patch.visibility = values.visibility as Visibility;
      if (Object.keys(patch).length === 0) {
        close(resource);
        return;
      }
      void busy(editor, () =>
        guarded(
          async () => {
            const updated = await client.updateResource(resource.id, patch);
            close(updated);
            announce(`Saved “${updated.title}”.`);
          },
          (error) => showErrors(editor, error),
        ),
      );
    });
  }

  function confirmDelete(
    li: HTMLLIElement,
    resource: Resource,
    actions: HTMLElement,
    trigger: HTMLButtonElement,
  ): void {
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
      const latest = shown.get(li);
      if (latest && latest !== resource) {
        // Changed elsewhere while the question was asked: shown as it is now.
        renderResource(li, latest);
        li.querySelectorAll<HTMLButtonElement>('.actions button')[1]?.focus();
        return;
      }
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
      deleting.add(resource.id);
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
      ).finally(() => deleting.delete(resource.id));
    });
  }

  function liveCreated(resource: Resource): void {
    if ((resource.tenantId ?? null) !== client.tenantId) return; // another list's
    if (itemOf(resource.id)) return liveUpdated(resource);
    if (!insertInOrder(resourceItem(resource), resource)) return;
    updateEmptyState();
    announce(`New resource: “${resource.title}”.`);
  }

  function liveUpdated(resource: Resource): void {
    const li = itemOf(resource.id);
    if (!li) return; // not on the pages loaded
    const before = shown.get(li);
    if (before) {
      const older = Date.parse(resource.updatedAt) < Date.parse(before.updatedAt);
      const same =
        before.updatedAt === resource.updatedAt &&
        before.title === resource.title &&
        before.body === resource.body &&
        before.visibility === resource.visibility;
      if (older || same) return; // late, or this page's own change
    }
    if (busyItem(li)) {
      shown.set(li, resource); // shown when the editor or the question closes
      return;
    }
    redraw(li, resource);
    announce(`“${resource.title}” was changed.`);
  }

  function liveDeleted(id: string): void {
    if (deleting.has(id)) return; // this page's own delete: it moves focus itself
    const li = itemOf(id);
    if (!li) return;
    const title = shown.get(li)?.title ?? '';
    const hadFocus = li.contains(document.activeElement);
    const neighbour = (li.nextElementSibling ?? li.previousElementSibling)?.querySelector<HTMLElement>('h3');
    li.remove();
    updateEmptyState();
    if (hadFocus) (neighbour ?? heading).focus();
    announce(`“${title}” was deleted.`);
  }

  async function catchUp(): Promise<void> {
    const current = generation;
    await guarded(
      async () => {
        const page = await client.listResources(null);
        if (current !== generation) return; // reloaded meanwhile (a tenant switch): up to date
        const ids = new Set(page.items.map((r) => r.id));
        // The page holds everything newer than its last item (everything, when it is the only
        // page): a listed item in that range but not on the page was deleted meanwhile.
        const last = page.items.at(-1);
        // A copy: items are taken out of the (live) collection on the way.
        for (const li of Array.from(list.children)) {
          const resource = li instanceof HTMLLIElement ? shown.get(li) : undefined;
          if (!resource || ids.has(resource.id)) continue;
          if (page.nextCursor === null || (last !== undefined && compare(resource, last) > 0)) {
            liveDeleted(resource.id);
          }
        }
        for (const resource of page.items) {
          if (itemOf(resource.id)) liveUpdated(resource);
          else liveCreated(resource);
        }
      },
      () => undefined, // a passing failure: the next change's event still comes
    );
  }

  function setContext(tenant: Tenant | null): void {
    heading.textContent = tenant ? `Resources of ${tenant.name}` : 'Your resources';
    privateLabel.textContent = tenant ? `Private: members of ${tenant.name}` : 'Private: only you';
  }

  return {
    load: () => loadPage(true),
    clear() {
      generation += 1;
      list.replaceChildren();
      list.removeAttribute('aria-busy');
      nextCursor = null;
      moreButton.hidden = true;
      errorBox.hidden = true;
      setContext(null);
    },
    setContext,
    liveCreated,
    liveUpdated,
    liveDeleted,
    catchUp,
  };
}

function visibilityBadge(visibility: Visibility): HTMLElement {
  return h('span', { class: `badge ${visibility}` }, visibility === 'public' ? 'Public' : 'Private');
}
