import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import type { Request } from 'express';
import jwt from 'jsonwebtoken';
import { ExtractJwt, Strategy } from 'passport-jwt';
import { InjectConfig } from '../../config/config.token.js';
import type { AppConfig } from '../../config/config.schema.js';
import { RevocationService } from '../revocation/revocation.service.js';
import { AccessTokenService, type AuthUser } from '../tokens/access-token.service.js';

/** Thrown for a token whose signature checks out but that must not be accepted. */
export class TokenRejected extends Error {
  override name = 'TokenRejected';
}

/**
 * passport-jwt verification: the key is chosen by `kid` among the configured keys, only
 * the configured algorithm is accepted (no `none`, no RS/HS confusion), `typ` must be
 * at+jwt, and issuer and audience must match. Expiry and the remaining claims are checked
 * in validate(), then the session's revocation.
 */
@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy, 'jwt') {
  constructor(
    @InjectConfig() config: AppConfig,
    private readonly tokens: AccessTokenService,
    private readonly revocation: RevocationService,
  ) {
    super({
      jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
      algorithms: [tokens.keys.algorithm],
      issuer: config.JWT_ISSUER,
      audience: config.JWT_AUDIENCE,
      ignoreExpiration: true, // checked against the injectable clock in toAuthUser()
      // KeyObjects work with jsonwebtoken (and are ~50x faster than strings); the typings predate them.
      secretOrKeyProvider: (_req: Request, rawJwt: string, done: (err: Error | null, key?: string | Buffer) => void) => {
        // Only the header is read here, to pick the key; the signature is verified next.
        const decoded = jwt.decode(rawJwt, { complete: true });
        if (!decoded || typeof decoded !== 'object') return done(new TokenRejected('malformed token'));
        const found = tokens.keyFor(decoded.header);
        if ('error' in found) return done(new TokenRejected(found.error));
        done(null, found.key.key as unknown as Buffer);
      },
    });
  }

  validate(payload: unknown): AuthUser {
    const user = this.tokens.toAuthUser(payload);
    if (!user) throw new TokenRejected('expired or incomplete token');
    if (this.revocation.isRevoked(user)) throw new TokenRejected('session revoked');
    return user;
  }
}
