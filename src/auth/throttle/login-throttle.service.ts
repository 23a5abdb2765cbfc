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

/**
 * Login throttling per account (canonical username or email, whether or not it exists)
 * and per client IP. LOGIN_RATE_LIMIT failed attempts per account within the window are
 * free; each failure after that doubles the wait before the next attempt (1 s, 2 s, 4 s
 * ... capped at 15 minutes). A successful login clears the account's counter.
 * (OWASP Authentication Cheat Sheet, "Login Throttling" / "Account Lockout".)
 */
@Injectable()
export class LoginThrottleService {
  private readonly store: AttemptStore;
  private readonly accountLimit: number;
  private readonly ipLimit: number;

  constructor(
    @InjectConfig() config: AppConfig,
    @InjectRedis() redis: Redis | null,
    private readonly clock: Clock,
  ) {
    this.store = redis ? new RedisAttemptStore(redis) : new MemoryAttemptStore();
    this.accountLimit = config.LOGIN_RATE_LIMIT;
    // One address may try many accounts (a shared NAT); it still cannot spray without end.
    this.ipLimit = Math.max(300, config.LOGIN_RATE_LIMIT * 30);
  }

  /** Throws 429 with Retry-After when either the account or the IP must wait. */
  async check(accountKey: string, ip: string): Promise<void> {
    const [account, address] = await Promise.all([this.store.get(`acct:${accountKey}`), this.store.get(`ip:${ip}`)]);
    const wait = Math.max(this.waitMs(account, this.accountLimit), this.waitMs(address, this.ipLimit));
    if (wait > 0) {
      throw tooManyRequests(ErrorCode.TOO_MANY_ATTEMPTS, 'Too many login attempts; retry later', wait / 1000);
    }
  }

  async recordFailure(accountKey: string, ip: string): Promise<void> {
    const now = this.clock.nowMs();
    await Promise.all([
      this.store.recordFailure(`acct:${accountKey}`, now, LOGIN_WINDOW_MS),
      this.store.recordFailure(`ip:${ip}`, now, LOGIN_WINDOW_MS),
    ]);
  }

  async recordSuccess(accountKey: string): Promise<void> {
    await this.store.reset(`acct:${accountKey}`);
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
