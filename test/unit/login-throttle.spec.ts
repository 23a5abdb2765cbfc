import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.schema.js';
import { AppError } from '../../src/common/errors/app-error.js';
import {
  MemoryAttemptStore,
  RedisAttemptStore,
  type AttemptStore,
  type BackoffPolicy,
  type Reservation,
  type ReserveOutcome,
} from '../../src/throttle/attempt-store.js';
import {
  ACCOUNT_CEILING_FACTOR,
  KNOWN_SOURCE_MS,
  LOGIN_WINDOW_MS,
  LoginThrottleService,
  throttleAccountKey,
} from '../../src/throttle/login-throttle.service.js';
import { FakeClock } from '../support/fake-clock.js';

const LIMIT = 3;
const WINDOW_S = LOGIN_WINDOW_MS / 1000;

function service(limit = LIMIT) {
  const clock = new FakeClock();
  clock.freeze(Date.UTC(2026, 0, 1));
  const svc = new LoginThrottleService(parseConfig({ LOGIN_RATE_LIMIT: String(limit) }), null, clock);
  return { svc, clock, now: () => clock.nowMs() };
}

/** The Retry-After (seconds) of the 429 that `promise` rejects with, or null when it resolves. */
async function retryAfterOf(promise: Promise<unknown>): Promise<number | null> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  if (error === null) return null;
  expect(error).toBeInstanceOf(AppError);
  expect((error as AppError).status).toBe(429);
  expect((error as AppError).code).toBe('TOO_MANY_ATTEMPTS');
  return Number((error as AppError).headers['Retry-After']);
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

/** An attempt with a wrong password: null when admitted (so counted as a failure), else the Retry-After of its 429. */
const wrong = (svc: LoginThrottleService, account: string, ip: string) => retryAfterOf(svc.admit(account, ip));
/** An attempt with the right password: null when admitted (then recorded as a success), else the Retry-After. */
const right = (svc: LoginThrottleService, account: string, ip: string) =>
  retryAfterOf(svc.admit(account, ip).then((attempt) => svc.recordSuccess(attempt)));

describe('LoginThrottleService admit / recordSuccess (in memory)', () => {
  it('blocks the account from that address after LOGIN_RATE_LIMIT failures with Retry-After in whole seconds', async () => {
    const { svc, clock } = service();
    for (let i = 0; i < LIMIT; i++) expect(await wrong(svc, 'alice', '192.0.2.1')).toBeNull();
    expect(await wrong(svc, 'alice', '192.0.2.1')).toBe(1);
    expect(await right(svc, 'alice', '192.0.2.99')).toBeNull(); // the owner, elsewhere
    expect(await wrong(svc, 'bob', '192.0.2.1')).toBeNull(); // another account
    clock.advance(0.4);
    expect(await right(svc, 'alice', '192.0.2.1')).toBe(1); // 0.6 s rounds up
    clock.advance(0.6);
    expect(await right(svc, 'alice', '192.0.2.1')).toBeNull();
  });

  it('does not count an attempt it refuses', async () => {
    const { svc, clock } = service();
    for (let i = 0; i < LIMIT; i++) await wrong(svc, 'amy', '192.0.2.3');
    for (let i = 0; i < 20; i++) expect(await wrong(svc, 'amy', '192.0.2.3')).toBe(1);
    clock.advance(1);
    expect(await wrong(svc, 'amy', '192.0.2.3')).toBeNull();
    expect(await wrong(svc, 'amy', '192.0.2.3')).toBe(2); // LIMIT + 1 failures, not LIMIT + 21
  });

  it('starts the account over for that address on success', async () => {
    const { svc, clock } = service();
    for (let i = 0; i < LIMIT; i++) expect(await wrong(svc, 'carol', '192.0.2.2')).toBeNull();
    expect(await right(svc, 'carol', '192.0.2.2')).toBe(1);
    clock.advance(1);
    expect(await right(svc, 'carol', '192.0.2.2')).toBeNull();
    for (let i = 0; i < LIMIT; i++) expect(await wrong(svc, 'carol', '192.0.2.2')).toBeNull(); // from zero again
    expect(await wrong(svc, 'carol', '192.0.2.2')).toBe(1);
  });

  it('blocks an address that fails on many accounts, far later than one account', async () => {
    const { svc } = service();
    let n = 0;
    while ((await wrong(svc, `victim${n}`, '198.51.100.1')) === null && n < 100_000) n += 1;
    expect(n).toBe(Math.max(300, LIMIT * 30));
    expect(await wrong(svc, 'someone-new', '198.51.100.1')).toBeGreaterThanOrEqual(1);
    expect(await wrong(svc, 'someone-new', '198.51.100.2')).toBeNull();
  });
});

