import { describe, expect, it } from 'vitest';
import { VerifiedTokenCache } from '../../src/tokens/verified-token-cache.js';
import type { Principal } from '../../src/tokens/principal.js';

const user = (n: number, exp = 2_000_000_000): Principal => ({
  kind: 'user',
  userId: `u${n}`,
  sessionId: `s${n}`,
  clientId: null,
  roles: ['user'],
  scopes: ['profile'],
  amr: ['pwd'],
  acr: 'aal1',
  tenantId: null,
  iat: exp - 900,
  exp,
  jti: `j${n}`,
});

describe('VerifiedTokenCache', () => {
  it('returns what was stored for the exact token only', () => {
    const cache = new VerifiedTokenCache();
    cache.set('token-a', user(1));
    expect(cache.get('token-a', 0)).toEqual(user(1));
    expect(cache.get('token-a ', 0)).toBeUndefined();
    expect(cache.get('token-b', 0)).toBeUndefined();
  });

  it("never serves an entry at or past the token's exp, and drops it", () => {
    const cache = new VerifiedTokenCache();
    const exp = 1_700_000_000;
    cache.set('t', user(1, exp));
    expect(cache.get('t', exp * 1000 - 1)).toEqual(user(1, exp));
    expect(cache.get('t', exp * 1000)).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(cache.get('t', 0)).toBeUndefined(); // gone for good, even for an earlier clock
  });

  it('stays within its capacity, evicting the oldest entry first', () => {
    const cache = new VerifiedTokenCache(3);
    for (let i = 1; i <= 5; i++) cache.set(`t${i}`, user(i));
    expect(cache.size).toBe(3);
    expect(cache.get('t1', 0)).toBeUndefined();
    expect(cache.get('t2', 0)).toBeUndefined();
    expect(cache.get('t3', 0)).toEqual(user(3));
    expect(cache.get('t5', 0)).toEqual(user(5));
  });
});
