/**
 * Live events from Gatehouse (contract v2 §F): one WebSocket per signed-in tab, at `/ws` on the
 * page's own host (`wss:` on an https page), speaking the subprotocol `gatehouse.v1`.
 *
 * - Authentication is the first message, `{event: 'auth', data: {token}}`, with the client's
 *   access token (never in the URL). Before the token runs out (at 75 % of its life, at most a
 *   minute before `exp`, and no later than the server's `auth.expiring` says) the client
 *   refreshes it through its usual refresh (`GatehouseClient.refresh()`, shared with the 401s
 *   and the other tabs), and the new token is sent again on the same socket. Any other new
 *   token (a 401's refresh, another tab's, a tenant switch) is sent the same way.
 * - Personal events come on their own; the selected tenant's (`tid`) are subscribed to
 *   (`tenant:<id>`), and the subscription follows a switch.
 * - Closes: 4401 (token expired or refused, e.g. after a role change) refreshes and reconnects
 *   at once (a second 4401 in a row backs off); 4410 (session revoked) signs the page out
 *   (`GatehouseClient.sessionEnded()`), no retry; 4400, 4403, 4429 and 1008/1009 stop live
 *   events (`status` 'stopped', with the code and reason, for a notice); anything else (1001
 *   shutdown, 1006 lost, 1013 try later, 4408, 4500 ...) reconnects after an exponential
 *   backoff with jitter (half to all of 1 s, 2 s, 4 s ... up to 30 s), with a token that has
 *   life left (refreshed first when it has not).
 * - `stop()` on sign-out closes the socket (1000).
 *
 * Events: each server event under its own name (`session.created`, `resource.updated` ...)
 * as a CustomEvent whose `detail` is the event's `data`; `status` (CustomEvent<LiveStatus>)
 * when the connection's state changes.
 */
import type { GatehouseClient, Resource, Session } from './gatehouse-client.js';

export const SUBPROTOCOL = 'gatehouse.v1';

/** The events the server sends, by name, with their data. */
export interface LiveEventMap {
  /** A session opened by the user elsewhere (GET /auth/sessions's item without `current`). */
  'session.created': Omit<Session, 'current'>;
  'session.revoked': { id: string };
  'resource.created': Resource;
  'resource.updated': Resource;
  'resource.deleted': { id: string };
  'tenant.member_added': { tenantId: string; member: { userId: string } };
  'tenant.member_removed': { tenantId: string; userId: string };
}

export type LiveEventName = keyof LiveEventMap;

/**
 * 'off': not started, or stopped by sign-out; 'connecting': opening and authenticating;
 * 'live': authenticated, events arrive; 'reconnecting': waiting to try again;
 * 'stopped': the server refused this client for good (`code`, `reason` say why).
 */
export type LiveState = 'off' | 'connecting' | 'live' | 'reconnecting' | 'stopped';

export interface LiveStatus {
  state: LiveState;
  /**
   * With 'live': this is not the first connection since `start()`. Events sent while there
   * was none are not replayed (the server keeps no history): what they would have shown is
   * read again.
   */
  reconnected?: boolean;
  /** The close that led here (for 'stopped' and 'reconnecting'). */
  code?: number;
  reason?: string;
}

export interface LiveOptions {
  /** The WebSocket URL; default: `ws(s)://<this page's host>/ws`. */
  url?: string;
  /** The first reconnection delay's ceiling (ms), doubled per failed attempt; default 1000. */
  initialDelayMs?: number;
  /** The longest reconnection delay (ms); default 30 000. */
  maxDelayMs?: number;
  /** The jitter's source (tests pass a fixed one); default Math.random. */
  random?: () => number;
}

/** Closes after which trying again cannot help: the page shows why and stops. */
const FINAL = new Set([1008, 1009, 4400, 4403, 4429]);
/** A token is renewed this long before it expires at most, and at 80 % of its life at least. */
const RENEW_LEAD_MAX_MS = 60_000;
const RENEW_LEAD_SHARE = 0.25;
/** What counts as an event name from the server (the map's names and any future one). */
const EVENT_NAME = /^[a-z][a-z_]*(\.[a-z_]+)+$/;

export function defaultUrl(): string {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
}

export class LiveConnection extends EventTarget {
  readonly #client: GatehouseClient;
  readonly #url: string;
  readonly #initialDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #random: () => number;

