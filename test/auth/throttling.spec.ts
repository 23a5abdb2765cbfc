import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueEmail, uniqueUsername } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

/** Each test comes from its own client address (TRUST_PROXY=true), so per-IP counters don't mix. */
let ipCounter = 0;
const freshIp = () => `203.0.113.${++ipCounter}`;
/** The n-th address of a botnet (198.18.0.0/15, benchmarking addresses). */
const botIp = (n: number) => `198.18.${Math.floor(n / 250)}.${(n % 250) + 1}`;

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

  it('an attacker keeping the back-off alive from one address does not keep the owner out from another', async () => {
    const owner = freshIp();
    const attacker = freshIp();
    const u = await signupFrom(t, owner);
    await fail(attacker, u.username, 3);
    // One wrong guess each time Retry-After runs out; the owner logs in in between.
    for (let round = 0; round < 6; round++) {
      const blocked = await attempt(attacker, u.username, 'attacker guess');
      expect(blocked.status, `round ${round}`).toBe(429);
      expect(blocked.body.code).toBe('TOO_MANY_ATTEMPTS');
      expect((await attempt(owner, u.username, u.password)).status, `owner, round ${round}`).toBe(200);
      t.clock.advance(retryAfter(blocked));
      expect((await attempt(attacker, u.username.toUpperCase(), `guess ${round}`)).status).toBe(401);
    }
    expect((await attempt(attacker, u.username, u.password)).status).toBe(429);
  });

  it('still throttles guesses spread over many addresses: 30 failures (10 x LOGIN_RATE_LIMIT) per account', async () => {
    const home = freshIp();
    const u = await signupFrom(t, home);
    expect((await attempt(home, u.username, u.password)).status).toBe(200); // the owner's usual address
    // 2 failures from each of 15 addresses: none of them ever reaches its own limit of 3.
    for (let i = 0; i < 30; i++) {
      const res = await attempt(botIp(Math.floor(i / 2)), i % 2 ? u.username : u.username.toUpperCase(), `guess ${i}`);
      expect(res.status, `failure ${i + 1}`).toBe(401);
    }
    const blocked = await attempt(botIp(999), u.username, u.password);
    expect(blocked.status).toBe(429);
    expect(blocked.body).toMatchObject({ statusCode: 429, error: 'Too Many Requests', code: 'TOO_MANY_ATTEMPTS' });
    retryAfter(blocked);
    // Each further guess from yet another address doubles the wait.
    t.clock.advance(retryAfter(blocked));
    expect((await attempt(botIp(1000), u.username, 'guess 31')).status).toBe(401);
    const next = await attempt(botIp(1001), u.username, u.password);
    expect(next.status).toBe(429);
    expect(retryAfter(next)).toBeGreaterThan(retryAfter(blocked));
    // Where the owner has logged in before, the account-wide ceiling does not apply.
    expect((await attempt(home, u.username, u.password)).status).toBe(200);
  });

  it('counts the username and the email of one account against one budget', async () => {
    const ip = freshIp();
    const email = uniqueEmail();
    const username = uniqueUsername();
    const password = 'correct horse battery';
    await t.http.post('/auth/signup').set('X-Forwarded-For', ip).send({ username, email, password }).expect(201);
    await fail(ip, username, 2);
    await fail(ip, email.toUpperCase(), 1);
    const byEmail = await attempt(ip, email, password);
    expect(byEmail.status).toBe(429);
    expect(byEmail.body.code).toBe('TOO_MANY_ATTEMPTS');
    expect((await attempt(ip, username, password)).status).toBe(429);

    // An email naming no account is throttled after as many failures, with the same answer.
    const ghost = uniqueEmail('ghost');
    await fail(ip, ghost, 3);
    const unknown = await attempt(ip, ghost, password);
    expect(unknown.status).toBe(429);
    expect(unknown.body).toEqual(byEmail.body);
    expect(unknown.headers['retry-after']).toBe(byEmail.headers['retry-after']);
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

describe('password re-checks with a stolen access token (LOGIN_RATE_LIMIT=3)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ LOGIN_RATE_LIMIT: '3', SIGNUP_RATE_LIMIT: '100', TRUST_PROXY: 'true' });
    t.clock.freeze();
  });
  afterAll(async () => t?.close());

  async function victim(ip: string) {
    const username = uniqueUsername('victim');
    const password = 'correct horse battery';
    const res = await t.http.post('/auth/signup').set('X-Forwarded-For', ip).send({ username, password }).expect(201);
    return { username, password, auth: { Authorization: `Bearer ${res.body.accessToken as string}` } };
  }
  const changePassword = (ip: string, v: { auth: { Authorization: string } }, currentPassword: string) =>
    t.http
      .post('/users/me/password')
      .set('X-Forwarded-For', ip)
      .set(v.auth)
      .send({ currentPassword, newPassword: 'the attacker now owns it' });
  const deleteAccount = (ip: string, v: { auth: { Authorization: string } }, password: string) =>
    t.http.delete('/users/me').set('X-Forwarded-For', ip).set(v.auth).send({ password });
  const expectThrottled = (res: { status: number; body: Record<string, unknown>; headers: Record<string, string> }) => {
    expect(res.status).toBe(429);
    expect(res.body).toMatchObject({ statusCode: 429, error: 'Too Many Requests', code: 'TOO_MANY_ATTEMPTS' });
    expect(res.headers['retry-after']).toMatch(/^\d+$/);
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    return Number(res.headers['retry-after']);
  };

  it('answers 429 TOO_MANY_ATTEMPTS to the 4th currentPassword guess on POST /users/me/password, even the right one', async () => {
    const ip = freshIp();
    const v = await victim(ip);
    const statuses: number[] = [];
    for (let i = 0; i < 60; i++) statuses.push((await changePassword(ip, v, `guess number ${i}`)).status);
    expect(statuses.slice(0, 3)).toEqual([403, 403, 403]);
    expect(statuses.slice(3)).toEqual(Array(57).fill(429));
    expectThrottled(await changePassword(ip, v, v.password));
    // The password was not changed: once the wait is over, the owner still logs in with it.
    t.clock.advance(15 * 60);
    await t.http
      .post('/auth/login')
      .set('X-Forwarded-For', ip)
      .send({ username: v.username, password: v.password })
      .expect(200);
  });

  it('answers 429 to the 4th password guess on DELETE /users/me, and the account survives', async () => {
    const ip = freshIp();
    const v = await victim(ip);
    for (let i = 0; i < 3; i++) expect((await deleteAccount(ip, v, `guess number ${i}`)).status).toBe(403);
    for (let i = 3; i < 30; i++) expectThrottled(await deleteAccount(ip, v, `guess number ${i}`));
    expectThrottled(await deleteAccount(ip, v, v.password));
    await t.http.get('/users/me').set(v.auth).expect(200);
  });

  it('shares one budget per account with login, and the right password after the wait resets it like a login', async () => {
    const ip = freshIp();
    const v = await victim(ip);
    const wrongLogin = await t.http
      .post('/auth/login')
      .set('X-Forwarded-For', ip)
      .send({ username: v.username, password: 'guess 1' });
    expect(wrongLogin.status).toBe(401);
    expect((await deleteAccount(ip, v, 'guess 2')).status).toBe(403);
    expect((await changePassword(ip, v, 'guess 3')).status).toBe(403);
    const wait = expectThrottled(
      await t.http.post('/auth/login').set('X-Forwarded-For', ip).send({ username: v.username, password: v.password }),
    );
    expectThrottled(await changePassword(ip, v, v.password));
    t.clock.advance(wait);
    // The right current password now: 204, and the counter starts over.
    await changePassword(ip, v, v.password).expect(204);
    for (let i = 0; i < 3; i++) expect((await deleteAccount(ip, v, `guess ${i}`)).status).toBe(403);
    expectThrottled(await deleteAccount(ip, v, 'the attacker now owns it'));
  });
});

