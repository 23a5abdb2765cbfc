import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppConfig } from '../../src/config/config.schema.js';
import { AppException } from '../../src/common/errors/app.exception.js';
import { MemoryAttemptStore, RedisAttemptStore } from '../../src/auth/throttle/attempt-store.js';
import {
  ACCOUNT_CEILING_FACTOR,
  KNOWN_SOURCE_MS,
  LOGIN_WINDOW_MS,
  LoginThrottleService,
  throttleAccountKey,
} from '../../src/auth/throttle/login-throttle.service.js';
import { FakeClock } from '../support/fake-clock.js';

const LIMIT = 3;
const WINDOW_S = LOGIN_WINDOW_MS / 1000;

function service() {
  const clock = new FakeClock();
  clock.freeze(Date.UTC(2026, 0, 1));
  const svc = new LoginThrottleService({ LOGIN_RATE_LIMIT: LIMIT } as AppConfig, null, clock);
  return { svc, clock, now: () => clock.nowMs() };
}

/** The Retry-After (seconds) of the 429 that `promise` rejects with, or null when it resolves. */
async function retryAfterOf(promise: Promise<unknown>): Promise<number | null> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  if (error === null) return null;
  expect(error).toBeInstanceOf(AppException);
  expect((error as AppException).getStatus()).toBe(429);
  expect((error as AppException).code).toBe('TOO_MANY_ATTEMPTS');
  return Number((error as AppException).headers['Retry-After']);
}

describe('LoginThrottleService.waitMs', () => {
  it('is 0 without a record and below the limit', () => {
    const { svc, now } = service();
    expect(svc.waitMs(null, LIMIT)).toBe(0);
    expect(svc.waitMs({ failures: LIMIT - 1, lastFailureMs: now() }, LIMIT)).toBe(0);
  });

  it('waits 1 s at the limit and doubles with every further failure', () => {
    const { svc, now } = service();
    const waits = [0, 1, 2, 3, 4].map((extra) => svc.waitMs({ failures: LIMIT + extra, lastFailureMs: now() }, LIMIT));
    expect(waits).toEqual([1000, 2000, 4000, 8000, 16000]);
  });

  it('counts the wait from the last failure', () => {
    const { svc, clock, now } = service();
    const record = { failures: LIMIT + 2, lastFailureMs: now() }; // 4 s back-off
    clock.advance(1.5);
    expect(svc.waitMs(record, LIMIT)).toBe(2500);
    clock.advance(2.5);
    expect(svc.waitMs(record, LIMIT)).toBe(0);
  });

  it('never asks for more than 15 minutes, however many failures', () => {
    const { svc, now } = service();
    for (const failures of [LIMIT + 10, LIMIT + 30, LIMIT + 2000]) {
      expect(svc.waitMs({ failures, lastFailureMs: now() }, LIMIT)).toBe(LOGIN_WINDOW_MS);
    }
  });

  it('forgets a record whose last failure is 15 minutes old', () => {
    const { svc, clock, now } = service();
    const record = { failures: LIMIT + 50, lastFailureMs: now() };
    clock.advance(WINDOW_S - 1);
    expect(svc.waitMs(record, LIMIT)).toBe(1000);
    clock.advance(1);
    expect(svc.waitMs(record, LIMIT)).toBe(0);
  });
});