/**
 * Security finding: check() ran before bcrypt and recordFailure() after it, so concurrent
 * guesses all passed the check. admit() checks and counts in one step, before the password.
 */
describe('LoginThrottleService: concurrent attempts (in memory)', () => {
  /** `n` attempts at once, each verifying its (wrong) password for a while once admitted: how many got to verify. */
  async function burst(
    svc: LoginThrottleService,
    n: number,
    account: (i: number) => string,
    ip: (i: number) => string,
  ) {
    const outcomes = await Promise.allSettled(
      Array.from({ length: n }, async (_, i) => {
        await svc.admit(account(i), ip(i));
        await new Promise((resolve) => setTimeout(resolve, 5)); // bcrypt; the password is wrong
      }),
    );
    const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    for (const o of refused) expect(await retryAfterOf(Promise.reject(o.reason))).toBeGreaterThanOrEqual(1);
    return n - refused.length;
  }

  it('admits exactly LOGIN_RATE_LIMIT=5 of 40 concurrent wrong guesses from one address', async () => {
    const { svc, clock } = service(5);
    const target = (_i: number) => 'target';
    const fromOneAddress = () => burst(svc, 40, target, () => '192.0.2.10');
    expect(await fromOneAddress()).toBe(5);
    // Then the back-off, one guess at a time.
    expect(await fromOneAddress()).toBe(0);
    clock.advance(1);
    expect(await fromOneAddress()).toBe(1);
    clock.advance(2);
    expect(await fromOneAddress()).toBe(1);
  });

  it('admits exactly the account-wide ceiling of concurrent guesses from many addresses', async () => {
    const { svc } = service(5);
    const fromManyAddresses = (i: number) => `10.9.${i}.1`;
    expect(await burst(svc, 200, () => 'target', fromManyAddresses)).toBe(5 * ACCOUNT_CEILING_FACTOR);
  });

  it('admits exactly the per-address ceiling of concurrent guesses on many accounts', async () => {
    const { svc } = service(5);
    const manyAccounts = (i: number) => `victim${i}`;
    expect(await burst(svc, 400, manyAccounts, () => '198.51.100.9')).toBe(300);
  });

  it('admits a concurrent right password only within the budget, and it counts nothing once verified', async () => {
    const { svc } = service(5);
    const ip = '192.0.2.11';
    const attempts = await Promise.allSettled(Array.from({ length: 8 }, () => svc.admit('mia', ip)));
    const admitted = attempts.filter((o) => o.status === 'fulfilled');
    expect(admitted).toHaveLength(5);
    // One of them had the right password; the other four stay counted.
    await svc.recordSuccess(admitted[0]!.value);
    for (let i = 0; i < 5; i++) expect(await wrong(svc, 'mia', ip)).toBeNull(); // the success started it over
    expect(await wrong(svc, 'mia', ip)).toBe(1);
  });
});

