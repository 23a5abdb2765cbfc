import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { queryPrepared } from '../database/prepared-statements.js';
import { PrismaService } from '../database/prisma.service.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { Prisma } from '../generated/prisma/client.js';
import { auditInsertSql, type AuditRow } from '../audit/audit.service.js';
import type { PublicUserFields } from '../accounts/users.repository.js';
import type { PreparedSession } from '../sessions/sessions.service.js';
import { NEXT_SESSION_SEQ, insertSessionSql, withinCapSql } from '../sessions/sessions.repository.js';

export interface TotpRow {
  secretEnc: Uint8Array;
  secretKeyId: string;
  confirmedAt: Date | null;
  enrolExpiresAt: Date | null;
  lastUsedStep: bigint;
  lastUsedAt: Date | null;
}

export interface CountedAttempt {
  id: string;
  userId: string;
  passwordHash: string;
  ip: string | null;
  /** The user's confirmed TOTP factor as read with the guess (null without one). */
  secretEnc: Uint8Array | null;
  secretKeyId: string | null;
  confirmedAt: Date | null;
}

/** countAttempt(): the challenge's user, and the guess when it was counted. */
export interface GuessOutcome {
  userId: string;
  attempt: CountedAttempt | null;
}

type Nullable<T> = { [K in keyof T]: T[K] | null };

/** A user's confirmed TOTP factor as read with a challenge (its sealed secret, and which factor it is). */
export interface ConfirmedFactor {
  secretEnc: Uint8Array;
  secretKeyId: string;
  confirmedAt: Date;
}

/** What completeTotpLogin() did. */
export type TotpLoginOutcome =
  /**
   * `user`: the account row as locked by the statement (its roles go into the access token);
   * `withinCap`: the cap on sessions per user has nothing to revoke (see withinCapSql).
   */
  | { kind: 'opened'; user: PublicUserFields; withinCap: boolean }
  /** The code matched no step, or its step was used already: the guess is counted (when asked to) on challenge `challengeId`, nothing else written. */
  | { kind: 'step_used'; challengeId: string }
  /** The user's factor is no longer the one confirmed at `confirmedAt` (removed, enrolled again): nothing was written. */
  | { kind: 'factor_changed' }
  /** The challenge is live but has no guess left to count (only with `countGuess`): nothing was written. */
  | { kind: 'no_guess_left' }
  /** The challenge was consumed or expired meanwhile, or the account changed since the password step: nothing was written. */
  | { kind: 'challenge_gone' };

/**
 * The Prisma queries on second factors and login challenges. Every rule that concurrent
 * requests could break is one conditional statement: a TOTP step is used once, a recovery
 * code once, a challenge's guesses are counted before they are checked.
 */
@Injectable()
export class MfaRepository {
  constructor(
    private readonly txHost: TransactionHost<PrismaTx>,
    private readonly prisma: PrismaService,
  ) {}

  private get db() {
    return this.txHost.tx;
  }

  findTotp(userId: string): Promise<TotpRow | null> {
    return this.db.mfaTotp.findUnique({
      where: { userId },
      select: {
        secretEnc: true,
        secretKeyId: true,
        confirmedAt: true,
        enrolExpiresAt: true,
        lastUsedStep: true,
        lastUsedAt: true,
      },
    });
  }

  async isEnabled(userId: string): Promise<boolean> {
    return (await this.db.mfaTotp.count({ where: { userId, confirmedAt: { not: null } } })) > 0;
  }

  /**
   * A new pending enrolment, replacing a pending one; false (nothing written) when a
   * confirmed factor exists. One statement: it cannot overwrite a confirmation committing
   * at the same moment.
   */
  async putPending(p: { userId: string; sealed: Uint8Array; keyId: string; now: Date; expiresAt: Date }) {
    const rows = await this.db.$queryRaw<Array<{ user_id: string }>>`
      INSERT INTO mfa_totp (user_id, secret_enc, secret_key_id, confirmed_at, enrol_expires_at, last_used_step, last_used_at, created_at)
      VALUES (${p.userId}::uuid, ${p.sealed}, ${p.keyId}, NULL, ${p.expiresAt}, -1, NULL, ${p.now})
      ON CONFLICT (user_id) DO UPDATE
      SET secret_enc = EXCLUDED.secret_enc, secret_key_id = EXCLUDED.secret_key_id,
          enrol_expires_at = EXCLUDED.enrol_expires_at, last_used_step = -1, last_used_at = NULL,
          created_at = EXCLUDED.created_at
      WHERE mfa_totp.confirmed_at IS NULL
      RETURNING user_id`;
    return rows.length === 1;
  }

