/**
 * The scopes Gatehouse knows and enforces (contract v2 §C). Here, at the foundation, so that
 * the configuration can validate USER_TOKEN_SCOPES and OAUTH_EXTRA_SCOPES against them;
 * src/tokens/scopes.ts re-exports them with what tokens make of them.
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

export type BuiltInScope = (typeof BUILT_IN_SCOPES)[number];

/** The one built-in scope only machine clients may hold: user tokens never carry it. */
export const CLIENT_ONLY_SCOPES: readonly string[] = ['introspection'];

/** Every built-in scope but the client-only ones: user tokens' default scopes. */
export const USER_SCOPES: readonly string[] = BUILT_IN_SCOPES.filter((s) => !CLIENT_ONLY_SCOPES.includes(s));

export function isBuiltInScope(name: string): name is BuiltInScope {
  return (BUILT_IN_SCOPES as readonly string[]).includes(name);
}
