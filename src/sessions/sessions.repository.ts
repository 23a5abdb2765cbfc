import { randomUUID } from 'node:crypto';
import { Injectable, Optional } from '@nestjs/common';
import { PrismaService } from '../database/prisma.service.js';
import { Prisma } from '../generated/prisma/client.js';
import { queryPrepared } from '../database/prepared-statements.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import type { Role } from '../common/account-rules.js';
import type { Acr } from '../tokens/principal.js';

/** How a session was opened (RFC 8176 `amr`), its assurance level and when the user authenticated. */
export interface SessionAuth {
  amr: string[];
  acr: Acr;
  authTime: Date;
}

export interface NewSession {
  userId: string;
  tokenHash: Buffer;
  now: Date;
  expiresAt: Date;
  absoluteExpiresAt: Date;
  userAgent: string | null;
  ip: string | null;
  auth: SessionAuth;
}

/** The tenant a session selected, while its user is still a member there, with their roles. */
export interface SessionTenant {
  tenantId: string | null;
  tenantRoles: string[] | null;
}

export interface RotatedSession extends SessionAuth, SessionTenant {
  id: string;
  userId: string;
  roles: Role[];
  expiresAt: Date;
}

/** What a refresh token that could not simply be rotated matches, to tell why. */
export interface PresentedTokenState extends SessionAuth, SessionTenant {
  id: string;
  userId: string;
  roles: Role[];
  disabled: boolean;
  isCurrent: boolean;
  /** The token rotated away last (the grace window applies); older ones are plain reuse. */
  isPrevious: boolean;
  rotatedAt: Date | null;
  successorSealed: Uint8Array | null;
  expiresAt: Date;
  absoluteExpiresAt: Date;
  revokedAt: Date | null;
  revokedReason: string | null;
}

export interface SessionView {
  id: string;
  createdAt: Date;
  lastUsedAt: Date;
  expiresAt: Date;
  userAgent: string | null;
  ip: string | null;
}

/** A live session as the API lists it (GET /auth/sessions, GET /users/:id/sessions). */
export function sessionJson(s: SessionView) {
  return {
    id: s.id,
    createdAt: s.createdAt.toISOString(),
    lastUsedAt: s.lastUsedAt.toISOString(),
    expiresAt: s.expiresAt.toISOString(),
    userAgent: s.userAgent,
    ip: s.ip,
  };
}

/**
 * The INSERT of session `id` for the one user row of `source` (a CTE name, with a WHERE
 * clause if need be, whose rows have the user's `id`), returning the new session's id: a
 * part of the statement that opens it (createIfCredentialsCurrent, and a login's second
 * step in MfaRepository.completeTotpLogin).
 */
export function insertSessionSql(id: string, s: NewSession, source: Prisma.Sql): Prisma.Sql {
  return Prisma.sql`
    INSERT INTO sessions (id, user_id, token_hash, created_at, last_used_at, expires_at, absolute_expires_at, user_agent, ip,
                          amr, acr, auth_time)
    SELECT ${id}::uuid, id, ${s.tokenHash}, ${s.now}, ${s.now}, ${s.expiresAt}, ${s.absoluteExpiresAt},
           ${s.userAgent}, ${s.ip}, ${s.auth.amr}::text[], ${s.auth.acr}, ${s.auth.authTime}
    FROM ${source}
    RETURNING id`;
}

/**
 * The condition on `sessions` of the user's live sessions at `now`, as the cap on sessions per
 * user counts them: the same in the count that may skip the cap (withinCapSql) and in the cap
 * itself (revokeBeyondSql), so that a skipped cap is one that had nothing to revoke.
 */
function liveSessionsOfSql(userId: string, now: Date): Prisma.Sql {
  return Prisma.sql`user_id = ${userId}::uuid AND revoked_at IS NULL AND expires_at > ${now} AND absolute_expires_at > ${now}`;
}

/**
 * The new value of `users.session_seq`, in the SET of the UPDATE that locks the user's row in
 * every statement that opens a session for them (it counts modulo 2^31 - 1 to stay an INTEGER).
 */
export const NEXT_SESSION_SEQ = Prisma.sql`(session_seq + 1) % 2147483647`;

