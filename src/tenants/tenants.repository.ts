import { Injectable } from '@nestjs/common';
import { withTimeout } from '../database/open-database.js';
import { queryPrepared } from '../database/prepared-statements.js';
import { PrismaService } from '../database/prisma.service.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { Prisma } from '../generated/prisma/client.js';
import type { Position } from '../common/http/pagination.js';

export interface TenantRow {
  id: string;
  slug: string;
  name: string;
  createdAt: Date;
}

/** A tenant with the roles a given user holds in it (null: not a member). */
export interface TenantWithRoles extends TenantRow {
  myRoles: string[] | null;
}

export interface MemberRow {
  userId: string;
  username: string;
  displayName: string | null;
  roles: string[];
  /** When the membership began: the keyset position of the member list, with `id`. */
  createdAt: Date;
  id: string;
}

export interface InvitationRow {
  id: string;
  tenantId: string;
  email: string;
  emailKey: string;
  roles: string[];
  invitedBy: string | null;
  expiresAt: Date;
  acceptedAt: Date | null;
  revokedAt: Date | null;
  createdAt: Date;
}

/** A session's state after POST /auth/tenant. */
export interface SelectedTenant {
  roles: string[];
  amr: string[];
  acr: string;
  authTime: Date;
  tenantRoles: string[] | null;
}

/** What one membership lookup returns: the member's roles and their custom roles' definitions. */
export interface MembershipRecord {
  roles: string[];
  custom: Array<{ name: string; permissions: string[] }>;
}

/** A membership's roles, and the definitions of the custom roles among them (`m`: the membership row). */
const MEMBERSHIP_COLUMNS = Prisma.sql`m.roles,
             COALESCE((SELECT json_agg(json_build_object('name', r.name, 'permissions', r.permissions))
                       FROM tenant_roles r WHERE r.tenant_id = m.tenant_id AND r.name = ANY (m.roles)), '[]'::json) AS custom`;

/**
 * The membership lookup (one row, or none): the member's roles and the definitions of the
 * custom ones among them. Also read in the statement of a request that needs it with other
 * rows (ResourcesRepository.tenantPage).
 */
export function membershipQuery(tenantId: string, userId: string): Prisma.Sql {
  return Prisma.sql`
      SELECT ${MEMBERSHIP_COLUMNS}
      FROM tenant_memberships m
      WHERE m.tenant_id = ${tenantId}::uuid AND m.user_id = ${userId}::uuid`;
}

const INVITATION_SELECT = {
  id: true,
  tenantId: true,
  email: true,
  emailKey: true,
  roles: true,
  invitedBy: true,
  expiresAt: true,
  acceptedAt: true,
  revokedAt: true,
  createdAt: true,
} as const;

/** Keyset condition "strictly after `after`" in newest-first order, on any model with (createdAt, id). */
function olderThan(after: Position | undefined) {
  return after
    ? { OR: [{ createdAt: { lt: after.createdAt } }, { createdAt: after.createdAt, id: { lt: after.id } }] }
    : {};
}

/**
 * The queries on tenants, memberships, custom roles and invitations. Isolation lives here:
 * every read that serves a caller names the caller's user id in its WHERE clause (or is
 * reached only after the membership lookup of the same request), never filtered afterwards.
 */
@Injectable()
export class TenantsRepository {
  constructor(
    private readonly txHost: TransactionHost<PrismaTx>,
    private readonly prisma: PrismaService,
  ) {}

  private get db() {
    return this.txHost.tx;
  }

  /**
   * The membership of `userId` in `tenantId`, with the definitions of the custom roles it
   * lists: one statement on the membership's primary key (contract v2 §E).
   */
  async membership(tenantId: string, userId: string): Promise<MembershipRecord | null> {
    // Every request aimed at a tenant reads it: a prepared statement on PostgreSQL outside
    // transactions (see database/prepared-statements.ts).
    const rows = await queryPrepared<MembershipRecord>(
      this.txHost,
      this.prisma,
      'gatehouse_tenant_membership_v1',
      membershipQuery(tenantId, userId),
    );
    return rows[0] ?? null;
  }

