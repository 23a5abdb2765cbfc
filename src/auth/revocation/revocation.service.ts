import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { Clock } from '../../common/clock.js';
import { InjectConfig } from '../../config/config.token.js';
import type { AppConfig } from '../../config/config.schema.js';
import { InjectRedis } from '../../redis/redis.module.js';

const KEY_PREFIX = 'gatehouse:revoked:';
const CHANNEL = 'gatehouse:revocations';
/** Margin over the access-token lifetime, for clock skew between instances. */
const SKEW_MS = 60_000;

/**
 * Revoked session ids, checked on every authenticated request without touching the
 * database. An entry only has to outlive the access tokens of its session, so it is kept
 * for ACCESS_TOKEN_TTL (+ skew). With REDIS_URL, revocations are published to every
 * instance and also stored as expiring keys, so that an instance that starts late loads
 * those still relevant.
 */
@Injectable()
export class RevocationService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Revocation');
  private readonly revoked = new Map<string, number>();
  private subscriber: Redis | null = null;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    @InjectRedis() private readonly redis: Redis | null,
    private readonly clock: Clock,
  ) {}

  private get ttlMs(): number {
    return this.config.ACCESS_TOKEN_TTL * 1000 + SKEW_MS;
  }

  async onModuleInit(): Promise<void> {
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
    if (!this.redis) return;
    this.subscriber = this.redis.duplicate();
    this.subscriber.on('error', (err: Error) => this.logger.warn(`subscriber: ${err.message}`));
    this.subscriber.on('message', (_channel: string, message: string) => {
      for (const sid of message.split(',')) this.remember(sid, this.clock.nowMs() + this.ttlMs);
    });
    await this.subscriber.subscribe(CHANNEL);
    // Subscribed first, then load what was revoked before this instance started.
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${KEY_PREFIX}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length === 0) continue;
      const pipeline = this.redis.pipeline();
      for (const key of keys) pipeline.pttl(key);
      const ttls = (await pipeline.exec()) ?? [];
      keys.forEach((key, i) => {
        const ttl = Number(ttls[i]?.[1] ?? -2);
        if (ttl > 0) this.remember(key.slice(KEY_PREFIX.length), this.clock.nowMs() + ttl);
      });
    } while (cursor !== '0');
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.sweeper);
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
  }

  isRevoked(sessionId: string): boolean {
    const until = this.revoked.get(sessionId);
    if (until === undefined) return false;
    if (until > this.clock.nowMs()) return true;
    this.revoked.delete(sessionId);
    return false;
  }

  /** Revokes the access tokens of these sessions here and, with Redis, on every instance. */
  async revoke(sessionIds: readonly string[]): Promise<void> {
    if (sessionIds.length === 0) return;
    const until = this.clock.nowMs() + this.ttlMs;
    for (const sid of sessionIds) this.remember(sid, until);
    if (!this.redis) return;
    const pipeline = this.redis.pipeline();
    for (const sid of sessionIds) pipeline.set(`${KEY_PREFIX}${sid}`, '1', 'PX', this.ttlMs);
    pipeline.publish(CHANNEL, sessionIds.join(','));
    const results = (await pipeline.exec()) ?? [];
    const failed = results.find(([err]) => err);
    if (failed) throw failed[0];
  }

  private remember(sid: string, until: number): void {
    if (sid) this.revoked.set(sid, Math.max(until, this.revoked.get(sid) ?? 0));
  }

  private sweep(): void {
    const now = this.clock.nowMs();
    for (const [sid, until] of this.revoked) if (until <= now) this.revoked.delete(sid);
  }
}