  /**
   * Confirms a pending, unexpired enrolment with the code of `step`, if its secret is still
   * `sealed` (the one the code was checked against); false otherwise.
   */
  async confirm(userId: string, sealed: Uint8Array, step: number, now: Date): Promise<boolean> {
    // Only the enrolment whose secret the code was checked against: one restarted meanwhile
    // (a new secret, the user never saw) is not confirmed by a code of the old one.
    const count = await this.db.$executeRaw`
      UPDATE mfa_totp SET confirmed_at = ${now}, enrol_expires_at = NULL, last_used_step = ${step}, last_used_at = ${now}
      WHERE user_id = ${userId}::uuid AND secret_enc = ${sealed} AND confirmed_at IS NULL
        AND enrol_expires_at > ${now} AND last_used_step < ${step}`;
    if (count !== 1) return false;
    await this.db.user.update({ where: { id: userId }, data: { mfaEnabled: true } });
    return true;
  }

  /**
   * Uses the time step of a code of the confirmed factor: true only if `step` is newer than
   * the last step used (RFC 6238 §5.2: a code works once; of two concurrent uses, the row
   * lock makes the second see the first's step and match nothing).
   */
  async useStep(userId: string, step: number, now: Date): Promise<boolean> {
    const { count } = await this.db.mfaTotp.updateMany({
      where: { userId, confirmedAt: { not: null }, lastUsedStep: { lt: step } },
      data: { lastUsedStep: step, lastUsedAt: now },
    });
    return count === 1;
  }

  /** Re-encrypts a secret under the current key (only if it is still the one read). */
  async reseal(userId: string, fromKeyId: string, sealed: Uint8Array, keyId: string): Promise<void> {
    await this.db.mfaTotp.updateMany({
      where: { userId, secretKeyId: fromKeyId },
      data: { secretEnc: new Uint8Array(sealed), secretKeyId: keyId },
    });
  }

  /** The user's recovery codes become exactly these (hashes); the old set dies. */
  async replaceRecoveryCodes(userId: string, hashes: Buffer[], now: Date): Promise<void> {
    await this.db.mfaRecoveryCode.deleteMany({ where: { userId } });
    await this.db.mfaRecoveryCode.createMany({
      data: hashes.map((h) => ({ userId, codeHash: new Uint8Array(h), createdAt: now })),
    });
  }

  /** Uses one recovery code: true for exactly one of concurrent uses. */
  async useRecoveryCode(userId: string, hash: Buffer, now: Date): Promise<boolean> {
    const { count } = await this.db.mfaRecoveryCode.updateMany({
      where: { userId, codeHash: new Uint8Array(hash), usedAt: null },
      data: { usedAt: now },
    });
    return count === 1;
  }

  remainingRecoveryCodes(userId: string): Promise<number> {
    return this.db.mfaRecoveryCode.count({ where: { userId, usedAt: null } });
  }

  /**
   * Removes every second factor of the user and their open login challenges; true when a
   * confirmed factor was removed (of concurrent removals, exactly one).
   */
  async removeFactors(userId: string): Promise<boolean> {
    const { count } = await this.db.mfaTotp.deleteMany({ where: { userId, confirmedAt: { not: null } } });
    await this.db.mfaTotp.deleteMany({ where: { userId } });
    await this.db.mfaRecoveryCode.deleteMany({ where: { userId } });
    await this.deleteChallenges(userId);
    await this.db.user.updateMany({ where: { id: userId }, data: { mfaEnabled: false } });
    return count === 1;
  }

