import { Injectable } from '@nestjs/common';
import { Clock } from '../../common/clock.js';
import { PrismaService } from '../../database/prisma.service.js';
import type { Prisma } from '../../generated/prisma/client.js';

export type AuditEventType =
  | 'signup'
  | 'login.succeeded'
  | 'login.failed'
  | 'login.throttled'
  | 'refresh.reuse_detected'
  | 'logout'
  | 'logout_all'
  | 'session.revoked'
  | 'password.changed'
  | 'account.disabled'
  | 'account.enabled'
  | 'account.deleted'
  | 'roles.changed';

export interface AuditContext {
  ip?: string | null;
  userAgent?: string | null;
}

/** Security events, kept in the audit_events table. */
@Injectable()
export class AuditService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
  ) {}

  async record(
    type: AuditEventType,
    who: { userId?: string | null; sessionId?: string | null },
    ctx: AuditContext,
    details?: Prisma.InputJsonObject,
    /** A transaction to record in, so that the event commits (or not) with the change it records. */
    db: Prisma.TransactionClient = this.prisma,
  ): Promise<void> {
    await db.auditEvent.create({
      data: {
        type,
        userId: who.userId ?? null,
        sessionId: who.sessionId ?? null,
        ip: ctx.ip ?? null,
        userAgent: ctx.userAgent ?? null,
        details,
        createdAt: this.clock.now(),
      },
    });
  }
}
