import { Injectable } from '@nestjs/common';
import { PrismaService } from '../database/prisma.service.js';
import type { Prisma } from '../generated/prisma/client.js';
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
  constructor(private readonly prisma: PrismaService) {}

  /** Up to `take` events matching the filter, after `before` (the last row of the previous page). */
  async page(filter: AuditFilter, take: number, before?: Position): Promise<AuditEntry[]> {
    const and: Prisma.AuditEventWhereInput[] = [];
    if (filter.userId !== undefined) and.push({ userId: filter.userId });
    if (filter.actorId !== undefined) and.push({ actorId: filter.actorId });
    const kinds: Prisma.AuditEventWhereInput[] = [
      ...(filter.types?.length ? [{ type: { in: [...filter.types] } }] : []),
      // Family names are lower-case letters only (validated), so no LIKE wildcard reaches here.
      ...(filter.families ?? []).map((f) => ({ type: { startsWith: `${f}.` } })),
    ];
    if (kinds.length > 0) and.push({ OR: kinds });
    if (filter.from !== undefined) and.push({ createdAt: { gte: filter.from } });
    if (filter.to !== undefined) and.push({ createdAt: { lt: filter.to } });
    if (before) and.push(olderThan(before));
    const rows = await this.prisma.auditEvent.findMany({ where: { AND: and }, orderBy: NEWEST_FIRST, take });
    return this.withUsernames(rows);
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

  /** Adds the usernames of the accounts and actors named on a page, in one query. */
  private async withUsernames(rows: Array<Omit<AuditEntry, 'username' | 'actorUsername'>>): Promise<AuditEntry[]> {
    const ids = new Set<string>();
    for (const r of rows) {
      if (r.userId) ids.add(r.userId);
      if (r.actorId) ids.add(r.actorId);
    }
    const names = new Map<string, string>();
    if (ids.size > 0) {
      const users = await this.prisma.user.findMany({
        where: { id: { in: [...ids] } },
        select: { id: true, username: true },
      });
      for (const u of users) names.set(u.id, u.username);
    }
    return rows.map((r) => ({
      ...r,
      username: r.userId ? (names.get(r.userId) ?? null) : null,
      actorUsername: r.actorId ? (names.get(r.actorId) ?? null) : null,
    }));
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
