import { Module } from '@nestjs/common';
import { RetentionService } from './retention.service.js';

/** The retention job that keeps sessions, audit events and revocations bounded. */
@Module({ providers: [RetentionService], exports: [RetentionService] })
export class RetentionModule {}
