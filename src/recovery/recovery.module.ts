import { Module } from '@nestjs/common';
import { RecoveryController } from './recovery.controller.js';
import { RecoveryService } from './recovery.service.js';

/** Account recovery and verification: verification links, forgot/reset password, email change. */
@Module({ controllers: [RecoveryController], providers: [RecoveryService] })
export class RecoveryModule {}
