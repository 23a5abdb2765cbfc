import { announce, busy, byId, formValues, h, time } from '../dom.js';
import { clearErrors, describeError, showErrors } from '../form-errors.js';
import {
  ApiError,
  type Tenant,
  type TenantInvitation,
  type TenantMember,
  type TenantRoleDefinition,
} from '../gatehouse-client.js';
import type { SignedInDeps, SignedInPart } from './signed-in.js';

/**
 * The built-in roles' permissions (contract v2 §E). `GET /tenants/:id/roles` says the same and
 * adds the custom roles; this table serves when the user may not read it (no `members:read`).
 */
const ALL_BUT_DELETE = [
  'tenant:update',
  'members:read',
  'members:write',
  'invitations:write',
  'roles:write',
  'resources:read',
  'resources:write',
  'resources:manage',
];
const BUILT_IN: Record<string, readonly string[]> = {
  owner: ['tenant:delete', ...ALL_BUT_DELETE],
  admin: ALL_BUT_DELETE,
  member: ['members:read', 'resources:read', 'resources:write'],
};
const BUILT_IN_ORDER = ['owner', 'admin', 'member'];
const ROLE_LABELS: Record<string, string> = { owner: 'Owner', admin: 'Admin', member: 'Member' };

const roleLabel = (role: string): string => ROLE_LABELS[role] ?? role;
const rolesText = (roles: readonly string[]): string => (roles.length ? roles.map(roleLabel).join(', ') : 'no role');
const memberName = (m: TenantMember): string => m.displayName ?? m.username;

/** Pages fetched at most for one list (100 items each): beyond that, "Load more" (members) or nothing. */
const MAX_PAGES = 20;

export interface TenantsPart extends SignedInPart {
  /**
   * The session's tenant changed (`tenantchanged`: a switch here or in another tab, or a
   * refresh that dropped it): the switcher and the tenant's panel follow.
   */
  tenantChanged(): Promise<void>;
}

/**
 * The tenants card: the switcher (a <select>: "Personal" and the user's tenants; choosing one
 * selects it in the session through `POST /auth/tenant`, so that the resources card then
 * lists that tenant's), the panel of the selected tenant (its members with their roles, the
 * add and invite forms, the pending invitations, as the user's roles there allow), and the
 * form that creates a tenant.
 *
 * `onContext` gets the tenant the session is in (null: personal) whenever it is known, so the
 * resources card can say whose resources it lists.
 */
