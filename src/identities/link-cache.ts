import { BoundedMap } from '../common/bounded-map.js';
import type { LinkedUser } from './identities.repository.js';

/**
 * Found links of external identities, for FEDERATION_LINK_CACHE_TTL (a miss is never
 * cached: the identity may be linked a moment later). Entries are dropped by user (a
 * disable, role change or deletion revokes the user's tokens) and by identity (linking,
 * unlinking), on every instance through the event bus; a TTL of 0 caches nothing.
 */
export class LinkCache {
  private readonly entries: BoundedMap<string, { user: LinkedUser; untilMs: number }>;
  private readonly keysOfUser = new Map<string, Set<string>>();
  /**
   * Bumped by every invalidation. A reader takes it before its database read and caches the
   * answer only if it has not moved: an invalidation arriving between the read and set() must
   * not be undone by caching what was read before it.
   */
  private epoch = 0;
  /** Nothing is cached before this time (epoch ms): see pause(). */
  private pausedUntilMs = 0;

  constructor(
    private readonly ttlMs: number,
    capacity = 10_000,
  ) {
    this.entries = new BoundedMap(capacity);
  }

  get(issuer: string, subject: string, nowMs: number): LinkedUser | undefined {
    const key = keyOf(issuer, subject);
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.untilMs <= nowMs) {
      this.drop(key, entry.user.userId);
      return undefined;
    }
    return entry.user;
  }

  /** The current invalidation epoch, to pass to set(). */
  get version(): number {
    return this.epoch;
  }

  set(issuer: string, subject: string, user: LinkedUser, nowMs: number, readAtVersion: number): void {
    if (this.ttlMs <= 0 || readAtVersion !== this.epoch) return;
    if (nowMs < this.pausedUntilMs) return;
    const key = keyOf(issuer, subject);
    const previous = this.entries.get(key);
    if (previous) this.drop(key, previous.user.userId);
    const dropped = this.entries.set(key, { user, untilMs: nowMs + this.ttlMs });
    if (dropped) this.drop(dropped[0], dropped[1].user.userId);
    let keys = this.keysOfUser.get(user.userId);
    if (!keys) this.keysOfUser.set(user.userId, (keys = new Set()));
    keys.add(key);
  }

  forget(issuer: string, subject: string): void {
    this.epoch++;
    const key = keyOf(issuer, subject);
    const entry = this.entries.get(key);
    if (entry) this.drop(key, entry.user.userId);
  }

  /**
   * Caches nothing before `untilMs`: announcements may have been missed, and the changes they
   * announced may still be committing (until a transaction's timeout).
   */
  pause(untilMs: number): void {
    this.pausedUntilMs = Math.max(this.pausedUntilMs, untilMs);
  }

  forgetUser(userId: string): void {
    this.epoch++;
    for (const key of this.keysOfUser.get(userId) ?? []) this.entries.delete(key);
    this.keysOfUser.delete(userId);
  }

  /** Drops every entry: announcements of changes may have been missed (EventBus.synced). */
  clear(): void {
    this.epoch++;
    this.entries.clear();
    this.keysOfUser.clear();
  }

  private drop(key: string, userId: string): void {
    this.entries.delete(key);
    const keys = this.keysOfUser.get(userId);
    keys?.delete(key);
    if (keys?.size === 0) this.keysOfUser.delete(userId);
  }
}

const keyOf = (issuer: string, subject: string): string => `${issuer}\n${subject}`;
