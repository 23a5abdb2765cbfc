import { Module, RequestMethod, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { RecoveryController } from './recovery.controller.js';
import { RecoveryService } from './recovery.service.js';

/**
 * Every answer of these routes (success or error, validation and authentication failures
 * included) carries `Cache-Control: no-store`: they carry or are about one-time tokens.
 */
function noStore(_req: Request, res: Response, next: NextFunction): void {
  res.setHeader('Cache-Control', 'no-store');
  next();
}

/** Account recovery and verification: verification links, forgot/reset password, email change. */
@Module({ controllers: [RecoveryController], providers: [RecoveryService] })
export class RecoveryModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer
      .apply(noStore)
      .forRoutes(
        { path: 'auth/email/verify-request', method: RequestMethod.POST },
        { path: 'auth/email/verify', method: RequestMethod.POST },
        { path: 'auth/password/forgot', method: RequestMethod.POST },
        { path: 'auth/password/reset', method: RequestMethod.POST },
        { path: 'users/me/email', method: RequestMethod.POST },
        { path: 'users/me/email/pending', method: RequestMethod.DELETE },
      );
  }
}