describe('LoginThrottleService check / recordFailure / recordSuccess (in memory)', () => {
  it('blocks the account from that address after LOGIN_RATE_LIMIT failures with Retry-After in whole seconds', async () => {
    const { svc, clock } = service();
    for (let i = 0; i < LIMIT; i++) {
      expect(await retryAfterOf(svc.check('alice', '192.0.2.1'))).toBeNull();
      await svc.recordFailure('alice', '192.0.2.1');
    }
    expect(await retryAfterOf(svc.check('alice', '192.0.2.1'))).toBe(1);
    expect(await retryAfterOf(svc.check('alice', '192.0.2.99'))).toBeNull(); // the owner, elsewhere
    expect(await retryAfterOf(svc.check('bob', '192.0.2.1'))).toBeNull(); // another account
    clock.advance(0.4);
    expect(await retryAfterOf(svc.check('alice', '192.0.2.1'))).toBe(1); // 0.6 s rounds up
    clock.advance(0.6);
    expect(await retryAfterOf(svc.check('alice', '192.0.2.1'))).toBeNull();
  });

  it('clears the account on success, but not the address', async () => {
    const { svc } = service();
    for (let i = 0; i < LIMIT; i++) await svc.recordFailure('carol', '192.0.2.2');
    await svc.recordSuccess('carol', '192.0.2.2');
    expect(await retryAfterOf(svc.check('carol', '192.0.2.2'))).toBeNull();
    await svc.recordFailure('carol', '192.0.2.2');
    expect(await retryAfterOf(svc.check('carol', '192.0.2.2'))).toBeNull(); // 1 failure, not 4
  });

  it('blocks an address that fails on many accounts, far later than one account', async () => {
    const { svc } = service();
    let n = 0;
    while ((await retryAfterOf(svc.check(`victim${n}`, '198.51.100.1'))) === null && n < 100_000) {
      await svc.recordFailure(`victim${n}`, '198.51.100.1');
      n += 1;
    }
    expect(n).toBeGreaterThan(LIMIT * 10);
    expect(n).toBeLessThan(100_000);
    expect(await retryAfterOf(svc.check('someone-new', '198.51.100.1'))).toBeGreaterThanOrEqual(1);
    expect(await retryAfterOf(svc.check('someone-new', '198.51.100.2'))).toBeNull();
  });
});

describe('LoginThrottleService: per (account, address), account-wide ceiling, known sources', () => {
  const CEILING = LIMIT * ACCOUNT_CEILING_FACTOR;
  /** `n` failures on `account`, spread over fresh addresses, LIMIT - 1 per address (none of them blocked). */
  async function spread(svc: LoginThrottleService, account: string, n: number, tag: string) {
    for (let i = 0; i < n; i++) {
      const ip = `10.${tag}.${Math.floor(i / (LIMIT - 1))}.1`;
      expect(await retryAfterOf(svc.check(account, ip)), `failure ${i + 1}`).toBeNull();
      await svc.recordFailure(account, ip);
    }
  }

  it('an attacker keeping the back-off alive from one address never blocks the owner at another', async () => {
    const { svc, clock } = service();
    for (let i = 0; i < LIMIT; i++) await svc.recordFailure('dave', '203.0.113.66');
    for (let round = 0; round < 8; round++) {
      const wait = await retryAfterOf(svc.check('dave', '203.0.113.66'));
      expect(wait).toBeGreaterThanOrEqual(1);
      expect(await retryAfterOf(svc.check('dave', '198.51.100.5'))).toBeNull(); // the owner
      await svc.recordSuccess('dave', '198.51.100.5');
      clock.advance(wait!);
      expect(await retryAfterOf(svc.check('dave', '203.0.113.66'))).toBeNull();
      await svc.recordFailure('dave', '203.0.113.66');
    }
  });

  it(`blocks every unknown address once ${CEILING} failures (10 x LOGIN_RATE_LIMIT) came from many addresses, then doubles`, async () => {
    const { svc, clock } = service();
    await spread(svc, 'erin', CEILING, '1');
    expect(await retryAfterOf(svc.check('erin', '192.0.2.200'))).toBe(1);
    expect(await retryAfterOf(svc.check('frank', '192.0.2.200'))).toBeNull(); // only that account
    clock.advance(1);
    await spread(svc, 'erin', 1, '2');
    expect(await retryAfterOf(svc.check('erin', '192.0.2.201'))).toBe(2);
  });

  it('does not count failures below the ceiling against other addresses', async () => {
    const { svc } = service();
    await spread(svc, 'gina', CEILING - 1, '3');
    expect(await retryAfterOf(svc.check('gina', '192.0.2.202'))).toBeNull();
  });

  it('lets an address that logged in to the account before past the ceiling, not past its own back-off', async () => {
    const { svc } = service();
    await svc.recordSuccess('hank', '198.51.100.7'); // the owner's usual address
    await spread(svc, 'hank', CEILING, '4');
    expect(await retryAfterOf(svc.check('hank', '192.0.2.203'))).toBeGreaterThanOrEqual(1); // a stranger
    expect(await retryAfterOf(svc.check('hank', '198.51.100.7'))).toBeNull(); // the owner
    // The success does not clear the account-wide count.
    await svc.recordSuccess('hank', '198.51.100.7');
    expect(await retryAfterOf(svc.check('hank', '192.0.2.203'))).toBeGreaterThanOrEqual(1);
    // Guessing from the known address is still slowed by its own counter.
    for (let i = 0; i < LIMIT; i++) await svc.recordFailure('hank', '198.51.100.7');
    expect(await retryAfterOf(svc.check('hank', '198.51.100.7'))).toBeGreaterThanOrEqual(1);
    // The mark is for one account only, and runs out.
    expect(await retryAfterOf(svc.check('ivan', '198.51.100.7'))).toBeNull();
    const other = service();
    await other.svc.recordSuccess('hank', '198.51.100.8');
    other.clock.advance(KNOWN_SOURCE_MS / 1000);
    await spread(other.svc, 'hank', CEILING, '5');
    expect(await retryAfterOf(other.svc.check('hank', '198.51.100.8'))).toBe(1);
  });

  it('keys an existing account by its id (username and email share it) and an unknown login by its canonical form', () => {
    expect(throttleAccountKey('0b7c3a1e-0000-4000-8000-000000000001', 'alice')).toBe('user:0b7c3a1e-0000-4000-8000-000000000001');
    expect(throttleAccountKey('0b7c3a1e-0000-4000-8000-000000000001', 'alice@example.com')).toBe('user:0b7c3a1e-0000-4000-8000-000000000001');
    expect(throttleAccountKey(null, 'alice')).toBe('login:alice');
    expect(throttleAccountKey(null, 'alice@example.com')).toBe('login:alice@example.com');
  });
});

