import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { Clock } from '../../common/clock.js';
import { AppException } from '../../common/errors/app.exception.js';
import { isDatabaseUnavailable } from '../../common/errors/database-errors.js';
import { ErrorCode } from '../../common/errors/error-codes.js';
import { InjectConfig } from '../../config/config.token.js';
import type { AppConfig } from '../../config/config.schema.js';
import { PrismaService } from '../../database/prisma.service.js';
import { Prisma } from '../../generated/prisma/client.js';
import { InjectRedis } from '../../redis/redis.module.js';

const CHANNEL = 'gatehouse:revocations';
/** Margin over the access-token lifetime, for clock skew between instances. */
const SKEW_MS = 60_000;
/** The not-before of a key that refuses every token (the largest `integer` column value). */
const FOREVER = 2_147_483_647;

/** What a token says about itself that revocation looks at. */
export interface RevocationSubject {
  sessionId: string;
  userId: string;
  /** Issued at, epoch seconds. */
  iat: number;
}

/** What to revoke: every token of these sessions, and/or every token of these users so far. */
export interface RevocationRequest {
  sessions?: readonly string[];
  users?: readonly string[];
}

interface Entry {
  /** Epoch seconds: tokens with `iat` below it are refused. */
  notBefore: number;
  /** Epoch ms after which the entry can refuse nothing any more. */
  untilMs: number;
}

/**
 * Access-token revocation with not-before semantics, checked on every authenticated
 * request without touching the database.
 *
 * A revocation at time t stores, for a user key (`user:<id>`), notBefore = floor(t) + 1 in
 * whole seconds like `iat`, and for a session key (`sid:<id>`) a notBefore that refuses
 * every token (a revoked session is never live again); a token is refused when its `iat`
 * is below the notBefore of its session's or its user's key. A user key refuses every
 * token issued so far (a role change, a disable, a deletion) while the sessions
 * themselves may live on: the next refresh gets a token with the current roles.
 *
 * The database is the source of truth: the entry is written (in the caller's transaction
 * when there is one) before the change is acknowledged, so a revocation survives a restart
 * or a crash without Redis. Memory is a cache of the live entries, loaded at start-up;
 * with REDIS_URL every new entry is also published to the other instances. An entry lives
 * ACCESS_TOKEN_TTL (+ skew): after that every token it could refuse has expired anyway.
 */
