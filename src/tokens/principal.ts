import type { Role } from '../common/account-rules.js';

/**
 * Who a verified access token speaks for (contract v2 §0.1). Every guarded route receives
 * one through @CurrentUser(); HTTP, and later WebSocket and introspection, verify tokens
 * through the one TokenVerifier that builds it.
 *
 * - `user`: a Gatehouse session token (`sessionId` is the session);
 * - `client`: a machine client's token (`sessionId` is the id of the secret that obtained
 *   it, `clientId` the client);
 * - `federated`: a token of a configured external issuer (no session).
 */
export type PrincipalKind = 'user' | 'client' | 'federated';

/** Authentication assurance level (NIST SP 800-63B): aal2 after a second factor. */
export type Acr = 'aal1' | 'aal2';

export interface Principal {
  kind: PrincipalKind;
  userId: string;
  sessionId: string | null;
  clientId: string | null;
  roles: Role[];
  scopes: readonly string[];
  /** RFC 8176 authentication method references, e.g. ["pwd"]. */
  amr: readonly string[];
  acr: Acr;
  tenantId: string | null;
  /** Issued at and expiry, epoch seconds. */
  iat: number;
  exp: number;
  jti: string;
  /**
   * FEDERATION_DEFAULT_ACCESS=tenants-only: an external issuer's user acts only inside the
   * tenants it belongs to (no personal resources, no tenant creation).
   */
  tenantsOnly?: true;
  /** A token-exchange token (RFC 8693 `act`): the service user acting for `userId`. */
  actorId?: string;
}
