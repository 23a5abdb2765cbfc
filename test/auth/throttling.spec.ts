import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueUsername } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

/** Each test comes from its own client address (TRUST_PROXY=true), so per-IP counters don't mix. */
let ipCounter = 0;
const freshIp = () => `203.0.113.${++ipCounter}`;

describe('login throttling (LOGIN_RATE_LIMIT=3)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ LOGIN_RATE_LIMIT: '3', SIGNUP_RATE_LIMIT: '3', TRUST_PROXY: 'true' });
    t.clock.freeze();
  });
  afterAll(async () => t?.close());

  const attempt = (ip: string, username: string, password: string) =>
    t.http.post('/auth/login').set('X-Forwarded-For', ip).send({ username, password });
  const fail = async (ip: string, username: string, times: number) => {
    for (let i = 0; i < times; i++) {
      const res = await attempt(ip, username, `wrong password ${i}`);
      expect(res.status, `failure ${i + 1}`).toBe(401);
    }
  };
  const retryAfter = (res: { headers: Record<string, string> }) => {
    const value = res.headers['retry-after'];
    expect(value).toMatch(/^\d+$/);
    expect(Number(value)).toBeGreaterThanOrEqual(1);
    return Number(value);
  };

  it('answers 429 TOO_MANY_ATTEMPTS with Retry-After after 3 failed logins, even with the right password', async () => {
    const ip = freshIp();
    const u = await signupFrom(t, ip);
    await fail(ip, u.username, 3);
    const blocked = await attempt(ip, u.username, u.password);
    expect(blocked.status).toBe(429);
    expect(blocked.body).toMatchObject({ statusCode: 429, error: 'Too Many Requests', code: 'TOO_MANY_ATTEMPTS' });
    retryAfter(blocked);
    expect(blocked.headers['set-cookie']).toBeUndefined();
  });

  it('throttles the account whatever the address the attempts come from', async () => {
    const u = await signupFrom(t, freshIp());
    await fail(freshIp(), u.username, 1);
    await fail(freshIp(), u.username.toUpperCase(), 1);
    await fail(freshIp(), u.username, 1);
    const blocked = await attempt(freshIp(), u.username, u.password);
    expect(blocked.status).toBe(429);
    expect(blocked.body.code).toBe('TOO_MANY_ATTEMPTS');
  });

  it('throttles an unknown account the same way, with the same body', async () => {
    const ip = freshIp();
    const ghost = uniqueUsername('ghost');
    await fail(ip, ghost, 3);
    const blocked = await attempt(ip, ghost, 'any password');
    expect(blocked.status).toBe(429);
    expect(blocked.body.code).toBe('TOO_MANY_ATTEMPTS');

    const u = await signupFrom(t, ip);
    await fail(ip, u.username, 3);
    const known = await attempt(ip, u.username, 'any password');
    expect(known.status).toBe(429);
    expect(known.body).toEqual(blocked.body);
    expect(known.headers['retry-after']).toBe(blocked.headers['retry-after']);
  });

  it('lets the right password through once Retry-After has passed, and doubles the wait after further failures', async () => {
    const ip = freshIp();
    const u = await signupFrom(t, ip);
    await fail(ip, u.username, 3);
    const first = retryAfter(await attempt(ip, u.username, u.password));
    t.clock.advance(first - 0.5);
    expect((await attempt(ip, u.username, u.password)).status).toBe(429);
    t.clock.advance(0.5);
    // One more wrong guess is allowed now; after it the wait is longer.
    expect((await attempt(ip, u.username, 'still wrong')).status).toBe(401);
    const second = retryAfter(await attempt(ip, u.username, u.password));
    expect(second).toBeGreaterThan(first);
    t.clock.advance(second);
    const ok = await attempt(ip, u.username, u.password);
    expect(ok.status).toBe(200);
    // Success clears the account's counter: the next failures start from zero.
    await fail(ip, u.username, 3);
    expect((await attempt(ip, u.username, u.password)).status).toBe(429);
  });

  it('forgets the failures after 15 minutes', async () => {
    const ip = freshIp();
    const u = await signupFrom(t, ip);
    await fail(ip, u.username, 3);
    expect((await attempt(ip, u.username, u.password)).status).toBe(429);
    t.clock.advance(15 * 60);
    // Three fresh failures are allowed again before the next 429.
    await fail(ip, u.username, 3);
    expect((await attempt(ip, u.username, u.password)).status).toBe(429);
    t.clock.advance(15 * 60);
    expect((await attempt(ip, u.username, u.password)).status).toBe(200);
  });

  it('grows the wait with further failures but caps it: the owner always gets in within 15 minutes', async () => {
    const ip = freshIp();
    const u = await signupFrom(t, ip);
    await fail(ip, u.username, 3);
    // An attacker keeps guessing each time the wait is over; the owner tries in between.
    const waits: number[] = [];
    let owner = await attempt(ip, u.username, u.password);
    while (owner.status === 429 && waits.length < 20) {
      const wait = retryAfter(owner);
      expect(wait).toBeLessThanOrEqual(15 * 60);
      waits.push(wait);
      t.clock.advance(wait);
      expect((await attempt(ip, u.username, 'attacker guess')).status).toBe(401);
      owner = await attempt(ip, u.username, u.password);
    }
    expect(owner.status).toBe(200);
    expect(waits.length).toBeGreaterThan(3);
    for (let i = 1; i < waits.length; i++) expect(waits[i]).toBeGreaterThanOrEqual(waits[i - 1]!);
    expect(waits.at(-1)!).toBeGreaterThan(waits[0]!);
  });

  it('throttles one address that sprays many accounts, though far later than one account', async () => {
    const ip = freshIp();
    let failures = 0;
    let blocked: Awaited<ReturnType<typeof attempt>> | undefined;
    while (failures <= 3000) {
      const res = await attempt(ip, `spray_${failures}_${uniqueUsername('x')}`, 'password123');
      if (res.status === 429) {
        blocked = res;
        break;
      }
      expect(res.status).toBe(401);
      failures += 1;
    }
    expect(blocked, 'the address was never throttled').toBeDefined();
    expect(failures).toBeGreaterThanOrEqual(3 * 10); // a shared NAT is not blocked after a few users' typos
    expect(blocked!.body.code).toBe('TOO_MANY_ATTEMPTS');
    retryAfter(blocked!);
    // Another address is not affected.
    expect((await attempt(freshIp(), uniqueUsername('fresh'), 'password123')).status).toBe(401);
  }, 120_000);
});

describe('signup throttling (SIGNUP_RATE_LIMIT=3 per IP per minute)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ SIGNUP_RATE_LIMIT: '3', TRUST_PROXY: 'true' });
  });
  afterAll(async () => t?.close());

  it('answers the 4th signup from one address with 429 and Retry-After, and not another address', async () => {
    const ip = freshIp();
    for (let i = 0; i < 3; i++) await signupFrom(t, ip);
    const res = await t.http
      .post('/auth/signup')
      .set('X-Forwarded-For', ip)
      .send({ username: uniqueUsername(), password: 'good password' });
    expect(res.status).toBe(429);
    expect(res.body).toMatchObject({ statusCode: 429, error: 'Too Many Requests' });
    expect(typeof res.body.code).toBe('string');
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(60);
    await signupFrom(t, freshIp());
  });
});

async function signupFrom(t: TestApp, ip: string) {
  const username = uniqueUsername();
  const password = 'correct horse battery';
  await t.http.post('/auth/signup').set('X-Forwarded-For', ip).send({ username, password }).expect(201);
  return { username, password };
}
