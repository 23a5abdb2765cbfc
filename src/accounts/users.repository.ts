import { Injectable } from '@nestjs/common';
import { AppError } from '../common/errors/app-error.js';
import { uniqueViolationTarget } from '../common/errors/database-errors.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import type { Prisma, User } from '../generated/prisma/client.js';
import type { Role } from '../common/account-rules.js';

export type UserRecord = User;

/** What the public view of a user (UserDto) is made of: a UserRecord, or a statement's columns of one. */
export type PublicUserFields = Pick<
  UserRecord,
  'id' | 'username' | 'email' | 'emailVerifiedAt' | 'displayName' | 'roles' | 'kind' | 'mfaEnabled' | 'createdAt'
>;

/** Advisory lock key serialising changes that could remove the last admin. */
const ADMIN_LOCK = 4_201_001;

/** Canonical forms: uniqueness is case-insensitive and enforced by unique indexes on these. */
export const usernameKey = (username: string): string => username.toLowerCase();
export const emailKey = (email: string): string => email.trim().toLowerCase();

/** The Prisma queries on users, named by intent. */
@Injectable()
export class UsersRepository {
  constructor(private readonly txHost: TransactionHost<PrismaTx>) {}

  /** The client of the caller's transaction, if any (see database/transactions.ts). */
  private get db() {
    return this.txHost.tx;
  }

  /** Creates a user; 409 USERNAME_TAKEN / EMAIL_TAKEN from the unique indexes (race-safe). */
  async create(data: {
    username: string;
    email: string | null;
    displayName: string | null;
    passwordHash: string;
    roles?: Role[];
    now: Date;
  }): Promise<UserRecord> {
    try {
      return await this.db.user.create({
        data: {
          username: data.username,
          usernameKey: usernameKey(data.username),
          email: data.email,
          emailKey: data.email === null ? null : emailKey(data.email),
          displayName: data.displayName,
          passwordHash: data.passwordHash,
          roles: data.roles ?? ['user'],
          createdAt: data.now,
          updatedAt: data.now,
        },
      });
    } catch (error) {
      throw mapUniqueViolation(error);
    }
  }

  findById(id: string): Promise<UserRecord | null> {
    return this.db.user.findUnique({ where: { id } });
  }

  /**
   * The user's roles now, read `FOR SHARE`: a change of this row that is still committing is
   * waited for, so the answer is never older than a role change already under way. Null
   * when the user is gone. Outside a transaction (the lock ends with the statement).
   */
  async currentRoles(id: string): Promise<Role[] | null> {
    const rows = await this.db.$queryRaw<Array<{ roles: Role[] }>>`
      SELECT roles::text[] AS roles FROM users WHERE id = ${id}::uuid FOR SHARE`;
    return rows[0]?.roles ?? null;
  }

  /** The user with this row locked FOR UPDATE until the caller's transaction ends (it must run in one). */
  async lockById(id: string): Promise<UserRecord | null> {
    const rows = await this.db.$queryRaw<Array<{ id: string }>>`SELECT id FROM users WHERE id = ${id}::uuid FOR UPDATE`;
    return rows[0] ? this.db.user.findUnique({ where: { id } }) : null;
  }

  /** By current email address (never a pending one). */
  findByEmail(email: string): Promise<UserRecord | null> {
    return this.db.user.findUnique({ where: { emailKey: emailKey(email) } });
  }

  /** True when another account has this address as its current email. */
  async emailTaken(email: string, exceptId: string): Promise<boolean> {
    const other = await this.db.user.findFirst({
      where: { emailKey: emailKey(email), NOT: { id: exceptId } },
      select: { id: true },
    });
    return other !== null;
  }

  /** Marks the address verified, if it is still the account's email. */
  async markEmailVerified(id: string, email: string, now: Date): Promise<boolean> {
    const { count } = await this.db.user.updateMany({
      where: { id, emailKey: emailKey(email) },
      data: { emailVerifiedAt: now },
    });
    return count > 0;
  }

