import { createHash, randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { Clock } from '../common/clock.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import type { OneTimeTokenPurpose } from '../generated/prisma/client.js';

export type { OneTimeTokenPurpose };

/** At most one mail per (account, purpose) in this window (Supabase's MaxFrequency). */
export const MAIL_FREQUENCY_MS = 60_000;

/** A token as mailed: 32 CSPRNG bytes, base64url (43 characters). */
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

const hashOf = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

export type Consumed = { userId: string; targetEmail: string | null; purpose: OneTimeTokenPurpose };
export type ConsumeFailure = 'invalid' | 'expired';

/**
 * Single-use tokens for links sent by mail (contract v2 §0.7): 32 random bytes, only their
 * SHA-256 at rest, bound to a purpose and a target address, one outstanding per (user,
 * purpose), consumed by one conditional UPDATE so that exactly one concurrent use wins.
 */
@Injectable()
export class OneTimeTokensService {
  constructor(
    private readonly txHost: TransactionHost<PrismaTx>,
    private readonly clock: Clock,
  ) {}

  private get db() {
    return this.txHost.tx;
  }

  /**
   * A new token for (user, purpose), replacing the outstanding one (which dies), unless one
   * was issued for the same address less than MAIL_FREQUENCY_MS ago and is still usable:
   * then null, nothing is sent and that token stays valid. One statement, so two requests
   * at once cannot both issue.
   */
  async issue(p: {
    userId: string;
    purpose: OneTimeTokenPurpose;
    targetEmail: string;
    ttlSeconds: number;
    ip: string | null;
    /** Replace the outstanding token even inside the frequency window (what it approves changed). */
    force?: boolean;
  }): Promise<string | null> {
    const token = randomBytes(32).toString('base64url');
    const now = this.clock.now();
    const recent = new Date(now.getTime() - MAIL_FREQUENCY_MS);
    const rows = await this.db.$queryRaw<Array<{ id: string }>>`
      INSERT INTO one_time_tokens (id, user_id, purpose, token_hash, target_email, expires_at, consumed_at, created_at, request_ip)
      VALUES (gen_random_uuid(), ${p.userId}::uuid, ${p.purpose}::"OneTimeTokenPurpose", ${hashOf(token)}, ${p.targetEmail},
              ${new Date(now.getTime() + p.ttlSeconds * 1000)}, NULL, ${now}, ${p.ip})
      ON CONFLICT (user_id, purpose) DO UPDATE
      SET token_hash = EXCLUDED.token_hash, target_email = EXCLUDED.target_email, expires_at = EXCLUDED.expires_at,
          consumed_at = NULL, created_at = EXCLUDED.created_at, request_ip = EXCLUDED.request_ip
      WHERE ${p.force === true}
         OR one_time_tokens.created_at <= ${recent}
         OR one_time_tokens.consumed_at IS NOT NULL
         OR one_time_tokens.expires_at <= ${now}
         OR one_time_tokens.target_email IS DISTINCT FROM EXCLUDED.target_email
      RETURNING id`;
    return rows.length > 0 ? token : null;
  }

  /**
   * Consumes a token of one of these purposes: the user and address it was issued for, or
   * why not. A token of another purpose is refused and stays valid.
   */
  async consume(token: unknown, purposes: readonly OneTimeTokenPurpose[]): Promise<Consumed | ConsumeFailure> {
    if (typeof token !== 'string' || !TOKEN.test(token)) return 'invalid';
    const hash = hashOf(token);
    const now = this.clock.now();
    const rows = await this.db.$queryRaw<
      Array<{ userId: string; targetEmail: string | null; purpose: OneTimeTokenPurpose }>
    >`
      UPDATE one_time_tokens SET consumed_at = ${now}
      WHERE token_hash = ${hash} AND purpose::text = ANY(${[...purposes]}::text[])
        AND consumed_at IS NULL AND expires_at > ${now}
      RETURNING user_id AS "userId", target_email AS "targetEmail", purpose::text AS purpose`;
    if (rows[0]) return rows[0];
    const known = await this.db.$queryRaw<Array<{ purpose: string; expired: boolean; consumed: boolean }>>`
      SELECT purpose::text AS purpose, expires_at <= ${now} AS expired, consumed_at IS NOT NULL AS consumed
      FROM one_time_tokens WHERE token_hash = ${hash}`;
    const row = known[0];
    return row && purposes.includes(row.purpose as OneTimeTokenPurpose) && row.expired && !row.consumed
      ? 'expired'
      : 'invalid';
  }

  /** Whether a string has the shape of a token at all (checked before any costly work). */
  isWellFormed(token: unknown): token is string {
    return typeof token === 'string' && TOKEN.test(token);
  }

  /** The user a token belongs to (any purpose or state), without using it: to lock that user first. */
  async ownerOf(token: string): Promise<string | null> {
    if (!this.isWellFormed(token)) return null;
    const rows = await this.db.$queryRaw<Array<{ userId: string }>>`
      SELECT user_id AS "userId" FROM one_time_tokens WHERE token_hash = ${hashOf(token)}`;
    return rows[0]?.userId ?? null;
  }

  /** True when the user's token of this purpose for this address has been consumed. */
  async isConsumed(userId: string, purpose: OneTimeTokenPurpose, targetEmail: string): Promise<boolean> {
    const rows = await this.db.$queryRaw<Array<{ n: number }>>`
      SELECT count(*)::int AS n FROM one_time_tokens
      WHERE user_id = ${userId}::uuid AND purpose = ${purpose}::"OneTimeTokenPurpose"
        AND target_email = ${targetEmail} AND consumed_at IS NOT NULL`;
    return (rows[0]?.n ?? 0) > 0;
  }

  /** True when the user has an outstanding (or consumed) token of this purpose. */
  async exists(userId: string, purpose: OneTimeTokenPurpose): Promise<boolean> {
    const rows = await this.db.$queryRaw<Array<{ n: number }>>`
      SELECT count(*)::int AS n FROM one_time_tokens WHERE user_id = ${userId}::uuid AND purpose = ${purpose}::"OneTimeTokenPurpose"`;
    return (rows[0]?.n ?? 0) > 0;
  }

  /** Kills the user's tokens of these purposes (used or not). */
  async revoke(userId: string, purposes: readonly OneTimeTokenPurpose[]): Promise<void> {
    await this.db.$executeRaw`
      DELETE FROM one_time_tokens WHERE user_id = ${userId}::uuid AND purpose::text = ANY(${[...purposes]}::text[])`;
  }
}