describe('LoginThrottleService: per (account, address), account-wide ceiling, known sources', () => {
  const CEILING = LIMIT * ACCOUNT_CEILING_FACTOR;
  /** `n` failures on `account`, spread over fresh addresses, LIMIT - 1 per address (none of them blocked). */
  async function spread(svc: LoginThrottleService, account: string, n: number, tag: string) {
    for (let i = 0; i < n; i++) {
      const ip = `10.${tag}.${Math.floor(i / (LIMIT - 1))}.1`;
      expect(await wrong(svc, account, ip), `failure ${i + 1}`).toBeNull();
    }
  }

  it('an attacker keeping the back-off alive from one address never blocks the owner at another', async () => {
    const { svc, clock } = service();
    for (let i = 0; i < LIMIT; i++) await wrong(svc, 'dave', '203.0.113.66');
    for (let round = 0; round < 8; round++) {
      const wait = await wrong(svc, 'dave', '203.0.113.66');
      expect(wait).toBeGreaterThanOrEqual(1);
      expect(await right(svc, 'dave', '198.51.100.5')).toBeNull(); // the owner
      clock.advance(wait!);
      expect(await wrong(svc, 'dave', '203.0.113.66')).toBeNull();
    }
  });

  it(`blocks every unknown address once ${CEILING} failures (10 x LOGIN_RATE_LIMIT) came from many addresses, then doubles`, async () => {
    const { svc, clock } = service();
    await spread(svc, 'erin', CEILING, '1');
    expect(await wrong(svc, 'erin', '192.0.2.200')).toBe(1);
    expect(await wrong(svc, 'frank', '192.0.2.200')).toBeNull(); // only that account
    clock.advance(1);
    await spread(svc, 'erin', 1, '2');
    expect(await wrong(svc, 'erin', '192.0.2.201')).toBe(2);
  });

  it('does not count failures below the ceiling against other addresses', async () => {
    const { svc } = service();
    await spread(svc, 'gina', CEILING - 1, '3');
    expect(await wrong(svc, 'gina', '192.0.2.202')).toBeNull();
  });

  it('does not count a success on the account-wide counter, nor move its back-off', async () => {
    const { svc, clock } = service();
    await svc.admit('kim', '198.51.100.20').then((attempt) => svc.recordSuccess(attempt)); // the owner's usual address
    await spread(svc, 'kim', CEILING - 1, '6');
    expect(await right(svc, 'kim', '198.51.100.21')).toBeNull(); // a new address, the right password
    await spread(svc, 'kim', 1, '7'); // the CEILING-th failure is still admitted
    expect(await wrong(svc, 'kim', '192.0.2.204')).toBe(1);
    // The owner, from the known address, half-way through the wait: the wait does not restart.
    clock.advance(0.5);
    expect(await right(svc, 'kim', '198.51.100.20')).toBeNull();
    clock.advance(0.5);
    expect(await wrong(svc, 'kim', '192.0.2.205')).toBeNull();
  });

  it('lets an address that logged in to the account before past the ceiling, not past its own back-off', async () => {
    const { svc } = service();
    expect(await right(svc, 'hank', '198.51.100.7')).toBeNull(); // the owner's usual address
    await spread(svc, 'hank', CEILING, '4');
    expect(await wrong(svc, 'hank', '192.0.2.203')).toBeGreaterThanOrEqual(1); // a stranger
    expect(await right(svc, 'hank', '198.51.100.7')).toBeNull(); // the owner
    // The success does not clear the account-wide count.
    expect(await wrong(svc, 'hank', '192.0.2.203')).toBeGreaterThanOrEqual(1);
    // Guessing from the known address is still slowed by its own counter.
    for (let i = 0; i < LIMIT; i++) expect(await wrong(svc, 'hank', '198.51.100.7')).toBeNull();
    expect(await wrong(svc, 'hank', '198.51.100.7')).toBeGreaterThanOrEqual(1);
    // The mark is for one account only, and runs out.
    expect(await wrong(svc, 'ivan', '198.51.100.7')).toBeNull();
    const other = service();
    expect(await right(other.svc, 'hank', '198.51.100.8')).toBeNull();
    other.clock.advance(KNOWN_SOURCE_MS / 1000);
    await spread(other.svc, 'hank', CEILING, '5');
    expect(await wrong(other.svc, 'hank', '198.51.100.8')).toBe(1);
  });

  it('keys an existing account by its id (username and email share it) and an unknown login by its canonical form', () => {
    expect(throttleAccountKey('0b7c3a1e-0000-4000-8000-000000000001', 'alice')).toBe(
      'user:0b7c3a1e-0000-4000-8000-000000000001',
    );
    expect(throttleAccountKey('0b7c3a1e-0000-4000-8000-000000000001', 'alice@example.com')).toBe(
      'user:0b7c3a1e-0000-4000-8000-000000000001',
    );
    expect(throttleAccountKey(null, 'alice')).toBe('login:alice');
    expect(throttleAccountKey(null, 'alice@example.com')).toBe('login:alice@example.com');
  });
});