  /**
   * Stores a login challenge, and answers the user's confirmed TOTP factor as it stands (null
   * without one) in the same statement: the instance that opens a challenge keeps it for the
   * second step (MfaService.completeLogin), which then needs no read before checking the code.
   */
  async createChallenge(c: {
    userId: string;
    tokenHash: Buffer;
    passwordHash: string;
    now: Date;
    expiresAt: Date;
    ip: string | null;
    userAgent: string | null;
  }): Promise<ConfirmedFactor | null> {
    const rows = await queryPrepared<ConfirmedFactor>(
      this.txHost,
      this.prisma,
      'gatehouse_mfa_create_challenge_v1',
      Prisma.sql`
        WITH created AS (
          INSERT INTO mfa_challenges (id, user_id, token_hash, password_hash, expires_at, attempts, ip, user_agent, created_at)
          VALUES (${randomUUID()}::uuid, ${c.userId}::uuid, ${c.tokenHash}, ${c.passwordHash}, ${c.expiresAt}, 0, ${c.ip},
                  ${c.userAgent}, ${c.now})
          RETURNING user_id
        )
        SELECT t.secret_enc AS "secretEnc", t.secret_key_id AS "secretKeyId", t.confirmed_at AS "confirmedAt"
        FROM created JOIN mfa_totp t ON t.user_id = created.user_id AND t.confirmed_at IS NOT NULL`,
    );
    return rows[0] ?? null;
  }

  /**
   * Counts one guess against a live challenge before it is checked, in one statement: of
   * concurrent guesses at most `maxAttempts` ever get past here. Answers the counted guess
   * (`attempt`), or, when the challenge is live but its guesses are all counted (some of
   * them may still be given back, see uncountAttempt()), only its user (`attempt` null), so
   * that the caller can answer a throttled account's 429 either way; null when the
   * challenge is unknown, consumed or expired. A prepared statement on PostgreSQL: the
   * second step's first statement, outside its transaction (see
   * database/prepared-statements.ts).
   */
  async countAttempt(tokenHash: Buffer, now: Date, maxAttempts: number): Promise<GuessOutcome | null> {
    const rows = await queryPrepared<Nullable<CountedAttempt> & { userId: string }>(
      this.txHost,
      this.prisma,
      'gatehouse_mfa_count_attempt_v4',
      // The second SELECT reads the statement's snapshot, from before the UPDATE: it answers
      // only when the UPDATE counted nothing, and then sees the challenge as it was.
      Prisma.sql`
        WITH counted AS (
          UPDATE mfa_challenges SET attempts = attempts + 1
          WHERE token_hash = ${tokenHash} AND consumed_at IS NULL AND expires_at > ${now} AND attempts < ${maxAttempts}
          RETURNING id, user_id, password_hash, ip
        )
        SELECT counted.id, counted.user_id AS "userId", counted.password_hash AS "passwordHash", counted.ip,
               t.secret_enc AS "secretEnc", t.secret_key_id AS "secretKeyId", t.confirmed_at AS "confirmedAt"
        FROM counted LEFT JOIN mfa_totp t ON t.user_id = counted.user_id AND t.confirmed_at IS NOT NULL
        UNION ALL
        SELECT NULL, c.user_id, NULL, NULL, NULL, NULL, NULL FROM mfa_challenges c
        WHERE c.token_hash = ${tokenHash} AND c.consumed_at IS NULL AND c.expires_at > ${now}
          AND NOT EXISTS (SELECT 1 FROM counted)
        LIMIT 1`,
    );
    const row = rows[0];
    if (!row) return null;
    const { id, passwordHash } = row;
    if (id === null || passwordHash === null) return { userId: row.userId, attempt: null };
    return { userId: row.userId, attempt: { ...row, id, passwordHash } };
  }

  /**
   * Gives back a guess that countAttempt() counted but no code was checked for (the account
   * was throttled). Never below zero; a challenge consumed meanwhile stays consumed.
   */
  async uncountAttempt(challengeId: string): Promise<void> {
    await this.db.$executeRaw`
      UPDATE mfa_challenges SET attempts = attempts - 1 WHERE id = ${challengeId}::uuid AND attempts > 0`;
  }