  #state: LiveState = 'off';
  /** Started and not stopped: a close is followed by what its code says. */
  #running = false;
  /** Counts start()s: an opening that waited for a refresh across a restart gives up. */
  #run = 0;
  /** The session the connection is for (a sign-in to another one starts over). */
  #sessionId: string | null = null;
  #ws: WebSocket | null = null;
  /** The socket's `auth` was answered with `auth.ok` (at least once). */
  #authenticated = false;
  /** Some socket since `start()` was authenticated: the next one is a reconnection. */
  #wasLive = false;
  /** The token last sent in an `auth` message. */
  #sentToken: string | null = null;
  /** The tenant subscribed to on this socket. */
  #tenant: string | null = null;
  /** Failed attempts since the last `auth.ok`: the backoff's exponent. */
  #attempt = 0;
  /** 4401s in a row: the second one backs off (a token refused again and again). */
  #rejections = 0;
  /** The next open must refresh first (the token it would send was refused). */
  #mustRenew = false;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #renewTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(client: GatehouseClient, options: LiveOptions = {}) {
    super();
    this.#client = client;
    this.#url = options.url ?? defaultUrl();
    this.#initialDelayMs = options.initialDelayMs ?? 1000;
    this.#maxDelayMs = options.maxDelayMs ?? 30_000;
    this.#random = options.random ?? Math.random;
    client.addEventListener('tokenchanged', () => this.#onToken());
  }

  /** Whether this browser can have live events at all. */
  static get supported(): boolean {
    return typeof WebSocket === 'function';
  }

  get state(): LiveState {
    return this.#state;
  }