/** The AttemptStore contract, for each store. */
function storeContract(make: () => AttemptStore) {
  const policy: BackoffPolicy = { windowMs: 1000, maxWaitMs: 8000 };
  const t0 = 1_000_000;
  /** One attempt on one counter that never makes it wait. */
  const count = (store: AttemptStore, key: string, nowMs: number) =>
    store.reserve([{ key, limit: 1e9 }], nowMs, policy);
  const admitted = (outcome: ReserveOutcome): Reservation => {
    if (!outcome.admitted) throw new Error(`refused, wait ${outcome.waitMs} ms`);
    return outcome.reservation;
  };

  it('counts failures within the window, starts over after it, and resets', async () => {
    const store = make();
    await count(store, 'k', t0);
    expect(await store.get('k')).toEqual({ failures: 1, lastFailureMs: t0 });
    await count(store, 'k', t0 + 999);
    expect(await store.get('k')).toEqual({ failures: 2, lastFailureMs: t0 + 999 });
    await count(store, 'k', t0 + 1999);
    expect(await store.get('k')).toEqual({ failures: 1, lastFailureMs: t0 + 1999 });
    await store.reset('k');
    expect(await store.get('k')).toBeNull();
  });

  it('admits `limit` attempts, then waits 1 s from the last one, doubling up to the maximum', async () => {
    const store = make();
    const long: BackoffPolicy = { windowMs: 60_000, maxWaitMs: 8000 };
    const spec = [{ key: 'b', limit: 2 }];
    expect(admitted(await store.reserve(spec, t0, long)).counts).toEqual([
      { key: 'b', runStartMs: t0, previousLastMs: null },
    ]);
    expect(admitted(await store.reserve(spec, t0 + 10, long)).counts).toEqual([
      { key: 'b', runStartMs: t0, previousLastMs: t0 },
    ]);
    expect(await store.reserve(spec, t0 + 10, long)).toEqual({ admitted: false, waitMs: 1000 });
    expect(await store.reserve(spec, t0 + 510, long)).toEqual({ admitted: false, waitMs: 500 });
    admitted(await store.reserve(spec, t0 + 1010, long));
    expect(await store.reserve(spec, t0 + 1010, long)).toEqual({ admitted: false, waitMs: 2000 });
    expect(await store.get('b')).toEqual({ failures: 3, lastFailureMs: t0 + 1010 }); // refusals are not counted
    for (let i = 0; i < 10; i++) await count(store, 'c', t0);
    expect(await store.reserve([{ key: 'c', limit: 1 }], t0, long)).toEqual({ admitted: false, waitMs: 8000 });
  });

  it('waits for the longest counter and counts on all of them, or on none', async () => {
    const store = make();
    const spec = (own: string) => [
      { key: own, limit: 100 },
      { key: 'shared', limit: 3 },
    ];
    for (const own of ['x', 'y', 'z']) admitted(await store.reserve(spec(own), t0, policy));
    expect(await store.reserve(spec('w'), t0, policy)).toEqual({ admitted: false, waitMs: 1000 });
    expect(await store.get('w')).toBeNull();
    expect(await store.get('x')).toEqual({ failures: 1, lastFailureMs: t0 });
    expect(await store.get('shared')).toEqual({ failures: 3, lastFailureMs: t0 });
  });

  it('lifts the wait of a counter while its mark is live, and still counts the attempt', async () => {
    const store = make();
    const spec = [{ key: 'acct', limit: 1, unlessMarked: 'known' }];
    admitted(await store.reserve(spec, t0, policy));
    expect(await store.reserve(spec, t0, policy)).toEqual({ admitted: false, waitMs: 1000 });
    await store.mark('known', t0, 500);
    admitted(await store.reserve(spec, t0, policy));
    expect(await store.get('acct')).toEqual({ failures: 2, lastFailureMs: t0 });
    expect(await store.reserve(spec, t0 + 500, policy)).toEqual({ admitted: false, waitMs: 1500 });
  });

  it('admits exactly `limit` of 50 concurrent reservations', async () => {
    const store = make();
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, () => store.reserve([{ key: 'burst', limit: 7 }], t0, policy)),
    );
    expect(outcomes.filter((o) => o.admitted)).toHaveLength(7);
    expect(outcomes.filter((o) => !o.admitted && o.waitMs === 1000)).toHaveLength(43);
    expect(await store.get('burst')).toEqual({ failures: 7, lastFailureMs: t0 });
  });

  it('admits exactly the limit of a shared counter among 50 concurrent reservations on several counters', async () => {
    const store = make();
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        store.reserve(
          [
            { key: `own${i}`, limit: 5 },
            { key: 'sharedburst', limit: 10 },
            { key: 'marked', limit: 4, unlessMarked: `mark${i}` },
          ],
          t0,
          policy,
        ),
      ),
    );
    expect(outcomes.filter((o) => o.admitted)).toHaveLength(4);
    expect(await store.get('sharedburst')).toEqual({ failures: 4, lastFailureMs: t0 });
  });

  it('release takes an attempt back out and restores the last failure before it', async () => {
    const store = make();
    await count(store, 'r', t0);
    const reservation = admitted(await count(store, 'r', t0 + 300));
    await store.release(reservation.counts, reservation.atMs);
    expect(await store.get('r')).toEqual({ failures: 1, lastFailureMs: t0 });
    // The only attempt of a counter: the counter goes.
    const alone = admitted(await count(store, 'r2', t0));
    await store.release(alone.counts, alone.atMs);
    expect(await store.get('r2')).toBeNull();
  });

  it('release keeps the last failure of another attempt counted since, or at the same instant', async () => {
    const store = make();
    await count(store, 's', t0);
    const mine = admitted(await count(store, 's', t0 + 300));
    await count(store, 's', t0 + 300); // another, at the same instant
    await count(store, 's2', t0);
    const mine2 = admitted(await count(store, 's2', t0 + 300));
    await count(store, 's2', t0 + 400); // another, later
    await store.release(mine.counts, mine.atMs);
    await store.release(mine2.counts, mine2.atMs);
    expect(await store.get('s')).toEqual({ failures: 2, lastFailureMs: t0 + 300 });
    expect(await store.get('s2')).toEqual({ failures: 2, lastFailureMs: t0 + 400 });
  });

  it('release leaves a counter alone that was reset or restarted since the attempt', async () => {
    const store = make();
    const reset = admitted(await count(store, 'u', t0));
    await store.reset('u');
    await count(store, 'u', t0 + 10);
    await store.release(reset.counts, reset.atMs);
    expect(await store.get('u')).toEqual({ failures: 1, lastFailureMs: t0 + 10 });
    const old = admitted(await count(store, 'v', t0));
    await count(store, 'v', t0 + 5000); // a new run, the window went by
    await store.release(old.counts, old.atMs);
    expect(await store.get('v')).toEqual({ failures: 1, lastFailureMs: t0 + 5000 });
  });

  it('keeps marks until their time runs out, apart from the counters', async () => {
    const store = make();
    await store.mark('m', 1000, 500);
    expect(await store.isMarked('m', 1499)).toBe(true);
    expect(await store.isMarked('m', 1500)).toBe(false);
    await store.reset('m');
    expect(await store.isMarked('m', 1000)).toBe(true);
    expect(await store.isMarked('other', 1000)).toBe(false);
  });
}

describe('MemoryAttemptStore', () => {
  storeContract(() => new MemoryAttemptStore());
});

/** The same store contract on Redis (TEST_REDIS_URL), under a prefix of this run only. */
describe.runIf(process.env.TEST_REDIS_URL)('RedisAttemptStore', () => {
  const prefix = `gatehouse:test:${randomBytes(6).toString('hex')}:`;
  let stores = 0;
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

  // Each test its own prefix: the same key names, never the same keys.
  storeContract(() => new RedisAttemptStore(redis, `${prefix}${++stores}:`));
});
