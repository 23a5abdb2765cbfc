import { createHash } from 'node:crypto';
import { BoundedMap } from '../common/bounded-map.js';

/** What a successful client authentication established, as cached. */
export interface CachedClientAuth<C extends { id: string; secretId: string; serviceUserId: string }> {
  client: C;
  /** Epoch ms when the database was read: revocations from about then on void the entry. */
  readAtMs: number;
  /** Epoch ms of the secret's expiry (null: none): the entry never outlives its secret. */
  secretExpiresAtMs: number | null;
  /** Epoch ms of the last recorded use of the secret (throttles the `last_used_at` write). */
  lastUsedAtMs: number | null;
}

interface Entry<C extends { id: string; secretId: string; serviceUserId: string }> extends CachedClientAuth<C> {
  untilMs: number;
}

/**
 * Successful client authentications, keyed by a SHA-256 of (client id, secret), for `ttlMs`:
 * a client calling POST /oauth/introspect many times a second proves its secret against the
 * database once per TTL. Failures are never cached (each one must be counted and pay the
 * full work), and nothing here holds a secret or the hash stored in the database.
 *
 * Safety rests on three things (see ClientsService.authenticateCached):
 * - an entry is void as soon as its secret or its service user has a revocation entry from
 *   about its read on (checked on every hit against RevocationService, which learns of a
 *   revocation here at once and from other instances through Redis): that covers a secret
 *   revoked or expired early, a client disabled, deleted or losing a scope, and a service
 *   user disabled or given other roles;
 * - every other change of a client (a secret's expiry scheduled, token exchange or the
 *   lifetime changed, a scope added, enabled again) drops the client's entries on every
 *   instance after its commit (`clients.changed`);
 * - the whole cache is dropped, and bypassed, while this instance's Redis subscription is
 *   broken (EventBus.synced): announcements made meanwhile are lost to it;
 * - the TTL bounds what is left: an announcement lost before the break was noticed (about
 *   3 s), a change made in the database by hand.
 */
export class ClientAuthCache<C extends { id: string; secretId: string; serviceUserId: string }> {
  private readonly entries: BoundedMap<string, Entry<C>>;
  /**
   * Bumped by every invalidation. A reader takes it before its database read and caches the
   * answer only if it has not moved: a change committed between the read and set() must not
   * be undone by caching what was read before it.
   */
  private epoch = 0;

  constructor(
    private readonly ttlMs: number,
    capacity = 10_000,
  ) {
    this.entries = new BoundedMap(capacity);
  }

  /** The cache key of presented credentials (the id is a well-formed one: no NUL in it). */
  static keyOf(clientId: string, secret: string): string {
    return createHash('sha256').update(clientId, 'utf8').update('\0').update(secret, 'utf8').digest('base64');
  }

  get size(): number {
    return this.entries.size;
  }

  /** The current invalidation epoch, to pass to set(). */
  get version(): number {
    return this.epoch;
  }

  /** The entry of `key`, unless its TTL or its secret's expiry has passed. */
  get(key: string, nowMs: number): CachedClientAuth<C> | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.untilMs <= nowMs || (entry.secretExpiresAtMs !== null && entry.secretExpiresAtMs <= nowMs)) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  set(key: string, value: CachedClientAuth<C>, readAtVersion: number): void {
    if (this.ttlMs <= 0 || readAtVersion !== this.epoch) return;
    this.entries.set(key, { ...value, untilMs: value.readAtMs + this.ttlMs });
  }

  delete(key: string): void {
    this.epoch++;
    this.entries.delete(key);
  }

  /** Drops every entry: announcements of changes may have been missed (EventBus.synced). */
  clear(): void {
    this.epoch++;
    this.entries.clear();
  }

  /** Drops every entry of the client (row id). Rare (admin changes): a scan is fine. */
  forgetClient(id: string): void {
    this.epoch++;
    for (const [key, entry] of this.entries) if (entry.client.id === id) this.entries.delete(key);
  }
}
