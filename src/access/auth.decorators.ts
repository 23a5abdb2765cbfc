import { SetMetadata, createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import type { Role } from '../common/account-rules.js';
import type { BuiltInScope } from '../common/scopes.js';
import { AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import type { Principal } from '../tokens/principal.js';
import './principal-request.js';

export const OPTIONAL_AUTH = 'gatehouse:optionalAuth';
export const ROLES = 'gatehouse:roles';
export const REQUIRE_AAL2 = 'gatehouse:requireAal2';
export const SCOPES = 'gatehouse:scopes';

/**
 * The route serves anonymous callers too; a token that is present must still be valid
 * (an invalid one gets 401, it is never silently ignored).
 */
export const OptionalAuth = (): MethodDecorator & ClassDecorator => SetMetadata(OPTIONAL_AUTH, true);

/** Roles of which the caller needs at least one. */
export const Roles = (...roles: Role[]): MethodDecorator & ClassDecorator => SetMetadata(ROLES, roles);

/**
 * Scopes the caller's token must carry, every one of them (contract v2 §C): 403
 * INSUFFICIENT_SCOPE otherwise (ScopesGuard). Given on a class and on a method, both apply.
 * An anonymous caller of a @Public() or @OptionalAuth() route is not checked. Admin scopes
 * do not replace the role: `users:admin` routes keep their @Roles('admin'). Only built-in
 * scopes: OAUTH_EXTRA_SCOPES are issued for other APIs, never enforced here.
 */
export const Scopes = (...scopes: BuiltInScope[]): MethodDecorator & ClassDecorator => SetMetadata(SCOPES, scopes);

/**
 * Step-up (contract v2 §0.10): the caller must have signed in with a second factor (acr
 * aal2); an aal1 token gets 403 STEP_UP_REQUIRED. With ADMIN_REQUIRE_MFA=true every
 * @Roles('admin') route behaves as if it carried this too.
 */
export const RequireAal2 = (): MethodDecorator & ClassDecorator => SetMetadata(REQUIRE_AAL2, true);

/**
 * The authenticated caller. Fails loudly (500, logged) when no guard put one on the request:
 * a route that reads the user must never run unauthenticated by mistake.
 * `@CurrentUser({ optional: true })` is for @OptionalAuth routes and may give undefined.
 */
export const CurrentUser = createParamDecorator(
  (options: { optional?: boolean } | undefined, ctx: ExecutionContext): Principal | undefined => {
    const req = ctx.switchToHttp().getRequest<Request>();
    if (!req.principal && !options?.optional) {
      throw new Error(`@CurrentUser() used on ${req.method} ${req.path} without an authentication guard`);
    }
    return req.principal;
  },
);

/** The caller of a session route: a user signed in with a Gatehouse session. */
export type SessionPrincipal = Principal & { kind: 'user'; sessionId: string };

/**
 * The caller of a session route (logout-all, sessions, password change, account deletion:
 * contract v2 §0.1). A token without a Gatehouse session (a machine client's, an external
 * issuer's) gets 403 USER_SESSION_REQUIRED.
 */
export const CurrentSession = createParamDecorator((_: unknown, ctx: ExecutionContext): SessionPrincipal => {
  const req = ctx.switchToHttp().getRequest<Request>();
  const principal = req.principal;
  if (!principal)
    throw new Error(`@CurrentSession() used on ${req.method} ${req.path} without an authentication guard`);
  if (principal.kind !== 'user' || principal.sessionId === null) {
    throw new AppError(ErrorCode.USER_SESSION_REQUIRED, 'This route needs a user signed in with a Gatehouse session');
  }
  return principal as SessionPrincipal;
});
