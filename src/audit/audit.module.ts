import { Global, Module } from '@nestjs/common';
import { AuditService } from './audit.service.js';

/** The security audit trail; every capability records into it. */
@Global()
@Module({ providers: [AuditService], exports: [AuditService] })
export class AuditModule {}
