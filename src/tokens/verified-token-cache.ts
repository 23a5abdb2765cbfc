import { BoundedMap } from '../common/bounded-map.js';
import type { Principal } from './principal.js';

/**
 * Already-verified access tokens, keyed by the exact token string, so that a client
 * repeating a request does not pay for signature verification again (~54 µs for ES256).
 * Bounded (oldest entries leave first) and never trusted past the token's own `exp`;
 * revocation is checked by the caller on every request, cached or not.
 */
export class VerifiedTokenCache {
  private readonly entries: BoundedMap<string, Principal>;

  constructor(capacity = 10_000) {
    this.entries = new BoundedMap(capacity);
  }

  get(token: string, nowMs: number): Principal | undefined {
    const user = this.entries.get(token);
    if (user === undefined) return undefined;
    if (user.exp * 1000 <= nowMs) {
      this.entries.delete(token);
      return undefined;
    }
    return user;
  }

  set(token: string, user: Principal): void {
    this.entries.set(token, user);
  }

  get size(): number {
    return this.entries.size;
  }
}