/**
 * Whether the cap on live sessions per user has nothing to revoke after this statement
 * opens a session, so that SessionsService need not run its statement (revokeBeyond). Every
 * statement that opens a session moves `users.session_seq` on in the UPDATE that locks the
 * user's row (`lockedSeq`: the value that UPDATE returned). When it is one more than the
 * value this statement's snapshot reads, no other session of the user was committed between
 * the snapshot and the lock, and none can be until this one commits (it would wait for the
 * lock): the live sessions the snapshot holds are then all the user has besides the new one.
 * True when those leave room for it (fewer than `keep`). False otherwise, and whenever
 * another opening came between: the cap's own statement then runs after the commit, as the
 * last committed of racing logins must (SessionsService.evictBeyondLimit).
 */
export function withinCapSql(userId: string, keep: number, now: Date, lockedSeq: Prisma.Sql): Prisma.Sql {
  return Prisma.sql`(${lockedSeq} = (SELECT ${NEXT_SESSION_SEQ} FROM users WHERE id = ${userId}::uuid)
    AND (SELECT count(*) FROM (SELECT 1 FROM sessions WHERE ${liveSessionsOfSql(userId, now)} LIMIT ${keep}::int) AS live)
        < ${keep}::int)`;
}

/**
 * Revokes the user's live sessions beyond the `keep` most recently used ones (the cap on
 * live sessions per user), returning their ids. The UPDATE's own scan names the user too:
 * with `revoked_at IS NULL` alone, a generic plan made while the table's statistics were
 * those of a nearly empty table read every live session of every user through the
 * `revoked_at` index (seen with auto_explain: a hash semi-join over that index).
 */
function revokeBeyondSql(userId: string, keep: number, now: Date): Prisma.Sql {
  return Prisma.sql`
    UPDATE sessions SET revoked_at = ${now}, revoked_reason = 'session_limit'
    WHERE user_id = ${userId}::uuid AND revoked_at IS NULL AND id IN (
      SELECT id FROM sessions
      WHERE ${liveSessionsOfSql(userId, now)}
      ORDER BY last_used_at DESC, created_at DESC, id DESC
      OFFSET ${keep}
    )
    RETURNING id`;
}

/** The Prisma queries on sessions, named by intent. */
@Injectable()
export class SessionsRepository {
  constructor(
    private readonly txHost: TransactionHost<PrismaTx>,
    @Optional() private readonly prisma?: PrismaService,
  ) {}

  /** The client of the caller's transaction, if any (see database/transactions.ts). */
  private get db() {
    return this.txHost.tx;
  }

  /**
   * Opens a session for a user whose checks the caller made (in its transaction, with the
   * row locked where it matters); moves the user's session_seq on like every opening (see
   * withinCapSql).
   */
  async create(s: NewSession): Promise<{ id: string }> {
    const rows = await this.db.$queryRaw<Array<{ id: string }>>`
      WITH account AS (
        UPDATE users SET session_seq = ${NEXT_SESSION_SEQ} WHERE id = ${s.userId}::uuid RETURNING id
      ) ${insertSessionSql(randomUUID(), s, Prisma.sql`account`)}`;
    if (!rows[0]) throw new Error(`no session opened: user ${s.userId} does not exist`);
    return rows[0];
  }

