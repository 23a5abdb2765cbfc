import { Module } from '@nestjs/common';
import { UsersController } from './users.controller.js';
import { UsersService } from './users.service.js';

/** Profile, password change, deletion and admin user management. */
@Module({
  controllers: [UsersController],
  providers: [UsersService],
})
export class UsersModule {}