@Injectable()
export class RevocationService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Revocation');
  private readonly entries = new Map<string, Entry>();
  private subscriber: Redis | null = null;
  private sweeper: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  /** False until the entries persisted before this start are in memory. */
  private loaded = false;

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    @InjectRedis() private readonly redis: Redis | null,
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
  ) {}

  private get ttlMs(): number {
    return this.config.ACCESS_TOKEN_TTL * 1000 + SKEW_MS;
  }

  async onModuleInit(): Promise<void> {
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
    if (this.redis) {
      this.subscriber = this.redis.duplicate();
      this.subscriber.on('error', (err: Error) => this.logger.warn(`subscriber: ${err.message}`));
      this.subscriber.on('message', (_channel: string, message: string) => this.receive(message));
      await this.subscriber.subscribe(CHANNEL);
    }
    // Subscribed first, then load what was revoked before this instance (re)started. With the
    // database away the server still starts (degraded, as /health says); the entries are
    // loaded as soon as it answers, and until then no access token is accepted (503).
    try {
      await this.load();
    } catch (error) {
      if (!isDatabaseUnavailable(error)) throw error;
      this.logger.warn('database unavailable: revocations not loaded yet, access tokens answer 503 until they are');
      this.retryLoad();
    }
  }

  private async load(): Promise<void> {
    const rows = await this.prisma.$queryRaw<Array<{ key: string; notBefore: number; expiresAt: Date }>>`
      SELECT key, not_before AS "notBefore", expires_at AS "expiresAt"
      FROM revocations WHERE expires_at > ${this.clock.now()}`;
    for (const row of rows) this.remember(row.key, { notBefore: row.notBefore, untilMs: row.expiresAt.getTime() });
    this.loaded = true;
  }

  private retryLoad(): void {
    this.retry = setTimeout(() => {
      this.load().catch(() => this.retryLoad());
    }, 2000);
    this.retry.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.sweeper);
    clearTimeout(this.retry);
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
  }

  /** True when the token was issued before a revocation of its session or of its user. */
  isRevoked(token: RevocationSubject): boolean {
    if (!this.loaded) {
      throw new AppException(503, ErrorCode.DATABASE_UNAVAILABLE, 'The database is unavailable; retry shortly', { 'Retry-After': '5' });
    }
    return this.refuses(`sid:${token.sessionId}`, token.iat) || this.refuses(`user:${token.userId}`, token.iat);
  }

  /**
   * Revokes the tokens of these sessions and users: persisted (in `db`, the caller's
   * transaction, when given), refused here at once, and published to the other instances.
   * Inside a transaction the refusal starts before the commit: if it rolls back, the
   * tokens stay refused here until the entry expires (failing closed).
   */
  async revoke(request: RevocationRequest, db: Prisma.TransactionClient = this.prisma): Promise<void> {
    const keys = [...(request.sessions ?? []).map((id) => `sid:${id}`), ...(request.users ?? []).map((id) => `user:${id}`)];
    if (keys.length === 0) return;
    const nowMs = this.clock.nowMs();
    const untilMs = nowMs + this.ttlMs;
    const userNotBefore = Math.floor(nowMs / 1000) + 1;
    // A revoked session never gets a token again, so its key refuses every `iat`; a user
    // key only refuses what was issued before it (the user signs in again afterwards).
    const entries = keys.map((key): [string, Entry] => [key, { notBefore: key.startsWith('sid:') ? FOREVER : userNotBefore, untilMs }]);
    const expiresAt = new Date(untilMs);
    await db.$executeRaw`
      INSERT INTO revocations (key, not_before, expires_at)
      VALUES ${Prisma.join(entries.map(([key, e]) => Prisma.sql`(${key}, ${e.notBefore}, ${expiresAt})`))}
      ON CONFLICT (key) DO UPDATE
      SET not_before = GREATEST(revocations.not_before, EXCLUDED.not_before),
          expires_at = GREATEST(revocations.expires_at, EXCLUDED.expires_at)`;
    for (const [key, e] of entries) this.remember(key, e);
    if (!this.redis) return;
    await this.redis.publish(CHANNEL, JSON.stringify(entries.map(([key, e]) => [key, e.notBefore, e.untilMs])));
  }

  /**
   * Waits until a token signed now for this user would not be born revoked: after a
   * revocation of the user at time t, tokens need `iat >= floor(t) + 1`, so a login or
   * refresh in the same second waits for the next one (at most 1 s).
   */
  async untilSignable(userId: string): Promise<void> {
    // Re-checked after each wait: a timer may fire a millisecond early, and the user may be
    // revoked again meanwhile. Bounded: a signer is never held much more than a second.
    for (let attempt = 0; attempt < 3; attempt++) {
      const entry = this.entries.get(`user:${userId}`);
      const waitMs = entry ? entry.notBefore * 1000 - this.clock.nowMs() : 0;
      if (waitMs <= 0) return;
      await this.clock.sleep(Math.min(waitMs + 1, 1001));
    }
  }

  private refuses(key: string, iat: number): boolean {
    const entry = this.entries.get(key);
    if (entry === undefined) return false;
    if (entry.untilMs <= this.clock.nowMs()) {
      this.entries.delete(key);
      return false;
    }
    return iat < entry.notBefore;
  }

  private receive(message: string): void {
    try {
      const parsed: unknown = JSON.parse(message);
      if (!Array.isArray(parsed)) return;
      for (const item of parsed) {
        if (!Array.isArray(item)) continue;
        const [key, notBefore, untilMs] = item as unknown[];
        if (typeof key === 'string' && typeof notBefore === 'number' && typeof untilMs === 'number') {
          this.remember(key, { notBefore, untilMs });
        }
      }
    } catch {
      this.logger.warn('ignored a malformed revocation message');
    }
  }

  private remember(key: string, entry: Entry): void {
    const known = this.entries.get(key);
    this.entries.set(
      key,
      known ? { notBefore: Math.max(known.notBefore, entry.notBefore), untilMs: Math.max(known.untilMs, entry.untilMs) } : entry,
    );
  }

  private sweep(): void {
    const now = this.clock.nowMs();
    for (const [key, entry] of this.entries) if (entry.untilMs <= now) this.entries.delete(key);
  }
}
