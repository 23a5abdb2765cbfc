import { Injectable } from '@nestjs/common';
import jwt from 'jsonwebtoken';
import { Clock } from '../common/clock.js';
import { isRole } from '../common/account-rules.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import type { VerificationKey } from '../config/signing-keys.js';
import { AccessTokenService, type AccessTokenClaims } from './access-token.service.js';
import type { Principal } from './principal.js';
import { RevocationService } from './revocation.service.js';
import { userTokenScopes } from './scopes.js';
import { VerifiedTokenCache } from './verified-token-cache.js';

/** A token that must not be accepted; `reason` goes into the RFC 6750 error_description. */
export class TokenRejected extends Error {
  override name = 'TokenRejected';
}

/**
 * Bearer tokens of external issuers (contract v2 §D), provided by the identities layer
 * above: the verifier only routes a token there when its unverified `iss` is not
 * Gatehouse's own.
 */
export interface ExternalBearerTokens {
  /** Whether `iss` is a configured issuer whose tokens are accepted as bearer tokens. */
  acceptsBearer(iss: string): boolean;
  /** The principal of a valid token of such an issuer; TokenRejected or an AppError otherwise. */
  principal(token: string): Promise<Principal>;
  /**
   * The unverified `iss` of a token: a string, null when its payload has no string `iss`,
   * undefined when it is not a JWT at all.
   */
  claimedIssuer(token: string): string | null | undefined;
}

/**
 * How many new tokens may have their signatures checked on libuv's thread pool at once; the
 * others are checked on the event loop. 64 checks of 55–140 µs (by processor) queue for under 10 ms on one thread.
 */
export const MAX_COLD_IN_FLIGHT = 64;

/**
 * The one place access tokens are verified (the HTTP guard now; WebSockets and
 * introspection later):
 * - the key is chosen by `kid` among the configured keys, and only the configured algorithm
 *   is accepted (no `none`, no RS/HS confusion: jsonwebtoken with the algorithm pinned and a
 *   KeyObject);
 * - `typ` must be at+jwt (RFC 9068), `iss` and `aud` must match;
 * - `exp` is required and compared with the injectable clock (jsonwebtoken accepts a token
 *   without `exp`, so its own expiry check is off and ours is the only source of time);
 * - revocation is checked on every call, cached or not.
 * Tokens already verified are served from a bounded cache (an ES256 verification costs
 * 55–140 µs of CPU, by processor), never past their own `exp`.
 */
