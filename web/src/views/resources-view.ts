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
}

/**
 * The resources card: the create form, the list (paged), and each item's edit and delete. The
 * list is the selected tenant's, or the personal one (the server decides from the token's `tid`).
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
          // for another one does not show it.
          if (current === generation) list.prepend(resourceItem(created));
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
    cancel.addEventListener('click', () => close(resource));
    editor.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        close(resource);
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
  };
}

function visibilityBadge(visibility: Visibility): HTMLElement {
  return h('span', { class: `badge ${visibility}` }, visibility === 'public' ? 'Public' : 'Private');
}
