import { announce, byId, h, time } from '../dom.js';
import { describeError } from '../form-errors.js';
import { ApiError, type Tenant, type TenantInvitation, type TenantMember } from '../gatehouse-client.js';
import { confirmAction } from './confirm.js';
import { badge, fact } from './format.js';
import type { AdminDeps, AdminScreen } from './screen.js';

const ROLE_LABELS: Record<string, string> = { owner: 'Owner', admin: 'Admin', member: 'Member' };
const roleLabel = (role: string): string => ROLE_LABELS[role] ?? role;
const rolesText = (roles: readonly string[]): string => (roles.length ? roles.map(roleLabel).join(', ') : '—');

/** Pages of invitations fetched at most (100 each). */
const MAX_PAGES = 10;

/**
 * The Tenants screen: every tenant (`GET /tenants?all=true`), and the panel of the one opened
 * from the list: its members with their roles (remove one) and its pending invitations
 * (revoke one). A global admin acts there as an owner would; the server audits it.
 */
export function createTenantsScreen({ client, guarded }: AdminDeps): AdminScreen {
  const rows = byId('tenant-rows', HTMLTableSectionElement);
  const listError = byId('tenants-error');
  const empty = byId('tenants-empty');
  const more = byId('tenants-more', HTMLButtonElement);

  const detail = byId('tenant-detail');
  const title = byId('tenant-detail-title');
  const facts = byId('tenant-facts');
  const membersTitle = byId('tenant-members-title');
  const membersError = byId('tenant-members-error');
  const membersEmpty = byId('tenant-members-empty');
  const memberList = byId('tenant-member-list', HTMLUListElement);
  const membersMore = byId('tenant-members-more', HTMLButtonElement);
  const invitationsTitle = byId('tenant-invitations-title');
  const invitationsError = byId('tenant-invitations-error');
  const invitationsEmpty = byId('tenant-invitations-empty');
  const invitationList = byId('tenant-invitation-list', HTMLUListElement);

  let tenants = new Map<string, Tenant>();
  let cursor: string | null = null;
  let loaded = false;
  let shown: Tenant | null = null;
  let membersCursor: string | null = null;
  let generation = 0;
  let panelGeneration = 0;

  function showError(box: HTMLElement, error: unknown): void {
    box.textContent =
      error instanceof ApiError && error.code === 'TENANT_NOT_FOUND'
        ? 'This tenant no longer exists.'
        : describeError(error);
    box.hidden = false;
  }

  async function load(): Promise<void> {
    generation += 1;
    const current = generation;
    await guarded(
      async () => {
        const page = await client.listAllTenants();
        if (current !== generation) return;
        listError.hidden = true;
        cursor = page.nextCursor;
        more.hidden = !cursor;
        tenants = new Map(page.items.map((t) => [t.id, t]));
        rows.replaceChildren(...page.items.map(row));
        empty.hidden = page.items.length > 0;
        loaded = true;
      },
      (error) => showError(listError, error),
    );
  }

  more.addEventListener('click', () => {
    if (!cursor) return;
    const current = generation;
    void guarded(
      async () => {
        const page = await client.listAllTenants(cursor);
        if (current !== generation) return;
        cursor = page.nextCursor;
        more.hidden = !cursor;
        const first = rows.children.length;
        for (const t of page.items) {
          if (tenants.has(t.id)) continue;
          tenants.set(t.id, t);
          rows.append(row(t));
        }
        rows.children[first]?.querySelector<HTMLElement>('button')?.focus();
      },
      (error) => showError(listError, error),
    );
  });

  function row(t: Tenant): HTMLTableRowElement {
    const open = h('button', { type: 'button', class: 'link' }, t.name);
    open.addEventListener('click', () => void openTenant(t.id));
    return h(
      'tr',
      { 'data-tenant-id': t.id, class: shown?.id === t.id ? 'selected' : null },
      h('th', { scope: 'row' }, open),
      h('td', {}, h('code', {}, t.slug)),
      h('td', {}, rolesText(t.myRoles)),
      h('td', {}, time(t.createdAt)),
    );
  }

  async function openTenant(id: string): Promise<void> {
    const t = tenants.get(id);
    if (!t) return;
    panelGeneration += 1;
    const current = panelGeneration;
    shown = t;
    for (const tr of rows.querySelectorAll('tr')) tr.classList.toggle('selected', tr.dataset.tenantId === id);
    title.textContent = t.name;
    facts.replaceChildren(
      fact('Slug', h('code', {}, t.slug)),
      fact('Tenant id', h('code', {}, t.id)),
      fact('Your roles there', rolesText(t.myRoles)),
      fact('Created', time(t.createdAt)),
    );
    for (const box of [membersError, invitationsError]) box.hidden = true;
    membersEmpty.hidden = true;
    invitationsEmpty.hidden = true;
    membersMore.hidden = true;
    memberList.replaceChildren();
    invitationList.replaceChildren();
    detail.hidden = false;
    title.focus();

    await Promise.all([
      guarded(
        async () => {
          const page = await client.listMembers(t.id);
          if (current !== panelGeneration) return;
          membersCursor = page.nextCursor;
          membersMore.hidden = !membersCursor;
          memberList.replaceChildren(...page.items.map((m) => memberItem(t, m)));
          membersEmpty.hidden = page.items.length > 0;
        },
        (error) => {
          if (current === panelGeneration) showError(membersError, error);
        },
      ),
      guarded(
        async () => {
          const items: TenantInvitation[] = [];
          let next: string | null = null;
          for (let i = 0; i < MAX_PAGES; i += 1) {
            const page = await client.listInvitations(t.id, next);
            items.push(...page.items);
            next = page.nextCursor;
            if (!next) break;
          }
          if (current !== panelGeneration) return;
          invitationList.replaceChildren(...items.map((inv) => invitationItem(t, inv)));
          invitationsEmpty.hidden = items.length > 0;
        },
        (error) => {
          if (current === panelGeneration) showError(invitationsError, error);
        },
      ),
    ]);
  }

  membersMore.addEventListener('click', () => {
    const t = shown;
    if (!t || !membersCursor) return;
    const current = panelGeneration;
    void guarded(
      async () => {
        const page = await client.listMembers(t.id, membersCursor);
        if (current !== panelGeneration) return;
        membersCursor = page.nextCursor;
        membersMore.hidden = !membersCursor;
        const first = memberList.children.length;
        memberList.append(...page.items.map((m) => memberItem(t, m)));
        memberList.children[first]?.querySelector<HTMLElement>('.item-title')?.focus();
      },
      (error) => showError(membersError, error),
    );
  });

  function memberItem(t: Tenant, m: TenantMember): HTMLLIElement {
    const name = m.displayName ? `${m.displayName} (${m.username})` : m.username;
    const remove = h(
      'button',
      { type: 'button', class: 'danger-link' },
      'Remove',
      h('span', { class: 'visually-hidden' }, ` ${m.username} from ${t.name}`),
    );
    const li = h(
      'li',
      { class: 'item member', 'data-user-id': m.userId },
      h(
        'div',
        { class: 'item-head' },
        h('span', { class: 'item-title', tabindex: -1 }, name),
        ...(m.roles.length ? m.roles.map((r) => badge(roleLabel(r), `role role-${r}`)) : [badge('no role', 'role')]),
      ),
      h('p', { class: 'meta' }, 'Joined ', time(m.joinedAt)),
      h('div', { class: 'actions' }, remove),
    );
    remove.addEventListener('click', () => {
      void confirmAction({
        title: `Remove ${m.username} from ${t.name}?`,
        text: 'They lose access to the tenant and its resources at once. The resources they made there stay.',
        confirm: 'Remove member',
      }).then(async (yes) => {
        if (!yes) return;
        membersError.hidden = true;
        await guarded(
          async () => {
            try {
              await client.removeMember(t.id, m.userId);
            } catch (error) {
              if (!(error instanceof ApiError && error.code === 'USER_NOT_FOUND')) throw error; // already gone
            }
            li.remove();
            membersEmpty.hidden = memberList.children.length > 0;
            membersTitle.focus();
            announce(`Removed ${m.username} from ${t.name}.`);
          },
          (error) => showError(membersError, error),
        );
      });
    });
    return li;
  }

  function invitationItem(t: Tenant, inv: TenantInvitation): HTMLLIElement {
    const revoke = h(
      'button',
      { type: 'button', class: 'danger-link' },
      'Revoke',
      h('span', { class: 'visually-hidden' }, ` the invitation to ${inv.email}`),
    );
    const li = h(
      'li',
      { class: 'item invitation', 'data-invitation-id': inv.id },
      h(
        'div',
        { class: 'item-head' },
        h('span', { class: 'item-title' }, inv.email),
        ...inv.roles.map((r) => badge(roleLabel(r), `role role-${r}`)),
      ),
      h('p', { class: 'meta' }, 'Sent ', time(inv.createdAt), ' · expires ', time(inv.expiresAt)),
      h('div', { class: 'actions' }, revoke),
    );
    revoke.addEventListener('click', () => {
      void confirmAction({
        title: `Revoke the invitation to ${inv.email}?`,
        text: 'The link in the mail stops working.',
        confirm: 'Revoke invitation',
      }).then(async (yes) => {
        if (!yes) return;
        invitationsError.hidden = true;
        await guarded(
          async () => {
            try {
              await client.revokeInvitation(t.id, inv.id);
            } catch (error) {
              if (!(error instanceof ApiError && error.status === 404)) throw error; // no longer pending
            }
            li.remove();
            invitationsEmpty.hidden = invitationList.children.length > 0;
            invitationsTitle.focus();
            announce(`Revoked the invitation to ${inv.email}.`);
          },
          (error) => showError(invitationsError, error),
        );
      });
    });
    return li;
  }

  byId('tenant-detail-close').addEventListener('click', () => {
    const id = shown?.id;
    panelGeneration += 1;
    shown = null;
    detail.hidden = true;
    for (const tr of rows.querySelectorAll('tr.selected')) tr.classList.remove('selected');
    const back = id ? rows.querySelector<HTMLElement>(`tr[data-tenant-id="${CSS.escape(id)}"] button`) : null;
    (back ?? byId('tenants-title')).focus();
  });

  return {
    enter() {
      if (!loaded) void load();
    },
    clear() {
      generation += 1;
      panelGeneration += 1;
      tenants = new Map();
      cursor = null;
      loaded = false;
      shown = null;
      rows.replaceChildren();
      more.hidden = true;
      empty.hidden = true;
      listError.hidden = true;
      detail.hidden = true;
      memberList.replaceChildren();
      invitationList.replaceChildren();
    },
  };
}
