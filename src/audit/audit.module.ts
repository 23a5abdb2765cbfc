import { Global, Module } from '@nestjs/common';
import { AuditLogService } from './audit-log.service.js';
import { AuditService } from './audit.service.js';

/** The security audit trail; every capability records into it, and the admin API reads it. */
@Global()
@Module({ providers: [AuditService, AuditLogService], exports: [AuditService, AuditLogService] })
export class AuditModule {}
