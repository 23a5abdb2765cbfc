/**
 * Tenant permissions and roles (contract v2 §E), table-driven as Better Auth's organization
 * access statements are: a role is a name and a set of permissions; a member holds a list of
 * roles (possibly empty) and may do what the union of their permissions allows.
 */
export const TENANT_PERMISSIONS = [
  'tenant:update',
  'tenant:delete',
  'members:read',
  'members:write',
  'invitations:write',
  'roles:write',
  'resources:read',
  'resources:write',
  'resources:manage',
] as const;

export type TenantPermission = (typeof TENANT_PERMISSIONS)[number];

/** What a custom role may hold: every permission but deleting the tenant (owners only). */
export const CUSTOM_ROLE_PERMISSIONS: readonly TenantPermission[] = TENANT_PERMISSIONS.filter(
  (p) => p !== 'tenant:delete',
);

export const BUILT_IN_ROLES: Readonly<Record<'owner' | 'admin' | 'member', readonly TenantPermission[]>> = {
  owner: TENANT_PERMISSIONS,
  admin: CUSTOM_ROLE_PERMISSIONS,
  member: ['members:read', 'resources:read', 'resources:write'],
};

export type BuiltInTenantRole = keyof typeof BUILT_IN_ROLES;
export const OWNER = 'owner';

/** A custom role's name: lower case, 2–32 characters, never a built-in role's. */
export const ROLE_NAME = /^[a-z][a-z0-9_-]{1,31}$/;
/** The most roles one membership or invitation may list, and the most custom roles per tenant. */
export const MAX_ROLES_PER_MEMBER = 10;
export const MAX_CUSTOM_ROLES = 50;

export function isBuiltInRole(name: string): name is BuiltInTenantRole {
  return Object.hasOwn(BUILT_IN_ROLES, name);
}

export function isTenantPermission(name: string): name is TenantPermission {
  return (TENANT_PERMISSIONS as readonly string[]).includes(name);
}

/**
 * The permissions of a role list: the built-in roles' from the table above, a custom role's
 * from `custom` (its definition in this tenant). A role without a definition grants nothing.
 */
export function permissionsOf(
  roles: readonly string[],
  custom: ReadonlyMap<string, readonly string[]>,
): Set<TenantPermission> {
  const out = new Set<TenantPermission>();
  for (const role of roles) {
    const granted = isBuiltInRole(role) ? BUILT_IN_ROLES[role] : (custom.get(role) ?? []);
    for (const p of granted) if (isTenantPermission(p)) out.add(p);
  }
  return out;
}

/**
 * Whether someone holding `held` (and `isOwner`) may hand out `roles` (or a role defined with
 * these permissions): an owner may grant anything; anyone else only roles whose permissions
 * they hold themselves, and never `owner` (contract v2 §E: an admin cannot grant owner, a
 * roles:write holder cannot grant permissions it lacks).
 */
export function mayGrant(
  grantor: { isOwner: boolean; permissions: ReadonlySet<TenantPermission> },
  roles: readonly string[],
  custom: ReadonlyMap<string, readonly string[]>,
): boolean {
  if (grantor.isOwner) return true;
  if (roles.includes(OWNER)) return false;
  for (const p of permissionsOf(roles, custom)) if (!grantor.permissions.has(p)) return false;
  return true;
}

/** Whether a permission list may define a custom role held by this grantor. */
export function mayDefine(
  grantor: { isOwner: boolean; permissions: ReadonlySet<TenantPermission> },
  permissions: readonly TenantPermission[],
): boolean {
  return grantor.isOwner || permissions.every((p) => grantor.permissions.has(p));
}
