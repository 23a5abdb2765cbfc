import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_REDIS_URL, onPostgres } from '../support/env.js';
import { bearer, refreshCookie, refreshCookieOf } from '../support/factories.js';
import { es256KeyPair } from '../support/jwt.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { WsClient, listen } from '../realtime/ws-helpers.js';
import {
  NEW_PASSWORD,
  RESET_LINK,
  SUBJECT,
  client,
  expectStatus,
  linkToken,
  mailIdle,
  nextMail,
  outcome,
  recoveryEnv,
  resetToken,
  signupAs,
  type Client,
} from './recovery-helpers.js';

const reset = (c: Client, token: unknown, newPassword: string = NEW_PASSWORD) =>
  c.post('/auth/password/reset').send({ token, newPassword });

/** Contract v2 §A: reset tokens work once, expire, and a reset signs out everywhere. */
describe('POST /auth/password/reset', () => {
  let smtp: TestSmtp;
  let t: TestApp;
  beforeAll(async () => {
    smtp = await startSmtp('accept');
    t = await startApp(recoveryEnv(smtp));
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('a reset closes every WebSocket of the account with 4410 SESSION_REVOKED within 1 s (contract v2 §F)', async () => {
    const c = client(t);
    const user = await signupAs(c);
    const stranger = await signupAs(c);
    const url = await listen(t);
    const own = await WsClient.open(url);
    const other = await WsClient.open(url);
    try {
      await own.authenticate(user.accessToken);
      await other.authenticate(stranger.accessToken);
      const token = await resetToken(c, smtp, user);
      expectStatus(await reset(c, token), 204);
      expect(await own.closing(1000)).toEqual({ code: 4410, reason: 'SESSION_REVOKED' });
      await other.probe();
      expect(other.closed).toBeNull();
    } finally {
      own.close();
      other.close();
    }
  });

  it('a reset token works once; the second use is 400 RESET_TOKEN_INVALID', async () => {
    const c = client(t);
    const user = await signupAs(c);
    const token = await resetToken(c, smtp, user);
    const first = await reset(c, token);
    expectStatus(first, 204);
    expect(outcome(await reset(c, token, 'yet another passphrase'))).toEqual({
      status: 400,
      code: 'RESET_TOKEN_INVALID',
    });
    // The second attempt changed nothing: the first new password still logs in.
    await c.post('/auth/login').send({ username: user.username, password: NEW_PASSWORD }).expect(200);
  });

  it('5 concurrent resets with one token: exactly one 204, four 400 RESET_TOKEN_INVALID', async () => {
    const c = client(t);
    const user = await signupAs(c);
    const token = await resetToken(c, smtp, user);
    const passwords = Array.from({ length: 5 }, (_, i) => `concurrent passphrase ${i}`);
    const answers = await Promise.all(passwords.map((p) => reset(c, token, p)));
    const statuses = answers.map((r) => r.status).sort((a, b) => a - b);
    expect(statuses).toEqual([204, 400, 400, 400, 400]);
    for (const r of answers.filter((a) => a.status === 400)) expect(r.body.code).toBe('RESET_TOKEN_INVALID');
    // Exactly the winner's password is the account's.
    const winner = passwords[answers.findIndex((r) => r.status === 204)]!;
    const logins = await Promise.all(
      passwords.map((p) => c.post('/auth/login').send({ username: user.username, password: p })),
    );
    expect(logins.map((l, i) => [passwords[i], l.status])).toEqual(passwords.map((p) => [p, p === winner ? 200 : 401]));
  });

  it('the response of a reset has no Set-Cookie and no body; old access tokens and refresh cookies are 401; the old password fails, the new one logs in', async () => {
    const c = client(t);
    const user = await signupAs(c);
    const second = await c.post('/auth/login').send({ username: user.username, password: user.password }).expect(200);
    const sessions = [
      { accessToken: user.accessToken, refreshToken: user.refreshToken },
      { accessToken: second.body.accessToken as string, refreshToken: refreshCookieOf(second)! },
    ];
    for (const s of sessions) await c.get('/users/me').set(bearer(s.accessToken)).expect(200);
    const token = await resetToken(c, smtp, user);

    const res = await reset(c, token);
    expectStatus(res, 204);
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.text).toBe('');
    expect(JSON.stringify(res.body ?? {})).not.toMatch(/token/i);

    for (const s of sessions) {
      const me = await c.get('/users/me').set(bearer(s.accessToken));
      expect(me.status, 'old access token').toBe(401);
      const refreshed = await c.post('/auth/refresh').set('Cookie', refreshCookie(s.refreshToken));
      expect(refreshed.status, 'old refresh cookie').toBe(401);
      // No new refresh token: the cookie is absent or cleared.
      expect(refreshCookieOf(refreshed) ?? '').toBe('');
    }
    expect(outcome(await c.post('/auth/login').send({ username: user.username, password: user.password }))).toEqual({
      status: 401,
      code: 'INVALID_CREDENTIALS',
    });
    const fresh = await c.post('/auth/login').send({ username: user.username, password: NEW_PASSWORD });
    expectStatus(fresh, 200);
    await c
      .get('/users/me')
      .set(bearer(fresh.body.accessToken as string))
      .expect(200);
  });

  it('a reset for an unverified address verifies it (the link proved it) and mails a "password changed" notice', async () => {
    const c = client(t);
    const user = await signupAs(c);
    await nextMail(smtp, user.email!, SUBJECT.verify);
    const token = await resetToken(c, smtp, user);
    expect((await reset(c, token)).status).toBe(204);
    await mailIdle(t);
    const notice = smtp.mailsTo(user.email!).filter((m) => (m.parsed.subject ?? '').includes('password was changed'));
    expect(notice).toHaveLength(1);
    const login = await c.post('/auth/login').send({ username: user.username, password: NEW_PASSWORD }).expect(200);
    const me = await c
      .get('/users/me')
      .set(bearer(login.body.accessToken as string))
      .expect(200);
    expect(me.body.emailVerified).toBe(true);
  });
});

describe('reset tokens over time (FakeClock)', () => {
  let smtp: TestSmtp;
  let t: TestApp;
  beforeAll(async () => {
    smtp = await startSmtp('accept');
    t = await startApp(recoveryEnv(smtp));
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('PASSWORD_RESET_TTL + 1 s later the token is 400 RESET_TOKEN_EXPIRED', async () => {
    const c = client(t);
    const user = await signupAs(c);
    const token = await resetToken(c, smtp, user);
    t.clock.advance(t.config.PASSWORD_RESET_TTL + 1);
    expect(outcome(await reset(c, token))).toEqual({ status: 400, code: 'RESET_TOKEN_EXPIRED' });
    await c.post('/auth/login').send({ username: user.username, password: user.password }).expect(200);
  });

  it('a second forgot more than 60 s after the first mails a new token and kills the first', async () => {
    const c = client(t);
    const user = await signupAs(c);
    const first = await resetToken(c, smtp, user);
    t.clock.advance(61);
    const second = await resetToken(c, smtp, user);
    expect(second).not.toBe(first);
    expect(outcome(await reset(c, first))).toEqual({ status: 400, code: 'RESET_TOKEN_INVALID' });
    expect((await reset(c, second)).status).toBe(204);
  });

  it('a second forgot within 60 s sends nothing, and the first token still works', async () => {
    const c = client(t);
    const user = await signupAs(c);
    const first = await resetToken(c, smtp, user);
    t.clock.advance(30);
    await mailIdle(t);
    const before = smtp.mailsTo(user.email!).length;
    const again = await c.post('/auth/password/forgot').send({ login: user.username });
    expectStatus(again, 202);
    await mailIdle(t);
    expect(smtp.mailsTo(user.email!)).toHaveLength(before);
    const res = await reset(c, first);
    expectStatus(res, 204);
  });
});

/** Two instances on one PostgreSQL database and one Redis (see test/auth/multi-instance.spec.ts). */
describe.runIf(onPostgres)('a reset on one instance, with several sharing PostgreSQL and Redis', () => {
  const keys = es256KeyPair();
  let smtp: TestSmtp;
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    smtp = await startSmtp('accept');
    const env = recoveryEnv(smtp, { REDIS_URL: TEST_REDIS_URL, JWT_KEYS: keys.pem });
    a = await startApp(env);
    b = await startApp(env, { databaseUrl: a.databaseUrl });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close(); // drops the database last
    await smtp?.close();
  });

  it('the access token is refused on the other instance within 1 s', async () => {
    const onA = client(a);
    const onB = client(b, onA.ip);
    const user = await signupAs(onA);
    await onB.get('/users/me').set(user.auth).expect(200); // B verified (and may cache) it
    const res = await onB.post('/auth/password/forgot').send({ login: user.username });
    expect(res.status).toBe(202);
    const token = linkToken(await nextMail(smtp, user.email!, SUBJECT.reset), RESET_LINK);
    const done = await reset(onA, token);
    expectStatus(done, 204);
    expect((await onA.get('/users/me').set(user.auth)).status).toBe(401);
    const start = Date.now();
    while ((await onB.get('/users/me').set(user.auth)).status !== 401) {
      if (Date.now() - start > 1000) throw new Error('B still accepts the access token 1 s after the reset on A');
      await new Promise((r) => setTimeout(r, 25));
    }
    expect((await onB.post('/auth/refresh').set('Cookie', refreshCookie(user.refreshToken))).status).toBe(401);
    await onB.post('/auth/login').send({ username: user.username, password: NEW_PASSWORD }).expect(200);
  });
});