describe('MemoryAttemptStore', () => {
  it('counts failures within the window and starts over after it', async () => {
    const store = new MemoryAttemptStore();
    const t0 = 1_000_000;
    expect(await store.recordFailure('k', t0, 1000)).toEqual({ failures: 1, lastFailureMs: t0 });
    expect(await store.recordFailure('k', t0 + 999, 1000)).toEqual({ failures: 2, lastFailureMs: t0 + 999 });
    expect(await store.recordFailure('k', t0 + 999 + 1000, 1000)).toEqual({ failures: 1, lastFailureMs: t0 + 1999 });
    await store.reset('k');
    expect(await store.get('k')).toBeNull();
  });

  it('keeps marks until their time runs out, apart from the counters', async () => {
    const store = new MemoryAttemptStore();
    await store.mark('m', 1000, 500);
    expect(await store.isMarked('m', 1499)).toBe(true);
    expect(await store.isMarked('m', 1500)).toBe(false);
    await store.reset('m');
    expect(await store.isMarked('m', 1000)).toBe(true);
    expect(await store.isMarked('other', 1000)).toBe(false);
  });
});

/** The same store contract on Redis (TEST_REDIS_URL), under a prefix of this run only. */
describe.runIf(process.env.TEST_REDIS_URL)('RedisAttemptStore', () => {
  const prefix = `gatehouse:test:${randomBytes(6).toString('hex')}:`;
  let redis: Redis;
  beforeAll(async () => {
    redis = new Redis(process.env.TEST_REDIS_URL!, { lazyConnect: true });
    await redis.connect();
  });
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  it('counts failures within the window, starts over after it, and resets', async () => {
    const store = new RedisAttemptStore(redis, prefix);
    const t0 = 1_000_000;
    expect(await store.recordFailure('k', t0, 1000)).toEqual({ failures: 1, lastFailureMs: t0 });
    expect(await store.recordFailure('k', t0 + 999, 1000)).toEqual({ failures: 2, lastFailureMs: t0 + 999 });
    expect(await store.get('k')).toEqual({ failures: 2, lastFailureMs: t0 + 999 });
    expect(await store.recordFailure('k', t0 + 1999, 1000)).toEqual({ failures: 1, lastFailureMs: t0 + 1999 });
    await store.reset('k');
    expect(await store.get('k')).toBeNull();
  });

  it('counts concurrent failures exactly (one atomic script per failure)', async () => {
    const store = new RedisAttemptStore(redis, prefix);
    await Promise.all(Array.from({ length: 50 }, () => store.recordFailure('burst', 5_000, 60_000)));
    expect((await store.get('burst'))?.failures).toBe(50);
  });

  it('keeps marks until the caller\'s deadline, apart from the counters', async () => {
    const store = new RedisAttemptStore(redis, prefix);
    await store.mark('m', 1000, 500);
    expect(await store.isMarked('m', 1499)).toBe(true);
    expect(await store.isMarked('m', 1500)).toBe(false);
    await store.reset('m');
    expect(await store.isMarked('m', 1000)).toBe(true);
    expect(await store.isMarked('other', 1000)).toBe(false);
  });
});