  /** Sets (or clears, with null) the pending email; true when one was pending before. */
  async setPendingEmail(id: string, email: string | null): Promise<boolean> {
    const rows = await this.db.$queryRaw<Array<{ had: boolean }>>`
      UPDATE users AS u SET pending_email = ${email}, pending_email_key = ${email === null ? null : emailKey(email)}
      FROM (SELECT pending_email IS NOT NULL AS had FROM users WHERE id = ${id}::uuid FOR UPDATE) AS before
      WHERE u.id = ${id}::uuid
      RETURNING before.had`;
    return rows[0]?.had ?? false;
  }

  /** The confirmed change: the pending address becomes the (verified) email. 409 EMAIL_TAKEN if taken meanwhile. */
  async applyPendingEmail(id: string, email: string, now: Date): Promise<UserRecord | null> {
    return this.update(id, {
      email,
      emailKey: emailKey(email),
      emailVerifiedAt: now,
      pendingEmail: null,
      pendingEmailKey: null,
    });
  }

  /** By username, or by email when the login contains "@". */
  findByLogin(login: string): Promise<UserRecord | null> {
    return login.includes('@')
      ? this.db.user.findUnique({ where: { emailKey: emailKey(login) } })
      : this.db.user.findUnique({ where: { usernameKey: usernameKey(login) } });
  }

  findByUsername(username: string): Promise<UserRecord | null> {
    return this.db.user.findUnique({ where: { usernameKey: usernameKey(username) } });
  }

  /** Admin changes: roles and the disabled flag (undefined: unchanged). Null when there is no such user. */
  updateAccess(id: string, change: { roles?: Role[]; disabled?: boolean }): Promise<UserRecord | null> {
    return this.update(id, { roles: change.roles, disabled: change.disabled });
  }

  /** The caller's profile: display name and email (undefined: unchanged; the email's canonical key follows it). */
  updateProfile(id: string, data: { displayName?: string | null; email?: string | null }): Promise<UserRecord | null> {
    const patch: Prisma.UserUpdateInput = {};
    if (data.displayName !== undefined) patch.displayName = data.displayName;
    if (data.email !== undefined) {
      patch.email = data.email;
      patch.emailKey = data.email === null ? null : emailKey(data.email);
      patch.emailVerifiedAt = null; // a new address is unverified until a link proves it
    }
    return this.update(id, patch);
  }

  private async update(id: string, data: Prisma.UserUpdateInput): Promise<UserRecord | null> {
    try {
      return await this.db.user.update({ where: { id }, data });
    } catch (error) {
      if ((error as { code?: string }).code === 'P2025') return null;
      throw mapUniqueViolation(error);
    }
  }

  /** Replaces the hash only if it is still `expected` (a concurrent change wins once). */
  async replacePasswordHash(id: string, expected: string, next: string): Promise<boolean> {
    const { count } = await this.db.user.updateMany({
      where: { id, passwordHash: expected },
      data: { passwordHash: next },
    });
    return count > 0;
  }

  /** Replaces the hash whatever it is (a password reset, proved by its token). */
  async setPasswordHash(id: string, next: string): Promise<boolean> {
    const { count } = await this.db.user.updateMany({ where: { id }, data: { passwordHash: next } });
    return count > 0;
  }

  /**
   * Deletes the account and its personal resources; its tenant resources stay with their
   * tenant, with `ownerId` null (contract v2 §E). Sessions and memberships cascade.
   */
  async delete(id: string): Promise<boolean> {
    // The row is locked first: a resource being created meanwhile waits (its foreign key
    // check) and then fails, rather than committing between the two deletions and being
    // left behind without owner.
    await this.db.$queryRaw`SELECT id FROM users WHERE id = ${id}::uuid FOR UPDATE`;
    await this.db.resource.deleteMany({ where: { ownerId: id, tenantId: null } });
    const { count } = await this.db.user.deleteMany({ where: { id } });
    return count > 0;
  }

