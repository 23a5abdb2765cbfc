import { randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS, TEST_REDIS_URL, onPostgres } from '../support/env.js';
import { bearer, decodeJwt, refreshCookie, refreshCookieOf, uniqueUsername } from '../support/factories.js';
import { es256KeyPair } from '../support/jwt.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { within } from '../support/within.js';

/**
 * Two (or three) instances on one PostgreSQL database and one Redis, as in production.
 * Every request comes from this run's own client address (TRUST_PROXY=true), so that the
 * per-IP counters this run leaves in the shared Redis cannot meet another run's; user
 * names are unique too. Nothing global in Redis is flushed.
 */
describe.runIf(onPostgres)('several instances sharing PostgreSQL and Redis', () => {
  const keys = es256KeyPair();
  const clientIp = `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
  const env = {
    ...ROOMY_LIMITS,
    REDIS_URL: TEST_REDIS_URL,
    JWT_KEYS: keys.pem,
    LOGIN_RATE_LIMIT: '3',
    TRUST_PROXY: 'true',
    ADMIN_USERNAME: 'root',
    ADMIN_PASSWORD: 'root password 123',
  };
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    a = await startApp(env);
    b = await startApp(env, { databaseUrl: a.databaseUrl });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close(); // drops the database last
  });

  const post = (app: TestApp, path: string) => app.http.post(path).set('X-Forwarded-For', clientIp);
  const sessionsStatus = async (app: TestApp, token: string) =>
    (await app.http.get('/auth/sessions').set('X-Forwarded-For', clientIp).set(bearer(token))).status;

  async function signupOn(app: TestApp) {
    const username = uniqueUsername('multi');
    const password = 'correct horse battery';
    const res = await post(app, '/auth/signup').send({ username, password }).expect(201);
    return { username, password, accessToken: res.body.accessToken as string, refreshToken: refreshCookieOf(res)! };
  }
  async function loginOn(app: TestApp, username: string, password: string) {
    const res = await post(app, '/auth/login').send({ username, password }).expect(200);
    return { accessToken: res.body.accessToken as string, refreshToken: refreshCookieOf(res)! };
  }

  it('refreshes on B a session opened on A, and on A the token B issued', async () => {
    const u = await signupOn(a);
    const s = await loginOn(a, u.username, u.password);
    expect(await sessionsStatus(b, s.accessToken)).toBe(200); // B verifies A's tokens
    const onB = await post(b, '/auth/refresh').set('Cookie', refreshCookie(s.refreshToken)).expect(200);
    const successor = refreshCookieOf(onB)!;
    expect(successor).not.toBe(s.refreshToken);
    const onA = await post(a, '/auth/refresh').set('Cookie', refreshCookie(successor)).expect(200);
    expect(refreshCookieOf(onA)).not.toBe(successor);
    expect(await sessionsStatus(a, onB.body.accessToken)).toBe(200);
  });

  it('rejects on B, within 1 s, the access token of a session logged out on A', async () => {
    const u = await signupOn(a);
    const other = await loginOn(a, u.username, u.password);
    expect(await sessionsStatus(b, u.accessToken)).toBe(200); // B has verified (and cached) it
    await post(a, '/auth/logout').set('Cookie', refreshCookie(u.refreshToken)).expect(204);
    expect(await sessionsStatus(a, u.accessToken)).toBe(401);
    await within(1000, async () => (await sessionsStatus(b, u.accessToken)) === 401);
    expect(await sessionsStatus(b, other.accessToken)).toBe(200);
  });

  it('rejects on A, within 1 s, every session revoked by logout-all on B', async () => {
    const u = await signupOn(b);
    const s2 = await loginOn(a, u.username, u.password);
    for (const token of [u.accessToken, s2.accessToken]) expect(await sessionsStatus(a, token)).toBe(200);
    await post(b, '/auth/logout-all').set(bearer(s2.accessToken)).expect(204);
    for (const token of [u.accessToken, s2.accessToken]) {
      await within(1000, async () => (await sessionsStatus(a, token)) === 401);
    }
  });

  it('revokes everywhere a session whose rotated-away refresh token is reused on the other instance', async () => {
    const u = await signupOn(a);
    const rotated = await post(a, '/auth/refresh').set('Cookie', refreshCookie(u.refreshToken)).expect(200);
    expect(await sessionsStatus(a, rotated.body.accessToken)).toBe(200);
    b.clock.advance(11); // past REFRESH_REUSE_GRACE, as B sees it
    try {
      const reuse = await post(b, '/auth/refresh').set('Cookie', refreshCookie(u.refreshToken));
      expect(reuse.status).toBe(401);
      expect(reuse.body.code).toBe('REFRESH_TOKEN_REUSED');
    } finally {
      b.clock.advance(-11);
    }
    await within(1000, async () => (await sessionsStatus(a, rotated.body.accessToken)) === 401);
    expect((await post(a, '/auth/refresh').set('Cookie', refreshCookie(refreshCookieOf(rotated)!))).status).toBe(401);
  });

  it('refuses on B, within 1 s, the admin token of an admin demoted on A; a refresh on B brings the new roles', async () => {
    const root = await loginOn(a, 'root', 'root password 123');
    const u = await signupOn(a);
    await a.http
      .patch(`/users/${decodeJwt(u.accessToken).payload.sub as string}`)
      .set('X-Forwarded-For', clientIp)
      .set(bearer(root.accessToken))
      .send({ roles: ['user', 'admin'] })
      .expect(200);
    const promoted = await loginOn(b, u.username, u.password);
    const listUsers = async (app: TestApp, token: string) =>
      (await app.http.get('/users').set('X-Forwarded-For', clientIp).set(bearer(token))).status;
    expect(await listUsers(b, promoted.accessToken)).toBe(200);
    await a.http
      .patch(`/users/${decodeJwt(u.accessToken).payload.sub as string}`)
      .set('X-Forwarded-For', clientIp)
      .set(bearer(root.accessToken))
      .send({ roles: ['user'] })
      .expect(200);
    await within(1000, async () => (await listUsers(b, promoted.accessToken)) === 401);
    const refreshed = await post(b, '/auth/refresh').set('Cookie', refreshCookie(promoted.refreshToken)).expect(200);
    expect(decodeJwt(refreshed.body.accessToken).payload.roles).toEqual(['user']);
    expect(await listUsers(b, refreshed.body.accessToken)).toBe(403);
  });

  it('still rejects a revoked token on an instance started after the revocation', async () => {
    const u = await signupOn(a);
    const live = await loginOn(a, u.username, u.password);
    await post(a, '/auth/logout').set(bearer(u.accessToken)).expect(204);
    const c = await startApp(env, { databaseUrl: a.databaseUrl });
    try {
      expect(await sessionsStatus(c, live.accessToken)).toBe(200); // C trusts the shared key
      expect(await sessionsStatus(c, u.accessToken)).toBe(401);
      expect(decodeJwt(u.accessToken).payload.sid).not.toBe(decodeJwt(live.accessToken).payload.sid);
    } finally {
      await c.close();
    }
  });

  it('counts failed logins on both instances against one per-account limit', async () => {
    const u = await signupOn(a);
    const now = Date.now();
    a.clock.freeze(now);
    b.clock.freeze(now);
    try {
      await post(a, '/auth/login').send({ username: u.username, password: 'wrong 1' }).expect(401);
      await post(b, '/auth/login').send({ username: u.username, password: 'wrong 2' }).expect(401);
      await post(a, '/auth/login').send({ username: u.username, password: 'wrong 3' }).expect(401);
      for (const app of [b, a]) {
        const res = await post(app, '/auth/login').send({ username: u.username, password: u.password });
        expect(res.status).toBe(429);
        expect(res.body.code).toBe('TOO_MANY_ATTEMPTS');
        expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      }
      // Waiting it out works on either instance.
      a.clock.advance(15 * 60);
      b.clock.advance(15 * 60);
      await post(b, '/auth/login').send({ username: u.username, password: u.password }).expect(200);
    } finally {
      a.clock.unfreeze();
      b.clock.unfreeze();
      a.clock.advance(-15 * 60);
      b.clock.advance(-15 * 60);
    }
  });

  it('counts sign-ups from one address on both instances against one per-IP limit', async () => {
    const strict = { ...env, SIGNUP_RATE_LIMIT: '3' };
    const ip = `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
    const c = await startApp(strict, { databaseUrl: a.databaseUrl });
    const d = await startApp(strict, { databaseUrl: a.databaseUrl });
    try {
      const signupOnce = (app: TestApp) =>
        app.http
          .post('/auth/signup')
          .set('X-Forwarded-For', ip)
          .send({ username: uniqueUsername('burst'), password: 'good password' });
      expect((await signupOnce(c)).status).toBe(201);
      expect((await signupOnce(d)).status).toBe(201);
      expect((await signupOnce(c)).status).toBe(201);
      const blocked = await signupOnce(d);
      expect(blocked.status).toBe(429);
      expect(Number(blocked.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    } finally {
      await d.close();
      await c.close();
    }
  });
});
