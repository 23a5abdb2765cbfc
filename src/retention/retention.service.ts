import { Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { Clock } from '../common/clock.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { PrismaService } from '../database/prisma.service.js';

/** Rows deleted per statement: short statements, short locks. */
const BATCH = 1000;
/** At most this many batches per table and run; the next run continues. */
const MAX_BATCHES = 500;

export interface RetentionReport {
  sessions: number;
  auditEvents: number;
  revocations: number;
  oneTimeTokens: number;
  mfaChallenges: number;
  mfaEnrolments: number;
  federationExchanges: number;
}

/**
 * Keeps storage bounded: every RETENTION_INTERVAL it deletes
 * - sessions that ended (revoked, or idle/absolutely expired) more than SESSION_RETENTION
 *   ago, with their retired refresh tokens (ON DELETE CASCADE);
 * - audit events older than AUDIT_RETENTION (0 keeps them forever);
 * - revocation entries whose tokens have all expired;
 * - one-time tokens (mailed links) expired more than SESSION_RETENTION ago;
 * - login challenges (the second step of a login) and unconfirmed TOTP enrolments once
 *   expired: nothing can use them any more.
 *
 * Deletes go in batches of BATCH rows picked with `FOR UPDATE SKIP LOCKED`, so several
 * instances running the job at once share the work instead of blocking on one another,
 * and no statement holds many locks for long.
 */
@Injectable()
export class RetentionService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Retention');
  /** Real-time timers on purpose: a test moving its clock by days must not start a run. */
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RetentionReport> | undefined;

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly prisma: PrismaService,
    private readonly clock: Clock,
  ) {}

  onApplicationBootstrap(): void {
    const every = this.config.RETENTION_INTERVAL * 1000;
    // A first run soon after start-up, at a random moment so that instances started
    // together do not all run at once; then every RETENTION_INTERVAL.
    this.timer = setTimeout(() => this.tick(every), Math.min(every, 60_000) * Math.random()).unref();
  }

  onApplicationShutdown(): void {
    clearTimeout(this.timer);
  }

  private tick(every: number): void {
    this.runOnce().catch((error: unknown) => this.logger.warn(`retention run failed: ${String(error)}`));
    this.timer = setTimeout(() => this.tick(every), every).unref();
  }

  /** One pass over every table (a run already going is joined, not doubled). */
  runOnce(): Promise<RetentionReport> {
    this.running ??= this.run().finally(() => (this.running = undefined));
    return this.running;
  }

  private async run(): Promise<RetentionReport> {
    const nowMs = this.clock.nowMs();
    const now = new Date(nowMs);
    const sessionCutoff = new Date(nowMs - this.config.SESSION_RETENTION * 1000);
    const report: RetentionReport = {
      sessions: await this.inBatches(
        () => this.prisma.$executeRaw`
          DELETE FROM sessions WHERE id IN (
            SELECT id FROM sessions
            WHERE revoked_at < ${sessionCutoff} OR expires_at < ${sessionCutoff}
            LIMIT ${BATCH} FOR UPDATE SKIP LOCKED)`,
      ),
      auditEvents:
        this.config.AUDIT_RETENTION === 0
          ? 0
          : await this.inBatches(() => {
              const cutoff = new Date(nowMs - this.config.AUDIT_RETENTION * 1000);
              return this.prisma.$executeRaw`
                DELETE FROM audit_events WHERE id IN (
                  SELECT id FROM audit_events WHERE created_at < ${cutoff}
                  LIMIT ${BATCH} FOR UPDATE SKIP LOCKED)`;
            }),
      oneTimeTokens: await this.inBatches(
        () => this.prisma.$executeRaw`
          DELETE FROM one_time_tokens WHERE id IN (
            SELECT id FROM one_time_tokens WHERE expires_at < ${sessionCutoff}
            LIMIT ${BATCH} FOR UPDATE SKIP LOCKED)`,
      ),
      mfaChallenges: await this.inBatches(
        () => this.prisma.$executeRaw`
          DELETE FROM mfa_challenges WHERE id IN (
            SELECT id FROM mfa_challenges WHERE expires_at < ${now}
            LIMIT ${BATCH} FOR UPDATE SKIP LOCKED)`,
      ),
      mfaEnrolments: await this.inBatches(
        () => this.prisma.$executeRaw`
          DELETE FROM mfa_totp WHERE user_id IN (
            SELECT user_id FROM mfa_totp WHERE confirmed_at IS NULL AND enrol_expires_at < ${now}
            LIMIT ${BATCH} FOR UPDATE SKIP LOCKED)`,
      ),
      revocations: await this.inBatches(
        () => this.prisma.$executeRaw`
          DELETE FROM revocations WHERE key IN (
            SELECT key FROM revocations WHERE expires_at < ${now}
            LIMIT ${BATCH} FOR UPDATE SKIP LOCKED)`,
      ),
      // An exchanged external token's mark is needed only until the token expires.
      federationExchanges: await this.inBatches(
        () => this.prisma.$executeRaw`
          DELETE FROM federation_exchanges WHERE (issuer, replay_hash) IN (
            SELECT issuer, replay_hash FROM federation_exchanges WHERE expires_at < ${now}
            LIMIT ${BATCH} FOR UPDATE SKIP LOCKED)`,
      ),
    };
    if (Object.values(report).some((n) => n > 0)) {
      this.logger.log(
        `deleted ${report.sessions} ended sessions, ${report.auditEvents} audit events, ${report.revocations} expired revocations, ` +
          `${report.oneTimeTokens} expired one-time tokens, ${report.mfaChallenges} expired login challenges, ` +
          `${report.mfaEnrolments} unconfirmed TOTP enrolments, ${report.federationExchanges} spent external-token marks`,
      );
    }
    return report;
  }

  private async inBatches(deleteBatch: () => Promise<number>): Promise<number> {
    let total = 0;
    for (let i = 0; i < MAX_BATCHES; i++) {
      const deleted = await deleteBatch();
      total += deleted;
      if (deleted < BATCH) break;
    }
    return total;
  }
}
