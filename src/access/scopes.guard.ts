import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { SCOPES } from './auth.decorators.js';
import './principal-request.js';

/**
 * @Scopes(): the caller's token must carry every named scope (its `scope` claim; a v1 user
 * token counts as carrying USER_TOKEN_SCOPES), else 403 INSUFFICIENT_SCOPE with RFC 6750
 * §3.1's challenge naming the scopes the route needs. Runs after RolesGuard. A route without
 * a caller (an anonymous one on @Public() or @OptionalAuth()) is not checked: public
 * resources stay open to anyone.
 */
@Injectable()
export class ScopesGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    const declared = this.reflector.getAllAndMerge<string[]>(SCOPES, [context.getHandler(), context.getClass()]);
    const required = [...new Set(declared)];
    if (required.length === 0) return true;
    const principal = context.switchToHttp().getRequest<Request>().principal;
    if (!principal || required.every((s) => principal.scopes.includes(s))) return true;
    throw insufficientScope(
      required,
      required.filter((s) => !principal.scopes.includes(s)),
    );
  }
}

/**
 * 403 INSUFFICIENT_SCOPE with RFC 6750 §3.1's challenge: `scope` lists every scope the route
 * needs, the message the ones the token lacks.
 */
export function insufficientScope(required: readonly string[], missing: readonly string[] = required): AppError {
  return new AppError(ErrorCode.INSUFFICIENT_SCOPE, `Insufficient scope: this needs ${missing.join(' ')}`, {
    'WWW-Authenticate': `Bearer realm="gatehouse", error="insufficient_scope", scope="${required.join(' ')}"`,
  });
}
