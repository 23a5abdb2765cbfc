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

  it('evicts in insertion order through deletes, re-sets, clears and refills (against a list)', () => {
    // A fixed pseudo-random sequence (Park and Miller's generator, exact in doubles), checked at
    // every step against a plain list kept oldest first: the map keeps one iterator between
    // evictions. About 6,000 of the steps evict.
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 48_271) % 2_147_483_647;
      return Math.floor((seed / 2_147_483_647) * n);
    };
    const capacity = 8;
    const map = new BoundedMap<string, number>(capacity);
    let model: [string, number][] = [];
    // What each step answered and the size after it, from the map and from the list.
    const actual: unknown[] = [];
    const expected: unknown[] = [];
    for (let step = 0; step < 20_000; step++) {
      const key = `k${random(20)}`;
      const op = random(100);
      const at = model.findIndex(([k]) => k === key);
      if (op < 70) {
        if (at >= 0) model.splice(at, 1);
        expected.push(at < 0 && model.length >= capacity ? model.shift() : undefined);
        model.push([key, step]);
        actual.push(map.set(key, step));
      } else if (op < 90) {
        if (at >= 0) model.splice(at, 1);
        expected.push(at >= 0);
        actual.push(map.delete(key));
      } else if (op < 91) {
        map.clear();
        model = [];
      } else {
        expected.push(model[at]?.[1]);
        actual.push(map.get(key));
      }
      expected.push(model.length);
      actual.push(map.size);
    }
    expect(actual).toEqual(expected);
    expect([...map]).toEqual(model);
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

  it('caches nothing while paused, and again afterwards', () => {
    const cache = new LinkCache(60_000);
    cache.set('iss', 'a', linked('u1'), 0, cache.version);
    cache.pause(1_000);
    // What it holds stays (clear() is the caller's), but nothing new is kept until then.
    expect(cache.get('iss', 'a', 10)?.userId).toBe('u1');
    cache.set('iss', 'b', linked('u2'), 999, cache.version);
    expect(cache.get('iss', 'b', 999)).toBeUndefined();
    // A shorter pause does not end a longer one.
    cache.pause(500);
    cache.set('iss', 'b', linked('u2'), 999, cache.version);
    expect(cache.get('iss', 'b', 999)).toBeUndefined();
    cache.set('iss', 'b', linked('u2'), 1_000, cache.version);
    expect(cache.get('iss', 'b', 1_001)?.userId).toBe('u2');
  });

  it('never caches what was read before an invalidation', () => {
    const cache = new LinkCache(60_000);
    const version = cache.version;
    cache.forget('iss', 'a');
    cache.set('iss', 'a', linked('u1'), 0, version);
    expect(cache.get('iss', 'a', 1)).toBeUndefined();
  });
});
