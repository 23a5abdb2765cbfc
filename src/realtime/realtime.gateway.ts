import type { IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Logger, type BeforeApplicationShutdown, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { WebSocketGateway, type OnGatewayConnection, type OnGatewayDisconnect } from '@nestjs/websockets';
import type { Redis } from 'ioredis';
import proxyaddr from 'proxy-addr';
import type { WebSocket } from 'ws';
import { Clock, type ClockTimer } from '../common/clock.js';
import { AppError } from '../common/errors/app-error.js';
import { isDatabaseUnavailable } from '../common/errors/database-errors.js';
import { BoundedMap } from '../common/bounded-map.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { InjectConfig } from '../config/config.token.js';
import { withTimeout } from '../database/open-database.js';
import type { AppConfig } from '../config/config.schema.js';
import { EventBus, type GatehouseEvents } from '../events/event-bus.js';
import { InjectRedis } from '../redis/redis.module.js';
import { TenantAccessService, type Membership } from '../tenants/tenant-access.service.js';
import { MemoryAttemptStore, RedisAttemptStore, type AttemptStore } from '../throttle/attempt-store.js';
import type { Principal } from '../tokens/principal.js';
import { RevocationService } from '../tokens/revocation.service.js';
import { TokenRejected, TokenVerifier } from '../tokens/token-verifier.js';
import { Connection } from './connection.js';
import { WriteBatch } from './write-batch.js';
import {
  CLOSE,
  MAX_TOPICS_PER_CONNECTION,
  SUBPROTOCOL,
  parseFrame,
  tenantTopics,
  tokenOf,
  type ClientMessage,
  type CloseReason,
} from './protocol.js';

/** The fixed window of WS_MESSAGE_RATE_LIMIT. */
const MESSAGE_WINDOW_MS = 10_000;
/** The window of WS_AUTH_FAILURE_LIMIT: failures per address are forgotten this long after the last. */
const AUTH_FAILURE_WINDOW_MS = 15 * 60_000;
/** Beyond this much unsent data, a reader is too slow: closed with 1013 (contract v2 §F). */
const MAX_BUFFERED_BYTES = 1024 * 1024;
/** A socket's frames held for one write (WriteBatch) go out at once from this size on. */
const BATCH_FLUSH_BYTES = 64 * 1024;
/** ... and the frames of a batch this old go out with the next frame sent (WriteBatch). */
const BATCH_MAX_DELAY_MS = 1;
/** The longest single timer step (see at()). */
const TIMER_STEP_MS = 3600_000;
/** After a close frame, how long a client has to answer it before its socket is cut. */
const CLOSE_GRACE_MS = 2000;
/** After 1001, how long a client has to complete the close handshake before its socket is cut. */
const SHUTDOWN_GRACE_MS = 2000;
/** Failed authentications are logged at most once per this period, with a count. */
const FAILURE_LOG_PERIOD_MS = 10_000;
/**
 * Liveness pings go out a slot at a time, about this often (see ping()): pinging 10,000
 * sockets in one synchronous loop blocked the event loop for 0.3–0.6 s on a busy 2-core
 * machine, delaying every revocation close, request and event queued behind it.
 */
const PING_TICK_MS = 250;
/** At most this many ping slots (a long WS_PING_INTERVAL gets longer ticks instead). */
const MAX_PING_SLOTS = 240;
/**
 * Tenant events held for one subscription while a change of the tenant's access commits
 * elsewhere (usually milliseconds): beyond it the subscription ends with an error.
 */
const MAX_HELD_EVENTS = 1000;
/** Waits for another instance's tenant change to commit, at once (each holds a pooled connection). */
const MAX_CHANGE_WAITS = 3;
/**
 * How long a wait for another instance's tenant change to commit may last: beyond it (that
 * instance frozen or cut off while its transaction holds the change's lock) the subscriptions
 * the change concerns end with an error, and the wait frees its place for other tenants'.
 */
export const CHANGE_WAIT_TIMEOUT_MS = 3000;
/**
 * The same limit kept on this side, a little later: `lock_timeout` is the database's to
 * enforce, and a connection that hangs without a word (the server or the network gone
 * silent) would otherwise hold its place among the MAX_CHANGE_WAITS for good. Such a
 * connection is then closed, not given back to the pool (TenantsRepository.awaitChange).
 */
const CHANGE_WAIT_GIVE_UP_MS = CHANGE_WAIT_TIMEOUT_MS + 2000;
/**
 * After a wait gave up, whether the change has ended is asked again (without waiting) for this
 * long: the longest transaction a change of a tenant's access is part of (an account's
 * deletion, see ACCOUNT_DELETION_TIMEOUT_MS). See followUp().
 */
export const CHANGE_FOLLOW_UP_MS = 120_000;
/** The pause before it is first asked again, doubled after each time (up to the last). */
const CHANGE_FOLLOW_UP_FIRST_PAUSE_MS = 1000;
const CHANGE_FOLLOW_UP_LAST_PAUSE_MS = 16_000;
/** Tenants followed up at once (see followUp); beyond it, the least recent is no longer. */
const MAX_FOLLOW_UPS = 1000;

/** A tenant's follow-up of changes whose wait gave up (RealtimeGateway.followUp). */
interface FollowUp {
  changeId: string;
  /** The members those changes concern; null: every subscriber. */
  userIds: Set<string> | null;
  /** When it ends, with the subscriptions concerned, if the change has not ended by then. */
  until: number;
}

/** Why an upgrade is refused: an HTTP status and the contract's error body. */
export interface UpgradeRefusal {
  status: number;
  code: ErrorCode;
  /** A list for VALIDATION_FAILED, as in HTTP answers. */
  message: string | string[];
  headers?: Record<string, string>;
}

/**
 * Real-time events over WebSocket (contract v2 §F). Authentication is the first message
 * (never the URL: query parameters are ignored), through the HTTP TokenVerifier; the
 * connection lives until its token expires (re-authentication swaps the token), the session
 * or user is revoked anywhere (4410 at once, through the event bus and Redis), or a limit is
 * broken. Events reach only their owner's connections and the subscribed current members of
 * a tenant. Nothing is stored: connections live in this instance's memory.
 *
 * Messages are not dispatched through @SubscribeMessage handlers: the protocol closes on a
 * frame that is not JSON, on an unknown event and on a message before `auth`, and handles a
 * connection's messages strictly in order, where Nest's dispatch drops such frames silently
 * and runs handlers concurrently. RealtimeAdapter hands every frame to receive().
 */
@WebSocketGateway({ path: '/ws' })
export class RealtimeGateway
  implements OnGatewayConnection, OnGatewayDisconnect, OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown
{
  private readonly logger = new Logger('Realtime');
  private readonly connections = new Map<WebSocket, Connection>();
  /** One write per socket for the frames of one phase of the event loop (see send()). */
  private readonly batch = new WriteBatch(BATCH_FLUSH_BYTES, BATCH_MAX_DELAY_MS);
  /** Authenticated connections by revocation key: `sid:<session or secret>`, `user:<id>`, `jti:<id>`. */
  private readonly byKey = new Map<string, Set<Connection>>();
  /** Connections subscribed to a tenant. */
  private readonly byTenant = new Map<string, Set<Connection>>();
  /** Unauthenticated connections per address. */
  private readonly pendingByIp = new Map<string, number>();
  /**
   * Counts the times every tenant's permissions had to be read again (the Redis subscription
   * came back): a membership read while it happened is read again.
   */
  private resyncs = 0;
  /**
   * Membership reads in flight, per tenant, and the changes of who may see that tenant heard
   * while they ran: a read that one overlapped is read again (it may predate a removal whose
   * event was handled meanwhile). Per tenant: one tenant's changes never disturb another's
   * subscriptions. An entry lives as long as its reads.
   */
  private readonly reads = new Map<string, { readers: number; changes: number }>();
  /**
   * Tenants whose access another instance is changing (heard before the commit): their
   * events for the subscribers the change may concern (`userId`, or everyone for null) wait
   * in the connection (Connection.held) until those subscribers' permissions are read again.
   */
  private readonly holds = new Map<string, Set<{ userId: string | null }>>();
  /**
   * Changes whose announcement before the commit was heard (by id): their subscribers'
   * permissions are read again once they commit, so the announcement after the commit need
   * not have them read a second time. Bounded: an id whose second announcement was lost is
   * forgotten in time.
   */
  private readonly changesRechecked = new BoundedMap<string, true>(1000);
  /**
   * Tenants with a change whose wait gave up (see followUp): the latest such change (a
   * tenant's changes run one at a time, under its row lock, so its end is the end of the
   * earlier ones), the members those changes concern (null: every subscriber) and the time the
   * follow-up ends.
   */
  private readonly followUps = new BoundedMap<string, FollowUp>(MAX_FOLLOW_UPS);
  /** Waits for tenant changes to commit: running, and queued per tenant (at most one each). */
  private changeWaitsRunning = 0;
  private readonly changeWaitsQueued = new Map<string, { changeId: string; start: () => void; done: Promise<void> }>();
  private readonly failures: AttemptStore;
  private readonly trust: (addr: string, i: number) => boolean;
  private readonly allowedOrigins: ReadonlySet<string>;
  private unsubscribers: Array<() => void> = [];
  private pinger: NodeJS.Timeout | undefined;
  /**
   * Every connection, in one of these slots (round robin): one slot is pinged per tick, so
   * each connection still every WS_PING_INTERVAL, but never all of them at once.
   */
  private readonly pingSlots: Array<Set<Connection>>;
  private nextPingSlot = 0;
  private pingTick = 0;
  private closing = false;
  /**
   * Links and unlinks of external identities heard so far (before and after their commit):
   * a verification of an external token that one overlapped may have read the link as it was.
   */
  private identityChanges = 0;
  private failureLog = { count: 0, lastLogMs: 0, lastReason: '' };

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly verifier: TokenVerifier,
    private readonly revocation: RevocationService,
    private readonly events: EventBus,
    private readonly tenants: TenantAccessService,
    private readonly clock: Clock,
    @InjectRedis() redis: Redis | null,
  ) {
    this.failures = redis ? new RedisAttemptStore(redis, 'gatehouse:ws-failures:') : new MemoryAttemptStore();
    // As Express reads X-Forwarded-For for req.ip (TRUST_PROXY: false, true or a number of hops).
    const hops = config.TRUST_PROXY;
    this.trust = hops === true ? () => true : typeof hops === 'number' ? (_a, i) => i < hops : () => false;
    // "Ours" is the API's and the UI's origin (PUBLIC_URL, APP_URL) and, as for the refresh
    // cookie's Origin check, the page's own host (same origin); plus CORS_ORIGINS.
    this.allowedOrigins = new Set([
      ...config.CORS_ORIGINS,
      new URL(config.PUBLIC_URL).origin,
      new URL(config.APP_URL).origin,
    ]);
    const slots = Math.round((config.WS_PING_INTERVAL * 1000) / PING_TICK_MS);
    this.pingSlots = Array.from({ length: Math.max(1, Math.min(MAX_PING_SLOTS, slots)) }, () => new Set());
  }

  onModuleInit(): void {
    this.unsubscribers = [
      this.events.on('tokens.revoked', (e) => this.onRevoked(e)),
      this.events.on('sessions.created', (e) => this.onSessionCreated(e)),
      this.events.on('sessions.revoked', (e) => this.onSessionsRevoked(e)),
      this.events.on('resources.changed', (e) => this.onResourceChanged(e)),
      this.events.on('tenants.access_changed', (e) => this.onTenantAccessChanged(e)),
      this.events.on('tenants.access_changing', (e, meta) => this.onTenantAccessChanging(e, meta.remote)),
      this.events.on('identities.changed', (e) => this.onIdentitiesChanged(e)),
      this.events.on('identities.changing', () => this.identityChanges++),
      this.events.onSync((synced) => {
        if (synced) this.recheckAllTenants();
      }),
    ];
    // Liveness runs on real time (not the injectable clock): it is about the network.
    this.pinger = setInterval(() => this.ping(), (this.config.WS_PING_INTERVAL * 1000) / this.pingSlots.length);
    this.pinger.unref();
  }

  /** Sends 1001 to every connection and refuses new ones: the first step of a shutdown. */
  goingAway(): void {
    if (this.closing) return;
    this.closing = true;
    for (const conn of this.connections.values()) this.close(conn, CLOSE.GOING_AWAY);
    // A client that does not answer the close handshake must not hold the HTTP drain (an
    // upgraded socket still counts as one of the server's connections).
    const cut = setTimeout(() => {
      for (const conn of this.connections.values()) conn.ws.terminate();
    }, SHUTDOWN_GRACE_MS);
    cut.unref();
  }

  beforeApplicationShutdown(): void {
    this.goingAway();
  }

  onApplicationShutdown(): void {
    clearInterval(this.pinger);
    for (const off of this.unsubscribers) off();
    for (const conn of this.connections.values()) conn.cancelTimers();
  }

  /** How many connections this instance holds (authenticated or not). */
  get size(): number {
    return this.connections.size;
  }

  // ---------------------------------------------------------------------------------------
  // Upgrade and connection
  // ---------------------------------------------------------------------------------------

  /** The client address of a request, as Express would see it. */
  addressOf(req: IncomingMessage): string {
    return proxyaddr(req, this.trust);
  }

  /**
   * Checks an upgrade before the 101: the Origin (cross-site WebSocket hijacking), the
   * subprotocol, and the address's unauthenticated connections and failed authentications.
   * Null: go ahead.
   */
  async admit(req: IncomingMessage): Promise<UpgradeRefusal | null> {
    if (this.closing) {
      return {
        status: 503,
        code: ErrorCode.SERVICE_UNAVAILABLE,
        message: 'The server is shutting down',
        headers: { 'Retry-After': '1' },
      };
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !this.allowedOrigins.has(origin) && !sameHost(origin, req.headers.host)) {
      return { status: 403, code: ErrorCode.ORIGIN_NOT_ALLOWED, message: 'This origin may not open WebSockets here' };
    }
    const offered = req.headers['sec-websocket-protocol'];
    if (offered !== undefined && !offered.split(',').some((p) => p.trim() === SUBPROTOCOL)) {
      return {
        status: 400,
        code: ErrorCode.VALIDATION_FAILED,
        message: [`The only subprotocol spoken here is ${SUBPROTOCOL}`],
      };
    }
    const ip = this.addressOf(req);
    if ((this.pendingByIp.get(ip) ?? 0) >= this.config.WS_MAX_PENDING_PER_IP) {
      return {
        status: 429,
        code: ErrorCode.TOO_MANY_REQUESTS,
        message: 'Too many unauthenticated WebSockets from this address',
        headers: { 'Retry-After': String(this.config.WS_AUTH_TIMEOUT) },
      };
    }
    const record = await this.failures.get(`ws:${ip}`);
    const nowMs = this.clock.nowMs();
    if (record && record.failures >= this.config.WS_AUTH_FAILURE_LIMIT) {
      const waitMs = record.lastFailureMs + AUTH_FAILURE_WINDOW_MS - nowMs;
      if (waitMs > 0) {
        return {
          status: 429,
          code: ErrorCode.TOO_MANY_REQUESTS,
          message: 'Too many failed WebSocket authentications from this address; retry later',
          headers: { 'Retry-After': String(Math.max(1, Math.ceil(waitMs / 1000))) },
        };
      }
    }
    return null;
  }

  handleConnection(ws: WebSocket, req: IncomingMessage): void {
    const conn = new Connection(ws, this.addressOf(req), req.socket);
    this.connections.set(ws, conn);
    conn.pingSlot = this.nextPingSlot;
    this.pingSlots[conn.pingSlot]!.add(conn);
    this.nextPingSlot = (this.nextPingSlot + 1) % this.pingSlots.length;
    this.changePending(conn.ip, 1);
    ws.on('pong', () => {
      conn.alive = true;
    });
    if (this.closing) return this.close(conn, CLOSE.GOING_AWAY);
    // admit() checked the cap before the handshake; concurrent handshakes may all have passed it.
    if ((this.pendingByIp.get(conn.ip) ?? 0) > this.config.WS_MAX_PENDING_PER_IP) {
      return this.close(conn, CLOSE.TOO_MANY_CONNECTIONS);
    }
    conn.authTimer = this.clock.setTimeout(
      () => this.close(conn, CLOSE.AUTH_TIMEOUT),
      this.config.WS_AUTH_TIMEOUT * 1000,
    );
  }

  handleDisconnect(ws: WebSocket): void {
    const conn = this.connections.get(ws);
    if (!conn) return;
    // The slot is held until the TCP connection ends, not when the close frame is sent: a
    // client that ignores the close must not open more unauthenticated sockets meanwhile.
    if (!conn.principal) this.changePending(conn.ip, -1);
    conn.closed = true;
    this.forget(conn);
    this.connections.delete(ws);
    this.pingSlots[conn.pingSlot]!.delete(conn);
  }

  // ---------------------------------------------------------------------------------------
  // Messages
  // ---------------------------------------------------------------------------------------

  /** A frame from a client (RealtimeAdapter); frames over WS_MAX_MESSAGE_BYTES never get here (1009). */
  receive(ws: WebSocket, data: Buffer, isBinary: boolean): void {
    const conn = this.connections.get(ws);
    if (!conn || conn.closed) return;
    const nowMs = this.clock.nowMs();
    if (nowMs - conn.windowStartMs >= MESSAGE_WINDOW_MS) {
      conn.windowStartMs = nowMs;
      conn.messages = 0;
    }
    if (++conn.messages > this.config.WS_MESSAGE_RATE_LIMIT) return this.close(conn, CLOSE.TOO_MANY_MESSAGES);
    const message = parseFrame(data, isBinary);
    if (!message) return this.close(conn, CLOSE.BAD_MESSAGE);
    conn.queue = conn.queue
      .then(() => (conn.closed ? undefined : this.handle(conn, message)))
      .catch((error: unknown) => {
        // The database is briefly unavailable: nothing wrong with the client, who retries.
        if ((error instanceof AppError && error.status === 503) || isDatabaseUnavailable(error)) {
          return this.close(conn, CLOSE.TRY_AGAIN_LATER);
        }
        this.logger.error(
          `message ${message.event} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
        );
        this.close(conn, CLOSE.INTERNAL_ERROR);
      });
  }

  private async handle(conn: Connection, message: ClientMessage): Promise<void> {
    if (message.event === 'auth') return this.authenticate(conn, message);
    if (!conn.principal) return this.close(conn, CLOSE.UNAUTHORIZED);
    if (message.event === 'subscribe') return this.subscribe(conn, message);
    return this.unsubscribe(conn, message);
  }

  private async authenticate(conn: Connection, message: ClientMessage): Promise<void> {
    const token = tokenOf(message.data);
    if (token === null) return this.refuse(conn, CLOSE.INVALID_TOKEN, 'no token');
    let principal: Principal;
    try {
      principal = await this.verifyBearer(token);
    } catch (error) {
      if (error instanceof TokenRejected) {
        return this.refuse(
          conn,
          error.message === 'expired' ? CLOSE.TOKEN_EXPIRED : CLOSE.INVALID_TOKEN,
          error.message,
        );
      }
      // The database or an external issuer is unavailable: nothing wrong with the client.
      if ((error instanceof AppError && error.status === 503) || isDatabaseUnavailable(error)) {
        return this.close(conn, CLOSE.TRY_AGAIN_LATER);
      }
      if (error instanceof AppError && error.status < 500) return this.refuse(conn, CLOSE.INVALID_TOKEN, error.code);
      throw error;
    }
    if (conn.closed) return;
    if (!principal.scopes.includes('events:read')) return this.close(conn, CLOSE.INSUFFICIENT_SCOPE);
    const previous = conn.principal;
    if (previous && !sameIdentity(previous, principal)) return this.close(conn, CLOSE.IDENTITY_CHANGED);
    if (!previous && this.userConnections(principal.userId) >= this.config.WS_MAX_CONNECTIONS_PER_USER) {
      return this.close(conn, CLOSE.TOO_MANY_CONNECTIONS);
    }
    this.unindex(conn);
    conn.principal = principal;
    this.index(conn);
    if (!previous) {
      conn.authTimer?.cancel();
      conn.authTimer = null;
      this.changePending(conn.ip, -1);
    }
    // A revocation that arrived while an external issuer's token was being verified.
    if (principal.kind !== 'federated' && this.revocation.isRevoked(principal)) {
      return this.close(conn, CLOSE.SESSION_REVOKED);
    }
    this.schedule(conn, principal);
    const expiresAt = new Date(principal.exp * 1000).toISOString();
    this.send(
      conn,
      'auth.ok',
      { userId: principal.userId, sessionId: principal.sessionId, expiresAt, scopes: principal.scopes },
      message.id,
    );
    if (principal.exp * 1000 - this.clock.nowMs() <= this.config.WS_EXPIRY_WARNING * 1000) this.warn(conn);
  }

  /**
   * The token's principal. An external token's is verified again when a link or an unlink was
   * announced meanwhile (this connection is not indexed yet, so no announcement would close
   * it): the first answer may name the account the identity was linked to before. A few
   * times at most; then the change is taken as still under way (503, the client retries).
   */
  private async verifyBearer(token: string): Promise<Principal> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const changes = this.identityChanges;
      const principal = await this.verifier.verifyBearer(token);
      if (principal.kind !== 'federated' || changes === this.identityChanges) return principal;
    }
    throw new AppError(ErrorCode.SERVICE_UNAVAILABLE, 'External identities are changing; retry shortly');
  }

  /** Timers at exp − WS_EXPIRY_WARNING (auth.expiring) and at exp (4401 TOKEN_EXPIRED). */
  private schedule(conn: Connection, principal: Principal): void {
    conn.warnTimer?.cancel();
    conn.expiryTimer?.cancel();
    const expMs = principal.exp * 1000;
    const warnAtMs = expMs - this.config.WS_EXPIRY_WARNING * 1000;
    conn.warnTimer = warnAtMs > this.clock.nowMs() ? this.at(warnAtMs, () => this.warn(conn)) : null;
    conn.expiryTimer = this.at(expMs, () => this.close(conn, CLOSE.TOKEN_EXPIRED));
  }

  /**
   * Calls `fn` at `deadline` (Clock epoch ms), however far: Node's timers hold at most 2^31−1 ms (about 24.8 days), and an
   * external issuer's token may live longer, so a long wait is taken in steps of an hour.
   */
  private at(deadline: number, fn: () => void): ClockTimer {
    const ms = Math.max(0, deadline - this.clock.nowMs());
    let cancelled = false;
    let current: ClockTimer;
    const check = () => {
      if (cancelled) return;
      const left = deadline - this.clock.nowMs();
      if (left <= 0) fn();
      else current = this.clock.setTimeout(check, Math.min(left, TIMER_STEP_MS));
    };
    current = this.clock.setTimeout(check, Math.min(ms, TIMER_STEP_MS));
    return {
      cancel: () => {
        cancelled = true;
        current.cancel();
      },
    };
  }

  private warn(conn: Connection): void {
    const p = conn.principal;
    if (!p || conn.closed) return;
    const inSeconds = Math.max(0, Math.round((p.exp * 1000 - this.clock.nowMs()) / 1000));
    this.send(conn, 'auth.expiring', { expiresAt: new Date(p.exp * 1000).toISOString(), inSeconds });
  }

  /** A failed authentication: closed, counted against the address, and logged (rate-limited). */
  private refuse(conn: Connection, reason: CloseReason, why: string): void {
    this.close(conn, reason);
    this.failures
      .reserve([{ key: `ws:${conn.ip}`, limit: Number.MAX_SAFE_INTEGER }], this.clock.nowMs(), {
        windowMs: AUTH_FAILURE_WINDOW_MS,
        maxWaitMs: 0,
      })
      .catch((error: unknown) => this.logger.warn(`failed authentication not counted: ${String(error)}`));
    const log = this.failureLog;
    log.count++;
    log.lastReason = why;
    const nowMs = Date.now();
    if (nowMs - log.lastLogMs >= FAILURE_LOG_PERIOD_MS) {
      this.logger.warn(`${log.count} WebSocket authentication(s) refused (last: ${why}, from ${conn.ip})`);
      log.count = 0;
      log.lastLogMs = nowMs;
    }
  }

  private async subscribe(conn: Connection, message: ClientMessage): Promise<void> {
    const parsed = tenantTopics(message.data);
    if ('error' in parsed) return this.sendError(conn, ErrorCode.VALIDATION_FAILED, parsed.error, message.id);
    // Tenant topics show what GET /tenants/:id/members and /resources show: the same scopes.
    if (!conn.principal!.scopes.includes('tenants:read')) {
      return this.sendError(
        conn,
        ErrorCode.INSUFFICIENT_SCOPE,
        'Tenant topics need the tenants:read scope',
        message.id,
      );
    }
    // A token bound to a tenant (`tid`) acts in that tenant only, as over HTTP.
    const bound = conn.principal!.tenantId;
    if (bound !== null && parsed.tenants.some((t) => t !== bound.toLowerCase())) {
      return this.sendError(conn, ErrorCode.TENANT_MISMATCH, `This token is bound to tenant:${bound}`, message.id);
    }
    const fresh = parsed.tenants.filter((t) => !conn.tenants.has(t));
    if (conn.tenants.size + fresh.length > MAX_TOPICS_PER_CONNECTION) {
      return this.sendError(
        conn,
        ErrorCode.VALIDATION_FAILED,
        `A connection may subscribe to at most ${MAX_TOPICS_PER_CONNECTION} topics`,
        message.id,
      );
    }
    const accepted: string[] = [];
    const refused: string[] = [];
    for (const tenantId of parsed.tenants) {
      const permissions = await this.currentPermissions(conn, tenantId);
      if (conn.closed) return;
      if (permissions === null) {
        refused.push(tenantId);
        continue;
      }
      this.addSubscription(conn, tenantId, permissions);
      accepted.push(tenantId);
    }
    if (refused.length > 0) {
      this.sendError(
        conn,
        ErrorCode.TENANT_NOT_FOUND,
        `Not a member of ${refused.map((t) => `tenant:${t}`).join(', ')}`,
        message.id,
      );
    }
    if (accepted.length > 0) this.send(conn, 'subscribed', { topics: accepted.map((t) => `tenant:${t}`) }, message.id);
  }

  /** The caller's permissions in a tenant now (null: not a member). */
  private async currentPermissions(conn: Connection, tenantId: string): Promise<ReadonlySet<string> | null> {
    const membership = await this.stableRead(tenantId, () => this.tenants.membership(tenantId, conn.principal!.userId));
    return membership?.permissions ?? null;
  }

  /**
   * A read of a tenant's memberships, made again when who may see the tenant changed while it
   * was being read (a change heard meanwhile, or a Redis resubscription).
   */
  private async stableRead<T>(tenantId: string, read: () => Promise<T>): Promise<T> {
    let entry = this.reads.get(tenantId);
    if (!entry) this.reads.set(tenantId, (entry = { readers: 0, changes: 0 }));
    entry.readers++;
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        const changes = entry.changes;
        const resyncs = this.resyncs;
        const result = await read();
        if (entry.changes === changes && this.resyncs === resyncs) return result;
      }
    } finally {
      if (--entry.readers === 0 && this.reads.get(tenantId) === entry) this.reads.delete(tenantId);
    }
    // This tenant's memberships keep changing under the read: nothing stable to grant on.
    throw new AppError(ErrorCode.SERVICE_UNAVAILABLE, 'Tenant memberships are changing; subscribe again');
  }

  /** Who may see the tenant changed: its membership reads in flight are read again. */
  private accessChanged(tenantId: string): void {
    const entry = this.reads.get(tenantId);
    if (entry) entry.changes++;
  }

  private unsubscribe(conn: Connection, message: ClientMessage): void {
    const parsed = tenantTopics(message.data);
    if ('error' in parsed) return this.sendError(conn, ErrorCode.VALIDATION_FAILED, parsed.error, message.id);
    for (const tenantId of parsed.tenants) this.removeSubscription(conn, tenantId);
    this.send(conn, 'unsubscribed', { topics: parsed.tenants.map((t) => `tenant:${t}`) }, message.id);
  }

  // ---------------------------------------------------------------------------------------
  // Events
  // ---------------------------------------------------------------------------------------

  /**
   * New not-before entries (here or on another instance): the connections whose session,
   * token, secret or user falls under one are closed. A session, token or secret revoked is
   * a sign-out (4410), and so is a user whose account was deleted or disabled (`signOut`).
   * Any other user-wide entry is a role change: the sessions live on, so the connection is
   * told to refresh its token (4401), as an HTTP request with that token would be; an external
   * issuer's token is not refused by it (its `iat` is the issuer's; the roles are read anew).
   */
  private onRevoked({ entries }: GatehouseEvents['tokens.revoked']): void {
    for (const entry of entries) {
      const userWide = entry.key.startsWith('user:');
      for (const conn of Array.from(this.byKey.get(entry.key) ?? [])) {
        const p = conn.principal;
        if (!p || conn.closed) continue;
        if (userWide && entry.signOut) this.close(conn, CLOSE.SESSION_REVOKED);
        else if (p.kind === 'federated' && userWide) continue;
        else if (p.iat < entry.notBefore) this.close(conn, userWide ? CLOSE.INVALID_TOKEN : CLOSE.SESSION_REVOKED);
      }
    }
  }

  /**
   * An external identity was linked to or unlinked from the user: connections opened with an
   * external issuer's token are closed to verify again (4401); an unlinked identity's token
   * then no longer reaches this account.
   */
  private onIdentitiesChanged({ userId }: GatehouseEvents['identities.changed']): void {
    this.identityChanges++;
    for (const conn of Array.from(this.ownConnections(userId))) {
      if (conn.principal!.kind === 'federated') this.close(conn, CLOSE.INVALID_TOKEN);
    }
  }

  private onSessionCreated({ userId, session }: GatehouseEvents['sessions.created']): void {
    for (const conn of this.ownConnections(userId)) this.send(conn, 'session.created', session);
  }

  private onSessionsRevoked({ userId, sessionIds }: GatehouseEvents['sessions.revoked']): void {
    for (const conn of this.ownConnections(userId)) {
      for (const id of sessionIds) if (id !== conn.principal!.sessionId) this.send(conn, 'session.revoked', { id });
    }
  }

  private onResourceChanged({ action, ownerId, tenantId, resource }: GatehouseEvents['resources.changed']): void {
    const event = `resource.${action}`;
    // A connection gets what its token could read over HTTP: the resources:read scope, and
    // in a tenant the resources:read permission (mayReceive).
    if (tenantId === null) {
      if (ownerId === null) return;
      for (const conn of this.ownConnections(ownerId)) {
        if (conn.principal!.scopes.includes('resources:read')) this.send(conn, event, resource);
      }
      return;
    }
    for (const conn of this.byTenant.get(tenantId) ?? [])
      this.sendTenant(conn, tenantId, 'resources:read', event, resource);
  }

  /**
   * Whether a subscriber may receive a tenant event needing `permission`: it holds it in the
   * tenant and, for resources, its token has the resources:read scope (what the token could
   * read over HTTP).
   */
  private mayReceive(conn: Connection, tenantId: string, permission: string): boolean {
    if (!conn.tenants.get(tenantId)?.has(permission)) return false;
    return permission !== 'resources:read' || conn.principal!.scopes.includes('resources:read');
  }

  /**
   * Sends a tenant's event to a subscriber that may receive it, or, while a change of the
   * tenant's access that may concern it is committing elsewhere, keeps it until its
   * permissions have been read again (releaseHeld, which asks mayReceive again).
   */
  private sendTenant(conn: Connection, tenantId: string, permission: string, event: string, data: unknown): void {
    if (!this.mayReceive(conn, tenantId, permission)) return;
    if (this.isHeld(conn, tenantId)) this.hold(conn, tenantId, permission, event, data);
    else this.send(conn, event, data);
  }

  /** Whether a change of the tenant's access in progress may concern this subscriber. */
  private isHeld(conn: Connection, tenantId: string): boolean {
    for (const hold of this.holds.get(tenantId) ?? []) {
      if (hold.userId === null || hold.userId === conn.principal!.userId) return true;
    }
    return false;
  }

  /** Keeps a tenant event for the subscriber until its permissions are read again. */
  private hold(conn: Connection, tenantId: string, permission: string, event: string, data: unknown): void {
    let held = conn.held.get(tenantId);
    if (!held) conn.held.set(tenantId, (held = []));
    if (held.length >= MAX_HELD_EVENTS) {
      this.dropUnknown(conn, tenantId, new Error(`more than ${MAX_HELD_EVENTS} events held`));
      return;
    }
    held.push({ permission, event, data });
  }

  /**
   * Sends the events held for the tenant's subscribers that no change in progress concerns
   * any more, if they may still read them; a subscription that ended dropped its own.
   */
  private releaseHeld(tenantId: string): void {
    for (const conn of this.byTenant.get(tenantId) ?? []) {
      const held = conn.held.get(tenantId);
      if (!held || this.isHeld(conn, tenantId)) continue;
      conn.held.delete(tenantId);
      // Asked again: the permissions were read again, and the token may have been swapped.
      for (const { permission, event, data } of held) {
        if (this.mayReceive(conn, tenantId, permission)) this.send(conn, event, data);
      }
    }
  }

  private onTenantAccessChanged(e: GatehouseEvents['tenants.access_changed']): void {
    const { tenantId, userId, change } = e;
    this.accessChanged(tenantId);
    // Its permissions were read again already after the change's first announcement.
    const rechecked = e.changeId !== undefined && this.changesRechecked.delete(e.changeId);
    this.followUpAnnounced(tenantId, e.changeId);
    const subscribers = [...(this.byTenant.get(tenantId) ?? [])];
    if (change === 'member_added' && userId !== null) {
      const data = { tenantId, member: e.member ?? { userId } };
      const told = new Set<Connection>();
      for (const conn of subscribers) {
        if (conn.tenants.get(tenantId)?.has('members:read')) {
          if (conn.principal?.userId === userId) this.send(conn, 'tenant.member_added', data);
          else this.sendTenant(conn, tenantId, 'members:read', 'tenant.member_added', data);
          told.add(conn);
        }
      }
      for (const conn of this.ownConnections(userId)) {
        conn.toldRemoved.delete(tenantId);
        if (!told.has(conn) && mayReadTenants(conn)) this.send(conn, 'tenant.member_added', data);
      }
      return;
    }
    if (change === 'member_removed' && userId !== null) {
      const data = { tenantId, userId };
      const told = new Set<Connection>();
      for (const conn of subscribers) {
        if (conn.principal?.userId === userId) {
          this.send(conn, 'tenant.member_removed', data);
          told.add(conn);
        } else if (conn.tenants.get(tenantId)?.has('members:read')) {
          this.sendTenant(conn, tenantId, 'members:read', 'tenant.member_removed', data);
          told.add(conn);
        }
      }
      for (const conn of this.ownConnections(userId)) {
        // A re-check after this change's announcement inside its transaction may have told it already.
        const already = conn.toldRemoved.delete(tenantId);
        if (!told.has(conn) && !already && mayReadTenants(conn)) this.send(conn, 'tenant.member_removed', data);
        this.removeSubscription(conn, tenantId);
      }
      return;
    }
    if (change === 'tenant_deleted') {
      for (const conn of subscribers) {
        this.send(conn, 'tenant.member_removed', { tenantId, userId: conn.principal!.userId });
        this.removeSubscription(conn, tenantId);
      }
      return;
    }
    // Roles changed (one member's, or a role's definition): the permissions are read again,
    // unless that was done already after the change's first announcement.
    if (rechecked) return;
    void this.recheck(this.concerned(tenantId, userId), tenantId);
  }

  /**
   * Another instance is changing who may see a tenant, not yet committed
   * (TenantsService.changing): once the change ends, the subscriptions it may concern read
   * their permissions again, as its announcement after the commit would have them do, which
   * is lost if that instance loses Redis in between. This instance's own changes need nothing:
   * their announcement after the commit is delivered in-process.
   */
  private onTenantAccessChanging(
    { tenantId, userId, changeId }: GatehouseEvents['tenants.access_changing'],
    remote: boolean,
  ): void {
    if (!remote) return;
    this.changesRechecked.set(changeId, true);
    // A membership being read now may be read before the commit: read again.
    this.accessChanged(tenantId);
    void this.recheckAfterCommit(tenantId, userId, changeId);
  }

  private async recheckAfterCommit(tenantId: string, userId: string | null, changeId: string): Promise<void> {
    // From now until the re-check, the tenant's events for the subscribers concerned wait.
    const hold = { userId };
    let holds = this.holds.get(tenantId);
    if (!holds) this.holds.set(tenantId, (holds = new Set()));
    holds.add(hold);
    try {
      let failure: unknown = null;
      try {
        await this.changeEnded(tenantId, changeId);
      } catch (error) {
        failure = error;
      }
      // The subscriptions as they are once the change has ended, with those made while it
      // committed (a membership read before the commit, returned after: read again).
      this.accessChanged(tenantId);
      const affected = this.concerned(tenantId, userId);
      if (failure !== null) {
        for (const conn of affected) this.dropUnknown(conn, tenantId, failure);
        // Not read after the change: its announcement after the commit must read again, for
        // the subscriptions made meanwhile (a read before a late commit sees the old roles),
        // and so does the wait in the background, should that announcement be lost too.
        // (Not when that announcement has come already: it read them.)
        if (this.changesRechecked.delete(changeId)) this.followUp(tenantId, userId, changeId);
        return;
      }
      await this.recheck(affected, tenantId);
    } finally {
      holds.delete(hold);
      if (holds.size === 0 && this.holds.get(tenantId) === holds) this.holds.delete(tenantId);
      this.releaseHeld(tenantId);
    }
  }

  /** The subscriptions to a tenant that a change of one member's access (or everyone's: null) concerns. */
  private concerned(tenantId: string, userId: string | null): Connection[] {
    return this.concernedBy(tenantId, userId === null ? null : new Set([userId]));
  }

  private concernedBy(tenantId: string, userIds: ReadonlySet<string> | null): Connection[] {
    return [...(this.byTenant.get(tenantId) ?? [])].filter(
      (conn) => userIds === null || (conn.principal !== null && userIds.has(conn.principal.userId)),
    );
  }

  /**
   * A change whose wait gave up: the subscriptions it concerns have ended, and their members
   * subscribe again, reading their permissions from before the change. Its announcement
   * after the commit has them read again; should it be lost as well (the other instance
   * losing Redis as it commits), this instance asks again, after growing pauses, whether the
   * change has ended, without waiting for it (no place among MAX_CHANGE_WAITS, one short
   * statement), and reads the permissions of the subscriptions concerned once it has. One
   * follow-up per tenant, for its latest such change and every member they concern. Still
   * running after CHANGE_FOLLOW_UP_MS (or the database not answering), those subscriptions
   * end with an error, as after the first wait: subscribing again reads what is current.
   */
  private followUp(tenantId: string, userId: string | null, changeId: string): void {
    const until = Date.now() + CHANGE_FOLLOW_UP_MS;
    const running = this.followUps.get(tenantId);
    if (running) {
      running.changeId = changeId;
      running.until = until;
      if (userId === null) running.userIds = null;
      else running.userIds?.add(userId);
      return;
    }
    const entry: FollowUp = { changeId, userIds: userId === null ? null : new Set([userId]), until };
    this.followUps.set(tenantId, entry);
    void this.followUpUntilEnded(tenantId, entry);
  }

  private async followUpUntilEnded(tenantId: string, entry: FollowUp): Promise<void> {
    let pause = CHANGE_FOLLOW_UP_FIRST_PAUSE_MS;
    for (;;) {
      // Unreferenced: a shutdown does not wait for it.
      await sleep(pause, undefined, { ref: false });
      pause = Math.min(pause * 2, CHANGE_FOLLOW_UP_LAST_PAUSE_MS);
      // Its announcement came (and they were read), the tenant was evicted, or the instance stops.
      if (this.closing || this.followUps.get(tenantId) !== entry) return;
      let ended = false;
      try {
        ended = await this.tenants.hasChangeEnded(entry.changeId, CHANGE_WAIT_GIVE_UP_MS);
      } catch {
        // Asked again after the next pause, or given up at the end.
      }
      if (this.closing || this.followUps.get(tenantId) !== entry) return;
      if (!ended && Date.now() < entry.until) continue;
      this.followUps.delete(tenantId);
      this.accessChanged(tenantId);
      const conns = this.concernedBy(tenantId, entry.userIds);
      if (ended) {
        await this.recheck(conns, tenantId);
        return;
      }
      this.logger.warn(
        `tenant ${tenantId}: change ${entry.changeId} still running after ${CHANGE_FOLLOW_UP_MS / 1000} s (or the database did not answer); the subscriptions it concerns end`,
      );
      const failure = new Error('a change of the tenant did not end in time');
      for (const conn of conns) this.dropUnknown(conn, tenantId, failure);
      return;
    }
  }

  /**
   * The announcement after the commit of a change: if it is the one a follow-up asks about,
   * the change has ended, and the members of every change the follow-up stood for are read
   * again now (the announcement reads only those of its own change).
   */
  private followUpAnnounced(tenantId: string, changeId: string | undefined): void {
    const entry = this.followUps.get(tenantId);
    if (changeId === undefined || entry?.changeId !== changeId) return;
    this.followUps.delete(tenantId);
    void this.recheck(this.concernedBy(tenantId, entry.userIds), tenantId);
  }

  /**
   * Resolves once the change has ended (TenantAccessService.awaitChange, which holds a pooled
   * database connection while it waits; rejects after CHANGE_WAIT_TIMEOUT_MS). At most
   * MAX_CHANGE_WAITS run at once, so that a burst of changes to many tenants leaves the pool
   * to the requests. A change heard while a wait for an earlier change of the same tenant is
   * still queued takes that wait over: changes to one tenant run one at a time (its row lock),
   * and Redis delivers their announcements in that order, so the earlier one has ended.
   */
  private changeEnded(tenantId: string, changeId: string): Promise<void> {
    const queued = this.changeWaitsQueued.get(tenantId);
    if (queued) {
      queued.changeId = changeId;
      return queued.done;
    }
    let settle!: { resolve: () => void; reject: (error: unknown) => void };
    const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    const entry = {
      changeId,
      done,
      start: () => {
        this.changeWaitsQueued.delete(tenantId);
        this.changeWaitsRunning++;
        // Bounded here too: the place among MAX_CHANGE_WAITS is freed whatever the wait does.
        withTimeout(
          this.tenants.awaitChange(entry.changeId, CHANGE_WAIT_TIMEOUT_MS, CHANGE_WAIT_GIVE_UP_MS),
          CHANGE_WAIT_GIVE_UP_MS,
        )
          .then(settle.resolve, settle.reject)
          .finally(() => {
            this.changeWaitsRunning--;
            this.startChangeWaits();
          });
      },
    };
    this.changeWaitsQueued.set(tenantId, entry);
    this.startChangeWaits();
    return entry.done;
  }

  private startChangeWaits(): void {
    for (const next of this.changeWaitsQueued.values()) {
      if (this.changeWaitsRunning >= MAX_CHANGE_WAITS) return;
      next.start();
    }
  }

  /**
   * This instance's Redis subscription works again after a break: changes of who may see a
   * tenant announced meanwhile were lost, so every tenant subscription reads its permissions
   * again (a member removed meanwhile is told `tenant.member_removed` and unsubscribed).
   * Revocations need nothing here: RevocationService replays those it finds in the database.
   */
  private recheckAllTenants(): void {
    this.resyncs++;
    const byTenant = new Map<string, Connection[]>();
    for (const conn of this.connections.values()) {
      for (const tenantId of conn.tenants.keys()) {
        let conns = byTenant.get(tenantId);
        if (!conns) byTenant.set(tenantId, (conns = []));
        conns.push(conn);
      }
    }
    for (const [tenantId, conns] of byTenant) void this.recheck(conns, tenantId);
  }

  /**
   * Reads the permissions of these subscriptions to a tenant again, for all of them in one
   * statement (a change of a role's definition concerns every subscriber of the tenant: one
   * read each stalled the event loop and the pool with 10,000 subscribers), and applies them:
   * a subscriber who is no longer a member is told `tenant.member_removed` and unsubscribed.
   */
  private async recheck(conns: readonly Connection[], tenantId: string): Promise<void> {
    if (conns.length === 0) return;
    let found: Map<string, Membership>;
    try {
      // PostgreSQL answers ids in lower case; a token's `sub` is compared the same way.
      const userIds = [...new Set(conns.map((conn) => conn.principal!.userId.toLowerCase()))];
      found = await this.stableRead(tenantId, () => this.tenants.memberships(tenantId, userIds));
    } catch (error) {
      for (const conn of conns) this.dropUnknown(conn, tenantId, error);
      return;
    }
    for (const conn of conns) {
      if (conn.closed || !conn.tenants.has(tenantId)) continue;
      const membership = found.get(conn.principal!.userId.toLowerCase());
      if (membership === undefined) {
        this.send(conn, 'tenant.member_removed', { tenantId, userId: conn.principal!.userId });
        this.removeSubscription(conn, tenantId);
        conn.toldRemoved.add(tenantId);
      } else {
        conn.tenants.set(tenantId, membership.permissions);
      }
    }
  }

  /** Fail closed: without its permissions known, the subscription ends. */
  private dropUnknown(conn: Connection, tenantId: string, error: unknown): void {
    if (conn.closed || !conn.tenants.has(tenantId)) return;
    this.logger.warn(`tenant subscription dropped (permissions unknown): ${String(error)}`);
    this.removeSubscription(conn, tenantId);
    this.sendError(conn, ErrorCode.SERVICE_UNAVAILABLE, `Subscription to tenant:${tenantId} ended; subscribe again`);
  }

  // ---------------------------------------------------------------------------------------
  // Bookkeeping
  // ---------------------------------------------------------------------------------------

  /** The authenticated connections that speak for this user (not as an acting service user). */
  private *ownConnections(userId: string): Iterable<Connection> {
    for (const conn of this.byKey.get(`user:${userId}`) ?? []) {
      if (!conn.closed && conn.principal?.userId === userId) yield conn;
    }
  }

  private userConnections(userId: string): number {
    let n = 0;
    for (const _ of this.ownConnections(userId)) n++;
    return n;
  }

  private index(conn: Connection): void {
    const p = conn.principal!;
    conn.keys = [`user:${p.userId}`, `jti:${p.jti}`];
    if (p.sessionId) conn.keys.push(`sid:${p.sessionId}`);
    if (p.actorId) conn.keys.push(`user:${p.actorId}`);
    for (const key of conn.keys) {
      let set = this.byKey.get(key);
      if (!set) this.byKey.set(key, (set = new Set()));
      set.add(conn);
    }
  }

  private unindex(conn: Connection): void {
    for (const key of conn.keys) {
      const set = this.byKey.get(key);
      set?.delete(conn);
      if (set?.size === 0) this.byKey.delete(key);
    }
    conn.keys = [];
  }

  private addSubscription(conn: Connection, tenantId: string, permissions: ReadonlySet<string>): void {
    conn.tenants.set(tenantId, permissions);
    conn.toldRemoved.delete(tenantId);
    let set = this.byTenant.get(tenantId);
    if (!set) this.byTenant.set(tenantId, (set = new Set()));
    set.add(conn);
  }

  private removeSubscription(conn: Connection, tenantId: string): void {
    conn.tenants.delete(tenantId);
    conn.held.delete(tenantId);
    const set = this.byTenant.get(tenantId);
    set?.delete(conn);
    if (set?.size === 0) this.byTenant.delete(tenantId);
  }

  private changePending(ip: string, delta: number): void {
    const n = (this.pendingByIp.get(ip) ?? 0) + delta;
    if (n <= 0) this.pendingByIp.delete(ip);
    else this.pendingByIp.set(ip, n);
  }

  /** Takes a connection out of every index and cancels its timers (idempotent). */
  private forget(conn: Connection): void {
    conn.cancelTimers();
    this.unindex(conn);
    for (const tenantId of Array.from(conn.tenants.keys())) this.removeSubscription(conn, tenantId);
  }

  private close(conn: Connection, reason: CloseReason): void {
    if (conn.closed) return;
    conn.closed = true;
    this.forget(conn);
    conn.ws.close(reason.code, reason.reason);
    // ws waits 30 s for the client's half of the close handshake; a client that ignores it
    // does not keep the socket (and its slot) that long.
    setTimeout(() => conn.ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  /**
   * One tick of liveness: the connections of the next slot. Each slot comes round once per
   * WS_PING_INTERVAL, so a connection is pinged that often and has that long to answer, as
   * when every connection was pinged at once; a connection that has not answered its previous
   * ping is cut.
   */
  private ping(): void {
    const slot = this.pingSlots[this.pingTick]!;
    this.pingTick = (this.pingTick + 1) % this.pingSlots.length;
    for (const conn of slot) {
      if (!conn.alive) {
        conn.ws.terminate();
        continue;
      }
      conn.alive = false;
      conn.ws.ping();
    }
  }

  /**
   * Sends one frame, written out with the socket's other frames of this phase of the event
   * loop (WriteBatch): in the next check phase, or sooner when BATCH_FLUSH_BYTES wait or the
   * batch is BATCH_MAX_DELAY_MS old.
   */
  private send(conn: Connection, event: string, data: unknown, id?: string | number): void {
    if (conn.closed || conn.ws.readyState !== conn.ws.OPEN) return;
    if (conn.ws.bufferedAmount > MAX_BUFFERED_BYTES) return this.close(conn, CLOSE.BACKPRESSURE);
    this.batch.hold(conn.socket);
    conn.ws.send(JSON.stringify(id === undefined ? { event, data } : { event, data, id }));
    this.batch.wrote(conn.socket);
  }

  private sendError(conn: Connection, code: ErrorCode, message: string, id?: string | number): void {
    this.send(conn, 'error', { code, message }, id);
  }
}

/** Tenant membership events show what the tenants:read scope shows over HTTP. */
function mayReadTenants(conn: Connection): boolean {
  return conn.principal?.scopes.includes('tenants:read') === true;
}

/** Whether an Origin is the requested host itself (a page of this server, over http or https). */
function sameHost(origin: string, host: string | undefined): boolean {
  return host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
}

/** Re-authentication keeps the identity: the same user, through the same kind of token and client. */
function sameIdentity(a: Principal, b: Principal): boolean {
  return a.userId === b.userId && a.kind === b.kind && a.clientId === b.clientId && a.actorId === b.actorId;
}
