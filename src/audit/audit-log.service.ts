import { Injectable } from '@nestjs/common';
import { queryPrepared } from '../database/prepared-statements.js';
import { PrismaService } from '../database/prisma.service.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { Prisma } from '../generated/prisma/client.js';
import type { Position } from '../common/http/pagination.js';
import type { AuditEventType } from './audit.service.js';

/** An audit row with the usernames of its account and actor (null once deleted). */
export interface AuditEntry {
  id: string;
  type: string;
  createdAt: Date;
  userId: string | null;
  username: string | null;
  actorId: string | null;
  actorUsername: string | null;
  sessionId: string | null;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
  details: Prisma.JsonValue | null;
}

export interface AuditFilter {
  userId?: string;
  actorId?: string;
  /** Exact types, and families given by their prefix (`login` for `login.*`). */
  types?: readonly string[];
  families?: readonly string[];
  /** Inclusive. */
  from?: Date;
  /** Exclusive. */
  to?: Date;
}

/**
 * What a person sees of their own trail (GET /users/me/activity): sign-ins and failed
 * attempts, credential and factor changes, sessions ended, email changes, linked identities,
 * and what an administrator did to the account. Not the tenant, client or mail events.
 */
export const ACTIVITY_TYPES: readonly AuditEventType[] = [
  'signup',
  'login.succeeded',
  'login.failed',
  'login.mfa_succeeded',
  'mfa.challenge_failed',
  'federation.session',
  'refresh.reuse_detected',
  'logout',
  'logout_all',
  'session.revoked',
  'password.changed',
  'password.reset',
  'email.verified',
  'email.change_requested',
  'email.change_cancelled',
  'email.changed',
  'mfa.enrolled',
  'mfa.disabled',
  'mfa.reset_by_admin',
  'mfa.recovery_code_used',
  'mfa.recovery_codes_regenerated',
  'account.disabled',
  'account.enabled',
  'roles.changed',
  'identity.linked',
  'identity.unlinked',
];

/** The events that open a session for a person: the ones a new device shows up in. */
export const SIGN_IN_TYPES: readonly AuditEventType[] = [
  'signup',
  'login.succeeded',
  'login.mfa_succeeded',
  'federation.session',
];

const NEWEST_FIRST: Prisma.AuditEventOrderByWithRelationInput[] = [{ createdAt: 'desc' }, { id: 'desc' }];

/**
 * Reads the audit trail, newest first, in keyset pages of (created_at, id): each page is one
 * index range scan (audit_events' three (…, created_at DESC, id DESC) indexes), however deep.
 */
@Injectable()
export class AuditLogService {
  constructor(
    private readonly txHost: TransactionHost<PrismaTx>,
    private readonly prisma: PrismaService,
  ) {}

  /**
   * Up to `take` events matching the filter, after `before` (the last row of the previous
   * page), with the usernames of their account and actor: one statement, run on the pool
   * without Prisma's work on PostgreSQL.
   */
  async page(filter: AuditFilter, take: number, before?: Position): Promise<AuditEntry[]> {
    const and: Prisma.Sql[] = [];
    if (filter.userId !== undefined) and.push(Prisma.sql`e.user_id = ${filter.userId}::uuid`);
    if (filter.actorId !== undefined) and.push(Prisma.sql`e.actor_id = ${filter.actorId}::uuid`);
    const kinds: Prisma.Sql[] = [];
    if (filter.types?.length) kinds.push(Prisma.sql`e.type = ANY(${[...filter.types]}::text[])`);
    // Family names are lower-case letters only (validated), so no LIKE wildcard reaches here.
    if (filter.families?.length)
      kinds.push(Prisma.sql`e.type LIKE ANY(${filter.families.map((f) => `${f}.%`)}::text[])`);
    if (kinds.length > 0) and.push(Prisma.sql`(${Prisma.join(kinds, ' OR ')})`);
    if (filter.from !== undefined) and.push(Prisma.sql`e.created_at >= ${filter.from}`);
    if (filter.to !== undefined) and.push(Prisma.sql`e.created_at < ${filter.to}`);
    // Rows after the keyset position, with the index bound of olderThan().
    if (before) {
      and.push(
        Prisma.sql`e.created_at <= ${before.createdAt} AND (e.created_at < ${before.createdAt} OR (e.created_at = ${before.createdAt} AND e.id < ${before.id}::uuid))`,
      );
    }
    const statement = Prisma.sql`
      SELECT e.id, e.type, e.created_at AS "createdAt", e.user_id AS "userId", u.username,
             e.actor_id AS "actorId", a.username AS "actorUsername", e.session_id AS "sessionId",
             e.ip, e.user_agent AS "userAgent", e.request_id AS "requestId", e.details
      FROM audit_events AS e
      LEFT JOIN users AS u ON u.id = e.user_id
      LEFT JOIN users AS a ON a.id = e.actor_id
      WHERE ${and.length > 0 ? Prisma.join(and, ' AND ') : Prisma.sql`TRUE`}
      ORDER BY e.created_at DESC, e.id DESC
      LIMIT ${take}`;
    // Unnamed: planned for its values at each call. As a prepared statement, PostgreSQL's
    // generic plan (after five calls) for a page 90 % down an account's 50,000 events read
    // 16,668 index entries and sorted them (23 ms); planned for the values, it reads 74 (0.2 ms).
    return queryPrepared<AuditEntry>(this.txHost, this.prisma, null, statement);
  }

  /** The user's own security events (ACTIVITY_TYPES), newest first. */
  activity(userId: string, take: number, before?: Position) {
    return this.prisma.auditEvent.findMany({
      where: { AND: [{ userId, type: { in: [...ACTIVITY_TYPES] } }, ...(before ? [olderThan(before)] : [])] },
      orderBy: NEWEST_FIRST,
      take,
      select: {
        id: true,
        type: true,
        createdAt: true,
        userId: true,
        actorId: true,
        sessionId: true,
        ip: true,
        userAgent: true,
      },
    });
  }

  /**
   * For each user agent, the first sign-in of the user with it still in the log: a sign-in
   * at that instant is the account's first from that device (as far as the retained log
   * tells). One grouped query over the user's sign-ins, whatever the page size.
   */
  async firstSignIns(userId: string, userAgents: readonly string[]): Promise<Map<string, Date>> {
    if (userAgents.length === 0) return new Map();
    const rows = await this.prisma.auditEvent.groupBy({
      by: ['userAgent'],
      where: { userId, type: { in: [...SIGN_IN_TYPES] }, userAgent: { in: [...userAgents] } },
      _min: { createdAt: true },
    });
    const first = new Map<string, Date>();
    for (const r of rows) if (r.userAgent !== null && r._min.createdAt) first.set(r.userAgent, r._min.createdAt);
    return first;
  }
}

/**
 * Rows after the keyset position, newest first. The redundant `created_at <= c` gives
 * PostgreSQL an index bound: with the OR alone it scanned every row above the cursor (a page
 * 90 % down 200,000 events read 170,064 rows; with the bound, 69).
 */
function olderThan(p: Position): Prisma.AuditEventWhereInput {
  return {
    createdAt: { lte: p.createdAt },
    OR: [{ createdAt: { lt: p.createdAt } }, { createdAt: p.createdAt, id: { lt: p.id } }],
  };
}
