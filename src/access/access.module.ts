import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { JwtAuthGuard } from './jwt-auth.guard.js';
import { RolesGuard } from './roles.guard.js';
import { ScopesGuard } from './scopes.guard.js';

/**
 * Access control for every route: the global guards (a valid access token unless
 * @Public(), then @Roles(), then @Scopes()). The decorators beside them are what
 * capabilities use.
 */
@Module({
  providers: [
    { provide: APP_GUARD, useClass: JwtAuthGuard },
    { provide: APP_GUARD, useClass: RolesGuard },
    // After the roles: an admin route tells a caller without the role so before the scope.
    { provide: APP_GUARD, useClass: ScopesGuard },
  ],
})
export class AccessModule {}
