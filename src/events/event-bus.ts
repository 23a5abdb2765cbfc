import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { InjectRedis, connectOrExplain } from '../redis/redis.module.js';

/** The Redis channel every instance publishes its events on and listens to. */
export const EVENTS_CHANNEL = 'gatehouse:events';

/** How often an instance with Redis publishes a beat on EVENTS_CHANNEL that it must hear back. */
export const BEAT_INTERVAL_MS = 1000;
/**
 * A subscription that has not heard its own beat for this long is taken as broken: events
 * published meanwhile may have been lost (see EventBus.synced).
 */
export const BEAT_TIMEOUT_MS = 3000;
/**
 * While no beat comes back, the subscriber's connection is dropped and made again this often:
 * a connection that hangs without closing (a proxy that keeps it open) would otherwise stay
 * broken until TCP gives up on it.
 */
const RECONNECT_EVERY_MS = 10_000;

/**
 * Every event, by name, with its payload (JSON-serialisable: it crosses instances).
 * - `tokens.revoked`: revocation entries (key, notBefore in epoch seconds, until in epoch ms;
 *   `signOut` on a user key whose account was deleted or disabled); every instance adds them
 *   to its cache, and real-time connections close on them.
 * - `identities.changed`, `identities.changing`: an external identity linked or unlinked
 *   (federation link cache), after and before the change commits.
 */
export interface GatehouseEvents {
  'tokens.revoked': { entries: Array<{ key: string; notBefore: number; untilMs: number; signOut?: boolean }> };
  /**
   * An external identity was linked to or unlinked from a user: every instance forgets what
   * it cached about that (issuer, subject) and that user.
   */
  'identities.changed': { userId: string; issuer: string; subject: string };
  /**
   * The same, announced inside the transaction that links or unlinks, before it commits:
   * every instance forgets the identity's link, and its reads from then on wait for the
   * change and see it (IdentitiesRepository.findLink's locks). The announcement travels while
   * the change commits, so it is usually heard before anyone can learn of the change and send
   * the next request elsewhere; `identities.changed` follows the commit.
   */
  'identities.changing': { userId: string; issuer: string; subject: string };
  /**
   * A client's row or one of its secrets changed (any admin change but a new secret): every
   * instance drops what it cached about that client's authentications (ClientAuthCache).
   */
  'clients.changed': { id: string };
  /** A session was opened: its public view (as GET /auth/sessions lists it, without `current`). */
  'sessions.created': { userId: string; session: SessionEvent };
  /** Sessions of a user were revoked (logout, logout-all, deletion, reuse, eviction ...). */
  'sessions.revoked': { userId: string; sessionIds: string[] };
  /**
   * A resource was created, updated or deleted: `resource` is its public view (only the id
   * once deleted); personal ones reach their owner, tenant ones the tenant's subscribers.
   */
  'resources.changed': {
    action: 'created' | 'updated' | 'deleted';
    ownerId: string | null;
    tenantId: string | null;
    resource: { readonly id: string };
  };
  /**
   * Who may see a tenant's events changed: a member added (`member` is their public view),
   * removed, given other roles (`userId` set), or the tenant's roles or the tenant itself
   * changed (`userId` null, `deleted` when it is gone).
   */
  'tenants.access_changed': {
    tenantId: string;
    userId: string | null;
    change: 'member_added' | 'member_removed' | 'roles_changed' | 'tenant_changed' | 'tenant_deleted';
    member?: object;
    /** The change's id, as in its `tenants.access_changing` (those announced twice). */
    changeId?: string;
  };
  /**
   * The same kind of change, announced inside its transaction once it is written and before it
   * commits, when it can take access away (a member removed or given other roles, a role
   * redefined, the tenant deleted; `userId` null for the whole tenant). A failure to publish
   * fails the change: it rolls back rather than commit unannounced. The other instances wait
   * for the commit and read the subscribers' permissions again, so a lost
   * `tenants.access_changed` after the commit cannot leave a removed member subscribed there.
   */
  'tenants.access_changing': { tenantId: string; userId: string | null; changeId: string };
}

/** A session as the real-time events show it (GET /auth/sessions's item without `current`). */
export interface SessionEvent {
  id: string;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  userAgent: string | null;
  ip: string | null;
}

export type EventName = keyof GatehouseEvents;

/** Where an event came from: this instance, or another one through Redis. */
export interface EventMeta {
  remote: boolean;
}

type Handler<K extends EventName> = (payload: GatehouseEvents[K], meta: EventMeta) => void;

/**
 * Told when this instance's subscription breaks (`synced` false: events from the other
 * instances may be lost from about `sinceMs`, epoch ms of real time, on) and when it works
 * again (`synced` true).
 */