  /**
   * Opens a session only if the account is still enabled and its password hash is still
   * the one the caller verified, in one statement. The user row is locked by the UPDATE that
   * moves its session_seq on: a password change or a disable that is committing first makes
   * this wait and then find the row changed (no session); one that comes later waits for
   * this insert, and its revoke-all then sees the new session. So a login racing a password
   * change or a disable never leaves a session that escapes the revocation. `passwordOnly`:
   * the session proves the password alone, so the account must also have no second factor.
   * `withinCap`: see withinCapSql (`keep`: MAX_SESSIONS_PER_USER). Null when nothing was
   * opened.
   */
  async createIfCredentialsCurrent(
    s: NewSession,
    passwordHash: string,
    passwordOnly: boolean,
    keep: number,
  ): Promise<{ id: string; roles: Role[]; withinCap: boolean } | null> {
    // The roles come from the same locked row: a role change still committing is waited for.
    // A session opened with the password alone also needs the account to have no second
    // factor: a login racing the confirmation of an enrolment (which revokes every other
    // session) waits for it here and then opens nothing.
    const rows = await this.db.$queryRaw<Array<{ id: string; roles: Role[]; withinCap: boolean }>>`
      WITH account AS (
        UPDATE users SET session_seq = ${NEXT_SESSION_SEQ}
        WHERE id = ${s.userId}::uuid AND password_hash = ${passwordHash} AND NOT disabled
          AND (NOT ${passwordOnly} OR NOT mfa_enabled)
        RETURNING id, roles, session_seq
      ), opened AS (${insertSessionSql(randomUUID(), s, Prisma.sql`account`)})
      SELECT opened.id, account.roles::text[] AS roles,
             ${withinCapSql(s.userId, keep, s.now, Prisma.sql`account.session_seq`)} AS "withinCap"
      FROM opened, account`;
    return rows[0] ?? null;
  }

  /**
   * Revokes the user's live sessions beyond the `keep` most recently used ones (the cap on
   * live sessions per user); returns their ids.
   */
  async revokeBeyond(userId: string, keep: number, now: Date): Promise<string[]> {
    // After every login: a prepared statement outside transactions on PostgreSQL.
    const rows = await queryPrepared<{ id: string }>(
      this.txHost,
      this.prisma,
      'gatehouse_sessions_revoke_beyond_v1',
      revokeBeyondSql(userId, keep, now),
    );
    return rows.map((r) => r.id);
  }

  /**
   * Rotation as one conditional statement: it succeeds only while `tokenHash` is the
   * session's current token, the session is live and its user enabled, so two concurrent
   * refreshes with one token can never both rotate. Idle expiry moves forward but never
   * past the absolute expiry. The selected tenant comes back only while the user is still a
   * member there (contract v2 §E: a removal drops `tid` at the next refresh).
   */
  async rotate(p: RotationParams): Promise<RotatedSession | null> {
    // The refresh hot path: a prepared statement outside transactions on PostgreSQL (see
    // database/prepared-statements.ts); bench/rotate-baseline.mjs builds this class alone, with
    // the pool and no transaction, so that it runs this very statement, prepared, as here.
    const rows = await queryPrepared<RotatedSession>(this.txHost, this.prisma, ROTATE_STATEMENT, rotationStatement(p));
    return rows[0] ?? null;
  }

  async findByPresentedToken(tokenHash: Buffer): Promise<PresentedTokenState | null> {
    const rows = await this.db.$queryRaw<PresentedTokenState[]>`
      SELECT s.id, s.user_id AS "userId", u.roles::text[] AS roles, u.disabled,
             (s.token_hash = ${tokenHash}) AS "isCurrent",
             COALESCE(s.previous_token_hash = ${tokenHash}, false) AS "isPrevious", s.rotated_at AS "rotatedAt",
             s.successor_sealed AS "successorSealed", s.expires_at AS "expiresAt",
             s.absolute_expires_at AS "absoluteExpiresAt", s.revoked_at AS "revokedAt",
             s.revoked_reason AS "revokedReason", s.amr, s.acr, s.auth_time AS "authTime",
             m.tenant_id AS "tenantId", m.roles AS "tenantRoles"
      FROM sessions AS s JOIN users AS u ON u.id = s.user_id
      LEFT JOIN tenant_memberships m ON m.tenant_id = s.active_tenant_id AND m.user_id = s.user_id
      WHERE s.token_hash = ${tokenHash} OR s.previous_token_hash = ${tokenHash}
         OR s.id = (SELECT session_id FROM retired_refresh_tokens WHERE token_hash = ${tokenHash})
      LIMIT 1`;
    return rows[0] ?? null;
  }

  /** The session's new assurance (a second factor proved in it); false when it is not live. */
  async setAuth(id: string, auth: SessionAuth): Promise<boolean> {
    const { count } = await this.db.session.updateMany({
      where: { id, revokedAt: null },
      data: { amr: auth.amr, acr: auth.acr, authTime: auth.authTime },
    });
    return count === 1;
  }

