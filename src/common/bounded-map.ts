/**
 * A Map that holds at most `capacity` entries: making room for a new key drops the oldest one
 * (insertion order; setting a key again makes it the newest). The in-process caches (verified
 * tokens, client authentications, federated identity links) are built on it, each adding its
 * own expiry and invalidation rules.
 */
export class BoundedMap<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`capacity must be a positive integer (${capacity})`);
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: K): V | undefined {
    return this.entries.get(key);
  }

  delete(key: K): boolean {
    return this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  /** Sets `key` as the newest entry; returns the oldest entry when it was dropped to make room. */
  set(key: K, value: V): [K, V] | undefined {
    let dropped: [K, V] | undefined;
    if (!this.entries.delete(key) && this.entries.size >= this.capacity) {
      const oldest = this.entries.entries().next();
      if (!oldest.done) {
        dropped = oldest.value;
        this.entries.delete(dropped[0]);
      }
    }
    this.entries.set(key, value);
    return dropped;
  }

  /** The entries, oldest first. Deleting the current entry while iterating is safe (Map semantics). */
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries.entries();
  }
}
