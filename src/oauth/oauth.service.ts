import { Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service.js';
import { CLIENT_ID_PATTERN } from '../clients/client-secrets.js';
import { ClientsService, type AuthenticatedClient } from '../clients/clients.service.js';
import { Clock } from '../common/clock.js';
import type { ClientInfo } from '../common/http/client-info.js';
import type { AppConfig } from '../config/config.schema.js';
import { InjectConfig } from '../config/config.token.js';
import { LoginThrottleService } from '../throttle/login-throttle.service.js';
import { AccessTokenService } from '../tokens/access-token.service.js';
import type { Principal } from '../tokens/principal.js';
import { RevocationService } from '../tokens/revocation.service.js';
import { TokenRejected, TokenVerifier } from '../tokens/token-verifier.js';
import { userTokenScopes } from '../tokens/scopes.js';
import { IdentitiesService } from '../identities/identities.service.js';
import { AppError } from '../common/errors/app-error.js';
import { sortRoles } from '../common/account-rules.js';
import { presentedCredentials, type PresentedCredentials } from './client-credentials.js';
import { invalidClient, invalidRequest, oauthError } from './oauth-errors.js';
import type { OAuthForm } from './oauth-form.middleware.js';

export const CLIENT_CREDENTIALS = 'client_credentials';
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** RFC 8693 §3 token type identifiers. */
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const SUBJECT_TOKEN_TYPES: readonly string[] = [
  'urn:ietf:params:oauth:token-type:jwt',
  ACCESS_TOKEN_TYPE,
  'urn:ietf:params:oauth:token-type:id_token',
];
/** Never issued: there are no refresh tokens (RFC 6749 §4.4.3). */
const OFFLINE_ACCESS = 'offline_access';
/** The scope a client needs to call /oauth/introspect. */
export const INTROSPECTION_SCOPE = 'introspection';

/** RFC 6749 §3.3 scope-token: NQCHAR, which are safe to repeat in an error_description. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]{1,64}$/;

/** 200 of POST /oauth/token (RFC 6749 §4.4.3, §5.1): never a refresh token. */
export interface ClientTokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
  /** Token exchange only (RFC 8693 §2.2.1). */
  issued_token_type?: string;
}

/** 200 of POST /oauth/introspect (RFC 7662 §2.2). */
export type IntrospectionResponse =
  | { active: false }
  | {
      active: true;
      token_type: 'Bearer';
      scope: string;
      client_id?: string;
      username?: string;
      sub: string;
      aud: string;
      iss: string;
      exp: number;
      iat: number;
      jti: string;
      sid?: string;
      acr?: string;
      amr?: string[];
    };

/**
 * The OAuth 2.0 form endpoints of machine clients (contract v2 §C): client authentication
 * (throttled, audited), the client-credentials grant, introspection (RFC 7662) and
 * revocation (RFC 7009).
 */
