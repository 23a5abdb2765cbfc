import { Module } from '@nestjs/common';
import { UsersController } from './users.controller.js';
import { UsersService } from './users.service.js';
import { IdentityLinksService } from './identity-links.service.js';

/** Profile, password change, deletion, linked external identities and admin user management. */
@Module({
  controllers: [UsersController],
  providers: [UsersService, IdentityLinksService],
})
export class UsersModule {}
