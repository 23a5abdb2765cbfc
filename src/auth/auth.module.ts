import { Module } from '@nestjs/common';
import { AuthController } from './auth.controller.js';
import { AuthService } from './auth.service.js';
import { JwksController } from './jwks.controller.js';
import { MfaController } from './mfa.controller.js';

/** The sign-in endpoints: signup, login (and its second step), refresh, logout, sessions, two-step sign-in, and the JWKS. */
@Module({
  controllers: [AuthController, MfaController, JwksController],
  providers: [AuthService],
})
export class AuthModule {}
