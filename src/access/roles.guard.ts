import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { ROLES } from './auth.decorators.js';
import type { Role } from '../common/account-rules.js';
import './principal-request.js';

/** @Roles(): the caller's token must carry one of the roles (403 otherwise, RFC 6750 §3.1). */
@Injectable()
export class RolesGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    const required = this.reflector.getAllAndOverride<Role[] | undefined>(ROLES, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (!required?.length) return true;
    const principal = context.switchToHttp().getRequest<Request>().principal;
    if (principal && required.some((r) => principal.roles.includes(r))) return true;
    throw new AppError(ErrorCode.INSUFFICIENT_ROLE, 'Insufficient role', {
      'WWW-Authenticate': `Bearer realm="gatehouse", error="insufficient_scope"`,
    });
  }
}
