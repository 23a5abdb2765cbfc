import { describe, expect, it } from 'vitest';
import type { AppConfig } from '../../src/config/config.schema.js';
import { AppException } from '../../src/common/errors/app.exception.js';
import { MemoryAttemptStore } from '../../src/auth/throttle/attempt-store.js';
import { LOGIN_WINDOW_MS, LoginThrottleService } from '../../src/auth/throttle/login-throttle.service.js';
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
  it('blocks the account after LOGIN_RATE_LIMIT failures with Retry-After in whole seconds', async () => {
    const { svc, clock } = service();
    for (let i = 0; i < LIMIT; i++) {
      expect(await retryAfterOf(svc.check('alice', '192.0.2.1'))).toBeNull();
      await svc.recordFailure('alice', '192.0.2.1');
    }
    expect(await retryAfterOf(svc.check('alice', '192.0.2.1'))).toBe(1);
    expect(await retryAfterOf(svc.check('alice', '192.0.2.99'))).toBe(1); // any address
    expect(await retryAfterOf(svc.check('bob', '192.0.2.99'))).toBeNull(); // another account
    clock.advance(0.4);
    expect(await retryAfterOf(svc.check('alice', '192.0.2.1'))).toBe(1); // 0.6 s rounds up
    clock.advance(0.6);
    expect(await retryAfterOf(svc.check('alice', '192.0.2.1'))).toBeNull();
  });

  it('clears the account on success, but not the address', async () => {
    const { svc } = service();
    for (let i = 0; i < LIMIT; i++) await svc.recordFailure('carol', '192.0.2.2');
    await svc.recordSuccess('carol');
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
});