@Injectable()
export class OAuthService {
  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly clients: ClientsService,
    private readonly tokens: AccessTokenService,
    private readonly verifier: TokenVerifier,
    private readonly revocation: RevocationService,
    private readonly throttle: LoginThrottleService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly identities: IdentitiesService,
  ) {}

  /**
   * POST /oauth/token (RFC 6749 §4.4). The client authenticates first (so nothing about the
   * request is answered to an unauthenticated caller), then the grant and the scope are
   * checked. The token's `iat` is when the request began (`readAt`, before the client is
   * read); if the service user or the secret was revoked about then or since, the server
   * waits until a token signed now would not be born revoked (at most a second) and reads
   * the client again: a client enabled again right after a disable gets a working token,
   * and one disabled meanwhile gets none.
   *
   * On a single instance, the client-credentials grant may take the client from the cache of
   * recent successes (ClientsService.authenticateForToken): a hit is void once the secret or
   * the service user has a revocation entry from about its read on, so its roles and scopes
   * are those of the last change that took anything away, and the check of `readAt` above
   * still applies. With Redis (several instances) it reads the client every time.
   * Token exchange always reads the client: `tokenExchange` turned off is not a revocation,
   * and a cached `true` must not outlive it on an instance that missed the announcement.
   */
  async issueToken(form: OAuthForm, authorization: string | undefined, who: ClientInfo): Promise<ClientTokenResponse> {
    const credentials = presentedCredentials(form, authorization);
    let readAt = this.clock.nowMs();
    const grantType = form.grant_type;
    let client = await this.authenticate(credentials, who, grantType === CLIENT_CREDENTIALS ? 'token' : 'fresh');
    if (grantType === undefined) throw invalidRequest('grant_type is required');
    if (grantType === TOKEN_EXCHANGE) {
      if (!client.tokenExchange) {
        throw oauthError('unauthorized_client', 'This client may not use token exchange');
      }
      return this.exchange(form, client, readAt);
    }
    if (grantType !== CLIENT_CREDENTIALS) {
      throw oauthError('unsupported_grant_type', 'Only the client_credentials grant is supported');
    }
    let scopes = grantedScopes(form.scope, client.allowedScopes);
    if (this.revokedSince(client, readAt)) {
      await this.revocation.untilSignable(client.serviceUserId, `sid:${client.secretId}`);
      readAt = this.clock.nowMs();
      // The revoking transaction may still be open (a revocation is announced before its
      // commit, and the commit may come later than the wait): read once it has committed.
      const again = await this.clients.authenticateAfterChanges(credentials.clientId, credentials.secret);
      if (!again || again.secretId !== client.secretId) throw invalidClient();
      client = again;
      // As allowed now (an admin may have taken a scope away meanwhile).
      scopes = grantedScopes(form.scope, client.allowedScopes);
    }
    const { token } = await this.tokens.signClient(
      {
        serviceUserId: client.serviceUserId,
        clientId: client.clientId,
        secretId: client.secretId,
        roles: client.serviceUserRoles,
        scopes,
      },
      client.accessTokenTtl,
      Math.floor(readAt / 1000),
    );
    return { access_token: token, token_type: 'Bearer', expires_in: client.accessTokenTtl, scope: scopes.join(' ') };
  }

  /**
   * RFC 8693 token exchange, for a client allowed `tokenExchange`: a valid token of a
   * configured external issuer (`subject_token`) becomes a Gatehouse access token for the
   * user it names (linked, or provisioned under `jit`), with `act` naming the client's
   * service user (§4.1). Scope = requested ∩ the client's ∩ USER_TOKEN_SCOPES; no refresh
   * token. Revoking the client's secret, disabling the client or the user ends it.
   */
  private async exchange(form: OAuthForm, client: AuthenticatedClient, readAt: number): Promise<ClientTokenResponse> {
    const subjectToken = form.subject_token;
    const subjectType = form.subject_token_type;
    if (subjectToken === undefined || subjectType === undefined) {
      throw invalidRequest('subject_token and subject_token_type are required');
    }
    if (!SUBJECT_TOKEN_TYPES.includes(subjectType)) {
      throw invalidRequest('subject_token_type must be a jwt, access_token or id_token token type');
    }
    if (form.requested_token_type !== undefined && form.requested_token_type !== ACCESS_TOKEN_TYPE) {
      throw invalidRequest('Only access tokens are issued');
    }
    if (form.actor_token !== undefined) throw invalidRequest('actor_token is not supported');
    const userScopes = new Set(userTokenScopes(this.config));
    const scopes = grantedScopes(
      form.scope,
      client.allowedScopes.filter((s) => userScopes.has(s)),
    );
    let user;
    let verified;
    try {
      verified = await this.identities.verifySubjectToken(subjectToken);
      user = await this.identities.userFor(verified, null);
    } catch (error) {
      if (error instanceof AppError && error.status < 500) throw invalidRequest('The subject_token is not valid here');
      throw error;
    }
    if (user.disabled || user.kind !== 'person') throw invalidRequest('The subject_token is not valid here');
    if (this.revocation.userRevokedSince(user.userId, readAt)) {
      await this.revocation.untilSignable(user.userId, `sid:${client.secretId}`);
      readAt = this.clock.nowMs();
      const again = await this.identities.userFor(verified, null);
      if (again.disabled) throw invalidRequest('The subject_token is not valid here');
      user = again;
    }
    // Never outlives the token it was exchanged for.
    const remaining = verified.claims.exp - Math.floor(readAt / 1000);
    if (remaining < 1) throw invalidRequest('The subject_token is not valid here');
    const ttl = Math.min(client.accessTokenTtl, remaining);
    const { token } = await this.tokens.signClient(
      {
        serviceUserId: client.serviceUserId,
        clientId: client.clientId,
        secretId: client.secretId,
        // The database's roles: a roleMap applies per request to the external token itself
        // and is never written into a token Gatehouse signs.
        roles: sortRoles(user.roles),
        scopes,
        subjectUserId: user.userId,
      },
      ttl,
      Math.floor(readAt / 1000),
    );
    await this.audit.record(
      'federation.token_exchanged',
      { userId: user.userId },
      {},
      {
        clientId: client.clientId,
        issuer: verified.issuer.name,
      },
    );
    return {
      access_token: token,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: 'Bearer',
      expires_in: ttl,
      scope: scopes.join(' '),
    };
  }

  /**
   * POST /oauth/introspect (RFC 7662). The caller is a client allowed the `introspection`
   * scope. A token is active only if it verifies (signature, typ, iss, aud, expiry, not
   * revoked) and the database agrees that what it belongs to is live: the session and its
   * user (user tokens), the secret, its client and the service user (client tokens). So
   * another service sees a revocation at once, without Redis. Anything else: `{active:false}`
   * and nothing more.
   */
  async introspect(
    form: OAuthForm,
    authorization: string | undefined,
    who: ClientInfo,
  ): Promise<IntrospectionResponse> {
    // A resource server introspects on every request it serves: its own authentication may
    // come from the cache of recent successes (ClientsService.authenticateCached).
    const client = await this.authenticate(presentedCredentials(form, authorization), who, 'cached');
    if (!client.allowedScopes.includes(INTROSPECTION_SCOPE)) {
      throw oauthError('insufficient_scope', `Introspection needs the ${INTROSPECTION_SCOPE} scope`);
    }
    const token = form.token;
    if (token === undefined) throw invalidRequest('token is required');
    const principal = this.verified(token);
    if (!principal?.sessionId) return { active: false };
    const common = {
      sub: principal.userId,
      aud: this.config.JWT_AUDIENCE,
      iss: this.config.JWT_ISSUER,
      exp: principal.exp,
      iat: principal.iat,
      jti: principal.jti,
      sid: principal.sessionId,
    };
    if (principal.kind === 'client' && principal.clientId !== null) {
      const live = await this.clients.isClientTokenActive(
        principal.sessionId,
        principal.clientId,
        principal.actorId ?? principal.userId,
      );
      if (!live) return { active: false };
      return {
        active: true,
        token_type: 'Bearer',
        scope: principal.scopes.join(' '),
        client_id: principal.clientId,
        ...common,
      };
    }
    if (principal.kind === 'user') {
      const username = await this.clients.activeSessionUsername(principal.sessionId, principal.userId);
      if (username === null) return { active: false };
      return {
        active: true,
        token_type: 'Bearer',
        scope: principal.scopes.join(' '),
        username,
        ...common,
        acr: principal.acr,
        amr: [...principal.amr],
      };
    }
    return { active: false };
  }

  /**
   * POST /oauth/revoke (RFC 7009). An unexpired access token issued to the calling client
   * has its `jti` revoked (for good: it is refused until it expires, here and, through the
   * revocation entries, on every instance). Any other token (another client's, a user's,
   * an expired one, garbage) is left alone with the same 200: no validity oracle (§2.2).
   * `token_type_hint` is accepted and ignored (there are only access tokens).
   */
  async revoke(form: OAuthForm, authorization: string | undefined, who: ClientInfo): Promise<void> {
    const client = await this.authenticate(presentedCredentials(form, authorization), who);
    const token = form.token;
    if (token === undefined) throw invalidRequest('token is required');
    const principal = this.verifier.identify(token);
    if (
      principal?.kind !== 'client' ||
      principal.clientId !== client.clientId ||
      principal.userId !== client.serviceUserId ||
      principal.exp * 1000 <= this.clock.nowMs()
    ) {
      return;
    }
    await this.revocation.revoke({ tokens: [principal.jti] });
    await this.audit.record('client.token_revoked', { userId: client.serviceUserId }, who, {
      client: client.id,
      clientId: client.clientId,
      jti: principal.jti,
      secretId: principal.sessionId,
    });
  }

  /**
   * The client that proved its secret. The attempt is counted (per address, and per
   * client_id, existing or not) before the secret is checked and taken back out when it was
   * right. Past the address's limit: 429 before any check. Past the client_id's limit: the
   * secret is still checked, and only a wrong one gets the 429 (see admitClient). A failure
   * is audited with the client_id presented (never the secret) and answered 401
   * invalid_client, the same bytes whatever the cause.
   */
  private async authenticate(
    credentials: PresentedCredentials,
    who: ClientInfo,
    read: 'fresh' | 'cached' | 'token' = 'fresh',
  ): Promise<AuthenticatedClient> {
    const attempt = await this.throttle.admitClient(credentials.clientId, who.ip ?? 'unknown');
    const { clientId: id, secret } = credentials;
    const client =
      read === 'cached'
        ? await this.clients.authenticateCached(id, secret)
        : read === 'token'
          ? await this.clients.authenticateForToken(id, secret)
          : await this.clients.authenticate(id, secret);
    if (!client) {
      // Only a well-formed id is recorded: a client that swapped id and secret, or sent
      // "id:secret" as the id, must not leave its secret in the audit log.
      const clientId = CLIENT_ID_PATTERN.test(credentials.clientId) ? credentials.clientId : 'malformed';
      await this.audit.record('client.auth_failed', {}, who, { clientId });
      throw attempt.overLimit ?? invalidClient();
    }
    await this.throttle.releaseClient(attempt);
    return client;
  }

  /** The principal of a valid, unexpired, unrevoked token, or null (any other failure propagates). */
  private verified(token: string): Principal | null {
    try {
      return this.verifier.verify(token);
    } catch (error) {
      if (error instanceof TokenRejected) return null;
      throw error;
    }
  }

  /** Whether the service user or the secret was revoked in the second before `sinceMs` or later. */
  private revokedSince(client: AuthenticatedClient, sinceMs: number): boolean {
    return (
      this.revocation.userRevokedSince(client.serviceUserId, sinceMs) ||
      this.revocation.revokedSince(`sid:${client.secretId}`, sinceMs)
    );
  }
}

/**
 * The scopes of a client-credentials token: those requested (space-separated, RFC 6749
 * §3.3), each allowed to the client, or every allowed one when none is requested; sorted.
 * An unknown, disallowed or `offline_access` scope is refused, never narrowed (400
 * invalid_scope).
 */
export function grantedScopes(requested: string | undefined, allowed: readonly string[]): string[] {
  const asked = [...new Set((requested ?? '').split(' ').filter((s) => s !== ''))];
  if (asked.length === 0) return [...new Set(allowed)].sort();
  const refused = asked.filter((s) => s === OFFLINE_ACCESS || !allowed.includes(s));
  if (refused.length > 0) {
    if (refused.includes(OFFLINE_ACCESS)) {
      throw oauthError('invalid_scope', 'offline_access is not available: there are no refresh tokens');
    }
    const named = refused.filter((s) => SCOPE_TOKEN.test(s)).slice(0, 5);
    throw oauthError(
      'invalid_scope',
      named.length === refused.length
        ? `Scope not allowed for this client: ${named.join(' ')}`
        : 'Scope unknown, malformed or not allowed for this client',
    );
  }
  return asked.sort();
}
