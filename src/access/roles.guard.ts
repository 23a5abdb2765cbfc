import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { REQUIRE_AAL2, ROLES } from './auth.decorators.js';
import type { Role } from '../common/account-rules.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { adminNeedsStepUp, stepUpRequired } from './step-up.js';
import './principal-request.js';

/**
 * @Roles(): the caller's token must carry one of the roles (403 otherwise, RFC 6750 §3.1).
 * Then step-up: @RequireAal2() routes, and admin routes with ADMIN_REQUIRE_MFA=true (for
 * people; see adminNeedsStepUp), need a token of a session that proved a second factor
 * (acr aal2): 403 STEP_UP_REQUIRED otherwise,
 * with RFC 9470's challenge. (RFC 9470 answers 401; a 401 would make the browser client
 * refresh and then sign out, so 403, as the contract decides.)
 */
@Injectable()
export class RolesGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @InjectConfig() private readonly config: AppConfig,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    const targets = [context.getHandler(), context.getClass()];
    const required = this.reflector.getAllAndOverride<Role[] | undefined>(ROLES, targets);
    const principal = context.switchToHttp().getRequest<Request>().principal;
    if (required?.length && !(principal && required.some((r) => principal.roles.includes(r)))) {
      throw new AppError(ErrorCode.INSUFFICIENT_ROLE, 'Insufficient role', {
        'WWW-Authenticate': `Bearer realm="gatehouse", error="insufficient_scope"`,
      });
    }
    if (!principal) return true;
    const stepUp =
      this.reflector.getAllAndOverride<boolean | undefined>(REQUIRE_AAL2, targets) === true
        ? principal.acr !== 'aal2'
        : required?.includes('admin') === true && adminNeedsStepUp(principal, this.config);
    if (stepUp) throw stepUpRequired();
    return true;
  }
}
