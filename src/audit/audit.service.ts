import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { Clock } from '../common/clock.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { Prisma } from '../generated/prisma/client.js';

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
  | 'roles.changed'
  | 'password.reset'
  | 'email.verified'
  | 'email.change_requested'
  | 'email.change_cancelled'
  | 'email.changed'
  | 'mail.failed'
  | 'login.mfa_required'
  | 'login.mfa_succeeded'
  | 'mfa.enrolled'
  | 'mfa.disabled'
  | 'mfa.reset_by_admin'
  | 'mfa.challenge_failed'
  | 'mfa.recovery_code_used'
  | 'mfa.recovery_codes_regenerated'
  | 'client.created'
  | 'client.updated'
  | 'client.disabled'
  | 'client.enabled'
  | 'client.deleted'
  | 'client.secret_created'
  | 'client.secret_revoked'
  | 'client.secret_expiry_set'
  | 'client.auth_failed'
  | 'client.token_revoked'
  | 'tenant.created'
  | 'tenant.updated'
  | 'tenant.deleted'
  | 'tenant.selected'
  | 'tenant.member_added'
  | 'tenant.member_removed'
  | 'tenant.roles_changed'
  | 'tenant.role_defined'
  | 'tenant.role_deleted'
  | 'tenant.invitation_sent'
  | 'tenant.invitation_revoked'
  | 'tenant.invitation_accepted'
  | 'tenant.admin_override'
  | 'federation.user_provisioned'
  | 'federation.session'
  | 'federation.token_exchanged'
  | 'identity.linked'
  | 'identity.unlinked';

export interface AuditContext {
  ip?: string | null;
  userAgent?: string | null;
  /** The authenticated caller whose request this is (ClientInfo fills it on guarded routes). */
  actorId?: string | null;
  requestId?: string | null;
}

/** Told of every event recorded (the metrics count some); must not throw or block. */
export type AuditObserver = (type: AuditEventType) => void;

/** Security events, kept in the audit_events table. */
@Injectable()
export class AuditService {
  private readonly observers: AuditObserver[] = [];

  constructor(
    private readonly txHost: TransactionHost<PrismaTx>,
    private readonly clock: Clock,
  ) {}

  /** Adds an observer, told of each event once its row is written (in its transaction, if any). */
  observe(observer: AuditObserver): void {
    this.observers.push(observer);
  }

  async record(
    type: AuditEventType,
    who: { userId?: string | null; sessionId?: string | null },
    ctx: AuditContext,
    details?: Prisma.InputJsonObject,
  ): Promise<void> {
    const row = this.row(type, who, ctx, details);
    // In the caller's transaction, if any: the event commits (or not) with the change it records.
    await this.txHost.tx.auditEvent.create({ data: { ...row, details } });
    this.written(type);
  }

  /**
   * An event's row for a statement that writes it together with the change it records
   * (auditInsertSql); call written() once that statement wrote it.
   */
  row(
    type: AuditEventType,
    who: { userId?: string | null; sessionId?: string | null },
    ctx: AuditContext,
    details?: Prisma.InputJsonObject,
  ): AuditRow {
    return {
      id: randomUUID(),
      type,
      userId: who.userId ?? null,
      actorId: ctx.actorId ?? null,
      sessionId: who.sessionId ?? null,
      ip: ctx.ip ?? null,
      // As a session keeps it: a client must not be able to store 16 KiB per event.
      userAgent: ctx.userAgent?.slice(0, 512) ?? null,
      requestId: ctx.requestId ?? null,
      details: details ?? null,
      createdAt: this.clock.now(),
    };
  }

  /** Tells the observers of an event whose row was written. */
  written(type: AuditEventType): void {
    for (const observer of this.observers) {
      try {
        observer(type);
      } catch {
        // An observer's failure never fails the request that made the change.
      }
    }
  }
}

/** An audit_events row as AuditService.row() makes it. */
export interface AuditRow {
  id: string;
  type: AuditEventType;
  userId: string | null;
  actorId: string | null;
  sessionId: string | null;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
  details: Prisma.InputJsonObject | null;
  createdAt: Date;
}

/** The INSERT of `row`, once for each row of `source` (a CTE name, with a WHERE clause if need be). */
export function auditInsertSql(row: AuditRow, source: Prisma.Sql): Prisma.Sql {
  return Prisma.sql`
    INSERT INTO audit_events (id, type, user_id, actor_id, session_id, ip, user_agent, request_id, details, created_at)
    SELECT ${row.id}::uuid, ${row.type}, ${row.userId}::uuid, ${row.actorId}::uuid, ${row.sessionId}::uuid, ${row.ip},
           ${row.userAgent}, ${row.requestId}, ${row.details === null ? null : JSON.stringify(row.details)}::jsonb, ${row.createdAt}
    FROM ${source}`;
}
