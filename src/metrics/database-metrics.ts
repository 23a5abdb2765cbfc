import { Injectable, Logger } from '@nestjs/common';
import { Clock } from '../common/clock.js';
import type { AppConfig } from '../config/config.schema.js';
import { InjectConfig } from '../config/config.token.js';
import { withTimeout } from '../database/open-database.js';
import { PrismaService } from '../database/prisma.service.js';
import { MetricsRegistry } from './metrics.registry.js';
import { promClient } from './prom-client.js';

/** Live sessions are counted at most this often (Clock time); scrapes in between get the last count. */
export const ACTIVE_SESSIONS_SAMPLE_MS = 30_000;

/**
 * The database's side: live sessions (sampled: one COUNT at most every 30 s, however often
 * Prometheus scrapes) and, on PostgreSQL, the connection pool's use (read from the pool,
 * no query). On the embedded database (PGlite: one connection, no pool) the pool gauge is
 * not registered at all.
 */
@Injectable()
export class DatabaseMetrics {
  private readonly logger = new Logger('Metrics');
  /** The last count; NaN when it failed (unknown rather than a false 0). */
  private activeSessions = Number.NaN;
  private sampledAtMs: number | undefined;
  private sampling: Promise<number> | undefined;

  constructor(
    registry: MetricsRegistry,
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
    @InjectConfig() private readonly config: AppConfig,
  ) {
    const { Gauge } = promClient();
    const sessions = this.sessionCount.bind(this);
    registry.registry.registerMetric(
      new Gauge({
        name: 'gatehouse_active_sessions',
        help: `Sessions neither revoked nor expired (counted at most every ${ACTIVE_SESSIONS_SAMPLE_MS / 1000} s; NaN when the count failed)`,
        registers: [],
        async collect() {
          this.set(await sessions());
        },
      }),
    );
    if (prisma.poolUsage() === null) return;
    registry.registry.registerMetric(
      new Gauge({
        name: 'gatehouse_db_pool_connections',
        help: 'PostgreSQL pool connections: total (open, busy or idle), idle, and waiting (requests queued for one)',
        labelNames: ['state'],
        registers: [],
        collect() {
          const usage = prisma.poolUsage();
          if (usage === null) return;
          this.set({ state: 'total' }, usage.total);
          this.set({ state: 'idle' }, usage.idle);
          this.set({ state: 'waiting' }, usage.waiting);
        },
      }),
    );
  }

  /**
   * The live-session count for a scrape: the cached one while it is younger than the sample
   * interval, else one new COUNT (a scrape that arrives while it runs waits for the same one).
   */
  private sessionCount(): Promise<number> {
    if (this.sampling) return this.sampling;
    const now = this.clock.nowMs();
    if (this.sampledAtMs !== undefined && now - this.sampledAtMs < ACTIVE_SESSIONS_SAMPLE_MS) {
      return Promise.resolve(this.activeSessions);
    }
    this.sampling = this.countSessions(now).finally(() => (this.sampling = undefined));
    return this.sampling;
  }

  private async countSessions(nowMs: number): Promise<number> {
    const now = new Date(nowMs);
    try {
      this.activeSessions = await withTimeout(
        this.prisma.session.count({
          where: { revokedAt: null, expiresAt: { gt: now }, absoluteExpiresAt: { gt: now } },
        }),
        this.config.DATABASE_TIMEOUT_MS,
      );
    } catch (error) {
      this.activeSessions = Number.NaN;
      this.logger.warn(`active sessions not counted: ${error instanceof Error ? error.message : String(error)}`);
    }
    // A failed count is not retried before the next interval either: an unreachable database
    // must not cost every scrape a timeout.
    this.sampledAtMs = nowMs;
    return this.activeSessions;
  }
}
