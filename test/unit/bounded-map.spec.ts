import { describe, expect, it } from 'vitest';
import { BoundedMap } from '../../src/common/bounded-map.js';
import type { LinkedUser } from '../../src/identities/identities.repository.js';
import { LinkCache } from '../../src/identities/link-cache.js';

describe('BoundedMap', () => {
  it('drops the oldest entry to make room, and says which', () => {
    const map = new BoundedMap<string, number>(2);
    expect(map.set('a', 1)).toBeUndefined();
    expect(map.set('b', 2)).toBeUndefined();
    expect(map.set('c', 3)).toEqual(['a', 1]);
    expect(map.size).toBe(2);
    expect(map.get('a')).toBeUndefined();
    expect([...map]).toEqual([
      ['b', 2],
      ['c', 3],
    ]);
  });

  it('makes a key set again the newest, without dropping anything for it', () => {
    const map = new BoundedMap<string, number>(2);
    map.set('a', 1);
    map.set('b', 2);
    expect(map.set('a', 10)).toBeUndefined();
    expect(map.set('c', 3)).toEqual(['b', 2]);
    expect([...map]).toEqual([
      ['a', 10],
      ['c', 3],
    ]);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new BoundedMap(0)).toThrow(RangeError);
    expect(() => new BoundedMap(1.5)).toThrow(RangeError);
  });
});

describe('LinkCache on a BoundedMap', () => {
  const linked = (userId: string): LinkedUser => ({
    identityId: `i-${userId}`,
    userId,
    roles: ['user'],
    disabled: false,
    kind: 'person',
  });

  it('keeps its per-user index in step with evictions and relinks', () => {
    const cache = new LinkCache(60_000, 2);
    cache.set('iss', 'a', linked('u1'), 0, cache.version);
    cache.set('iss', 'b', linked('u2'), 0, cache.version);
    cache.set('iss', 'c', linked('u1'), 0, cache.version); // evicts (iss, a)
    expect(cache.get('iss', 'a', 1)).toBeUndefined();
    expect(cache.get('iss', 'c', 1)?.userId).toBe('u1');
    // (iss, b) now names u3: forgetting u2 must leave it, forgetting u3 must drop it.
    cache.set('iss', 'b', linked('u3'), 0, cache.version);
    cache.forgetUser('u2');
    expect(cache.get('iss', 'b', 1)?.userId).toBe('u3');
    cache.forgetUser('u3');
    expect(cache.get('iss', 'b', 1)).toBeUndefined();
    cache.forgetUser('u1');
    expect(cache.get('iss', 'c', 1)).toBeUndefined();
  });

  it('caches nothing for an identity held until the hold ends, and drops what it had', () => {
    const cache = new LinkCache(60_000);
    cache.set('iss', 'a', linked('u1'), 0, cache.version);
    cache.set('iss', 'b', linked('u2'), 0, cache.version);
    cache.hold('iss', 'a', 100, 1_100);
    expect(cache.get('iss', 'a', 100)).toBeUndefined();
    cache.set('iss', 'a', linked('u1'), 1_099, cache.version);
    expect(cache.get('iss', 'a', 1_099)).toBeUndefined();
    // Other identities are untouched.
    expect(cache.get('iss', 'b', 100)?.userId).toBe('u2');
    cache.set('iss', 'b', linked('u3'), 200, cache.version);
    expect(cache.get('iss', 'b', 200)?.userId).toBe('u3');
    // Held again later: the later end counts.
    cache.hold('iss', 'a', 500, 2_000);
    cache.set('iss', 'a', linked('u1'), 1_500, cache.version);
    expect(cache.get('iss', 'a', 1_500)).toBeUndefined();
    cache.set('iss', 'a', linked('u4'), 2_000, cache.version);
    expect(cache.get('iss', 'a', 2_001)?.userId).toBe('u4');
  });

  it('forgets holds that have ended while holding others', () => {
    const cache = new LinkCache(60_000);
    for (let i = 0; i < 1000; i++) cache.hold('iss', `s${i}`, i, i + 10);
    // At 2,000 every earlier hold has ended: the new one is the only one left.
    cache.hold('iss', 'last', 2_000, 2_010);
    expect((cache as unknown as { held: Map<string, number> }).held.size).toBe(1);
    cache.set('iss', 's999', linked('u1'), 2_000, cache.version);
    expect(cache.get('iss', 's999', 2_000)?.userId).toBe('u1');
  });

  it('never caches what was read before an invalidation', () => {
    const cache = new LinkCache(60_000);
    const version = cache.version;
    cache.forget('iss', 'a');
    cache.set('iss', 'a', linked('u1'), 0, version);
    expect(cache.get('iss', 'a', 1)).toBeUndefined();
  });
});
