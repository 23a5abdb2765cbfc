import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { InjectRedis } from '../redis/redis.module.js';

/** The Redis channel every instance publishes its events on and listens to. */
export const EVENTS_CHANNEL = 'gatehouse:events';

/**
 * Every event, by name, with its payload (JSON-serialisable: it crosses instances).
 * - `tokens.revoked`: revocation entries (key, notBefore in epoch seconds, until in epoch ms;
 *   `signOut` on a user key whose account was deleted or disabled); every instance adds them
 *   to its cache, and real-time connections close on them.
 * - `identities.changed`: an external identity linked or unlinked (federation link cache).
 */
export interface GatehouseEvents {
  'tokens.revoked': { entries: Array<{ key: string; notBefore: number; untilMs: number; signOut?: boolean }> };
  /**
   * An external identity was linked to or unlinked from a user: every instance forgets what
   * it cached about that (issuer, subject) and that user.
   */
  'identities.changed': { userId: string; issuer: string; subject: string };
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
  };
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

  async onModuleInit(): Promise<void> {
    if (!this.redis) return;
    this.subscriber = this.redis.duplicate();
    this.subscriber.on('error', (err: Error) => this.logger.warn(`subscriber: ${err.message}`));
    this.subscriber.on('message', (_channel: string, message: string) => this.receive(message));
    await this.subscriber.subscribe(EVENTS_CHANNEL);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
    this.emitter.removeAllListeners();
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
    let parsed: { from?: unknown; name?: unknown; payload?: unknown };
    try {
      parsed = JSON.parse(message) as typeof parsed;
    } catch {
      this.logger.warn('ignored a malformed event message');
      return;
    }
    if (parsed.from === this.instanceId || typeof parsed.name !== 'string' || parsed.payload === undefined) return;
    this.emitter.emit(parsed.name, parsed.payload, { remote: true });
  }
}
