import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { Clock, type ClockTimer } from '../common/clock.js';
import { AppError, retryAfter } from '../common/errors/app-error.js';
import { isDatabaseUnavailable } from '../common/errors/database-errors.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { EventBus } from '../events/event-bus.js';
import { Prisma } from '../generated/prisma/client.js';

/** Margin over the access-token lifetime, for clock skew between instances. */
const SKEW_MS = 60_000;
/** The not-before of a key that refuses every token (the largest `integer` column value). */
const FOREVER = 2_147_483_647;
/** How often the entries are read from the database while the Redis subscription is broken. */
const CATCH_UP_INTERVAL_MS = 1000;
/**
 * How long the reading goes on once the subscription works again: a revocation is announced
 * before its transaction commits (at most 10 s later, the transactions' timeout), so an
 * announcement lost in the break may have its row committed after the subscription is back.
 */
const CATCH_UP_GRACE_MS = 15_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What a token says about itself that revocation looks at. */
export interface RevocationSubject {
  /** The session (or, for a client token, the secret) it belongs to; null for none. */
  sessionId: string | null;
  userId: string;
  /** The token's own id. */
  jti: string;
  /** Issued at, epoch seconds. */
  iat: number;
  /** A token-exchange token's acting service user: its revocation ends the token too. */
  actorId?: string;
}

/**
 * What to revoke: every token of these sessions (for good), every token of these users or
 * client secrets issued so far (not-before: new ones may follow), and these single tokens
 * (by `jti`).
 */