@Injectable()
export class TokenVerifier {
  private readonly cache = new VerifiedTokenCache();
  /** Tokens whose signature is being checked on the thread pool now. */
  private coldInFlight = 0;
  private external: ExternalBearerTokens | null = null;

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly tokens: AccessTokenService,
    private readonly revocation: RevocationService,
    private readonly clock: Clock,
  ) {}

  /** Routes tokens of external issuers to `external` (set once, at start-up, when issuers are configured). */
  useExternal(external: ExternalBearerTokens): void {
    this.external = external;
  }

  /**
   * A bearer token of any trusted issuer: Gatehouse's own or, when external issuers are
   * configured, one of theirs. The unverified `iss` only picks the path and its keys
   * (contract v2 §D): JWT_ISSUER takes Gatehouse's keys, a configured issuer with
   * acceptBearer its own JWKS, anything else is refused as "unknown issuer". A token already
   * verified is answered at once (verify()); a new one of ours has its signature checked on
   * libuv's thread pool (verifyCold()), so that the event loop goes on serving meanwhile.
   */
  verifyBearer(token: string): Principal | Promise<Principal> {
    const cached = this.cache.get(token, this.clock.nowMs());
    if (cached !== undefined) return this.admit(token, cached, true);
    if (this.external !== null) {
      const iss = this.external.claimedIssuer(token);
      // A JWT without a string iss is no token of ours either (ours always carry JWT_ISSUER):
      // "unknown issuer", as the contract says of anything but a configured issuer.
      if (iss !== undefined && iss !== this.config.JWT_ISSUER) {
        if (iss === null || !this.external.acceptsBearer(iss)) throw new TokenRejected('unknown issuer');
        return this.external.principal(token);
      }
    }
    // Past MAX_COLD_IN_FLIGHT (a flood of new or forged tokens), on the event loop as before:
    // the pool's queue is first in, first out, and the signatures of refreshes and logins
    // must not wait behind thousands of checks.
    if (this.coldInFlight >= MAX_COLD_IN_FLIGHT) return this.admit(token, this.decode(token), false);
    this.coldInFlight++;
    return this.verifyCold(token).finally(() => this.coldInFlight--);
  }

  /** The principal of a valid, unexpired, unrevoked Gatehouse token; throws TokenRejected otherwise. */
  verify(token: string): Principal {
    const cached = this.cache.get(token, this.clock.nowMs());
    return cached ? this.admit(token, cached, true) : this.admit(token, this.decode(token), false);
  }

  /** verify() of a token not in the cache, its signature checked off the event loop. */
  private async verifyCold(token: string): Promise<Principal> {
    return this.admit(token, await this.decodeOffLoop(token), false);
  }

  /** The checks of every request, cached or not: expiry (of a new token) and revocation. */
  private admit(token: string, principal: Principal, cached: boolean): Principal {
    if (!cached && principal.exp * 1000 <= this.clock.nowMs()) throw new TokenRejected('expired');
    if (this.revocation.isRevoked(principal)) {
      throw new TokenRejected('session revoked');
    }
    if (!cached) this.cache.set(token, principal);
    return principal;
  }

  /**
   * Who a token names, checking signature and claims but neither expiry nor revocation:
   * logout identifies the session of a bearer token that may have expired meanwhile.
   */
  identify(token: string): Principal | null {
    try {
      return this.decode(token);
    } catch (error) {
      if (error instanceof TokenRejected) return null;
      throw error;
    }
  }

  private decode(token: string): Principal {
    const { found } = this.parse(token);
    let payload: unknown;
    try {
      payload = jwt.verify(token, found.key.key, {
        algorithms: [this.tokens.keys.algorithm],
        issuer: this.config.JWT_ISSUER,
        audience: this.config.JWT_AUDIENCE,
        ignoreExpiration: true, // compared with the injectable clock in verify()
        clockTimestamp: Math.floor(this.clock.nowMs() / 1000), // for `nbf`, as decodeOffLoop()
      });
    } catch {
      throw new TokenRejected('signature or claims invalid');
    }
    return this.principalOf(payload);
  }

  /**
   * decode() with the signature checked on libuv's thread pool: jsonwebtoken verifies only
   * synchronously, and jose's asynchronous path (WebCrypto) costs the event loop about as
   * much as jsonwebtoken's whole verification (45–55 µs against 68 µs for ES256, measured
   * with 10 in flight). The claims are checked as jsonwebtoken checks them with decode()'s
   * options (`nbf` if present, `aud`, `iss`; no `exp`); test/unit/token-verifier-offloop.spec.ts
   * holds the two paths to the same answers.
   */
  private async decodeOffLoop(token: string): Promise<Principal> {
    const { found, payload } = this.parse(token);
    const dot = token.lastIndexOf('.');
    const signed = await this.tokens.verifySignature(token.slice(0, dot), token.slice(dot + 1), found.key.key);
    if (!signed || !claimsAccepted(payload, this.config.JWT_ISSUER, this.config.JWT_AUDIENCE, this.clock.nowMs()))
      throw new TokenRejected('signature or claims invalid');
    return this.principalOf(payload);
  }

  /** The token's parts, decoded but not verified, and the key its header asks for. */
  private parse(token: string): { found: { key: VerificationKey }; payload: unknown } {
    let decoded: ReturnType<typeof jwt.decode>;
    try {
      // jws parses the payload as JSON when the header says typ JWT: a payload that is not
      // JSON throws here.
      decoded = jwt.decode(token, { complete: true });
    } catch {
      throw new TokenRejected('malformed token');
    }
    if (!decoded || typeof decoded !== 'object' || typeof decoded.payload !== 'object')
      throw new TokenRejected('malformed token');
    const found = this.tokens.keyFor(decoded.header);
    if ('error' in found) throw new TokenRejected(found.error);
    return { found, payload: decoded.payload };
  }

  /** The principal of a verified payload; TokenRejected when a claim is missing or malformed. */
  private principalOf(payload: unknown): Principal {
    const principal = toPrincipal(payload, userTokenScopes(this.config));
    if (!principal) throw new TokenRejected('incomplete token');
    // A session opened with an external issuer's token (amr "fed") is bound like the token
    // itself under FEDERATION_DEFAULT_ACCESS=tenants-only (contract v2 §D).
    // So is a token-exchange token (RFC 8693 `act`): it speaks for such a user too.
    if (
      this.config.FEDERATION_DEFAULT_ACCESS === 'tenants-only' &&
      (principal.amr.includes('fed') || principal.actorId !== undefined)
    ) {
      return { ...principal, tenantsOnly: true };
    }
    return principal;
  }
}

