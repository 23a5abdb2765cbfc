import { Module } from '@nestjs/common';
import { AuthController } from './auth.controller.js';
import { AuthService } from './auth.service.js';
import { JwksController } from './jwks.controller.js';

/** The sign-in endpoints: signup, login, refresh, logout, sessions, and the JWKS. */
@Module({
  controllers: [AuthController, JwksController],
  providers: [AuthService],
})
export class AuthModule {}
