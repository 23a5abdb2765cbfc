import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, FORM, GRANT, basic, form, type Created } from '../clients/oauth-helpers.js';
import { OneTimeTokensService } from '../../src/accounts/one-time-tokens.service.js';
import { EventBus } from '../../src/events/event-bus.js';
import { advanceToFreshStep, enrol, expectStatus, loginMfa, passwordStep, startMfaApp } from '../mfa/mfa-helpers.js';
import { TEST_REDIS_URL, onPostgres } from '../support/env.js';
import {
  bearer,
  login,
  refreshCookie,
  refreshCookieOf,
  signup,
  uniqueEmail,
  uniqueUsername,
  type SignedUp,
} from '../support/factories.js';
import { redisProxy, type RedisProxy } from '../support/tcp-proxy.js';
import type { TestApp } from '../support/test-app.js';
import { within } from '../support/within.js';

const NEW_PASSWORD = 'another long password 1';

/**
 * Redis away (every connection closed, new ones refused): the requests that need it (the login
 * throttles, the rate limits, a revocation's announcement) answer 503 SERVICE_UNAVAILABLE with
 * Retry-After, in the contract's error body, never 500, and without waiting (or, when Redis
 * stops answering, within its command timeout); what they would have changed is not kept; a
 * change already committed keeps its answer; the instance stays up however Redis comes and
 * goes; and once Redis is back, the same requests succeed without a restart.
 */
describe.runIf(onPostgres)('an instance whose Redis is away', () => {
  let proxy: RedisProxy;
  let t: TestApp;
  /** An account without a second factor, whose login says that Redis works again. */
  let probe: SignedUp;
  beforeAll(async () => {
    proxy = await redisProxy(TEST_REDIS_URL);
    t = await startMfaApp({ ...ADMIN, REDIS_URL: proxy.url });
    probe = await signup(t);
  });
  afterAll(async () => {
    await t?.close();
    await proxy?.close();
  });
  afterEach(() => {
    proxy.unmute();
    proxy.start();
  });

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
  async function back(): Promise<void> {
    proxy.unmute();
    proxy.start();
    await within(15_000, async () => {
      const res = await t.http.post('/auth/login').send({ username: probe.username, password: probe.password });
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
    await back();
    // The refresh refused while Redis was away did not rotate: the cookie is still the current one.
    const rotated = await t.http.post('/auth/refresh').set('Cookie', refreshCookie(u.refreshToken)).expect(200);
    expect(refreshCookieOf(rotated)).toBeDefined();
  });

  it("answers the token endpoint's 503 as an OAuth error (temporarily_unavailable), and issues once Redis is back", async () => {
    const admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
    const created = await t.http
      .post('/oauth/clients')
      .set(admin.auth)
      .send({ name: 'outage', allowedScopes: ['resources:read'] })
      .expect(201);
    const { client, secret } = created.body as Created;
    const token = () =>
      t.http.post('/oauth/token').set('Content-Type', FORM).set(basic(client.clientId, secret.value)).send(form(GRANT));
    proxy.stop();
    const res = await token();
    expect({ status: res.status, body: res.body }).toMatchObject({
      status: 503,
      body: { statusCode: 503, error: 'temporarily_unavailable', code: 'SERVICE_UNAVAILABLE' },
    });
    expect(res.body.error_description).toBe(res.body.message);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.headers['cache-control']).toBe('no-store');
    await back();
    await token().expect(200);
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
    await back();
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

  describe('and fails at the wrong moment', () => {
    it('answers 503 when Redis stops answering (connections open, no reply), instead of holding the request', async () => {
      proxy.mute();
      expect503(await t.http.post('/auth/login').send({ username: probe.username, password: probe.password }));
      await back();
    });

    it('answers 200 to a second step whose throttle reset fails after its session opened', async () => {
      const m = await enrol(t);
      const mfaToken = await passwordStep(t, m);
      const live = () => t.prisma.session.count({ where: { userId: m.id, revokedAt: null } });
      const before = await live();
      proxy.cutOn(/del[\s\S]*gatehouse:attempts:mfa:/i);
      const res = await loginMfa(t, mfaToken, { code: advanceToFreshStep(t, m.secret) });
      expect(proxy.stopped).toBe(true); // the reset was the command that met the outage
      expectStatus(res, 200);
      expect(refreshCookieOf(res)).toBeDefined();
      expect(await live()).toBe(before + 1);
      await back();
      await t.http
        .get('/users/me')
        .set(bearer(res.body.accessToken as string))
        .expect(200);
    });

    it('answers 204 to a password reset whose throttle reset fails after the new password committed', async () => {
      const email = uniqueEmail('outage');
      const u = await signup(t, { email });
      const token = await t.app.get(OneTimeTokensService).issue({
        userId: u.id,
        purpose: 'reset_password',
        targetEmail: email,
        ttlSeconds: 3600,
        ip: null,
      });
      proxy.cutOn(/del[\s\S]*gatehouse:attempts:acct:/i);
      const res = await t.http.post('/auth/password/reset').send({ token, newPassword: NEW_PASSWORD });
      expect(proxy.stopped).toBe(true);
      expectStatus(res, 204);
      await back();
      await t.http.post('/auth/login').send({ username: u.username, password: NEW_PASSWORD }).expect(200);
    });

    it('stays up when subscribing again fails, and subscribes once Redis is back', async () => {
      const bus = t.app.get(EventBus);
      await within(15_000, async () => bus.synced); // over the outages of the tests before
      const breaks = bus.breaks;
      // The subscriber's connection closes; the SUBSCRIBE it sends once reconnected meets an outage.
      proxy.cutOn(/subscribe/i);
      proxy.cutSubscribers();
      await within(10_000, async () => proxy.stopped);
      // A rejection nobody handles would end the process (and fails this test run).
      await sleep(1000);
      proxy.start();
      await within(20_000, async () => bus.synced && bus.breaks > breaks);
      expect(bus.synced).toBe(true);
      expect(bus.breaks).toBeGreaterThan(breaks);
      await back();
    });
  });
});