/**
 * Security finding: the budget was checked before bcrypt and counted after it, so concurrent
 * guesses all passed the check (100 concurrent wrong logins with LOGIN_RATE_LIMIT=10: 100 x
 * 401). Each attempt now takes its place in the budget before its password is verified: a
 * burst at one instant gets exactly LOGIN_RATE_LIMIT verdicts, the rest 429.
 */
describe('concurrent guesses (LOGIN_RATE_LIMIT=5)', () => {
  const LIMIT = 5;
  const BURST = 40;
  let t: TestApp;
  beforeAll(async () => {
    // A real bcrypt cost: the window between the check and the count was the time bcrypt takes.
    t = await startApp({
      LOGIN_RATE_LIMIT: String(LIMIT),
      SIGNUP_RATE_LIMIT: '100',
      TRUST_PROXY: 'true',
      BCRYPT_COST: '10',
    });
    t.clock.freeze();
  });
  afterAll(async () => t?.close());

  interface Answer {
    status: number;
    body: Record<string, unknown>;
    headers: Record<string, string>;
  }
  /** `n` requests sent at once, and their answers. */
  const burst = (n: number, send: (i: number) => PromiseLike<Answer>): Promise<Answer[]> =>
    Promise.all(Array.from({ length: n }, (_, i) => send(i)));
  const statusCounts = (answers: Answer[]) => {
    const counts: Record<number, number> = {};
    for (const a of answers) counts[a.status] = (counts[a.status] ?? 0) + 1;
    return counts;
  };
  const login = (ip: string, username: string, password: string) =>
    t.http.post('/auth/login').set('X-Forwarded-For', ip).send({ username, password });
  const throttled = (answers: Answer[]) => {
    const refused = answers.filter((a) => a.status === 429);
    for (const a of refused) {
      expect(a.body).toMatchObject({ statusCode: 429, error: 'Too Many Requests', code: 'TOO_MANY_ATTEMPTS' });
      expect(a.headers['retry-after']).toBe('1'); // the back-off starts at 1 s
    }
    return refused;
  };

  it(`gives ${BURST} concurrent wrong logins from one address exactly ${LIMIT} x 401 and ${BURST - LIMIT} x 429`, async () => {
    const ip = freshIp();
    const u = await signupFrom(t, ip);
    const answers = await burst(BURST, (i) => login(ip, u.username, `wrong guess ${i}`));
    expect(statusCounts(answers)).toEqual({ 401: LIMIT, 429: BURST - LIMIT });
    throttled(answers);
    // That address now waits, even with the right password; the owner elsewhere does not.
    expect((await login(ip, u.username, u.password)).status).toBe(429);
    expect((await login(freshIp(), u.username, u.password)).status).toBe(200);
  });

  it('answers a burst on an unknown account exactly like a burst on an existing one', async () => {
    const ip = freshIp();
    const u = await signupFrom(t, ip);
    const known = await burst(BURST, (i) => login(ip, u.username, `wrong guess ${i}`));
    const ghost = uniqueUsername('ghost');
    const sameGhost = await burst(BURST, (i) => login(ip, ghost, `wrong guess ${i}`));
    expect(statusCounts(sameGhost)).toEqual(statusCounts(known));
    const body = (answers: Answer[], status: number) => answers.find((a) => a.status === status)!.body;
    expect(body(sameGhost, 401)).toEqual(body(known, 401));
    expect(body(sameGhost, 429)).toEqual(body(known, 429));
    const waits = (answers: Answer[]) => throttled(answers).map((a) => a.headers['retry-after']);
    expect(waits(sameGhost)).toEqual(waits(known));
  });

  it(`gives ${BURST} concurrent wrong passwords on DELETE /users/me exactly ${LIMIT} x 403; the account survives`, async () => {
    const ip = freshIp();
    const username = uniqueUsername('victim');
    const res = await t.http
      .post('/auth/signup')
      .set('X-Forwarded-For', ip)
      .send({ username, password: 'correct horse battery' })
      .expect(201);
    const auth = { Authorization: `Bearer ${res.body.accessToken as string}` };
    const answers = await burst(BURST, (i) =>
      t.http
        .delete('/users/me')
        .set('X-Forwarded-For', ip)
        .set(auth)
        .send({ password: `guess number ${i}` }),
    );
    expect(statusCounts(answers)).toEqual({ 403: LIMIT, 429: BURST - LIMIT });
    throttled(answers);
    await t.http.get('/users/me').set(auth).expect(200);
  });

  it('shares one budget between concurrent logins and concurrent password re-checks', async () => {
    const ip = freshIp();
    const username = uniqueUsername('victim');
    const res = await t.http
      .post('/auth/signup')
      .set('X-Forwarded-For', ip)
      .send({ username, password: 'correct horse battery' })
      .expect(201);
    const auth = { Authorization: `Bearer ${res.body.accessToken as string}` };
    const answers = await burst(BURST, (i) =>
      i % 2
        ? login(ip, username, `guess number ${i}`)
        : t.http
            .post('/users/me/password')
            .set('X-Forwarded-For', ip)
            .set(auth)
            .send({ currentPassword: `guess number ${i}`, newPassword: 'the attacker now owns it' }),
    );
    const counts = statusCounts(answers);
    expect((counts[401] ?? 0) + (counts[403] ?? 0)).toBe(LIMIT);
    expect(counts[429]).toBe(BURST - LIMIT);
    throttled(answers);
  });
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
