import { Module } from '@nestjs/common';
import { AuditController } from './audit.controller.js';
import { UsersController } from './users.controller.js';
import { UsersService } from './users.service.js';
import { IdentityLinksService } from './identity-links.service.js';

/**
 * Profile, password change, deletion, linked external identities, admin user management, and
 * the audit trail's readers (GET /audit-events, GET /users/me/activity).
 */
@Module({
  controllers: [UsersController, AuditController],
  providers: [UsersService, IdentityLinksService],
})
export class UsersModule {}