  async touch(id: string, now: Date): Promise<void> {
    await this.db.session.updateMany({ where: { id, revokedAt: null }, data: { lastUsedAt: now } });
  }

  /** Revokes one session; true when it was live. */
  async revoke(id: string, reason: string, now: Date): Promise<boolean> {
    const { count } = await this.db.session.updateMany({
      where: { id, revokedAt: null },
      data: { revokedAt: now, revokedReason: reason },
    });
    return count > 0;
  }

  /** Revokes one of this user's sessions; null when it is not theirs (or does not exist). */
  async revokeOwned(userId: string, id: string, reason: string, now: Date): Promise<'revoked' | 'already' | null> {
    const session = await this.db.session.findFirst({ where: { id, userId }, select: { revokedAt: true } });
    if (!session) return null;
    if (session.revokedAt) return 'already';
    await this.revoke(id, reason, now);
    return 'revoked';
  }

  /** Revokes every live session of a user (but `exceptId`); returns their ids. */
  async revokeAllOf(userId: string, reason: string, now: Date, exceptId?: string): Promise<string[]> {
    const rows = await this.db.session.updateManyAndReturn({
      where: { userId, revokedAt: null, ...(exceptId ? { id: { not: exceptId } } : {}) },
      data: { revokedAt: now, revokedReason: reason },
      select: { id: true },
    });
    return rows.map((r) => r.id);
  }

  async listLive(userId: string, now: Date): Promise<SessionView[]> {
    return this.db.session.findMany({
      where: { userId, revokedAt: null, expiresAt: { gt: now }, absoluteExpiresAt: { gt: now } },
      orderBy: [{ lastUsedAt: 'desc' }, { id: 'asc' }],
      select: { id: true, createdAt: true, lastUsedAt: true, expiresAt: true, userAgent: true, ip: true },
    });
  }
}

export interface RotationParams {
  tokenHash: Buffer;
  newTokenHash: Buffer;
  successorSealed: Buffer;
  now: Date;
  idleExpiresAt: Date;
  userAgent: string | null;
  ip: string | null;
}

/** The name of the rotation's prepared statement on each PostgreSQL connection. */
const ROTATE_STATEMENT = 'gatehouse_sessions_rotate_v1';

/**
 * The statement of SessionsRepository.rotate: the conditional UPDATE, and the presented token
 * recorded as retired (for reuse detection) only when the UPDATE matched. Written once, run by
 * queryPrepared (a prepared statement on PostgreSQL, else Prisma's $queryRaw).
 */
function rotationStatement(p: RotationParams): Prisma.Sql {
  return Prisma.sql`
      WITH rotated AS (
        UPDATE sessions AS s
        SET token_hash = ${p.newTokenHash},
            previous_token_hash = s.token_hash,
            successor_sealed = ${p.successorSealed},
            rotated_at = ${p.now},
            last_used_at = ${p.now},
            expires_at = LEAST(${p.idleExpiresAt}::timestamptz, s.absolute_expires_at),
            user_agent = COALESCE(${p.userAgent}, s.user_agent),
            ip = COALESCE(${p.ip}, s.ip)
        FROM users AS u
        WHERE s.token_hash = ${p.tokenHash}
          AND s.revoked_at IS NULL
          AND s.expires_at > ${p.now}
          AND s.absolute_expires_at > ${p.now}
          AND u.id = s.user_id
          AND u.disabled = false
        RETURNING s.id, s.user_id, u.roles, s.expires_at, s.amr, s.acr, s.auth_time, s.active_tenant_id
      ), retired AS (
        INSERT INTO retired_refresh_tokens (token_hash, session_id, retired_at)
        SELECT ${p.tokenHash}, id, ${p.now} FROM rotated
      )
      SELECT r.id, r.user_id AS "userId", r.roles::text[] AS roles, r.expires_at AS "expiresAt",
             r.amr, r.acr, r.auth_time AS "authTime", m.tenant_id AS "tenantId", m.roles AS "tenantRoles"
      FROM rotated r
      LEFT JOIN tenant_memberships m ON m.tenant_id = r.active_tenant_id AND m.user_id = r.user_id`;
}
