import { randomInt } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClientsService } from '../../src/clients/clients.service.js';
import { EventBus } from '../../src/events/event-bus.js';
import { MetricsRegistry } from '../../src/metrics/metrics.registry.js';
import { parseSamples, sampleKey } from '../metrics/scrape.js';
import { freePort } from '../reliability/support/net.js';
import { FORM, basic, form, type Created } from '../clients/oauth-helpers.js';
import { ROOMY_LIMITS, TEST_REDIS_URL, onPostgres } from '../support/env.js';
import { bearer, decodeJwt, refreshCookie, refreshCookieOf, signup, uniqueUsername } from '../support/factories.js';
import { es256KeyPair } from '../support/jwt.js';
import { redisProxy, type RedisProxy } from '../support/tcp-proxy.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { within } from '../support/within.js';
import { WsClient, listen } from '../realtime/ws-helpers.js';
import { addMember, createTenant } from '../tenants/tenant-helpers.js';

/**
 * Two instances on one PostgreSQL database and one Redis, B's Redis connections through a
 * proxy that breaks its subscription: Redis keeps nothing for a subscriber that is away, so
 * the announcements of revocations made meanwhile are lost to B. B must notice (its own beat
 * does not come back, or the connection closes) and catch up from the database, where every
 * revocation is written; once subscribed again, announcements reach it at once again.
 */
