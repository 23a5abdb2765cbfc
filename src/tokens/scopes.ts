/**
 * The scopes Gatehouse knows (contract v2 §C). A user token without a `scope` claim (every
 * v1 token) counts as carrying USER_SCOPES: the admin role still gates the admin scopes.
 */
export const BUILT_IN_SCOPES = [
  'profile',
  'resources:read',
  'resources:write',
  'tenants:read',
  'tenants:write',
  'events:read',
  'users:admin',
  'clients:admin',
  'introspection',
] as const;

/** Every built-in scope but `introspection`, which only machine clients may hold. */
export const USER_SCOPES: readonly string[] = BUILT_IN_SCOPES.filter((s) => s !== 'introspection');