  /**
   * Connects for the client's session (signed in). Does nothing when already running for that
   * session; starts over for another one.
   */
  start(): void {
    if (!LiveConnection.supported || !this.#client.signedIn) return;
    if (this.#running && this.#sessionId === this.#client.sessionId) return;
    this.stop();
    this.#running = true;
    this.#run += 1;
    this.#sessionId = this.#client.sessionId;
    this.#wasLive = false;
    this.#attempt = 0;
    this.#rejections = 0;
    this.#mustRenew = false;
    void this.#open();
  }

  /** Closes the connection (1000) and forgets it: on sign-out. */
  stop(): void {
    const ws = this.#ws;
    this.#running = false;
    this.#ws = null;
    this.#authenticated = false;
    this.#sentToken = null;
    this.#tenant = null;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#renewTimer);
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
    this.#setState({ state: 'off' });
  }

  // ---------------------------------------------------------------------------

  async #open(): Promise<void> {
    this.#setState({ state: this.#attempt === 0 ? 'connecting' : 'reconnecting' });
    if (this.#mustRenew || !this.#hasLifeLeft()) {
      const run = this.#run;
      const renewed = await this.#renew();
      // Signed out meanwhile (a refresh that found the session over), or started over.
      if (!this.#running || run !== this.#run) return;
      if (!renewed) return this.#retryLater();
      this.#mustRenew = false;
    }
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.#url, SUBPROTOCOL);
    } catch (error) {
      // A URL the browser refuses (mixed content, bad scheme): nothing to try again.
      this.#running = false;
      this.#setState({ state: 'stopped', code: 0, reason: error instanceof Error ? error.name : 'ERROR' });
      return;
    }
    this.#ws = ws;
    this.#authenticated = false;
    this.#tenant = null;
    ws.addEventListener('open', () => {
      if (ws === this.#ws) this.#sendAuth();
    });
    ws.addEventListener('message', (event: MessageEvent<unknown>) => {
      if (ws === this.#ws) this.#onMessage(event.data);
    });
    ws.addEventListener('close', (event) => {
      if (ws === this.#ws) this.#onClose(event.code, event.reason);
    });
  }

  #send(event: string, data: unknown): void {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify({ event, data }));
  }

  #sendAuth(): void {
    const token = this.#client.accessToken;
    if (!token) return;
    clearTimeout(this.#renewTimer); // rescheduled by the answer, for this token
    this.#sentToken = token;
    this.#send('auth', { token });
  }

  #onMessage(raw: unknown): void {
    if (typeof raw !== 'string') return;
    let message: unknown;
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    if (message === null || typeof message !== 'object') return;
    const { event, data } = message as { event?: unknown; data?: unknown };
    if (typeof event !== 'string') return;
    switch (event) {
      case 'auth.ok': {
        const first = !this.#authenticated;
        this.#authenticated = true;
        this.#attempt = 0;
        this.#rejections = 0;
        // A token that came while this one was being checked goes next; else renew this one in time.
        if (this.#client.accessToken !== this.#sentToken) this.#sendAuth();
        else this.#scheduleRenewal(null);
        if (first) {
          this.#setState({ state: 'live', ...(this.#wasLive ? { reconnected: true } : {}) });
          this.#wasLive = true;
          this.#syncTenant();
        }
        return;
      }
      case 'auth.expiring': {
        const inSeconds = (data as { inSeconds?: unknown } | null)?.inSeconds;
        this.#scheduleRenewal(typeof inSeconds === 'number' && inSeconds >= 0 ? inSeconds * 1000 : 0);
        return;
      }
      // The answers to subscribe/unsubscribe, and non-fatal errors (a tenant left meanwhile).
      case 'subscribed':
      case 'unsubscribed':
      case 'error':
        return;
      default:
        if (EVENT_NAME.test(event)) this.dispatchEvent(new CustomEvent(event, { detail: data }));
    }
  }

  #onClose(code: number, reason: string): void {
    this.#ws = null;
    this.#authenticated = false;
    this.#tenant = null;
    clearTimeout(this.#renewTimer);
    if (!this.#running) return;
    if (code === 4410) {
      // Signed out on the server (logout elsewhere, password or MFA change, disabled ...).
      this.#running = false;
      this.#setState({ state: 'off', code, reason });
      this.#client.sessionEnded();
      return;
    }
    if (FINAL.has(code)) {
      this.#running = false;
      this.#setState({ state: 'stopped', code, reason });
      return;
    }
    if (code === 4401) {
      // Expired or refused (a role change ends every token of the user): a new token, unless
      // another one has come meanwhile (a 401's refresh, another tab's).
      this.#rejections += 1;
      this.#mustRenew = this.#client.accessToken === this.#sentToken;
      if (this.#rejections === 1) {
        this.#setState({ state: 'reconnecting', code, reason });
        void this.#open();
        return;
      }
      this.#mustRenew = true;
    }
    this.#retryLater({ code, reason });
  }

  /** Tries again after the backoff: a random delay in [d/2, d], d = 1 s, 2 s, 4 s ... ≤ 30 s. */
  #retryLater(close: { code?: number; reason?: string } = {}): void {
    const ceiling = Math.min(this.#maxDelayMs, this.#initialDelayMs * 2 ** this.#attempt);
    this.#attempt += 1;
    const delay = ceiling / 2 + (this.#random() * ceiling) / 2;
    this.#setState({ state: 'reconnecting', ...close });
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      if (this.#running && !this.#ws) void this.#open();
    }, delay);
  }

  /** A new token through the client's refresh; false on a passing failure or when signed out. */
  async #renew(): Promise<boolean> {
    try {
      return await this.#client.refresh();
    } catch {
      return false; // network, 429, 5xx: the session may be fine; tried again later
    }
  }

  /** How long before the held token's expiry it is renewed (ms). */
  #lead(): number {
    const life = this.#client.tokenLifetime;
    if (!life) return 0;
    return Math.min(RENEW_LEAD_MAX_MS, (life.expiresAt - life.obtainedAt) * RENEW_LEAD_SHARE);
  }

  #hasLifeLeft(): boolean {
    const life = this.#client.tokenLifetime;
    return life !== null && life.expiresAt - Date.now() > this.#lead();
  }

  /**
   * Renews the token before it runs out: `#lead()` before its expiry, or before the server's
   * warning says it expires (`warnedInMs` from now), whichever comes first. A warning that
   * comes at once (a token shorter-lived than WS_EXPIRY_WARNING) does not renew at once.
   */
  #scheduleRenewal(warnedInMs: number | null): void {
    clearTimeout(this.#renewTimer);
    const life = this.#client.tokenLifetime;
    if (!life || this.#client.accessToken !== this.#sentToken) return; // a newer one is on its way
    const expiresAt = warnedInMs === null ? life.expiresAt : Math.min(life.expiresAt, Date.now() + warnedInMs);
    const delay = Math.max(0, expiresAt - this.#lead() - Date.now());
    this.#renewTimer = setTimeout(() => {
      // A new token comes back through `tokenchanged`; a failure leaves the socket to its
      // expiry (4401), and the reconnection refreshes again.
      if (this.#running && this.#authenticated) void this.#renew();
    }, delay);
  }

  /** A new token held by the client: sent on the socket (same session), and the tenant followed. */
  #onToken(): void {
    if (!this.#running || this.#client.sessionId !== this.#sessionId) return;
    if (this.#authenticated && this.#client.accessToken !== this.#sentToken) this.#sendAuth();
    this.#syncTenant();
  }

  /** Subscribes to the selected tenant's topic (and leaves the previous one). */
  #syncTenant(): void {
    if (!this.#authenticated) return;
    const wanted = this.#client.tenantId;
    if (wanted === this.#tenant) return;
    if (this.#tenant) this.#send('unsubscribe', { topics: [`tenant:${this.#tenant}`] });
    if (wanted) this.#send('subscribe', { topics: [`tenant:${wanted}`] });
    this.#tenant = wanted;
  }

  #setState(status: LiveStatus): void {
    const changed = status.state !== this.#state;
    this.#state = status.state;
    if (changed || status.code !== undefined) {
      this.dispatchEvent(new CustomEvent<LiveStatus>('status', { detail: status }));
    }
  }
}
