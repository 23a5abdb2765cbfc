import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS, TEST_REDIS_URL, onPostgres } from '../support/env.js';
import { bearer, refreshCookie, refreshCookieOf, signup, uniqueUsername } from '../support/factories.js';
import { redisProxy, type RedisProxy } from '../support/tcp-proxy.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { within } from '../support/within.js';

const NEW_PASSWORD = 'another long password 1';

/**
 * Redis away (every connection closed, new ones refused): the requests that need it (the login
 * throttles, the rate limits, a revocation's announcement) answer 503 SERVICE_UNAVAILABLE with
 * Retry-After, in the contract's error body, never 500; what they would have changed is not
 * kept; and once Redis is back, the same requests succeed without a restart.
 */
describe.runIf(onPostgres)('an instance whose Redis is away', () => {
  let proxy: RedisProxy;
  let t: TestApp;
  beforeAll(async () => {
    proxy = await redisProxy(TEST_REDIS_URL);
    t = await startApp({ ...ROOMY_LIMITS, REDIS_URL: proxy.url });
  });
  afterAll(async () => {
    await t?.close();
    await proxy?.close();
  });
  afterEach(() => proxy.start());

  const expect503 = (res: { status: number; body: unknown; headers: Record<string, unknown> }) => {
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 503 });
    expect(res.body).toEqual({
      statusCode: 503,
      error: 'Service Unavailable',
      message: expect.any(String),
      code: 'SERVICE_UNAVAILABLE',
    });
    expect(res.headers['retry-after']).toBe('5');
  };

  /** Redis back: the client reconnects by itself and a login goes through again. */
  async function back(u: { username: string; password: string }): Promise<void> {
    proxy.start();
    await within(15_000, async () => {
      const res = await t.http.post('/auth/login').send({ username: u.username, password: u.password });
      return res.status === 200;
    });
  }

  it('answers 503 to login, signup and refresh, and counts nothing', async () => {
    const u = await signup(t);
    proxy.stop();
    expect503(await t.http.post('/auth/login').send({ username: u.username, password: u.password }));
    expect503(await t.http.post('/auth/login').send({ username: u.username, password: 'a wrong password' }));
    expect503(
      await t.http.post('/auth/signup').send({ username: uniqueUsername('away'), password: 'correct horse battery' }),
    );
    expect503(await t.http.post('/auth/refresh').set('Cookie', refreshCookie(u.refreshToken)));
    // Not throttled: a refusal of the throttle's own is audited, a throttle that could not be asked is not.
    expect(await t.prisma.auditEvent.count({ where: { type: 'login.throttled' } })).toBe(0);
    // The guard itself needs no Redis: a valid access token still works.
    await t.http.get('/users/me').set(bearer(u.accessToken)).expect(200);
    await back(u);
    // The refresh refused while Redis was away did not rotate: the cookie is still the current one.
    const rotated = await t.http.post('/auth/refresh').set('Cookie', refreshCookie(u.refreshToken)).expect(200);
    expect(refreshCookieOf(rotated)).toBeDefined();
  });

  it('answers 503 to a password change, and keeps the old password', async () => {
    const u = await signup(t);
    proxy.stop();
    expect503(
      await t.http
        .post('/users/me/password')
        .set(bearer(u.accessToken))
        .send({ currentPassword: u.password, newPassword: NEW_PASSWORD }),
    );
    await back(u);
    await t.http.post('/auth/login').send({ username: u.username, password: NEW_PASSWORD }).expect(401);
  });

  it('answers 503 to a logout, whose session stays open in the database; a retry once Redis is back ends it', async () => {
    const u = await signup(t);
    const live = () => t.prisma.session.count({ where: { userId: u.id, revokedAt: null } });
    proxy.stop();
    expect503(
      await t.http.post('/auth/logout').set(bearer(u.accessToken)).set('Cookie', refreshCookie(u.refreshToken)),
    );
    expect(await live()).toBe(1);
    proxy.start();
    await within(15_000, async () => {
      const res = await t.http
        .post('/auth/logout')
        .set(bearer(u.accessToken))
        .set('Cookie', refreshCookie(u.refreshToken));
      return res.status === 204;
    });
    expect(await live()).toBe(0);
  });
});
