import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { TokenRejected, TokenVerifier } from '../tokens/token-verifier.js';
import { OPTIONAL_AUTH } from './auth.decorators.js';
import { IS_PUBLIC } from './public.decorator.js';

const REALM = 'gatehouse';
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i;

/** 401 with the RFC 6750 §3 challenge: no error code when no token was sent at all. */
export function bearerChallenge(description?: string): AppError {
  const header = description
    ? `Bearer realm="${REALM}", error="invalid_token", error_description="${description}"`
    : `Bearer realm="${REALM}"`;
  return new AppError(
    description ? ErrorCode.INVALID_TOKEN : ErrorCode.UNAUTHORIZED,
    description ? `Invalid access token: ${description}` : 'Authentication required',
    { 'WWW-Authenticate': header },
  );
}

/**
 * Global guard: every route needs a valid access token unless marked @Public();
 * @OptionalAuth() routes accept anonymous callers but still refuse a bad token. The token
 * is verified by the TokenVerifier; the principal goes on the request for @CurrentUser().
 */
@Injectable()
export class JwtAuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly verifier: TokenVerifier,
  ) {}

  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
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
    const rejected = (error: unknown): never => {
      if (error instanceof TokenRejected) throw bearerChallenge(error.message);
      throw error;
    };
    try {
      const principal = this.verifier.verifyBearer(token);
      // A token already verified is answered at once; a new one is checked off the event
      // loop (Gatehouse's) or against its issuer's keys (an external issuer's).
      if (!(principal instanceof Promise)) {
        req.principal = principal;
        return true;
      }
      return principal.then((p) => {
        req.principal = p;
        return true;
      }, rejected);
    } catch (error) {
      return rejected(error);
    }
  }
}