describe.runIf(onPostgres)('an instance whose Redis subscription breaks', () => {
  const keys = es256KeyPair();
  const clientIp = `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
  const env = {
    ...ROOMY_LIMITS,
    REDIS_URL: TEST_REDIS_URL,
    JWT_KEYS: keys.pem,
    TRUST_PROXY: 'true',
    ADMIN_USERNAME: 'root',
    ADMIN_PASSWORD: 'root password 123',
  };
  let proxy: RedisProxy;
  let a: TestApp;
  let b: TestApp;
  const synced = () => b.app.get(EventBus).synced;
  const metrics = async () => {
    const samples = parseSamples(await b.app.get(MetricsRegistry).registry.metrics());
    return {
      subscribed: samples.get(sampleKey('gatehouse_events_subscribed')),
      breaks: samples.get(sampleKey('gatehouse_events_subscription_breaks_total')),
    };
  };

  beforeAll(async () => {
    proxy = await redisProxy(TEST_REDIS_URL);
    a = await startApp(env);
    b = await startApp(
      { ...env, REDIS_URL: proxy.url, METRICS_PORT: String(await freePort()) },
      { databaseUrl: a.databaseUrl },
    );
  });
  afterAll(async () => {
    await b?.close();
    await a?.close(); // drops the database last
    await proxy?.close();
  });
  // Each test starts with B subscribed again, after a break it has seen (the cut's close
  // reaches B a moment later).
  afterEach(async () => {
    const breaks = synced() ? b.app.get(EventBus).breaks : -1;
    proxy.cutSubscribers();
    await within(10_000, async () => b.app.get(EventBus).breaks > breaks && synced());
  });

  const post = (app: TestApp, path: string) => app.http.post(path).set('X-Forwarded-For', clientIp);
  const status = async (app: TestApp, path: string, token: string) =>
    (await app.http.get(path).set('X-Forwarded-For', clientIp).set(bearer(token))).status;

  async function signupOn(app: TestApp) {
    const username = uniqueUsername('break');
    const res = await post(app, '/auth/signup').send({ username, password: 'correct horse battery' }).expect(201);
    return { username, accessToken: res.body.accessToken as string, refreshToken: refreshCookieOf(res)! };
  }

  it('notices a subscription that hangs, and refuses from the database the tokens revoked meanwhile', async () => {
    const u = await signupOn(a);
    const root = (await post(a, '/auth/login').send({ username: 'root', password: 'root password 123' }).expect(200))
      .body.accessToken as string;
    const admin = await signupOn(a);
    const adminId = decodeJwt(admin.accessToken).payload.sub as string;
    const patchRoles = (roles: string[]) =>
      a.http.patch(`/users/${adminId}`).set('X-Forwarded-For', clientIp).set(bearer(root)).send({ roles }).expect(200);
    await patchRoles(['user', 'admin']);
    const promoted = (await post(a, '/auth/refresh').set('Cookie', refreshCookie(admin.refreshToken)).expect(200)).body
      .accessToken as string;
    expect(await status(b, '/auth/sessions', u.accessToken)).toBe(200);
    expect(await status(b, '/users', promoted)).toBe(200);

    proxy.hangSubscribers();
    // Revoked on A while B hears nothing: a session (logout) and a user's roles (demotion).
    await post(a, '/auth/logout').set('Cookie', refreshCookie(u.refreshToken)).expect(204);
    await patchRoles(['user']);
    expect(await status(a, '/auth/sessions', u.accessToken)).toBe(401);
    expect(await status(a, '/users', promoted)).toBe(401);

    // B sees its own beat missing within ~3 s, then reads the revocations every second.
    await within(10_000, async () => !synced());
    await within(6000, async () => (await status(b, '/auth/sessions', u.accessToken)) === 401);
    await within(6000, async () => (await status(b, '/users', promoted)) === 401);
    // A revocation made after the break was noticed is read too.
    const later = await signupOn(a);
    expect(await status(b, '/auth/sessions', later.accessToken)).toBe(200);
    await post(a, '/auth/logout').set('Cookie', refreshCookie(later.refreshToken)).expect(204);
    await within(6000, async () => (await status(b, '/auth/sessions', later.accessToken)) === 401);
    expect(synced()).toBe(false); // all of it from the database
  });

  it('catches up after a connection that closed and came back before any beat was missed', async () => {
    const u = await signupOn(a);
    expect(await status(b, '/auth/sessions', u.accessToken)).toBe(200);
    proxy.hangSubscribers();
    await post(a, '/auth/logout').set('Cookie', refreshCookie(u.refreshToken)).expect(204); // lost to B
    proxy.cutSubscribers(); // B reconnects and subscribes again at once
    await within(6000, async () => (await status(b, '/auth/sessions', u.accessToken)) === 401);
  });

  it('catches up after a hang too short for the beat to be missed for long, from the lost beat', async () => {
    const u = await signupOn(a);
    expect(await status(b, '/auth/sessions', u.accessToken)).toBe(200);
    proxy.hangSubscribers();
    await post(a, '/auth/logout').set('Cookie', refreshCookie(u.refreshToken)).expect(204); // lost to B
    await new Promise((r) => setTimeout(r, 1500)); // at least one beat lost with it
    proxy.resumeSubscribers(); // the connection never closed
    await within(6000, async () => (await status(b, '/auth/sessions', u.accessToken)) === 401);
  });

  it('makes a hanging subscription again by itself', async () => {
    const opened = proxy.subscribersOpened;
    proxy.hangSubscribers();
    await within(10_000, async () => !synced());
    // Dropped and made again (every 10 s while no beat comes back): still hanging, still broken.
    await within(15_000, async () => proxy.subscribersOpened > opened);
    expect(synced()).toBe(false);
    // The reply to its SUBSCRIBE may have been dropped too: the next reconnection mends it.
    proxy.resumeSubscribers();
    await within(25_000, async () => synced());
  }, 60_000);

  it('trusts no cached client authentication while it may miss the announcements of changes', async () => {
    const root = (await post(a, '/auth/login').send({ username: 'root', password: 'root password 123' }).expect(200))
      .body.accessToken as string;
    const c = (
      await post(a, '/oauth/clients')
        .set(bearer(root))
        .send({ name: 'introspector', allowedScopes: ['introspection'] })
        .expect(201)
    ).body as Created;
    const introspect = () =>
      post(b, '/oauth/introspect')
        .set('Content-Type', FORM)
        .set(basic(c.client.clientId, c.secret.value))
        .send(form({ token: root }));
    const clients = b.app.get(ClientsService);
    expect((await introspect()).status).toBe(200);
    expect(clients.cachedAuthentications).toBeGreaterThan(0);

    proxy.hangSubscribers();
    await within(10_000, async () => !synced());
    expect(clients.cachedAuthentications).toBe(0);
    // Revoked in the database alone (no announcement, no revocation entry): read at once.
    await a.prisma.oAuthClientSecret.update({ where: { id: c.secret.id }, data: { revokedAt: new Date() } });
    expect((await introspect()).status).toBe(401);
    expect(clients.cachedAuthentications).toBe(0);
  });

  it("reads its WebSockets' tenant permissions again once subscribed again: a removal lost in the break ends them", async () => {
    const owner = await signup(a);
    const member = await signup(a);
    const tenant = await createTenant(a, owner);
    await addMember(a, tenant.id, owner, member, ['member']);
    const w = await WsClient.open(await listen(b), { headers: { 'X-Forwarded-For': clientIp } });
    try {
      await w.authenticate(member.accessToken);
      w.send({ event: 'subscribe', data: { topics: [`tenant:${tenant.id}`] }, id: 'sub' });
      expect((await w.next('subscribed')).data).toMatchObject({ topics: [`tenant:${tenant.id}`] });

      proxy.hangSubscribers();
      await a.http.delete(`/tenants/${tenant.id}/members/${member.id}`).set(owner.auth).expect(204); // lost to B
      await within(10_000, async () => !synced());
      proxy.cutSubscribers();
      await within(10_000, async () => synced());
      expect((await w.next('tenant.member_removed')).data).toEqual({ tenantId: tenant.id, userId: member.id });
    } finally {
      w.ws.terminate();
    }
  });

  it('hears announcements at once again once subscribed again; the metrics tell', async () => {
    const before = await metrics();
    expect(before.subscribed).toBe(1);
    proxy.hangSubscribers();
    await within(10_000, async () => !synced());
    const broken = await metrics();
    expect(broken.subscribed).toBe(0);
    expect(broken.breaks).toBeGreaterThan(before.breaks!);
    proxy.cutSubscribers();
    await within(6000, async () => synced());
    expect((await metrics()).subscribed).toBe(1);
    const u = await signupOn(a);
    expect(await status(b, '/auth/sessions', u.accessToken)).toBe(200);
    await post(a, '/auth/logout').set('Cookie', refreshCookie(u.refreshToken)).expect(204);
    await within(1000, async () => (await status(b, '/auth/sessions', u.accessToken)) === 401);
  });
});
