import { SetMetadata, createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import type { AuthUser, Role } from '../tokens/access-token.service.js';

export const OPTIONAL_AUTH = 'gatehouse:optionalAuth';
export const ROLES = 'gatehouse:roles';

/**
 * The route serves anonymous callers too; a token that is present must still be valid
 * (an invalid one gets 401, it is never silently ignored).
 */
export const OptionalAuth = (): MethodDecorator & ClassDecorator => SetMetadata(OPTIONAL_AUTH, true);

/** Roles of which the caller needs at least one. */
export const Roles = (...roles: Role[]): MethodDecorator & ClassDecorator => SetMetadata(ROLES, roles);

/**
 * The authenticated caller. Fails loudly (500, logged) when no guard put one on the request:
 * a route that reads the user must never run unauthenticated by mistake.
 * `@CurrentUser({ optional: true })` is for @OptionalAuth routes and may give undefined.
 */
export const CurrentUser = createParamDecorator(
  (options: { optional?: boolean } | undefined, ctx: ExecutionContext): AuthUser | undefined => {
    const req = ctx.switchToHttp().getRequest<Request>();
    const user = req.user as AuthUser | undefined;
    if (!user && !options?.optional) {
      throw new Error(`@CurrentUser() used on ${req.method} ${req.path} without an authentication guard`);
    }
    return user;
  },
);