/**
 * The claims jsonwebtoken's verify() checks with decode()'s options: a `nbf`, when present,
 * is a number not after now; one of the `aud` values (a string or an array) is `audience`;
 * `iss` is `issuer`. `exp` is not looked at here (verify() compares it with the clock).
 */
export function claimsAccepted(payload: unknown, issuer: string, audience: string, nowMs: number): boolean {
  if (payload === null || typeof payload !== 'object') return false;
  const p = payload as { nbf?: unknown; aud?: unknown; iss?: unknown };
  if (p.nbf !== undefined && (typeof p.nbf !== 'number' || p.nbf > Math.floor(nowMs / 1000))) return false;
  const audiences: unknown[] = Array.isArray(p.aud) ? p.aud : [p.aud];
  return audiences.includes(audience) && p.iss === issuer;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The principal of a signature-verified payload, or null when a claim is missing or malformed. */
function toPrincipal(payload: unknown, userScopes: readonly string[]): Principal | null {
  if (payload === null || typeof payload !== 'object') return null;
  const p = payload as Partial<AccessTokenClaims> & { scope?: unknown; client_id?: unknown };
  if (typeof p.exp !== 'number' || typeof p.iat !== 'number' || typeof p.jti !== 'string') return null;
  if (typeof p.sub !== 'string' || typeof p.sid !== 'string' || !Array.isArray(p.roles) || !p.roles.every(isRole))
    return null;
  const scopes = typeof p.scope === 'string' ? p.scope.split(' ').filter(Boolean) : null;
  if (p.client_id !== undefined) {
    // A machine client's token (RFC 9068): `sid` is the secret that obtained it.
    if (typeof p.client_id !== 'string' || scopes === null) return null;
    // A token-exchange token (RFC 8693): `sub` is the user, `act.sub` the client's service user.
    const act = (p as { act?: unknown }).act;
    let actorId: string | undefined;
    if (act !== undefined) {
      const a = act as { sub?: unknown; client_id?: unknown } | null;
      if (a === null || typeof a !== 'object' || typeof a.sub !== 'string' || a.client_id !== p.client_id) return null;
      actorId = a.sub;
    }
    return {
      ...(actorId !== undefined ? { actorId } : {}),
      kind: 'client',
      userId: p.sub,
      sessionId: p.sid,
      clientId: p.client_id,
      roles: p.roles,
      scopes,
      amr: [],
      acr: 'aal1',
      tenantId: null,
      iat: p.iat,
      exp: p.exp,
      jti: p.jti,
    };
  }
  return {
    kind: 'user',
    userId: p.sub,
    sessionId: p.sid,
    clientId: null,
    roles: p.roles,
    // A v1 token without `scope` counts as carrying USER_TOKEN_SCOPES (contract v2 §0.2).
    scopes: scopes ?? userScopes,
    // A token from before these claims existed was a password session's.
    amr: Array.isArray(p.amr) && p.amr.every((m) => typeof m === 'string') ? p.amr : ['pwd'],
    acr: p.acr === 'aal2' ? 'aal2' : 'aal1',
    tenantId: typeof p.tid === 'string' && UUID.test(p.tid) ? p.tid.toLowerCase() : null,
    iat: p.iat,
    exp: p.exp,
    jti: p.jti,
  };
}