  /**
   * The memberships of several users in one tenant, in one statement (users who are not
   * members are absent from the map): a re-check of a tenant's subscribers after a change of
   * its roles reads them all at once, not one statement per subscriber.
   */
  async memberships(tenantId: string, userIds: readonly string[]): Promise<Map<string, MembershipRecord>> {
    const rows = await queryPrepared<MembershipRecord & { userId: string }>(
      this.txHost,
      this.prisma,
      'gatehouse_tenant_memberships_v1',
      Prisma.sql`
        SELECT m.user_id AS "userId", ${MEMBERSHIP_COLUMNS}
        FROM tenant_memberships m
        WHERE m.tenant_id = ${tenantId}::uuid AND m.user_id = ANY (${[...userIds]}::uuid[])`,
    );
    return new Map(rows.map(({ userId, roles, custom }) => [userId, { roles, custom }]));
  }

  async exists(tenantId: string): Promise<boolean> {
    return (await this.db.tenant.count({ where: { id: tenantId } })) > 0;
  }

  /**
   * Takes, until the transaction ends, a lock that stands for this change alone (an advisory
   * lock on the change's id): awaitChange() on another instance waits on it, for this change's
   * commit or rollback and nothing else. Waiting on the tenant's row instead also waited
   * behind every transaction queued for that row after the change (a slow deletion, a change
   * stuck on its own announcement), long after the change had committed.
   */
  async holdChange(changeId: string): Promise<void> {
    if (!this.txHost.isTransactionActive()) throw new Error('a change lock needs a transaction');
    await this.db.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${changeId}, 0))`;
  }

  /**
   * Returns once the change holding holdChange(changeId) has ended (at once if it has, or if
   * there is no such change): a shared lock on the same key, in a transaction of its own,
   * released at once. Locks are released after a commit becomes visible, so what is read
   * afterwards is the change's outcome. Fails (lock_timeout, SQLSTATE 55P03) when the change
   * is still running after `timeoutMs`: an instance frozen or cut off in the middle of a change
   * holds its lock until PostgreSQL notices. Fails too after `giveUpMs` without an answer
   * (the database or the network to it gone silent, where lock_timeout cannot act): on
   * PostgreSQL the connection then leaves the pool, closed, rather than be handed out again.
   */
  async awaitChange(changeId: string, timeoutMs: number, giveUpMs: number): Promise<void> {
    const pool = this.prisma.pgPool();
    if (!pool) {
      await withTimeout(
        this.prisma.$transaction([
          this.prisma.$queryRaw`SELECT set_config('lock_timeout', ${`${timeoutMs}ms`}, true)`,
          this.prisma.$executeRaw`SELECT pg_advisory_xact_lock_shared(hashtextextended(${changeId}, 0))`,
        ]),
        giveUpMs,
      );
      return;
    }
    // One deadline for the whole wait, the pool's connection included.
    const deadline = Date.now() + giveUpMs;
    const connecting = pool.connect();
    let client: Awaited<typeof connecting>;
    try {
      client = await withTimeout(connecting, giveUpMs);
    } catch (error) {
      // A connection that comes after the deadline goes straight back.
      connecting.then(
        (late) => late.release(),
        () => undefined,
      );
      throw error;
    }
    let failure: Error | undefined;
    try {
      await withTimeout(
        (async () => {
          await client.query('BEGIN');
          await client.query(`SELECT set_config('lock_timeout', $1, true)`, [`${timeoutMs}ms`]);
          await client.query('SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))', [changeId]);
          await client.query('COMMIT');
        })(),
        Math.max(0, deadline - Date.now()),
      );
    } catch (error) {
      failure = error instanceof Error ? error : new Error(String(error));
      throw error;
    } finally {
      // On any failure (lock_timeout, no answer) the connection is closed, not rolled back:
      // a ROLLBACK could hang on a silent connection too, and PostgreSQL rolls back the
      // transaction of a connection that ends. With an error, pg's pool closes and forgets it.
      client.release(failure);
    }
  }

  /**
   * Whether the change holding holdChange(changeId) has ended (true too if there is no such
   * change), without waiting: a shared lock on the same key is tried by one statement outside
   * any transaction, so that it is released as the statement ends. Fails after `giveUpMs`
   * without an answer.
   */
  async hasChangeEnded(changeId: string, giveUpMs: number): Promise<boolean> {
    const rows = await withTimeout(
      this.prisma.$queryRaw<Array<{ ended: boolean }>>`
        SELECT pg_try_advisory_xact_lock_shared(hashtextextended(${changeId}, 0)) AS ended`,
      giveUpMs,
    );
    return rows[0]?.ended ?? false;
  }

  /**
   * Locks the tenant's row until the transaction ends; false when there is no such tenant.
   * Every change to memberships, invitations and roles takes it first, so the last-owner and
   * member-limit checks and the changes they guard run one at a time per tenant.
   */
  async lock(tenantId: string): Promise<boolean> {
    if (!this.txHost.isTransactionActive()) throw new Error('the tenant lock needs a transaction');
    const rows = await this.db.$queryRaw<unknown[]>`SELECT id FROM tenants WHERE id = ${tenantId}::uuid FOR UPDATE`;
    return rows.length > 0;
  }

  /** Serialises one user's tenant creations (the per-user limit) until the transaction ends. */
  async lockCreationsOf(userId: string): Promise<void> {
    if (!this.txHost.isTransactionActive()) throw new Error('the creation lock needs a transaction');
    await this.db.$executeRaw`SELECT pg_advisory_xact_lock(hashtext('gatehouse:tenant-create'), hashtext(${userId}))`;
  }

  countMembershipsOf(userId: string): Promise<number> {
    return this.db.tenantMembership.count({ where: { userId } });
  }

  /**
   * The tenants `userId` created and still owns (TENANT_LIMIT_PER_USER counts them): being
   * made owner of someone else's tenant does not use up anyone's allowance.
   */
  countOwnedBy(userId: string): Promise<number> {
    return this.db.tenantMembership.count({
      where: { userId, roles: { has: 'owner' }, tenant: { createdBy: userId } },
    });
  }

  /**
   * Whether the account still exists, holding it (FOR KEY SHARE) until the transaction ends,
   * so that it cannot be deleted before what is being created for it commits.
   */
  async holdAccount(userId: string): Promise<boolean> {
    const rows = await this.db.$queryRaw<unknown[]>`SELECT id FROM users WHERE id = ${userId}::uuid FOR KEY SHARE`;
    return rows.length > 0;
  }

  /** How an account is named to others: its display name, else its username. */
  async displayNameOf(userId: string): Promise<string | null> {
    const u = await this.db.user.findUnique({ where: { id: userId }, select: { displayName: true, username: true } });
    return u ? (u.displayName ?? u.username) : null;
  }

  countMembers(tenantId: string): Promise<number> {
    return this.db.tenantMembership.count({ where: { tenantId } });
  }

  /** Members other than `exceptUserId` who hold `owner`. */
  countOtherOwners(tenantId: string, exceptUserId: string): Promise<number> {
    return this.db.tenantMembership.count({
      where: { tenantId, userId: { not: exceptUserId }, roles: { has: 'owner' } },
    });
  }

  /** The tenants in which `userId` is the only owner (they block the account's deletion). */
  async soleOwnerships(userId: string): Promise<string[]> {
    const rows = await this.db.$queryRaw<Array<{ tenantId: string }>>`
      SELECT m.tenant_id AS "tenantId" FROM tenant_memberships m
      WHERE m.user_id = ${userId}::uuid AND 'owner' = ANY (m.roles)
        AND NOT EXISTS (SELECT 1 FROM tenant_memberships o
                        WHERE o.tenant_id = m.tenant_id AND o.user_id <> m.user_id AND 'owner' = ANY (o.roles))`;
    return rows.map((r) => r.tenantId);
  }

  /**
   * Locks, in a stable order, every tenant `userId` belongs to (before deleting the account,
   * so that no owner leaves meanwhile); returns their ids. FOR NO KEY UPDATE still waits for
   * and holds off every change of those tenants (lock() takes FOR UPDATE), but not the foreign
   * key check of a resource created in them meanwhile: a long deletion (very many resources)
   * does not hold every member's writes, nor gather them on the database pool.
   */
  async lockTenantsOf(userId: string): Promise<string[]> {
    const rows = await this.db.$queryRaw<Array<{ id: string }>>`
      SELECT t.id FROM tenants t JOIN tenant_memberships m ON m.tenant_id = t.id
      WHERE m.user_id = ${userId}::uuid ORDER BY t.id FOR NO KEY UPDATE OF t`;
    return rows.map((r) => r.id);
  }

  async create(t: { slug: string; name: string; createdBy: string; now: Date }): Promise<TenantRow> {
    return this.db.tenant.create({
      data: {
        slug: t.slug,
        name: t.name,
        createdBy: t.createdBy,
        createdAt: t.now,
        updatedAt: t.now,
        memberships: { create: { userId: t.createdBy, roles: ['owner'], addedBy: t.createdBy, createdAt: t.now } },
      },
      select: { id: true, slug: true, name: true, createdAt: true },
    });
  }

  find(tenantId: string): Promise<TenantRow | null> {
    return this.db.tenant.findUnique({
      where: { id: tenantId },
      select: { id: true, slug: true, name: true, createdAt: true },
    });
  }

  async rename(tenantId: string, name: string, now: Date): Promise<TenantRow | null> {
    const rows = await this.db.tenant.updateManyAndReturn({
      where: { id: tenantId },
      data: { name, updatedAt: now },
      select: { id: true, slug: true, name: true, createdAt: true },
    });
    return rows[0] ?? null;
  }

  async delete(tenantId: string): Promise<boolean> {
    const { count } = await this.db.tenant.deleteMany({ where: { id: tenantId } });
    return count > 0;
  }

  /** The tenants `userId` belongs to, newest first, with their roles in each. */
  async pageOfMember(userId: string, limit: number, after?: Position): Promise<TenantWithRoles[]> {
    const rows = await this.db.tenant.findMany({
      where: { memberships: { some: { userId } }, ...olderThan(after) },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: limit,
      select: {
        id: true,
        slug: true,
        name: true,
        createdAt: true,
        memberships: { where: { userId }, select: { roles: true } },
      },
    });
    return rows.map(({ memberships, ...t }) => ({ ...t, myRoles: memberships[0]?.roles ?? null }));
  }

  /** Every tenant (a global admin's `all=true`), newest first, with `userId`'s roles where a member. */
  async pageOfAll(userId: string, limit: number, after?: Position): Promise<TenantWithRoles[]> {
    const rows = await this.db.tenant.findMany({
      where: olderThan(after),
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: limit,
      select: {
        id: true,
        slug: true,
        name: true,
        createdAt: true,
        memberships: { where: { userId }, select: { roles: true } },
      },
    });
    return rows.map(({ memberships, ...t }) => ({ ...t, myRoles: memberships[0]?.roles ?? null }));
  }

  /** The members of a tenant, longest-standing last (newest first), keyset by (joined, user id). */
  async pageOfMembers(tenantId: string, limit: number, after?: Position): Promise<MemberRow[]> {
    const rows = await this.db.tenantMembership.findMany({
      where: {
        tenantId,
        ...(after
          ? {
              OR: [{ createdAt: { lt: after.createdAt } }, { createdAt: after.createdAt, userId: { lt: after.id } }],
            }
          : {}),
      },
      orderBy: [{ createdAt: 'desc' }, { userId: 'desc' }],
      take: limit,
      select: {
        userId: true,
        roles: true,
        createdAt: true,
        user: { select: { username: true, displayName: true } },
      },
    });
    return rows.map((m) => ({
      userId: m.userId,
      id: m.userId,
      username: m.user.username,
      displayName: m.user.displayName,
      roles: m.roles,
      createdAt: m.createdAt,
    }));
  }

  async findMember(tenantId: string, userId: string): Promise<MemberRow | null> {
    const m = await this.db.tenantMembership.findUnique({
      where: { tenantId_userId: { tenantId, userId } },
      select: { userId: true, roles: true, createdAt: true, user: { select: { username: true, displayName: true } } },
    });
    return m
      ? {
          userId: m.userId,
          id: m.userId,
          username: m.user.username,
          displayName: m.user.displayName,
          roles: m.roles,
          createdAt: m.createdAt,
        }
      : null;
  }

  /** Adds a member; false when they already are one. */
  async addMember(m: { tenantId: string; userId: string; roles: string[]; addedBy: string | null; now: Date }) {
    const rows = await this.db.$queryRaw<unknown[]>`
      INSERT INTO tenant_memberships (tenant_id, user_id, roles, added_by, created_at)
      VALUES (${m.tenantId}::uuid, ${m.userId}::uuid, ${m.roles}::text[], ${m.addedBy}::uuid, ${m.now})
      ON CONFLICT (tenant_id, user_id) DO NOTHING
      RETURNING user_id`;
    return rows.length > 0;
  }

  async setRoles(tenantId: string, userId: string, roles: string[]): Promise<boolean> {
    const { count } = await this.db.tenantMembership.updateMany({ where: { tenantId, userId }, data: { roles } });
    return count > 0;
  }

  /** Ends a membership, and drops the tenant from the sessions that had selected it. */
  async removeMember(tenantId: string, userId: string): Promise<boolean> {
    const { count } = await this.db.tenantMembership.deleteMany({ where: { tenantId, userId } });
    await this.db.session.updateMany({
      where: { userId, activeTenantId: tenantId },
      data: { activeTenantId: null },
    });
    return count > 0;
  }

  /** The custom roles of a tenant, by name. */
  async customRoles(tenantId: string): Promise<Map<string, string[]>> {
    const rows = await this.db.tenantRole.findMany({
      where: { tenantId },
      orderBy: { name: 'asc' },
      select: { name: true, permissions: true },
    });
    return new Map(rows.map((r) => [r.name, r.permissions]));
  }

  async putRole(tenantId: string, name: string, permissions: string[], now: Date): Promise<void> {
    await this.db.tenantRole.upsert({
      where: { tenantId_name: { tenantId, name } },
      create: { tenantId, name, permissions, createdAt: now, updatedAt: now },
      update: { permissions, updatedAt: now },
    });
  }

  /** Whether a membership or a pending invitation still lists the role. */
  async roleInUse(tenantId: string, name: string): Promise<boolean> {
    const members = await this.db.tenantMembership.count({ where: { tenantId, roles: { has: name } } });
    if (members > 0) return true;
    const invitations = await this.db.tenantInvitation.count({
      where: { tenantId, roles: { has: name }, pendingEmailKey: { not: null } },
    });
    return invitations > 0;
  }

  async deleteRole(tenantId: string, name: string): Promise<boolean> {
    const { count } = await this.db.tenantRole.deleteMany({ where: { tenantId, name } });
    return count > 0;
  }

  /** The email key of an account, and whether the address was verified. */
  account(userId: string): Promise<{ emailKey: string | null; emailVerifiedAt: Date | null } | null> {
    return this.db.user.findUnique({ where: { id: userId }, select: { emailKey: true, emailVerifiedAt: true } });
  }

  /** Whether the account exists, is enabled and holds the (global) admin role. */
  async isEnabledAdmin(userId: string): Promise<boolean> {
    // Raw SQL: the embedded database's driver cannot take an enum-array `has` filter.
    const rows = await this.db.$queryRaw<unknown[]>`
      SELECT 1 FROM users WHERE id = ${userId}::uuid AND NOT disabled AND 'admin' = ANY (roles)`;
    return rows.length > 0;
  }

  /** The user id of an account by canonical username. */
  async userIdByUsernameKey(usernameKey: string): Promise<string | null> {
    const u = await this.db.user.findUnique({ where: { usernameKey }, select: { id: true } });
    return u?.id ?? null;
  }

  /** Whether a member of the tenant has this (canonical) email address. */
  async memberWithEmail(tenantId: string, emailKey: string): Promise<boolean> {
    const n = await this.db.tenantMembership.count({ where: { tenantId, user: { emailKey } } });
    return n > 0;
  }

  /**
   * A new pending invitation; a pending one to the same address is revoked first (a re-invite
   * replaces it: the earlier link stops working).
   */
  async invite(i: {
    tenantId: string;
    email: string;
    emailKey: string;
    roles: string[];
    tokenHash: Buffer;
    invitedBy: string;
    expiresAt: Date;
    now: Date;
  }): Promise<InvitationRow> {
    await this.db.tenantInvitation.updateMany({
      where: { tenantId: i.tenantId, pendingEmailKey: i.emailKey },
      data: { revokedAt: i.now, pendingEmailKey: null },
    });
    return this.db.tenantInvitation.create({
      data: {
        tenantId: i.tenantId,
        email: i.email,
        emailKey: i.emailKey,
        pendingEmailKey: i.emailKey,
        roles: i.roles,
        tokenHash: new Uint8Array(i.tokenHash),
        invitedBy: i.invitedBy,
        expiresAt: i.expiresAt,
        createdAt: i.now,
      },
      select: INVITATION_SELECT,
    });
  }

  /** Pending invitations (neither accepted nor revoked; expired ones included), newest first. */
  pageOfInvitations(tenantId: string, limit: number, after?: Position): Promise<InvitationRow[]> {
    return this.db.tenantInvitation.findMany({
      where: { tenantId, pendingEmailKey: { not: null }, ...olderThan(after) },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: limit,
      select: INVITATION_SELECT,
    });
  }

  async revokeInvitation(tenantId: string, id: string, now: Date): Promise<boolean> {
    const { count } = await this.db.tenantInvitation.updateMany({
      where: { id, tenantId, pendingEmailKey: { not: null } },
      data: { revokedAt: now, pendingEmailKey: null },
    });
    return count > 0;
  }

  findInvitationByHash(tokenHash: Buffer): Promise<InvitationRow | null> {
    return this.db.tenantInvitation.findUnique({
      where: { tokenHash: new Uint8Array(tokenHash) },
      select: INVITATION_SELECT,
    });
  }

  /** Marks a pending, unexpired invitation accepted: true for exactly one concurrent caller. */
  async consumeInvitation(id: string, userId: string, now: Date): Promise<boolean> {
    const { count } = await this.db.tenantInvitation.updateMany({
      where: { id, pendingEmailKey: { not: null }, acceptedAt: null, revokedAt: null, expiresAt: { gt: now } },
      data: { acceptedAt: now, acceptedBy: userId, pendingEmailKey: null },
    });
    return count === 1;
  }

  /**
   * Selects a tenant (or none) in a live session of an enabled user, only if the user is a
   * member there, in one statement; returns what the session's next access token needs (the
   * user's roles, how the session was authenticated, the roles held in the tenant), or null.
   */
  async selectTenant(
    sessionId: string,
    userId: string,
    tenantId: string | null,
    now: Date,
  ): Promise<SelectedTenant | null> {
    const rows = await this.db.$queryRaw<SelectedTenant[]>`
      WITH chosen AS (
        UPDATE sessions AS s SET active_tenant_id = ${tenantId}::uuid
        FROM users AS u
        WHERE s.id = ${sessionId}::uuid AND s.user_id = ${userId}::uuid AND u.id = s.user_id AND NOT u.disabled
          AND s.revoked_at IS NULL AND s.expires_at > ${now} AND s.absolute_expires_at > ${now}
          AND (${tenantId}::uuid IS NULL OR EXISTS (
                SELECT 1 FROM tenant_memberships m WHERE m.tenant_id = ${tenantId}::uuid AND m.user_id = s.user_id))
        RETURNING u.roles, s.amr, s.acr, s.auth_time
      )
      SELECT c.roles::text[] AS roles, c.amr, c.acr, c.auth_time AS "authTime", m.roles AS "tenantRoles"
      FROM chosen c
      LEFT JOIN tenant_memberships m ON m.tenant_id = ${tenantId}::uuid AND m.user_id = ${userId}::uuid`;
    return rows[0] ?? null;
  }
}