export interface RevocationRequest {
  sessions?: readonly string[];
  users?: readonly string[];
  /** Client secrets (`sid` of client tokens): a disabled client enabled again gets tokens anew. */
  secrets?: readonly string[];
  tokens?: readonly string[];
  /**
   * The `users` lose access altogether (account deleted or disabled), rather than having their
   * tokens re-issued (a role change): real-time connections are signed out (4410), not told
   * to refresh (4401). Carried on the event, so every instance knows without reading a
   * database that may not show the change yet (the revocation is announced before its commit).
   */
  signOut?: boolean;
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
  private sweeper: NodeJS.Timeout | undefined;
  private retry: ClockTimer | undefined;
  /** False until the entries persisted before this start are in memory. */
  private loaded = false;
  /** While catching up: the entries written from about this epoch ms (the clock's) on are read. */
  private catchUpFromMs: number | null = null;
  /** Real time until which catching up goes on (Infinity while the subscription is broken). */
  private catchUpUntilMs = 0;
  private catchUp: NodeJS.Timeout | undefined;
  private catchingUp = false;
  private stopped = false;

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly txHost: TransactionHost<PrismaTx>,
    private readonly events: EventBus,
    private readonly clock: Clock,
  ) {}

  /** Long enough for every token an entry may refuse: user and client tokens alike. */
  private get ttlMs(): number {
    return Math.max(this.config.ACCESS_TOKEN_TTL, this.config.OAUTH_MAX_TOKEN_TTL) * 1000 + SKEW_MS;
  }

  async onModuleInit(): Promise<void> {
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
    // Other instances' revocations (this instance's own are remembered as they are made).
    this.events.on('tokens.revoked', ({ entries }, { remote }) => {
      if (remote) for (const e of entries) this.remember(e.key, { notBefore: e.notBefore, untilMs: e.untilMs });
    });
    this.events.onSync((synced, sinceMs) => this.onSync(synced, sinceMs));
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

  /** The persisted entries that expire after `floor` (the live ones: `floor` >= now). */
  private rowsExpiringAfter(floor: Date): Promise<Array<{ key: string; notBefore: number; expiresAt: Date }>> {
    return this.txHost.tx.$queryRaw`
      SELECT key, not_before AS "notBefore", expires_at AS "expiresAt"
      FROM revocations WHERE expires_at > ${floor}`;
  }

  private async load(): Promise<void> {
    const rows = await this.rowsExpiringAfter(this.clock.now());
    for (const row of rows) this.remember(row.key, { notBefore: row.notBefore, untilMs: row.expiresAt.getTime() });
    this.loaded = true;
  }

  private retryLoad(): void {
    this.retry = this.clock.setTimeout(() => {
      this.load().catch(() => this.retryLoad());
    }, 2000);
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    clearInterval(this.sweeper);
    clearInterval(this.catchUp);
    this.retry?.cancel();
  }

  /**
   * The Redis subscription broke or works again (EventBus.synced). Announcements published
   * while it was broken are lost, but every revocation has its row: from the break on, the
   * rows written since about then are read every CATCH_UP_INTERVAL_MS, and go on being read
   * for CATCH_UP_GRACE_MS after the subscription is back. What they add is handed to this
   * instance's handlers as announcements from elsewhere (EventBus.replay): real-time
   * connections close and cached federation links are dropped as for any revocation.
   */
  private onSync(synced: boolean, sinceMs: number): void {
    if (this.stopped) return;
    if (synced) {
      this.catchUpUntilMs = Date.now() + CATCH_UP_GRACE_MS;
    } else {
      // sinceMs is real time; the rows carry the clock's time (the same, unless a test moved it).
      const from = this.clock.nowMs() - (Date.now() - sinceMs);
      this.catchUpFromMs = Math.min(this.catchUpFromMs ?? from, from);
      this.catchUpUntilMs = Infinity;
    }
    if (this.catchUp === undefined) {
      this.catchUp = setInterval(() => void this.catchUpOnce(), CATCH_UP_INTERVAL_MS);
      this.catchUp.unref();
    }
    void this.catchUpOnce();
  }

  /**
   * One read of the rows written since about `catchUpFromMs`. Each successful read moves that
   * point to its own start, so a long break reads about a minute's revocations each time,
   * not the whole table. The reading ends with the first successful read that starts after
   * the grace period (a database away meanwhile does not end it).
   */
  private async catchUpOnce(): Promise<void> {
    if (this.catchingUp || this.catchUpFromMs === null) return;
    this.catchingUp = true;
    const startedAt = Date.now();
    const startedAtClock = this.clock.nowMs();
    try {
      // A row's expires_at is its revocation time + ttlMs (GREATEST on a key revoked again):
      // the rows of revocations made from SKEW_MS before the last read (or the break) on, and
      // still live. The margin covers clock skew between instances, a break that started
      // before it was seen, and transactions that commit after the read (10 s at most).
      const floor = new Date(Math.max(startedAtClock, this.catchUpFromMs - SKEW_MS + this.ttlMs));
      const rows = await this.rowsExpiringAfter(floor);
      const news = rows
        .filter((row) => {
          const known = this.entries.get(row.key);
          return known === undefined || known.notBefore < row.notBefore;
        })
        .map((row) => ({ key: row.key, notBefore: row.notBefore, untilMs: row.expiresAt.getTime() }));
      if (news.length > 0) {
        // Refused at once; the sign-out lookup only decides how WebSockets are closed.
        for (const e of news) this.remember(e.key, e);
        const signedOut = await this.signedOut(news.map((e) => e.key)).catch(() => new Set<string>());
        this.events.replay('tokens.revoked', {
          entries: news.map((e) => (signedOut.has(e.key) ? { ...e, signOut: true } : e)),
        });
      }
      this.catchUpFromMs = Math.max(this.catchUpFromMs, startedAtClock);
      if (startedAt > this.catchUpUntilMs) {
        clearInterval(this.catchUp);
        this.catchUp = undefined;
        this.catchUpFromMs = null;
      }
    } catch (error) {
      this.logger.warn(`catching up on revocations failed, retrying: ${String(error)}`);
    } finally {
      this.catchingUp = false;
    }
  }

  /**
   * The user keys among `keys` whose account is gone or disabled: their entries sign the
   * user out (RevocationRequest.signOut), which the rows do not record.
   */
  private async signedOut(keys: string[]): Promise<Set<string>> {
    const ids = keys
      .filter((k) => k.startsWith('user:'))
      .map((k) => k.slice(5))
      .filter((id) => UUID.test(id));
    if (ids.length === 0) return new Set();
    // One array parameter (however many ids), compared as uuid (the primary key's index).
    const enabled = await this.txHost.tx.$queryRaw<Array<{ id: string }>>`
      SELECT id::text AS id FROM users WHERE id = ANY(${ids}::uuid[]) AND NOT disabled`;
    const live = new Set(enabled.map((r) => `user:${r.id}`));
    return new Set(ids.map((id) => `user:${id}`).filter((k) => !live.has(k)));
  }

  /** True when the token was issued before a revocation of its session or of its user. */
  isRevoked(token: RevocationSubject): boolean {
    if (!this.loaded) {
      throw new AppError(ErrorCode.DATABASE_UNAVAILABLE, 'The database is unavailable; retry shortly', retryAfter(5));
    }
    return (
      (token.sessionId !== null && this.refuses(`sid:${token.sessionId}`, token.iat)) ||
      this.refuses(`user:${token.userId}`, token.iat) ||
      (token.actorId !== undefined && this.refuses(`user:${token.actorId}`, token.iat)) ||
      this.refuses(`jti:${token.jti}`, token.iat)
    );
  }

  /**
   * Revokes the tokens of these sessions and users: persisted (in the caller's transaction,
   * if any), refused here at once, and published to the other instances (`tokens.revoked`).
   * Inside a transaction the refusal starts before the commit: if it rolls back, the
   * tokens stay refused until the entry expires (failing closed).
   */
  async revoke(request: RevocationRequest): Promise<void> {
    const nowMs = this.clock.nowMs();
    const untilMs = nowMs + this.ttlMs;
    const notBefore = Math.floor(nowMs / 1000) + 1;
    // A revoked session or token never gets a token again, so its key refuses every `iat`; a
    // user or client-secret key only refuses what was issued before it (the user signs in
    // again, the client enabled again gets tokens, afterwards).
    const entries = [
      ...(request.sessions ?? []).map((id) => ({ key: `sid:${id}`, notBefore: FOREVER, untilMs })),
      ...(request.tokens ?? []).map((jti) => ({ key: `jti:${jti}`, notBefore: FOREVER, untilMs })),
      ...(request.users ?? []).map((id) => ({
        key: `user:${id}`,
        notBefore,
        untilMs,
        ...(request.signOut ? { signOut: true } : {}),
      })),
      ...(request.secrets ?? []).map((id) => ({ key: `sid:${id}`, notBefore, untilMs })),
    ];
    if (entries.length === 0) return;
    const expiresAt = new Date(untilMs);
    const write = () => this.txHost.tx.$executeRaw`
      INSERT INTO revocations (key, not_before, expires_at)
      VALUES ${Prisma.join(entries.map((e) => Prisma.sql`(${e.key}, ${e.notBefore}, ${expiresAt})`))}
      ON CONFLICT (key) DO UPDATE
      SET not_before = GREATEST(revocations.not_before, EXCLUDED.not_before),
          expires_at = GREATEST(revocations.expires_at, EXCLUDED.expires_at)`;
    for (const e of entries) this.remember(e.key, e);
    if (!this.txHost.isTransactionActive()) {
      // Nothing to commit after it (a session already revoked, a single token): the row
      // first, so that a failed or late announcement still leaves it for the instances that
      // read the table (at start-up, or catching up after a broken subscription).
      await write();
      await this.events.emit('tokens.revoked', { entries });
      return;
    }
    // Refused here and announced before the entry is written: a token signed from now on,
    // here or elsewhere, sees the revocation (see userRevokedSince); the row commits with the
    // change.
    await this.events.emit('tokens.revoked', { entries });
    await write();
  }

  /**
   * True when the user was revoked in the second before `sinceMs` or later: roles read at
   * `sinceMs` may then predate a role change that was still committing (the not-before is
   * in whole seconds), so the signer reads them again.
   */
  userRevokedSince(userId: string, sinceMs: number): boolean {
    return this.revokedSince(`user:${userId}`, sinceMs);
  }

  /** userRevokedSince() for any key (`sid:<secret>` of a client token). */
  revokedSince(key: string, sinceMs: number): boolean {
    const entry = this.entries.get(key);
    return entry !== undefined && entry.untilMs > this.clock.nowMs() && entry.notBefore * 1000 > sinceMs - 1000;
  }

  /**
   * Waits until a token signed now for this user would not be born revoked: after a
   * revocation of the user at time t, tokens need `iat >= floor(t) + 1`, so a login or
   * refresh in the same second waits for the next one (at most 1 s).
   */
  async untilSignable(userId: string, ...otherKeys: string[]): Promise<void> {
    // Re-checked after each wait: a timer may fire a millisecond early, and the user may be
    // revoked again meanwhile. Bounded: a signer is never held much more than a second.
    const keys = [`user:${userId}`, ...otherKeys];
    for (let attempt = 0; attempt < 3; attempt++) {
      const entry = keys
        .map((k) => this.entries.get(k))
        .reduce<Entry | undefined>((a, b) => (b && (!a || b.notBefore > a.notBefore) ? b : a), undefined);
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

  private remember(key: string, entry: Entry): void {
    const known = this.entries.get(key);
    this.entries.set(key, {
      notBefore: Math.max(known?.notBefore ?? 0, entry.notBefore),
      untilMs: Math.max(known?.untilMs ?? 0, entry.untilMs),
    });
  }

  private sweep(): void {
    const now = this.clock.nowMs();
    for (const [key, entry] of this.entries) if (entry.untilMs <= now) this.entries.delete(key);
  }
}