  /**
   * Users in order of creation; with `search`, only those whose username, email or display
   * name contains it (case-insensitive; `%`, `_` and `\\` in it match themselves).
   */
  async page(limit: number, after?: { createdAt: Date; id: string }, search?: string): Promise<UserRecord[]> {
    const and: Prisma.UserWhereInput[] = [];
    if (after) {
      and.push({ OR: [{ createdAt: { gt: after.createdAt } }, { createdAt: after.createdAt, id: { gt: after.id } }] });
    }
    if (search !== undefined) {
      const contains = { contains: likeLiteral(search), mode: 'insensitive' as const };
      and.push({ OR: [{ username: contains }, { email: contains }, { displayName: contains }] });
    }
    return this.db.user.findMany({
      where: and.length > 0 ? { AND: and } : undefined,
      orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
      take: limit,
    });
  }

  /**
   * The last-admin rule, for every change that takes the admin role away from `id`
   * (demotion, disabling, deletion): true when another enabled admin remains. It takes a
   * transaction-scoped advisory lock first, held until the caller's transaction ends (it
   * must run in one), so that the check and
   * the change it guards are serialised with every other such change: two admins demoting,
   * disabling or deleting each other (or themselves) at once can never leave none.
   */
  async anotherAdminRemains(id: string): Promise<boolean> {
    await this.lockAdminChanges();
    return (await countEnabledAdmins(this.db, id)) > 0;
  }

  /**
   * Takes the admin lock until the transaction ends (re-entrant): changes that may remove an
   * admin, and the reads that decide them, run one at a time.
   */
  async lockAdminChanges(): Promise<void> {
    if (!this.txHost.isTransactionActive()) throw new Error('the admin lock needs a transaction');
    await this.db.$executeRaw`SELECT pg_advisory_xact_lock(${ADMIN_LOCK})`;
  }

  /**
   * The bcrypt cost most stored password hashes have (`$2b$NN$...`; ties: the higher), or
   * null without users. The whole table, grouped: a sample in storage order would mostly
   * see the oldest accounts, whose hashes are the least likely to have been upgraded.
   */
  async mostCommonPasswordCost(): Promise<number | null> {
    const rows = await this.db.$queryRaw<Array<{ cost: number }>>`
      SELECT substring(password_hash from 5 for 2)::int AS cost FROM users
      WHERE password_hash LIKE '$2_$__$%' AND substring(password_hash from 5 for 2) ~ '^[0-9][0-9]$'
      GROUP BY 1 ORDER BY count(*) DESC, 1 DESC LIMIT 1`;
    return rows[0]?.cost ?? null;
  }
}

/**
 * Enabled admins other than `exceptId`: people only (a service user with the admin role
 * does not keep the installation administrable). Raw SQL because the PGlite driver
 * adapter sends an enum-array filter (`roles: { has: 'admin' }`) as a malformed array
 * literal (22P02), which made demoting or disabling an admin fail with 500 on PGlite.
 */
async function countEnabledAdmins(db: Pick<Prisma.TransactionClient, '$queryRaw'>, exceptId: string): Promise<number> {
  const rows = await db.$queryRaw<Array<{ n: number }>>`
    SELECT count(*)::int AS n FROM users
    WHERE 'admin' = ANY(roles) AND NOT disabled AND kind = 'person' AND id <> ${exceptId}::uuid`;
  return rows[0]?.n ?? 0;
}

function mapUniqueViolation(error: unknown): unknown {
  const target = uniqueViolationTarget(error);
  if (target === null) return error;
  // Fields ("emailKey") or, on PostgreSQL, the index ("users_email_key_key").
  if (target.some((t) => t.toLowerCase().includes('email')))
    return new AppError(ErrorCode.EMAIL_TAKEN, 'That email is already in use');
  return new AppError(ErrorCode.USERNAME_TAKEN, 'That username is taken');
}

/**
 * A search text as a LIKE literal: Prisma's `contains` puts the value between `%` as it is,
 * so its own `%`, `_` and the escape character `\\` (PostgreSQL's default) are escaped here.
 */
export function likeLiteral(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}
