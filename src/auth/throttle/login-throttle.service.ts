import { Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { Clock } from '../../common/clock.js';
import { tooManyRequests } from '../../common/errors/app.exception.js';
import { ErrorCode } from '../../common/errors/error-codes.js';
import { InjectConfig } from '../../config/config.token.js';
import type { AppConfig } from '../../config/config.schema.js';
import { InjectRedis } from '../../redis/redis.module.js';
import { MemoryAttemptStore, RedisAttemptStore, type AttemptRecord, type AttemptStore } from './attempt-store.js';

/** Failures are remembered for 15 minutes after the last one. */
export const LOGIN_WINDOW_MS = 15 * 60 * 1000;
/** The longest wait ever imposed: throttling slows guessing, it never locks out for good. */
const MAX_WAIT_MS = LOGIN_WINDOW_MS;
/** The account-wide ceiling, across all sources, is this many times LOGIN_RATE_LIMIT. */
export const ACCOUNT_CEILING_FACTOR = 10;
/** How long a source that logged in to an account stays exempt from that account's ceiling. */
export const KNOWN_SOURCE_MS = 30 * 24 * 60 * 60 * 1000;

/**
 * The key an account is throttled under. An existing account is counted by its id, so that
 * its username and its email share one budget (a guess is a guess); a login naming no
 * account is counted by its canonical form, and is throttled exactly like an existing one.
 */
export const throttleAccountKey = (userId: string | null, canonicalLogin: string): string =>
  userId !== null ? `user:${userId}` : `login:${canonicalLogin}`;

/**
 * Password-guess throttling, for logins and for the password re-checks of
 * POST /users/me/password and DELETE /users/me (one budget: a guess is a guess).
 * (OWASP Authentication Cheat Sheet, "Login Throttling" / "Account Lockout".)
 *
 * Three counters, each of consecutive failures forgotten 15 minutes after the last one;
 * a request waits for the longest of their back-offs:
 *
 * - per (account, source IP): LOGIN_RATE_LIMIT failures are free, then each failure doubles
 *   the wait before the next attempt (1 s, 2 s, 4 s ... capped at 15 minutes). A success
 *   clears it. Someone guessing from one address is slowed, and the owner, from any other
 *   address, is not: a stranger has no switch that keeps the owner out.
 * - per account across all sources: a ceiling of ACCOUNT_CEILING_FACTOR x LOGIN_RATE_LIMIT
 *   failures before the same back-off, so that guesses spread over many addresses are
 *   slow too. A success does not clear it (it is evidence of an attack elsewhere), and it
 *   does not apply to a source that has logged in to the account within KNOWN_SOURCE_MS:
 *   even an attacker with many addresses who holds the ceiling's back-off does not keep the
 *   owner out of their usual places; only never-seen sources then wait (at most 15 minutes
 *   after each failure).
 * - per source IP across all accounts: max(300, 30 x LOGIN_RATE_LIMIT) failures (one
 *   address may be a shared NAT), so that one address cannot spray accounts without end.
 */
@Injectable()
export class LoginThrottleService {
  private readonly store: AttemptStore;
  private readonly pairLimit: number;
  private readonly accountLimit: number;
  private readonly ipLimit: number;

  constructor(
    @InjectConfig() config: AppConfig,
    @InjectRedis() redis: Redis | null,
    private readonly clock: Clock,
  ) {
    this.store = redis ? new RedisAttemptStore(redis) : new MemoryAttemptStore();
    this.pairLimit = config.LOGIN_RATE_LIMIT;
    this.accountLimit = config.LOGIN_RATE_LIMIT * ACCOUNT_CEILING_FACTOR;
    this.ipLimit = Math.max(300, config.LOGIN_RATE_LIMIT * 30);
  }

  /**
   * Throws 429 TOO_MANY_ATTEMPTS with Retry-After when this account from this address, the
   * account as a whole (unless the address is a known one) or the address must wait.
   * `accountKey` comes from throttleAccountKey().
   */
  async check(accountKey: string, ip: string, message = 'Too many login attempts; retry later'): Promise<void> {
    const [pair, account, address] = await Promise.all([
      this.store.get(pairKey(accountKey, ip)),
      this.store.get(`acct:${accountKey}`),
      this.store.get(`ip:${ip}`),
    ]);
    let wait = Math.max(this.waitMs(pair, this.pairLimit), this.waitMs(address, this.ipLimit));
    const ceiling = this.waitMs(account, this.accountLimit);
    if (ceiling > wait && !(await this.store.isMarked(knownKey(accountKey, ip), this.clock.nowMs()))) wait = ceiling;
    if (wait > 0) throw tooManyRequests(ErrorCode.TOO_MANY_ATTEMPTS, message, wait / 1000);
  }

  async recordFailure(accountKey: string, ip: string): Promise<void> {
    const now = this.clock.nowMs();
    await Promise.all([
      this.store.recordFailure(pairKey(accountKey, ip), now, LOGIN_WINDOW_MS),
      this.store.recordFailure(`acct:${accountKey}`, now, LOGIN_WINDOW_MS),
      this.store.recordFailure(`ip:${ip}`, now, LOGIN_WINDOW_MS),
    ]);
  }

  /** The right password from this address: its counter for the account starts over, and the address becomes a known one. */
  async recordSuccess(accountKey: string, ip: string): Promise<void> {
    await Promise.all([
      this.store.reset(pairKey(accountKey, ip)),
      this.store.mark(knownKey(accountKey, ip), this.clock.nowMs(), KNOWN_SOURCE_MS),
    ]);
  }

  /** Milliseconds still to wait before the next attempt under this record (0: go ahead). */
  waitMs(record: AttemptRecord | null, limit: number): number {
    if (!record) return 0;
    const now = this.clock.nowMs();
    if (now - record.lastFailureMs >= LOGIN_WINDOW_MS) return 0;
    if (record.failures < limit) return 0;
    const backoff = Math.min(1000 * 2 ** (record.failures - limit), MAX_WAIT_MS);
    return Math.max(0, record.lastFailureMs + backoff - now);
  }
}

const pairKey = (accountKey: string, ip: string): string => `pair:${accountKey}|${ip}`;
const knownKey = (accountKey: string, ip: string): string => `known:${accountKey}|${ip}`;
