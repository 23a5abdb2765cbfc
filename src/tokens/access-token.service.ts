import { createHmac, randomUUID, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { Injectable } from '@nestjs/common';
import { Clock } from '../common/clock.js';
import { sortRoles, type Role } from '../common/account-rules.js';
import type { Acr } from './principal.js';
import { userTokenScopes } from './scopes.js';

/** How the user authenticated in the session a token belongs to. */
export interface TokenAuth {
  amr: readonly string[];
  acr: Acr;
  authTime: Date;
}
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { SecretsService } from '../config/secrets.service.js';
import {
  generateEs256Pem,
  keySetFromKeys,
  keySetFromSecrets,
  type KeySet,
  type VerificationKey,
} from '../config/signing-keys.js';

/** `typ` of our access tokens (RFC 9068 §2.1): keeps other JWTs from passing for them. */
export const ACCESS_TOKEN_TYPE = 'at+jwt';

/** A machine client's token (RFC 9068): its service user, its client and the secret used. */
export interface ClientTokenClaims {
  sub: string;
  client_id: string;
  scope: string;
  /** The id of the secret that obtained it: revoking the secret revokes the token. */
  sid: string;
  roles: Role[];
  iat: number;
  exp: number;
  iss: string;
  aud: string;
  jti: string;
  /** RFC 8693 §4.1: a token-exchange token names the service user acting for `sub`. */
  act?: { sub: string; client_id: string };
}

export interface AccessTokenClaims {
  sub: string;
  sid: string;
  roles: Role[];
  /** RFC 8176 authentication methods, e.g. ["pwd"] or ["pwd","otp","mfa"]. */
  amr: string[];
  /** Assurance level: aal2 after a second factor. */
  acr: Acr;
  /** When the user authenticated (epoch seconds, OpenID Connect Core §2). */
  auth_time: number;
  /** Space-separated scopes (RFC 9068 §2.2.3): USER_TOKEN_SCOPES for user tokens. */
  scope: string;
  /** The tenant selected in the session (POST /auth/tenant), for downstream services. */
  tid?: string;
  /**
   * With TENANT_ROLES_IN_TOKEN=true, the roles held in `tid` when the token was signed: a
   * snapshot for downstream services, stale up to ACCESS_TOKEN_TTL. Gatehouse's own routes
   * never read it; they look the membership up.
   */
  tenant_roles?: string[];
  iat: number;
  exp: number;
  iss: string;
  aud: string;
  jti: string;
}

/** The signing keys (configured or generated once), the JWKS they publish, and signing. */
@Injectable()
export class AccessTokenService {
  readonly keys: KeySet;
  readonly jwks: { keys: NonNullable<VerificationKey['jwk']>[] };
  /** The `scope` claim of every user token (USER_TOKEN_SCOPES, sorted), fixed at start-up. */
  private readonly userScope: string;
  /** The first segment of every token: one header (alg, typ, kid) that never changes, encoded once. */
  private readonly encodedHeader: string;

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly clock: Clock,
    secrets: SecretsService,
  ) {
    this.keys = config.JWT_SECRETS
      ? keySetFromSecrets(config.JWT_SECRETS)
      : keySetFromKeys(
          config.JWT_KEYS ?? secrets.generated('jwt-signing-key.pem', generateEs256Pem),
          config.JWT_ALGORITHM,
        );
    this.jwks = {
      keys: [...this.keys.verification.values()].flatMap((k) => (k.jwk ? [k.jwk] : [])),
    };
    this.userScope = [...userTokenScopes(config)].sort().join(' ');
    // The members in this order, as jsonwebtoken wrote them: {"alg":…,"typ":"at+jwt","kid":…}.
    this.encodedHeader = base64url(
      JSON.stringify({ alg: this.keys.algorithm, typ: ACCESS_TOKEN_TYPE, kid: this.keys.signing.kid }),
    );
  }

  get ttlSeconds(): number {
    return this.config.ACCESS_TOKEN_TTL;
  }

  /** A machine client's access token, living `ttlSeconds`. */
  signClient(
    c: {
      serviceUserId: string;
      clientId: string;
      secretId: string;
      roles: Role[];
      scopes: readonly string[];
      /** Token exchange (RFC 8693): the user the token speaks for; the service user acts (`act`). */
      subjectUserId?: string;
    },
    ttlSeconds: number,
    iat = Math.floor(this.clock.nowMs() / 1000),
  ): Promise<{ token: string; claims: ClientTokenClaims }> {
    const claims: ClientTokenClaims = {
      sub: c.subjectUserId ?? c.serviceUserId,
      ...(c.subjectUserId !== undefined ? { act: { sub: c.serviceUserId, client_id: c.clientId } } : {}),
      client_id: c.clientId,
      scope: [...c.scopes].sort().join(' '),
      sid: c.secretId,
      roles: sortRoles(c.roles),
      iat,
      exp: iat + ttlSeconds,
      iss: this.config.JWT_ISSUER,
      aud: this.config.JWT_AUDIENCE,
      jti: randomUUID(),
    };
    return this.encode(claims).then((token) => ({ token, claims }));
  }

  /** `iat` defaults to now (epoch seconds); `tenant`: the session's selected tenant, if any. */
  sign(
    user: { id: string; roles: Role[] },
    sessionId: string,
    auth: TokenAuth,
    iat = Math.floor(this.clock.nowMs() / 1000),
    tenant: { id: string; roles?: readonly string[] } | null = null,
  ): Promise<string> {
    const claims: AccessTokenClaims = {
      sub: user.id,
      sid: sessionId,
      // Always ["user"] or ["user","admin"], as in the account's JSON, whatever order the
      // caller read them in (a row's array keeps the order it was written in).
      roles: sortRoles(user.roles),
      amr: [...auth.amr],
      acr: auth.acr,
      auth_time: Math.floor(auth.authTime.getTime() / 1000),
      scope: this.userScope,
      ...(tenant ? { tid: tenant.id } : {}),
      ...(tenant?.roles ? { tenant_roles: [...tenant.roles] } : {}),
      iat,
      exp: iat + this.config.ACCESS_TOKEN_TTL,
      iss: this.config.JWT_ISSUER,
      aud: this.config.JWT_AUDIENCE,
      jti: randomUUID(),
    };
    return this.encode(claims);
  }

  /**
   * Signs access-token claims with the current key: `typ` at+jwt and its `kid` in the header.
   * A compact JWS (RFC 7515) made here with node:crypto, not with jsonwebtoken, whose
   * per-call work (options and claim validation, header re-encoding, its sign stream and
   * the DER-to-JOSE signature conversion) cost more than the signature itself on the
   * refresh path. The output is what it wrote: the same header bytes, the claims as
   * JSON.stringify orders them, ES256 as r‖s (IEEE P1363, RFC 7518 §3.4), base64url.
   * ES256 and RS256 sign on libuv's thread pool (see signOffLoop).
   */
  private async encode(claims: AccessTokenClaims | ClientTokenClaims): Promise<string> {
    const input = `${this.encodedHeader}.${base64url(JSON.stringify(claims))}`;
    const { key } = this.keys.signing;
    let signature: Buffer;
    switch (this.keys.algorithm) {
      case 'ES256':
        signature = await signOffLoop('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
        break;
      case 'RS256':
        signature = await signOffLoop('sha256', Buffer.from(input), key);
        break;
      case 'HS256':
        signature = createHmac('sha256', key).update(input).digest();
        break;
    }
    return `${input}.${signature.toString('base64url')}`;
  }

  /**
   * Whether `signature` (the third part of a compact JWS, base64url) signs `input` (its first
   * two parts) with `key` under the configured algorithm: what jsonwebtoken's verify checks of
   * the signature (its `jwa`), ES256 as r‖s (RFC 7518 §3.4), on libuv's thread pool for ES256
   * and RS256. HS256 compares the encoded MAC in constant time, as `jwa` does.
   */
  async verifySignature(input: string, signature: string, key: KeyObject): Promise<boolean> {
    const data = Buffer.from(input);
    if (this.keys.algorithm === 'HS256') {
      const expected = Buffer.from(createHmac('sha256', key).update(data).digest('base64url'));
      const presented = Buffer.from(signature);
      return presented.length === expected.length && timingSafeEqual(presented, expected);
    }
    const verifyWith = this.keys.algorithm === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' as const } : key;
    return verifyOffLoop('sha256', data, verifyWith, Buffer.from(signature, 'base64url')).catch(() => false);
  }

  /** The key that may verify a token with this header, or a reason to refuse it. */
  keyFor(header: { alg?: unknown; typ?: unknown; kid?: unknown }): { key: VerificationKey } | { error: string } {
    if (header.alg !== this.keys.algorithm) return { error: 'unexpected algorithm' };
    if (header.typ !== ACCESS_TOKEN_TYPE) return { error: 'not an access token' };
    const key = typeof header.kid === 'string' ? this.keys.verification.get(header.kid) : undefined;
    return key ? { key } : { error: 'unknown key id' };
  }
}

/**
 * An ES256 signature costs about 25–90 µs of CPU and its verification 55–90 µs on this
 * project's 2-core reference machine, time during which the event loop would answer no other
 * request. node:crypto's callback forms run them on libuv's thread pool instead; the loop
 * pays about 8–16 µs for the hand-off (measured with 10 in flight).
 */
const signOffLoop = promisify(sign);
const verifyOffLoop = promisify(verify);

function base64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}
