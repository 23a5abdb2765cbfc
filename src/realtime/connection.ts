import type { Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import type { ClockTimer } from '../common/clock.js';
import type { Principal } from '../tokens/principal.js';

/** One WebSocket and what the server knows of it. */
export class Connection {
  /** Who authenticated (null until the first `auth` succeeds). */
  principal: Principal | null = null;
  /** The revocation keys it is indexed under (`sid:`, `user:`, `jti:`). */
  keys: string[] = [];
  /** Subscribed tenants, with the caller's permissions there when checked. */
  readonly tenants = new Map<string, ReadonlySet<string>>();
  /**
   * Tenants a re-check found it removed from and told so (`tenant.member_removed`): the
   * removal's own announcement, arriving after, is not told again. Emptied of a tenant when
   * the user is added back or subscribes to it again.
   */
  readonly toldRemoved = new Set<string>();
  /** Tenant events kept for it while a change of that tenant's access commits (the gateway's holds). */
  readonly held = new Map<string, Array<{ permission: string; event: string; data: unknown }>>();
  /** The no-`auth` timer, then the expiry warning and the expiry itself. */
  authTimer: ClockTimer | null = null;
  warnTimer: ClockTimer | null = null;
  expiryTimer: ClockTimer | null = null;
  /** Answered the last ping (liveness). */
  alive = true;
  /** The gateway's ping slot it is in. */
  pingSlot = 0;
  /** Messages in the current rate window, and when it started (clock ms). */
  windowStartMs = 0;
  messages = 0;
  /** Messages are handled one after the other, in arrival order. */
  queue: Promise<void> = Promise.resolve();
  /** Closed (or closing): no more messages are handled and nothing more is sent. */
  closed = false;

  constructor(
    readonly ws: WebSocket,
    /** The client address (X-Forwarded-For only as TRUST_PROXY allows). */
    readonly ip: string,
    /** The TCP socket under `ws` (the upgrade request's): its frames are written out in batches (WriteBatch). */
    readonly socket: Writable,
  ) {}

  cancelTimers(): void {
    this.authTimer?.cancel();
    this.warnTimer?.cancel();
    this.expiryTimer?.cancel();
    this.authTimer = this.warnTimer = this.expiryTimer = null;
  }
}