export function createTenantsView({
  client,
  guarded,
  onContext,
}: SignedInDeps & { onContext: (tenant: Tenant | null) => void }): TenantsPart {
  const select = byId('tenant-select', HTMLSelectElement);
  const tenantsError = byId('tenants-error');
  const personalNote = byId('tenant-personal');
  const panel = byId('tenant-panel');
  const panelTitle = byId('tenant-panel-title');
  const panelMeta = byId('tenant-panel-meta');
  const membersError = byId('members-error');
  const membersNote = byId('members-note');
  const memberList = byId('member-list', HTMLUListElement);
  const membersMore = byId('members-more', HTMLButtonElement);
  const memberForm = byId('member-form', HTMLFormElement);
  const memberRole = byId('member-role', HTMLSelectElement);
  const invitations = byId('invitations');
  const inviteForm = byId('invite-form', HTMLFormElement);
  const inviteRole = byId('invite-role', HTMLSelectElement);
  const inviteDone = byId('invite-done');
  const invitationsError = byId('invitations-error');
  const invitationList = byId('invitation-list', HTMLUListElement);
  const tenantForm = byId('tenant-form', HTMLFormElement);
  const tenantFormDone = byId('tenant-form-done');
  const nameInput = byId('tenant-name', HTMLInputElement);
  const slugInput = byId('tenant-slug', HTMLInputElement);

  /** The user's tenants, by id. */
  let tenants = new Map<string, Tenant>();
  /** What the panel shows: the tenant, the user's permissions there, the role definitions. */
  let shown: { tenant: Tenant; permissions: Set<string>; roles: TenantRoleDefinition[] } | null = null;
  let membersCursor: string | null = null;
  /** Bumped by each panel load (and by `clear`): answers for an older one are dropped. */
  let generation = 0;
  /** The tenant the switcher asks for (null: personal); `drive()` works towards it. */
  let wanted: string | null = null;
  let switching = false;
  /** Whether the user edited the slug (else it follows the name). */
  let slugEdited = false;

  function showTenantsError(error: unknown): void {
    tenantsError.textContent = describeError(error);
    tenantsError.hidden = false;
  }

  // ---- the tenant list and the switcher ---------------------------------------

  async function loadTenants(): Promise<void> {
    const all: Tenant[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < MAX_PAGES; i += 1) {
      const page = await client.listTenants(cursor);
      all.push(...page.items);
      cursor = page.nextCursor;
      if (!cursor) break;
    }
    tenants = new Map(all.map((t) => [t.id, t]));
    renderSwitcher();
  }

  function renderSwitcher(): void {
    const sorted = [...tenants.values()].sort((a, b) => a.name.localeCompare(b.name) || a.slug.localeCompare(b.slug));
    select.replaceChildren(
      h('option', { value: '' }, 'Personal'),
      ...sorted.map((t) => h('option', { value: t.id }, `${t.name} (${t.slug})`)),
    );
    select.value = switching ? (wanted ?? '') : (client.tenantId ?? '');
  }

  select.addEventListener('change', () => {
    wanted = select.value === '' ? null : select.value;
    void drive();
  });

  /**
   * Selects `wanted` in the session, one request at a time: a keyboard user going through the
   * options fires a change per option, and only the last one chosen matters.
   */
  async function drive(): Promise<void> {
    if (switching) return;
    switching = true;
    select.setAttribute('aria-busy', 'true');
    try {
      while (client.signedIn && client.tenantId !== wanted) {
        const target = wanted;
        let failure: unknown = null;
        try {
          await client.selectTenant(target);
          tenantsError.hidden = true;
        } catch (error) {
          failure = error;
        }
        if (!client.signedIn) return;
        if (failure === null && client.tenantId !== target) {
          failure = new ApiError(500, 'TENANT_NOT_SELECTED', ['The server answered a token for another tenant']);
        }
        if (failure !== null) {
          showTenantsError(failure);
          wanted = client.tenantId;
          select.value = wanted ?? '';
          if (failure instanceof ApiError && failure.code === 'TENANT_NOT_FOUND') {
            // No longer a member: the list was out of date.
            await guarded(loadTenants, showTenantsError);
          }
          break;
        }
      }
    } finally {
      switching = false;
      select.removeAttribute('aria-busy');
    }
  }

  /** The switcher and the panel show the session's tenant (`client.tenantId`). */
  async function syncContext({ announceIt }: { announceIt: boolean }): Promise<void> {
    const id = client.tenantId;
    if (!switching) select.value = id ?? '';
    if (id === null) {
      showPersonal();
      if (announceIt) announce('Now in your personal space: your own resources are shown.');
      return;
    }
    let tenant = tenants.get(id);
    if (!tenant) {
      // Joined in another tab, or removed meanwhile: the list says which.
      await guarded(loadTenants, showTenantsError);
      if (client.tenantId !== id) return;
      tenant = tenants.get(id);
    }
    if (!tenant) {
      // The session names a tenant the user is no longer in: back to personal.
      await guarded(() => client.selectTenant(null), showTenantsError);
      return;
    }
    if (!switching) select.value = id;
    onContext(tenant);
    if (announceIt) announce(`Now in ${tenant.name}: its resources and members are shown.`);
    await loadPanel(tenant);
  }

  function showPersonal(): void {
    generation += 1;
    shown = null;
    onContext(null);
    panel.hidden = true;
    personalNote.hidden = false;
    memberList.replaceChildren();
    invitationList.replaceChildren();
  }

  // ---- the selected tenant's panel ----------------------------------------------

  async function loadPanel(tenant: Tenant): Promise<void> {
    generation += 1;
    const current = generation;
    personalNote.hidden = true;
    panel.hidden = false;
    renderPanelHead(tenant);
    membersError.hidden = true;
    membersNote.hidden = true;
    invitationsError.hidden = true;
    inviteDone.hidden = true;
    memberForm.hidden = true;
    invitations.hidden = true;
    membersMore.hidden = true;
    memberList.replaceChildren();
    invitationList.replaceChildren();

    await guarded(
      async () => {
        // Fresh roles (the list may be old), the role definitions (when they may be read),
        // and the first page of members (likewise).
        const [fresh, roles, members] = await Promise.allSettled([
          client.getTenant(tenant.id),
          client.listTenantRoles(tenant.id),
          client.listMembers(tenant.id),
        ]);
        if (current !== generation) return;
        if (fresh.status === 'rejected') throw fresh.reason;
        const me = fresh.value;
        tenants.set(me.id, me);
        const definitions = roles.status === 'fulfilled' ? roles.value : builtInDefinitions();
        shown = { tenant: me, permissions: permissionsOf(me.myRoles, definitions), roles: definitions };
        renderPanelHead(me);
        onContext(me);
        const canAdd = shown.permissions.has('members:write');
        const canInvite = shown.permissions.has('invitations:write');
        fillRoleSelect(memberRole);
        fillRoleSelect(inviteRole);
        memberForm.hidden = !canAdd;
        invitations.hidden = !canInvite;

        if (members.status === 'fulfilled') {
          membersCursor = members.value.nextCursor;
          membersMore.hidden = !membersCursor;
          memberList.replaceChildren(...members.value.items.map(memberItem));
          updateOwnerNote();
        } else if (members.reason instanceof ApiError && members.reason.code === 'INSUFFICIENT_TENANT_PERMISSION') {
          membersNote.textContent = 'Your role in this tenant does not let you see its members.';
          membersNote.hidden = false;
        } else {
          throw members.reason;
        }
        if (canInvite) await loadInvitations(current);
      },
      (error) => {
        if (current !== generation) return;
        membersError.textContent = describeError(error);
        membersError.hidden = false;
        if (error instanceof ApiError && error.code === 'TENANT_NOT_FOUND') {
          // Removed from it meanwhile: the session must leave it too.
          void guarded(() => client.selectTenant(null), showTenantsError);
        }
      },
    );
  }

  function renderPanelHead(tenant: Tenant): void {
    panelTitle.textContent = tenant.name;
    panelMeta.textContent = `Slug ${tenant.slug} · your role: ${rolesText(tenant.myRoles)}`;
  }

  function builtInDefinitions(): TenantRoleDefinition[] {
    return BUILT_IN_ORDER.map((name) => ({ name, builtIn: true, permissions: [...(BUILT_IN[name] ?? [])] }));
  }

  function permissionsOf(roles: readonly string[], definitions: TenantRoleDefinition[]): Set<string> {
    const byName = new Map(definitions.map((d) => [d.name, d.permissions]));
    return new Set(roles.flatMap((r) => byName.get(r) ?? BUILT_IN[r] ?? []));
  }

  const isOwner = (): boolean => shown?.tenant.myRoles.includes('owner') ?? false;

  /** Roles the user may grant: `owner` only by owners; others only within their own permissions. */
  function assignableRoles(): TenantRoleDefinition[] {
    if (!shown) return [];
    const mine = shown.permissions;
    return shown.roles.filter((role) =>
      role.name === 'owner' ? isOwner() : isOwner() || role.permissions.every((p) => mine.has(p)),
    );
  }

  function fillRoleSelect(target: HTMLSelectElement): void {
    const roles = assignableRoles();
    target.replaceChildren(...roles.map((r) => h('option', { value: r.name }, roleLabel(r.name))));
    if (roles.some((r) => r.name === 'member')) target.value = 'member';
  }

  /** Whether the user may change or remove `member` (the server has the last word). */
  function canManage(member: TenantMember): boolean {
    if (!shown || !shown.permissions.has('members:write') || member.userId === client.userId) return false;
    if (isOwner()) return true;
    if (member.roles.includes('owner')) return false;
    const theirs = permissionsOf(member.roles, shown.roles);
    return [...theirs].every((p) => shown?.permissions.has(p));
  }

  /** The owners on show, when the whole list is in (else null: unknown). */
  function ownerCount(): number | null {
    if (membersCursor) return null;
    return memberList.querySelectorAll('li[data-owner="true"]').length;
  }

  /** The sole owner cannot leave: the Leave button is not offered, and the note says why. */
  function updateOwnerNote(): void {
    const soleOwner = isOwner() && ownerCount() === 1;
    const leave = memberList.querySelector<HTMLElement>('li[data-self="true"] .leave');
    if (leave) leave.hidden = soleOwner;
    if (leave?.parentElement) leave.parentElement.hidden = soleOwner;
    if (soleOwner) {
      membersNote.textContent =
        'You are the only owner: to leave this tenant, make another member an owner first (“Change roles”).';
      membersNote.hidden = false;
    } else if (membersNote.textContent?.startsWith('You are the only owner')) {
      membersNote.hidden = true;
    }
  }

  membersMore.addEventListener('click', () => {
    const tenant = shown?.tenant;
    if (!tenant || !membersCursor) return;
    const current = generation;
    const before = memberList.children.length;
    void guarded(
      async () => {
        const page = await client.listMembers(tenant.id, membersCursor);
        if (current !== generation) return;
        membersCursor = page.nextCursor;
        membersMore.hidden = !membersCursor;
        for (const m of page.items) {
          if (!memberList.querySelector(`li[data-user-id="${CSS.escape(m.userId)}"]`)) memberList.append(memberItem(m));
        }
        updateOwnerNote();
        memberList.children[before]?.querySelector<HTMLElement>('.item-title')?.focus();
      },
      (error) => {
        membersError.textContent = describeError(error);
        membersError.hidden = false;
      },
    );
  });

  function memberItem(member: TenantMember): HTMLLIElement {
    const li = h('li', { class: 'item member', 'data-user-id': member.userId });
    renderMember(li, member);
    return li;
  }

  function renderMember(li: HTMLLIElement, member: TenantMember): void {
    const self = member.userId === client.userId;
    const name = memberName(member);
    li.dataset.owner = String(member.roles.includes('owner'));
    li.dataset.self = String(self);
    const actions = h('div', { class: 'actions' });
    if (self) {
      const leave = h('button', { type: 'button', class: 'secondary leave' }, 'Leave this tenant');
      leave.addEventListener('click', () => confirmLeave(li, member, actions, leave));
      actions.append(leave);
    } else if (canManage(member)) {
      const change = h(
        'button',
        { type: 'button', class: 'secondary' },
        'Change roles',
        h('span', { class: 'visually-hidden' }, ` of ${name}`),
      );
      const remove = h(
        'button',
        { type: 'button', class: 'danger-link' },
        'Remove',
        h('span', { class: 'visually-hidden' }, ` ${name}`),
      );
      change.addEventListener('click', () => renderRoleEditor(li, member));
      remove.addEventListener('click', () => confirmRemove(li, member, actions, remove));
      actions.append(change, remove);
    }
    li.replaceChildren(
      h(
        'div',
        { class: 'item-head' },
        h('span', { class: 'item-title', tabindex: -1 }, name),
        self ? h('span', { class: 'badge current' }, 'You') : null,
        ...(member.roles.length
          ? member.roles.map((r) => h('span', { class: `badge role role-${r}` }, roleLabel(r)))
          : [h('span', { class: 'badge role' }, 'No role')]),
      ),
      h('p', { class: 'meta' }, `${member.username} · joined `, time(member.joinedAt)),
      ...(actions.childElementCount ? [actions] : []),
    );
  }

  function renderRoleEditor(li: HTMLLIElement, member: TenantMember): void {
    const tenant = shown?.tenant;
    if (!tenant) return;
    const prefix = `roles-${member.userId}`;
    const name = memberName(member);
    const boxes = assignableRoles().map((role) =>
      h(
        'label',
        {},
        h('input', {
          type: 'checkbox',
          name: 'roles',
          value: role.name,
          checked: member.roles.includes(role.name),
        }),
        ` ${roleLabel(role.name)}`,
      ),
    );
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const editor = h(
      'form',
      { id: prefix, class: 'editor', novalidate: true, 'aria-label': `Roles of ${name}` },
      h('p', { class: 'form-error', role: 'alert', tabindex: -1, hidden: true }),
      h('fieldset', { class: 'field roles' }, h('legend', {}, `Roles of ${name}`), ...boxes),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Save roles'), cancel),
    );
    li.replaceChildren(editor);
    editor.querySelector<HTMLInputElement>('input')?.focus();

    const close = (next: TenantMember) => {
      renderMember(li, next);
      updateOwnerNote();
      li.querySelector<HTMLButtonElement>('.actions button')?.focus();
    };
    cancel.addEventListener('click', () => close(member));
    editor.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        close(member);
      }
    });
    editor.addEventListener('submit', (event) => {
      event.preventDefault();
      const roles = [...editor.querySelectorAll<HTMLInputElement>('input[name="roles"]:checked')].map((i) => i.value);
      // Roles the user may not grant stay as they are (they are not offered).
      const offered = new Set(assignableRoles().map((r) => r.name));
      const kept = member.roles.filter((r) => !offered.has(r));
      const next = [...kept, ...roles];
      if (next.length === member.roles.length && next.every((r) => member.roles.includes(r))) {
        close(member);
        return;
      }
      void busy(editor, () =>
        guarded(
          async () => {
            const updated = await client.setMemberRoles(tenant.id, member.userId, next);
            close(updated);
            announce(`${name} now has the role ${rolesText(updated.roles)}.`);
          },
          (error) => showErrors(editor, error),
        ),
      );
    });
  }

  /** "Are you sure?" in place of the item's buttons; `work` runs on yes. */
  function confirmInPlace(
    actions: HTMLElement,
    trigger: HTMLButtonElement,
    question: string,
    yesText: string,
    noText: string,
    work: (fail: (error: unknown) => void) => Promise<void>,
  ): void {
    const yes = h('button', { type: 'button', class: 'danger' }, yesText);
    const no = h('button', { type: 'button', class: 'secondary' }, noText);
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const original = [...actions.childNodes];
    actions.replaceChildren(h('span', { class: 'confirm' }, question), yes, no, error);
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
      void work((failure) => {
        yes.disabled = false;
        error.textContent = describeError(failure);
        error.hidden = false;
      });
    });
  }

  function confirmRemove(li: HTMLLIElement, member: TenantMember, actions: HTMLElement, trigger: HTMLButtonElement) {
    const tenant = shown?.tenant;
    if (!tenant) return;
    const name = memberName(member);
    confirmInPlace(actions, trigger, `Remove ${name} from ${tenant.name}?`, 'Yes, remove', 'Keep', (fail) =>
      guarded(async () => {
        try {
          await client.removeMember(tenant.id, member.userId);
        } catch (error) {
          if (!(error instanceof ApiError && error.code === 'USER_NOT_FOUND')) throw error; // already gone
        }
        li.remove();
        updateOwnerNote();
        byId('members-title').focus();
        announce(`Removed ${name} from ${tenant.name}.`);
      }, fail),
    );
  }

  function confirmLeave(li: HTMLLIElement, member: TenantMember, actions: HTMLElement, trigger: HTMLButtonElement) {
    const tenant = shown?.tenant;
    if (!tenant) return;
    confirmInPlace(
      actions,
      trigger,
      `Leave ${tenant.name}? You lose access to its resources.`,
      'Yes, leave',
      'Stay',
      (fail) =>
        guarded(async () => {
          await client.removeMember(tenant.id, member.userId);
          li.remove();
          tenants.delete(tenant.id);
          announce(`You left ${tenant.name}.`);
          byId('tenants-title').focus();
          // The session is no longer in it: back to personal (`tenantchanged` updates the page).
          if (client.tenantId === tenant.id) await guarded(() => client.selectTenant(null), showTenantsError);
          renderSwitcher();
        }, fail),
    );
  }

  memberForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const tenant = shown?.tenant;
    if (!tenant) return;
    const { username = '', roles = '' } = formValues(memberForm);
    void busy(memberForm, () =>
      guarded(
        async () => {
          clearErrors(memberForm);
          const added = await client.addMember(tenant.id, username.trim(), roles ? [roles] : []);
          if (shown?.tenant.id !== tenant.id) return;
          memberList.prepend(memberItem(added));
          updateOwnerNote();
          memberForm.reset();
          fillRoleSelect(memberRole);
          byId('member-username').focus();
          announce(`Added ${memberName(added)} to ${tenant.name} as ${rolesText(added.roles)}.`);
        },
        (error) => showErrors(memberForm, error),
      ),
    );
  });

  // ---- invitations -------------------------------------------------------------------

  async function loadInvitations(current: number): Promise<void> {
    const tenant = shown?.tenant;
    if (!tenant) return;
    await guarded(
      async () => {
        const items: TenantInvitation[] = [];
        let cursor: string | null = null;
        for (let i = 0; i < MAX_PAGES; i += 1) {
          const page = await client.listInvitations(tenant.id, cursor);
          items.push(...page.items);
          cursor = page.nextCursor;
          if (!cursor) break;
        }
        if (current !== generation) return;
        invitationList.replaceChildren(...items.map(invitationItem));
        updateInvitationsEmpty();
      },
      (error) => {
        if (current !== generation) return;
        invitationsError.textContent = describeError(error);
        invitationsError.hidden = false;
      },
    );
  }

  function updateInvitationsEmpty(): void {
    byId('invitations-empty').hidden = invitationList.children.length > 0;
  }

  function invitationItem(invitation: TenantInvitation): HTMLLIElement {
    const revoke = h(
      'button',
      { type: 'button', class: 'danger-link' },
      'Revoke',
      h('span', { class: 'visually-hidden' }, ` the invitation to ${invitation.email}`),
    );
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const li = h(
      'li',
      { class: 'item invitation', 'data-invitation-id': invitation.id },
      h(
        'div',
        { class: 'item-head' },
        h('span', { class: 'item-title' }, invitation.email),
        ...invitation.roles.map((r) => h('span', { class: `badge role role-${r}` }, roleLabel(r))),
      ),
      h('p', { class: 'meta' }, 'Sent ', time(invitation.createdAt), ' · expires ', time(invitation.expiresAt)),
      h('div', { class: 'actions' }, revoke, error),
    );
    revoke.addEventListener('click', () => {
      const tenant = shown?.tenant;
      if (!tenant) return;
      revoke.disabled = true;
      void guarded(
        async () => {
          try {
            await client.revokeInvitation(tenant.id, invitation.id);
          } catch (failure) {
            if (!(failure instanceof ApiError && failure.status === 404)) throw failure; // no longer pending
          }
          li.remove();
          updateInvitationsEmpty();
          byId('invitations-title').focus();
          announce(`Revoked the invitation to ${invitation.email}.`);
        },
        (failure) => {
          revoke.disabled = false;
          error.textContent = describeError(failure);
          error.hidden = false;
        },
      );
    });
    return li;
  }

  inviteForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const tenant = shown?.tenant;
    if (!tenant) return;
    const { email = '', roles = '' } = formValues(inviteForm);
    void busy(inviteForm, () =>
      guarded(
        async () => {
          clearErrors(inviteForm);
          inviteDone.hidden = true;
          const sent = await client.invite(tenant.id, email.trim(), roles ? [roles] : []);
          if (shown?.tenant.id !== tenant.id) return;
          // Inviting an address again replaces its pending invitation.
          for (const li of invitationList.querySelectorAll<HTMLLIElement>('li')) {
            if (li.querySelector('.item-title')?.textContent?.toLowerCase() === sent.email.toLowerCase()) li.remove();
          }
          invitationList.prepend(invitationItem(sent));
          updateInvitationsEmpty();
          inviteForm.reset();
          fillRoleSelect(inviteRole);
          inviteDone.replaceChildren(
            `Invitation sent to ${sent.email} (${rolesText(sent.roles)}). The link in the mail works once, until `,
            time(sent.expiresAt),
            '.',
          );
          inviteDone.hidden = false;
          byId('invite-email').focus();
          announce(inviteDone.textContent ?? '');
        },
        (error) => showErrors(inviteForm, error),
      ),
    );
  });

  // ---- creating a tenant -------------------------------------------------------------

  /** "Acme Labs, Inc." → "acme-labs-inc": a suggestion while the slug was not edited. */
  function slugOf(name: string): string {
    return name
      .normalize('NFKD')
      .replace(/[\u0300-\u036f]/g, '')
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40)
      .replace(/-+$/, '');
  }

  nameInput.addEventListener('input', () => {
    if (!slugEdited) slugInput.value = slugOf(nameInput.value);
  });
  slugInput.addEventListener('input', () => {
    slugEdited = slugInput.value !== '';
  });

  tenantForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const { name = '', slug = '' } = formValues(tenantForm);
    void busy(tenantForm, () =>
      guarded(
        async () => {
          clearErrors(tenantForm);
          tenantFormDone.hidden = true;
          const created = await client.createTenant({ name: name.trim(), slug: slug.trim() });
          tenants.set(created.id, created);
          renderSwitcher();
          tenantForm.reset();
          slugEdited = false;
          tenantFormDone.textContent = `Created ${created.name} (${created.slug}); you are its owner. Choose it in “Working in” to work in it.`;
          tenantFormDone.hidden = false;
          nameInput.focus();
          announce(tenantFormDone.textContent);
        },
        (error) => showErrors(tenantForm, error),
      ),
    );
  });

  return {
    async load() {
      tenantsError.hidden = true;
      await guarded(loadTenants, showTenantsError);
      await syncContext({ announceIt: false });
    },
    tenantChanged: () => syncContext({ announceIt: true }),
    clear() {
      generation += 1;
      tenants = new Map();
      shown = null;
      membersCursor = null;
      wanted = null;
      slugEdited = false;
      select.replaceChildren(h('option', { value: '' }, 'Personal'));
      tenantsError.hidden = true;
      tenantFormDone.hidden = true;
      inviteDone.hidden = true;
      panel.hidden = true;
      personalNote.hidden = false;
      memberList.replaceChildren();
      invitationList.replaceChildren();
    },
  };
}
