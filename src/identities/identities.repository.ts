import { createHash } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import type { Role } from '../common/account-rules.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { emailKey, usernameKey } from '../accounts/users.repository.js';
import type { ExternalIdentity, User } from '../generated/prisma/client.js';

/** The Gatehouse user an external identity names, as the guard needs it. */
export interface LinkedUser {
  identityId: string;
  userId: string;
  roles: Role[];
  disabled: boolean;
  kind: 'person' | 'service';
}

export type IdentityRecord = ExternalIdentity;

/** The Prisma queries on external identities and spent external tokens, named by intent. */
@Injectable()
export class IdentitiesRepository {
  constructor(private readonly txHost: TransactionHost<PrismaTx>) {}

  private get db() {
    return this.txHost.tx;
  }

  /**
   * The user linked to (issuer, subject), with what the guard decides on: one statement. The
   * user row is read FOR SHARE: a disable or role change still committing is waited for, so
   * the answer is never older than a change already under way (outside a transaction the
   * lock ends with the statement). The identity row is read FOR KEY SHARE for the same reason:
   * an unlink still committing is waited for and then seen (the row is gone), where FOR SHARE
   * of the user alone waits for the unlink's lock on the account and then answers the link
   * from the statement's snapshot. FOR KEY SHARE does not wait for touch()'s UPDATE. The user
   * is locked first, as the unlink does (account, then identity): in the other order a read
   * between the unlink's two locks holds the identity while waiting for the account, and
   * PostgreSQL ends one of the two as a deadlock.
   */
  async findLink(issuer: string, subject: string): Promise<LinkedUser | null> {
    const rows = await this.db.$queryRaw<LinkedUser[]>`
      SELECT i.id AS "identityId", u.id AS "userId", u.roles::text[] AS roles, u.disabled, u.kind::text AS kind
      FROM external_identities i JOIN users u ON u.id = i.user_id
      WHERE i.issuer = ${issuer} AND i.subject = ${subject}
      FOR SHARE OF u FOR KEY SHARE OF i`;
    return rows[0] ?? null;
  }

  /** Marks the identity seen now, at most once a minute (a write per request would not scale). */
  async touch(identityId: string, now: Date): Promise<void> {
    const before = new Date(now.getTime() - 60_000);
    await this.db.$executeRaw`
      UPDATE external_identities SET last_seen_at = ${now}
      WHERE id = ${identityId}::uuid AND (last_seen_at IS NULL OR last_seen_at < ${before})`;
  }

  listOf(userId: string): Promise<IdentityRecord[]> {
    return this.db.externalIdentity.findMany({ where: { userId }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });
  }

  countOf(userId: string): Promise<number> {
    return this.db.externalIdentity.count({ where: { userId } });
  }

  findOf(userId: string, id: string): Promise<IdentityRecord | null> {
    return this.db.externalIdentity.findFirst({ where: { id, userId } });
  }

  /** Creates the link; a unique violation on (issuer, subject) propagates (already linked). */
  link(data: {
    userId: string;
    issuer: string;
    issuerName: string;
    subject: string;
    emailAtLink: string | null;
    now: Date;
    /** False for an admin's pre-link: the identity has not been seen yet. */
    seen?: boolean;
  }): Promise<IdentityRecord> {
    return this.db.externalIdentity.create({
      data: {
        userId: data.userId,
        issuer: data.issuer,
        issuerName: data.issuerName,
        subject: data.subject,
        emailAtLink: data.emailAtLink,
        createdAt: data.now,
        lastSeenAt: data.seen === false ? null : data.now,
      },
    });
  }

  async unlink(userId: string, id: string): Promise<IdentityRecord | null> {
    const rows = await this.db.$queryRaw<IdentityRecord[]>`
      DELETE FROM external_identities WHERE id = ${id}::uuid AND user_id = ${userId}::uuid
      RETURNING id, user_id AS "userId", issuer, issuer_name AS "issuerName", subject,
                email_at_link AS "emailAtLink", created_at AS "createdAt", last_seen_at AS "lastSeenAt"`;
    return rows[0] ?? null;
  }

  /** A passwordless person for a first-seen external identity (unique violations propagate). */
  createPerson(data: { username: string; email: string | null; displayName: string | null; now: Date }): Promise<User> {
    return this.db.user.create({
      data: {
        username: data.username,
        usernameKey: usernameKey(data.username),
        email: data.email,
        emailKey: data.email === null ? null : emailKey(data.email),
        // Kept as verified only because the provider said so (email_verified: true).
        emailVerifiedAt: data.email === null ? null : data.now,
        displayName: data.displayName,
        passwordHash: null,
        kind: 'person',
        roles: ['user'],
        createdAt: data.now,
        updatedAt: data.now,
      },
    });
  }

  async usernameTaken(username: string): Promise<boolean> {
    return (await this.db.user.count({ where: { usernameKey: usernameKey(username) } })) > 0;
  }

  async emailTaken(email: string): Promise<boolean> {
    const key = emailKey(email);
    return (await this.db.user.count({ where: { OR: [{ emailKey: key }, { pendingEmailKey: key }] } })) > 0;
  }

  /**
   * Records an external token as exchanged, until it expires; false when it already was
   * (the primary key decides, so of two concurrent exchanges exactly one wins).
   */
  async spend(issuer: string, replayId: string, expiresAt: Date): Promise<boolean> {
    const hash = createHash('sha256').update(replayId).digest();
    const inserted = await this.db.$executeRaw`
      INSERT INTO federation_exchanges (issuer, replay_hash, expires_at)
      VALUES (${issuer}, ${hash}, ${expiresAt}) ON CONFLICT DO NOTHING`;
    return inserted === 1;
  }

  /** Sets the issuer on a session opened by an exchange. */
  async markSession(sessionId: string, issuer: string): Promise<void> {
    await this.db.session.update({ where: { id: sessionId }, data: { issuer } });
  }

  /** When the session's user last authenticated (its `auth_time`), or null if it is not live. */
  async sessionAuthTime(sessionId: string, userId: string): Promise<Date | null> {
    const row = await this.db.session.findFirst({
      where: { id: sessionId, userId, revokedAt: null },
      select: { authTime: true },
    });
    return row?.authTime ?? null;
  }
}
