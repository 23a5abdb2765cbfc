import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import passport from 'passport';
import { Clock } from '../../common/clock.js';
import { AppException } from '../../common/errors/app.exception.js';
import { ErrorCode } from '../../common/errors/error-codes.js';
import { OPTIONAL_AUTH } from '../decorators/auth.decorators.js';
import { IS_PUBLIC } from '../decorators/public.decorator.js';
import { RevocationService } from '../revocation/revocation.service.js';
import type { AuthUser } from '../tokens/access-token.service.js';
import { JwtStrategy } from './jwt.strategy.js';
import { VerifiedTokenCache } from './verified-token-cache.js';

const REALM = 'gatehouse';
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i;

/** 401 with the RFC 6750 §3 challenge: no error code when no token was sent at all. */
export function bearerChallenge(description?: string): AppException {
  const header = description
    ? `Bearer realm="${REALM}", error="invalid_token", error_description="${description}"`
    : `Bearer realm="${REALM}"`;
  return new AppException(
    401,
    description ? ErrorCode.INVALID_TOKEN : ErrorCode.UNAUTHORIZED,
    description ? `Invalid access token: ${description}` : 'Authentication required',
    { 'WWW-Authenticate': header },
  );
}

/**
 * Global guard: every route needs a valid access token unless marked @Public();
 * @OptionalAuth() routes accept anonymous callers but still refuse a bad token.
 * Verification is passport-jwt's (see JwtStrategy); tokens already verified are served
 * from a bounded cache, with expiry and revocation still checked on every request.
 *
 * The guard hands passport this application's own strategy instance rather than a name
 * from passport's process-wide registry, so that several applications in one process
 * (tests of several instances) never verify with one another's keys or revocations.
 */
@Injectable()
export class JwtAuthGuard implements CanActivate {
  private readonly cache = new VerifiedTokenCache();

  constructor(
    private readonly reflector: Reflector,
    private readonly revocation: RevocationService,
    private readonly strategy: JwtStrategy,
    private readonly clock: Clock,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) return true;
    const req = context.switchToHttp().getRequest<Request>();
    const header = req.headers.authorization;
    if (header === undefined) {
      if (this.reflector.getAllAndOverride<boolean>(OPTIONAL_AUTH, targets)) return true;
      throw bearerChallenge();
    }
    const token = BEARER.exec(header)?.[1];
    if (!token) throw bearerChallenge('malformed Authorization header');

    const cached = this.cache.get(token, this.clock.nowMs());
    if (cached) {
      if (this.revocation.isRevoked(cached)) throw bearerChallenge('session revoked');
      req.user = cached;
      return true;
    }
    const user = await this.authenticate(req, context.switchToHttp().getResponse<Response>());
    req.user = user;
    this.cache.set(token, user);
    return true;
  }

  private authenticate(req: Request, res: Response): Promise<AuthUser> {
    return new Promise((resolve, reject) => {
      // A per-request object over the shared strategy, as passport does for named strategies.
      const strategy = Object.create(this.strategy) as JwtStrategy;
      const callback = (err: unknown, user: AuthUser | false, info: unknown) => {
        if (err && !(err instanceof Error && err.name === 'TokenRejected')) return reject(err); // unexpected: 500
        if (!user) return reject(bearerChallenge(reason(err ?? info)));
        resolve(user);
      };
      passport.authenticate(strategy, { session: false }, callback)(req, res, reject);
    });
  }
}

function reason(info: unknown): string {
  if (info instanceof Error) {
    if (info.name === 'TokenExpiredError') return 'expired';
    if (info.name === 'TokenRejected') return info.message;
    return 'signature or claims invalid';
  }
  return 'invalid token';
}