export type SyncHandler = (synced: boolean, sinceMs: number) => void;

/**
 * A typed in-process event bus that also reaches the other instances: `emit` calls this
 * instance's handlers at once and, with REDIS_URL, publishes the event on
 * `gatehouse:events`, where every other instance hands it to its own handlers. Handlers
 * are synchronous and must not throw (an exception is logged, never propagated).
 */
@Injectable()
export class EventBus implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Events');
  private readonly emitter = new EventEmitter({ captureRejections: false });
  /** Tells this instance's own messages apart when Redis echoes them back. */
  private readonly instanceId = randomUUID();
  private subscriber: Redis | null = null;
  private readonly syncHandlers = new Set<SyncHandler>();
  private inSync = true;
  private breakCount = 0;
  /** Real time (epoch ms) when this instance last heard its own beat. */
  private heardMs = 0;
  /** Real time when the beat being published was sent (0: none outstanding). */
  private beatSentMs = 0;
  /** The number of the last beat published, and of the last one heard back. */
  private beatSeq = 0;
  private heardSeq = 0;
  /** Beats whose publish failed: never delivered, so their absence is no gap. */
  private readonly unsentBeats = new Set<number>();
  /** Real time of the last reconnection forced on a hanging subscription. */
  private reconnectedMs = 0;
  private beater: NodeJS.Timeout | undefined;
  /** Shutting down: the subscriber's connection closes on purpose. */
  private closing = false;

  constructor(@InjectRedis() private readonly redis: Redis | null) {
    this.emitter.setMaxListeners(0);
  }

  /**
   * Whether events travel to other instances (REDIS_URL), where one can be missed: Redis
   * delivers a published message only to the subscribers connected at that moment. Without
   * Redis there is one instance (REDIS_URL is required for more) and every event reaches its
   * handlers here, synchronously, before emit() returns.
   */
  get crossInstance(): boolean {
    return this.redis !== null;
  }

  /**
   * False while this instance may be missing the other instances' events: its Redis
   * subscription broke (the connection closed, or its own beat was not heard back within
   * BEAT_TIMEOUT_MS, as when the connection hangs without closing). Redis keeps nothing for
   * a subscriber that is away, so what was published meanwhile is lost for good: the
   * consumers whose state events keep fresh catch up from the database (RevocationService)
   * or stop trusting their caches (onSync). Always true without Redis.
   */
  get synced(): boolean {
    return this.inSync;
  }

  /** How many times this instance's subscription has broken since it started (metrics). */
  get breaks(): number {
    return this.breakCount;
  }

  /** Calls `handler` on every change of `synced`; returns the function that unsubscribes. */
  onSync(handler: SyncHandler): () => void {
    this.syncHandlers.add(handler);
    return () => this.syncHandlers.delete(handler);
  }

  async onModuleInit(): Promise<void> {
    if (!this.redis) return;
    await connectOrExplain(this.redis);
    // Subscribed again by the 'ready' handler below rather than by ioredis itself, whose own
    // SUBSCRIBE after a reconnection has no catch: failing (Redis gone again at that moment),
    // it was an unhandled rejection, which ends the process.
    this.subscriber = this.redis.duplicate({ autoResubscribe: false });
    this.subscriber.on('error', (err: Error) => this.logger.warn(`subscriber: ${err.message}`));
    this.subscriber.on('message', (_channel: string, message: string) => this.receive(message));
    this.subscriber.on('close', () => this.setSynced(false, 'its connection closed'));
    // Connected first: without an offline queue (redis.module.ts), a command sent while the
    // client connects fails.
    await connectOrExplain(this.subscriber);
    await this.subscriber.subscribe(EVENTS_CHANNEL);
    // After each reconnection; the beat tells when it works (a failure here is retried by the
    // beat's reconnection, RECONNECT_EVERY_MS).
    this.subscriber.on('ready', () => {
      this.subscriber?.subscribe(EVENTS_CHANNEL).catch((error: unknown) => {
        this.logger.warn(`subscriber: subscribing again failed: ${String(error)}`);
      });
    });
    this.heardMs = Date.now();
    // Real time, not the injectable clock: this is about the network.
    this.beater = setInterval(() => this.beat(), BEAT_INTERVAL_MS);
    this.beater.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    this.closing = true;
    clearInterval(this.beater);
    this.syncHandlers.clear();
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
    this.emitter.removeAllListeners();
  }

  /**
   * Checks that the last beat came back in time, and publishes the next one (one at a time:
   * a publish hanging on a broken connection is not joined by another every second, unless
   * it has hung for BEAT_TIMEOUT_MS).
   */
  private beat(): void {
    const now = Date.now();
    if (now - this.heardMs > BEAT_TIMEOUT_MS) {
      this.setSynced(false, `its own beat was not heard for ${now - this.heardMs} ms`);
      // A subscription that hangs is made again (ioredis subscribes again on reconnecting).
      if (now - this.reconnectedMs >= RECONNECT_EVERY_MS && !this.closing) {
        this.reconnectedMs = now;
        this.subscriber?.disconnect(true);
      }
    }
    if (this.beatSentMs !== 0 && now - this.beatSentMs < BEAT_TIMEOUT_MS) return;
    this.beatSentMs = now;
    const seq = ++this.beatSeq;
    this.redis!.publish(EVENTS_CHANNEL, JSON.stringify({ from: this.instanceId, beat: seq }))
      .catch(() => {
        // Not delivered (as far as Redis said): its absence is no gap; the missing echo says
        // the rest. Bounded: forgotten once a later beat is heard.
        this.unsentBeats.add(seq);
      })
      .finally(() => {
        if (this.beatSentMs === now) this.beatSentMs = 0;
      });
  }

  private setSynced(synced: boolean, reason: string): void {
    if (this.inSync === synced || this.closing || (!synced && this.subscriber === null)) return;
    this.inSync = synced;
    if (!synced) this.breakCount++;
    // Lost from about the last beat heard on (it may have broken just after it).
    const sinceMs = synced ? Date.now() : this.heardMs;
    if (synced) this.logger.log(`subscribed again (${reason}): events from the other instances reach this one`);
    else this.logger.warn(`subscription broken (${reason}): catching up from the database until it works again`);
    for (const handler of this.syncHandlers) {
      try {
        handler(synced, sinceMs);
      } catch (error) {
        this.logger.error(`sync handler failed: ${String(error)}`);
      }
    }
  }

  /**
   * One of this instance's beats came back. Beats are published one at a time, each once the
   * one before was delivered (or its publish failed, or hung for BEAT_TIMEOUT_MS): a delivered
   * one missing before it means that what was published in between was lost too (bytes
   * dropped on a connection that did not close), however short the gap.
   */
  private heard(seq: number): void {
    if (seq <= this.heardSeq) return;
    for (let missing = this.heardSeq + 1; missing < seq; missing++) {
      if (!this.unsentBeats.has(missing)) {
        this.setSynced(false, `beat ${missing} was lost`);
        break;
      }
    }
    for (const unsent of this.unsentBeats) if (unsent < seq) this.unsentBeats.delete(unsent);
    this.heardSeq = seq;
    this.heardMs = Date.now();
    this.setSynced(true, 'its own beat came back');
  }

  /**
   * Hands events to this instance's handlers as if another instance had published them
   * (`remote`), without publishing: what a consumer catching up found in the database.
   */
  replay<K extends EventName>(name: K, payload: GatehouseEvents[K]): void {
    this.emitter.emit(name, payload, { remote: true });
  }

  /** Subscribes; returns the function that unsubscribes. */
  on<K extends EventName>(name: K, handler: Handler<K>): () => void {
    const safe = (payload: GatehouseEvents[K], meta: EventMeta) => {
      try {
        handler(payload, meta);
      } catch (error) {
        this.logger.error(`handler of ${name} failed: ${String(error)}`);
      }
    };
    this.emitter.on(name, safe);
    return () => this.emitter.off(name, safe);
  }

  /**
   * emit() for notifications that follow a change already made: never throws (a Redis
   * outage must not fail the request that made the change), logs instead.
   */
  notify<K extends EventName>(name: K, payload: GatehouseEvents[K]): void {
    this.emit(name, payload).catch((error: unknown) =>
      this.logger.warn(`${name} not published to the other instances: ${String(error)}`),
    );
  }

  /** Delivers here at once, then (with Redis) to every other instance. */
  async emit<K extends EventName>(name: K, payload: GatehouseEvents[K]): Promise<void> {
    this.emitter.emit(name, payload, { remote: false });
    if (!this.redis) return;
    await this.redis.publish(EVENTS_CHANNEL, JSON.stringify({ from: this.instanceId, name, payload }));
  }

  private receive(message: string): void {
    let parsed: { from?: unknown; name?: unknown; payload?: unknown; beat?: unknown };
    try {
      parsed = JSON.parse(message) as typeof parsed;
    } catch {
      this.logger.warn('ignored a malformed event message');
      return;
    }
    if (parsed.from === this.instanceId) {
      if (typeof parsed.beat === 'number') this.heard(parsed.beat);
      return;
    }
    // Other instances' beats have no name: ignored here, as by earlier versions.
    if (typeof parsed.name !== 'string' || parsed.payload === undefined) return;
    this.emitter.emit(parsed.name, parsed.payload, { remote: true });
  }
}
