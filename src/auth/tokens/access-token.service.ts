import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import jwt from 'jsonwebtoken';
import { Clock } from '../../common/clock.js';
import { InjectConfig } from '../../config/config.token.js';
import type { AppConfig } from '../../config/config.schema.js';
import { SecretsService } from '../../config/secrets.service.js';
import { generateEs256Pem, keySetFromKeys, keySetFromSecrets, type KeySet, type VerificationKey } from './signing-keys.js';

/** `typ` of our access tokens (RFC 9068 §2.1): keeps other JWTs from passing for them. */
export const ACCESS_TOKEN_TYPE = 'at+jwt';

export type Role = 'user' | 'admin';

/** What a verified access token says about its bearer (request.user). */
export interface AuthUser {
  userId: string;
  sessionId: string;
  roles: Role[];
  /** Issued at, epoch seconds (revocation refuses tokens issued before its not-before). */
  iat: number;
  /** Expiry, epoch seconds. */
  exp: number;
}

export interface AccessTokenClaims {
  sub: string;
  sid: string;
  roles: Role[];
  iat: number;
  exp: number;
  iss: string;
  aud: string;
  jti: string;
}

@Injectable()
export class AccessTokenService {
  readonly keys: KeySet;
  readonly jwks: { keys: NonNullable<VerificationKey['jwk']>[] };

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly clock: Clock,
    secrets: SecretsService,
  ) {
    this.keys = config.JWT_SECRETS
      ? keySetFromSecrets(config.JWT_SECRETS)
      : keySetFromKeys(config.JWT_KEYS ?? secrets.generated('jwt-signing-key.pem', generateEs256Pem), config.JWT_ALGORITHM);
    this.jwks = {
      keys: [...this.keys.verification.values()].flatMap((k) => (k.jwk ? [k.jwk] : [])),
    };
  }

  get ttlSeconds(): number {
    return this.config.ACCESS_TOKEN_TTL;
  }

  sign(user: { id: string; roles: Role[] }, sessionId: string): string {
    const iat = Math.floor(this.clock.nowMs() / 1000);
    const claims: AccessTokenClaims = {
      sub: user.id,
      sid: sessionId,
      roles: user.roles,
      iat,
      exp: iat + this.config.ACCESS_TOKEN_TTL,
      iss: this.config.JWT_ISSUER,
      aud: this.config.JWT_AUDIENCE,
      jti: randomUUID(),
    };
    return jwt.sign(claims, this.keys.signing.key, {
      algorithm: this.keys.algorithm,
      keyid: this.keys.signing.kid,
      header: { alg: this.keys.algorithm, typ: ACCESS_TOKEN_TYPE },
    });
  }

  /** The key that may verify a token with this header, or a reason to refuse it. */
  keyFor(header: { alg?: unknown; typ?: unknown; kid?: unknown }): { key: VerificationKey } | { error: string } {
    if (header.alg !== this.keys.algorithm) return { error: 'unexpected algorithm' };
    if (header.typ !== ACCESS_TOKEN_TYPE) return { error: 'not an access token' };
    const key = typeof header.kid === 'string' ? this.keys.verification.get(header.kid) : undefined;
    return key ? { key } : { error: 'unknown key id' };
  }

  /**
   * Checks on the signature-verified payload that jsonwebtoken does not make: it accepts a
   * token without `exp`, so `exp` is required here and compared with the injectable clock
   * (jsonwebtoken's own expiry check is turned off so that there is one source of time).
   */
  toAuthUser(payload: unknown): AuthUser | null {
    if (payload === null || typeof payload !== 'object') return null;
    const p = payload as Partial<AccessTokenClaims>;
    if (typeof p.exp !== 'number' || typeof p.iat !== 'number' || typeof p.jti !== 'string') return null;
    if (!this.isUnexpired(p.exp)) return null;
    if (typeof p.sub !== 'string' || typeof p.sid !== 'string' || !Array.isArray(p.roles)) return null;
    if (!p.roles.every((r) => r === 'user' || r === 'admin')) return null;
    return { userId: p.sub, sessionId: p.sid, roles: p.roles, iat: p.iat, exp: p.exp };
  }

  /**
   * Verifies a token outside the guard (logout identifies the session of a bearer token
   * that may have expired meanwhile): signature, algorithm, typ, iss and aud, not expiry.
   */
  verifyIgnoringExpiry(token: string): AuthUser | null {
    const decoded = jwt.decode(token, { complete: true });
    if (!decoded || typeof decoded !== 'object') return null;
    const found = this.keyFor(decoded.header);
    if ('error' in found) return null;
    try {
      const payload = jwt.verify(token, found.key.key, {
        algorithms: [this.keys.algorithm],
        issuer: this.config.JWT_ISSUER,
        audience: this.config.JWT_AUDIENCE,
        ignoreExpiration: true,
      });
      const p = payload as Partial<AccessTokenClaims>;
      if (typeof p.sub !== 'string' || typeof p.sid !== 'string' || typeof p.exp !== 'number' || typeof p.iat !== 'number') return null;
      return { userId: p.sub, sessionId: p.sid, roles: [], iat: p.iat, exp: p.exp };
    } catch {
      return null;
    }
  }

  isUnexpired(exp: number): boolean {
    return exp * 1000 > this.clock.nowMs();
  }
}
