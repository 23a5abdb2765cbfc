import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { AppException } from '../../common/errors/app.exception.js';
import { ErrorCode } from '../../common/errors/error-codes.js';
import { ROLES } from '../decorators/auth.decorators.js';
import type { AuthUser, Role } from '../tokens/access-token.service.js';

/** @Roles(): the caller's token must carry one of the roles (403 otherwise, RFC 6750 §3.1). */
@Injectable()
export class RolesGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    const required = this.reflector.getAllAndOverride<Role[] | undefined>(ROLES, [context.getHandler(), context.getClass()]);
    if (!required?.length) return true;
    const user = context.switchToHttp().getRequest<Request>().user as AuthUser | undefined;
    if (user && required.some((r) => user.roles.includes(r))) return true;
    throw new AppException(403, ErrorCode.INSUFFICIENT_ROLE, 'Insufficient role', {
      'WWW-Authenticate': `Bearer realm="gatehouse", error="insufficient_scope"`,
    });
  }
}