  /**
   * A login's second step with a TOTP code that matched time step `step` of the factor
   * confirmed at `confirmedAt` (`step` null: a code that matched none, only counted, see
   * countGuess), as one statement (a prepared one on PostgreSQL): atomic without a
   * transaction, and one round trip instead of ten. In this order, each part only when the
   * one before it took effect:
   * 1. the challenge is live and has a guess left (as the statement starts; nothing is locked
   *    or written for one that has none);
   * 2. the user row, locked by the UPDATE that moves its session_seq on, while its password
   *    hash is still the one the first step verified and the account enabled (a password
   *    change or disable committing first is waited for, one committing later waits for this
   *    statement: see SessionsRepository.createIfCredentialsCurrent);
   * 3. the factor is still the one confirmed at `confirmedAt` (a secret re-encrypted under a
   *    newer key meanwhile is the same factor, one disabled and enrolled again is not);
   * 4. the challenge, `FOR UPDATE`: a concurrent second step on it is waited for and, if it
   *    succeeded, this one stops here; 1 is checked again on the row as locked;
   * 5. the step is used, if newer than the last one used (RFC 6238 §5.2: a code works once);
   * 6. the challenge is updated once: the guess counted (with `countGuess`) and, when 5 took
   *    effect, consumed; the session inserted and the audit event written.
   * With `countGuess` the guess is counted in this statement, so a code succeeds only as one
   * of the challenge's first `maxAttempts` guesses, as when it is counted before it is checked
   * (countAttempt()): the caller that checks the code before any statement
   * (MfaService.completeLogin, on a challenge this instance opened) needs one statement
   * instead of two, and sends its wrong codes through the same statement, so that a right code
   * and a wrong one cost the same work whenever neither can succeed. Without it, the guess
   * was counted already.
   * Rows locked in 2 and 4 keep 6 from failing once 5 has run: the code is never spent
   * without a session, and nothing is written unless all of it is (the counted guess of a
   * code that did not succeed, and the session_seq of 2, aside). The account's public fields
   * come back from the row of 2, so that the answer needs no other read. The cap on sessions
   * per user is not applied here: it must see sessions that logins racing this one commit
   * after it starts. The statement tells whether it has anything to revoke (`withinCap`, see
   * withinCapSql); when it may, SessionsService.opened applies it, in a statement of its own.
   */
  async completeTotpLogin(p: {
    tokenHash: Buffer;
    userId: string;
    passwordHash: string;
    confirmedAt: Date;
    step: number | null;
    now: Date;
    countGuess: { maxAttempts: number } | null;
    session: PreparedSession;
    audit: AuditRow;
    /** MAX_SESSIONS_PER_USER, for `withinCap` (see withinCapSql). */
    keep: number;
  }): Promise<TotpLoginOutcome> {
    const { session } = p;
    // Without countGuess: nothing counted, and no limit (the guess counted already is within it).
    const counted = p.countGuess ? 1 : 0;
    const maxAttempts = p.countGuess?.maxAttempts ?? 2_147_483_647;
    const rows = await queryPrepared<
      {
        live: boolean;
        roomy: boolean;
        account: boolean;
        factor: boolean;
        challenge: boolean;
        used: boolean;
        opened: boolean;
        challengeId: string | null;
        withinCap: boolean | null;
      } & Nullable<Omit<PublicUserFields, 'id'>>
    >(
      this.txHost,
      this.prisma,
      'gatehouse_mfa_complete_totp_login_v5',
      Prisma.sql`
        WITH roomy AS (
          SELECT 1 FROM mfa_challenges
          WHERE token_hash = ${p.tokenHash} AND user_id = ${p.userId}::uuid AND consumed_at IS NULL
            AND expires_at > ${p.now} AND attempts + ${counted}::int <= ${maxAttempts}::int
        ), account AS (
          UPDATE users SET session_seq = ${NEXT_SESSION_SEQ}
          WHERE id = ${p.userId}::uuid AND password_hash = ${p.passwordHash} AND NOT disabled
            AND EXISTS (SELECT 1 FROM roomy)
          RETURNING id, roles, username, email, email_verified_at, display_name, kind, mfa_enabled, created_at, session_seq
        ), factor AS (
          SELECT 1 FROM mfa_totp
          WHERE user_id = ${p.userId}::uuid AND confirmed_at = ${p.confirmedAt} AND EXISTS (SELECT 1 FROM account)
        ), challenge AS (
          SELECT id FROM mfa_challenges
          WHERE token_hash = ${p.tokenHash} AND user_id = ${p.userId}::uuid AND consumed_at IS NULL
            AND expires_at > ${p.now} AND attempts + ${counted}::int <= ${maxAttempts}::int AND EXISTS (SELECT 1 FROM factor)
          FOR UPDATE
        ), used AS (
          UPDATE mfa_totp SET last_used_step = ${p.step}::bigint, last_used_at = ${p.now}
          WHERE user_id = ${p.userId}::uuid AND confirmed_at = ${p.confirmedAt}
            AND last_used_step < ${p.step}::bigint AND EXISTS (SELECT 1 FROM challenge)
          RETURNING user_id
        ), settled AS (
          -- One UPDATE of the challenge row: a statement must not update a row twice.
          UPDATE mfa_challenges
          SET attempts = attempts + ${counted}::int,
              consumed_at = CASE WHEN EXISTS (SELECT 1 FROM used) THEN ${p.now}::timestamptz END
          WHERE id IN (SELECT id FROM challenge) AND (${counted}::int = 1 OR EXISTS (SELECT 1 FROM used))
          RETURNING consumed_at IS NOT NULL AS consumed
        ), opened AS (${insertSessionSql(session.id, session.session, Prisma.sql`account WHERE EXISTS (SELECT 1 FROM settled WHERE consumed)`)}
        ), audited AS (${auditInsertSql(p.audit, Prisma.sql`opened`)})
        SELECT CASE WHEN EXISTS (SELECT 1 FROM roomy) THEN TRUE
                    ELSE EXISTS (SELECT 1 FROM mfa_challenges
                                 WHERE token_hash = ${p.tokenHash} AND consumed_at IS NULL AND expires_at > ${p.now}) END AS live,
               EXISTS (SELECT 1 FROM roomy) AS roomy, EXISTS (SELECT 1 FROM account) AS account,
               EXISTS (SELECT 1 FROM factor) AS factor, EXISTS (SELECT 1 FROM challenge) AS challenge,
               EXISTS (SELECT 1 FROM used) AS used, EXISTS (SELECT 1 FROM opened) AS opened,
               (SELECT id FROM challenge) AS "challengeId", a.roles::text[] AS roles, a.username, a.email, a.email_verified_at AS "emailVerifiedAt",
               a.display_name AS "displayName", a.kind::text AS kind, a.mfa_enabled AS "mfaEnabled",
               a.created_at AS "createdAt",
               ${withinCapSql(p.userId, p.keep, session.session.now, Prisma.sql`a.session_seq`)} AS "withinCap"
        FROM (SELECT 1) AS one LEFT JOIN account AS a ON TRUE`,
    );
    const r = rows[0];
    // Live, but every guess counted (as the statement started, or by the time its row was locked).
    const noGuessLeft = { kind: p.countGuess ? 'no_guess_left' : 'challenge_gone' } as const;
    if (!r?.live) return { kind: 'challenge_gone' };
    if (!r.roomy) return noGuessLeft;
    if (!r.account) return { kind: 'challenge_gone' };
    if (!r.factor) return { kind: 'factor_changed' };
    if (!r.challenge || r.challengeId === null) return noGuessLeft;
    if (!r.used) return { kind: 'step_used', challengeId: r.challengeId };
    const { roles, username, email, emailVerifiedAt, displayName, kind, mfaEnabled, createdAt } = r;
    // Unreachable while the rows of 2 and 4 stay locked; never a session that was not opened.
    if (
      !r.opened ||
      roles === null ||
      username === null ||
      kind === null ||
      mfaEnabled === null ||
      createdAt === null
    ) {
      return { kind: 'challenge_gone' };
    }
    return {
      kind: 'opened',
      user: { id: p.userId, roles, username, email, emailVerifiedAt, displayName, kind, mfaEnabled, createdAt },
      withinCap: r.withinCap === true,
    };
  }

  /** Marks the challenge used; false when another request consumed it first. */
  async consumeChallenge(id: string, now: Date): Promise<boolean> {
    const { count } = await this.db.mfaChallenge.updateMany({
      where: { id, consumedAt: null },
      data: { consumedAt: now },
    });
    return count === 1;
  }

  /**
   * Takes the user's row lock first, in every transaction that changes second factors or
   * opens a session with one: the same order everywhere (user, then MFA rows, then sessions),
   * so that concurrent ones wait for each other instead of deadlocking. FOR SHARE lets
   * readers run side by side; FOR UPDATE serialises changes (and the logins of the user, whose
   * statements lock the row by updating it). False when the user is gone.
   */
  async lockUser(userId: string, mode: 'share' | 'update'): Promise<boolean> {
    const rows =
      mode === 'share'
        ? await this.db.$queryRaw<unknown[]>`SELECT 1 FROM users WHERE id = ${userId}::uuid FOR SHARE`
        : await this.db.$queryRaw<unknown[]>`SELECT 1 FROM users WHERE id = ${userId}::uuid FOR UPDATE`;
    return rows.length === 1;
  }

  async deleteChallenges(userId: string): Promise<void> {
    await this.db.mfaChallenge.deleteMany({ where: { userId } });
  }
}
