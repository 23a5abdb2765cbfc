import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_AUTH_CACHE_TTL_MS, ClientsService } from '../../src/clients/clients.service.js';
import { ClientAuthCache } from '../../src/clients/client-auth-cache.js';
import { RevocationService } from '../../src/tokens/revocation.service.js';
import { ROOMY_LIMITS } from '../support/env.js';
import { login, signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { ADMIN, FORM, GRANT, basic, form, type Created } from './oauth-helpers.js';

/**
 * The cache of successful client authentications at POST /oauth/introspect and at POST
 * /oauth/token with the client-credentials grant (ClientsService.authenticateCached): a
 * repeated right secret is taken from memory, yet every revocation and every admin change of
 * the client refuses or refreshes it at once, token exchange always reads the client, and
 * `last_used_at` is written at most once a minute per secret.
 */
const ENV = { ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', ...ADMIN };
const TTL_S = CLIENT_AUTH_CACHE_TTL_MS / 1000;

describe('client authentication cache of POST /oauth/introspect and POST /oauth/token', () => {
  let t: TestApp;
  let clients: ClientsService;
  let revocation: RevocationService;
  let user: SignedUp;

  beforeAll(async () => {
    t = await startApp(ENV);
    clients = t.app.get(ClientsService);
    revocation = t.app.get(RevocationService);
    user = await signup(t);
  });
  afterAll(async () => t?.close());
  afterEach(() => t.clock.unfreeze());

  const adminAuth = async () => (await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD)).auth;
  const create = async (allowedScopes = ['introspection']): Promise<Created> =>
    (
      await t.http
        .post('/oauth/clients')
        .set(await adminAuth())
        .send({ name: 'introspector', allowedScopes })
        .expect(201)
    ).body as Created;
  const introspect = (c: Created, secret = c.secret.value) =>
    t.http
      .post('/oauth/introspect')
      .set('Content-Type', FORM)
      .set(basic(c.client.clientId, secret))
      .send(form({ token: user.accessToken }));
  /** Introspects once (200, active) and checks that the client's authentication is now cached. */
  const cached = async (c: Created) => {
    const before = clients.cachedAuthentications;
    const res = await introspect(c);
    expect({ status: res.status, body: res.text }).toMatchObject({ status: 200 });
    expect(res.body.active).toBe(true);
    expect(clients.cachedAuthentications).toBe(before + 1);
  };
  const expectStatus = async (c: Created, status: number, secret?: string) => {
    const res = await introspect(c, secret);
    expect({ status: res.status, body: res.text }).toMatchObject({ status });
  };
  const patchClient = async (c: Created, body: Record<string, unknown>) =>
    t.http
      .patch(`/oauth/clients/${c.client.id}`)
      .set(await adminAuth())
      .send(body)
      .expect(200);
  const tokenRequest = (c: Created, fields: Record<string, string> = GRANT, secret = c.secret.value) =>
    t.http.post('/oauth/token').set('Content-Type', FORM).set(basic(c.client.clientId, secret)).send(form(fields));
  /** A client-credentials token's answer (200 expected). */
  const issued = async (c: Created, fields: Record<string, string> = GRANT) => {
    const res = await tokenRequest(c, fields);
    expect({ status: res.status, body: res.text }).toMatchObject({ status: 200 });
    return res.body as { access_token: string; expires_in: number; scope: string };
  };
  const expectTokenError = async (c: Created, status: number, error: string, fields?: Record<string, string>) => {
    const res = await tokenRequest(c, fields);
    expect({ status: res.status, error: res.body.error }).toEqual({ status, error });
  };
  /**
   * A token-exchange request without a subject token: a client allowed token exchange is
   * answered 400 invalid_request (no subject_token), one not allowed 400 unauthorized_client.
   */
  const EXCHANGE = { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange' };
  const rolesOf = (token: string): string[] =>
    (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { roles: string[] }).roles;

  it('takes a repeated right secret from memory: a change made in the database alone shows after the TTL', async () => {
    t.clock.freeze();
    const c = await create();
    await cached(c);
    // One entry for both endpoints: the token endpoint's client-credentials grant takes it.
    const before = clients.cachedAuthentications;
    await issued(c);
    expect(clients.cachedAuthentications).toBe(before);
    await patchClient(c, { tokenExchange: true });
    await cached(c); // the change dropped the entry: read again
    // Revoked by hand in the database: no revocation entry, no event.
    await t.prisma.oAuthClientSecret.update({ where: { id: c.secret.id }, data: { revokedAt: t.clock.now() } });
    await expectStatus(c, 200);
    await issued(c);
    // Token exchange never takes the cache.
    await expectTokenError(c, 401, 'invalid_client', EXCHANGE);
    t.clock.advance(TTL_S - 1);
    await expectStatus(c, 200);
    await issued(c);
    t.clock.advance(1);
    await expectStatus(c, 401);
    await expectTokenError(c, 401, 'invalid_client');
  });

  it('token endpoint: what takes anything away from a cached client acts at once', async () => {
    const auth = await adminAuth();
    const cachedToken = async (c: Created) => {
      const before = clients.cachedAuthentications;
      await issued(c);
      expect(clients.cachedAuthentications).toBe(before + 1);
      await issued(c);
      expect(clients.cachedAuthentications).toBe(before + 1);
    };
    const revoked = await create(['resources:read']);
    await cachedToken(revoked);
    await t.http.delete(`/oauth/clients/${revoked.client.id}/secrets/${revoked.secret.id}`).set(auth).expect(204);
    await expectTokenError(revoked, 401, 'invalid_client');

    const disabled = await create(['resources:read']);
    await cachedToken(disabled);
    await patchClient(disabled, { disabled: true });
    await expectTokenError(disabled, 401, 'invalid_client');

    const narrowed = await create(['resources:read', 'profile']);
    await cachedToken(narrowed);
    await patchClient(narrowed, { allowedScopes: ['resources:read'] });
    await expectTokenError(narrowed, 400, 'invalid_scope', { ...GRANT, scope: 'profile' });
    expect((await issued(narrowed)).scope).toBe('resources:read');

    const userOff = await create(['resources:read']);
    await cachedToken(userOff);
    await t.http.patch(`/users/${userOff.client.serviceUserId}`).set(auth).send({ disabled: true }).expect(200);
    await expectTokenError(userOff, 401, 'invalid_client');

    const promoted = await create(['resources:read']);
    await cachedToken(promoted);
    expect(rolesOf((await issued(promoted)).access_token)).toEqual(['user']);
    await t.http
      .patch(`/users/${promoted.client.serviceUserId}`)
      .set(auth)
      .send({ roles: ['user', 'admin'] })
      .expect(200);
    const token = await issued(promoted);
    expect(rolesOf(token.access_token)).toEqual(['user', 'admin']);
    // Not born revoked by the role change (its not-before): the server waited for it.
    const list = await t.http.get('/resources').set('Authorization', `Bearer ${token.access_token}`);
    expect({ status: list.status, body: list.text }).toMatchObject({ status: 200 });
  });

  it('token endpoint: other changes act at once on this instance; missed ones wait out the TTL', async () => {
    t.clock.freeze();
    const c = await create(['resources:read']);
    expect((await issued(c)).expires_in).toBe(900); // OAUTH_TOKEN_TTL's default
    await patchClient(c, { accessTokenTtl: 120 });
    expect((await issued(c)).expires_in).toBe(120);
    await patchClient(c, { allowedScopes: ['resources:read', 'profile'] });
    expect((await issued(c, { ...GRANT, scope: 'profile' })).scope).toBe('profile');

    // As an instance that missed the announcement: changed in the database alone.
    await t.prisma.oAuthClient.update({ where: { id: c.client.id }, data: { accessTokenTtl: 300 } });
    expect((await issued(c)).expires_in).toBe(120);
    t.clock.advance(TTL_S);
    expect((await issued(c)).expires_in).toBe(300);

    // Token exchange reads the client: turned off, it is refused at once even where the
    // cache still holds the client as allowed.
    await patchClient(c, { tokenExchange: true });
    await expectTokenError(c, 400, 'invalid_request', EXCHANGE);
    await issued(c); // cached with tokenExchange: true
    await t.prisma.oAuthClient.update({ where: { id: c.client.id }, data: { tokenExchange: false } });
    await expectTokenError(c, 400, 'unauthorized_client', EXCHANGE);
    await issued(c);
  });

  it('never caches a failure, and keys an entry by id and secret together', async () => {
    const c = await create();
    const other = await create();
    await cached(c);
    const before = clients.cachedAuthentications;
    await expectStatus(c, 401, 'gcs_wrong');
    await expectStatus(other, 401, c.secret.value);
    expect(clients.cachedAuthentications).toBe(before);
  });

  it('refuses a cached client at once when its secret is revoked or ended now', async () => {
    const c = await create();
    await cached(c);
    await t.http
      .delete(`/oauth/clients/${c.client.id}/secrets/${c.secret.id}`)
      .set(await adminAuth())
      .expect(204);
    await expectStatus(c, 401);

    const d = await create();
    await cached(d);
    await t.http
      .patch(`/oauth/clients/${d.client.id}/secrets/${d.secret.id}`)
      .set(await adminAuth())
      .send({ expiresAt: new Date(t.clock.nowMs() - 1000).toISOString() })
      .expect(200);
    await expectStatus(d, 401);
  });

  it('honours an expiry scheduled after the client was cached (a rotation), to the millisecond', async () => {
    t.clock.freeze();
    const c = await create();
    await cached(c);
    await t.http
      .patch(`/oauth/clients/${c.client.id}/secrets/${c.secret.id}`)
      .set(await adminAuth())
      .send({ expiresAt: new Date(t.clock.nowMs() + 5000).toISOString() })
      .expect(200);
    await cached(c); // read again after the change: the expiry is part of the entry
    t.clock.advance(4.999);
    await expectStatus(c, 200);
    t.clock.advance(0.001);
    await expectStatus(c, 401);
  });

  it('refuses a cached client at once when it is disabled, deleted or loses the introspection scope', async () => {
    const c = await create();
    await cached(c);
    await patchClient(c, { disabled: true });
    await expectStatus(c, 401);

    const d = await create(['introspection', 'resources:read']);
    await cached(d);
    await patchClient(d, { allowedScopes: ['resources:read'] });
    await expectStatus(d, 403);

    const e = await create();
    await cached(e);
    await t.http
      .delete(`/oauth/clients/${e.client.id}`)
      .set(await adminAuth())
      .expect(204);
    await expectStatus(e, 401);
  });

  it('refuses a cached client at once when its service user is disabled, and sees new roles at once', async () => {
    const auth = await adminAuth();
    const c = await create();
    await cached(c);
    await t.http.patch(`/users/${c.client.serviceUserId}`).set(auth).send({ disabled: true }).expect(200);
    await expectStatus(c, 401);

    const d = await create();
    await cached(d);
    await t.http
      .patch(`/users/${d.client.serviceUserId}`)
      .set(auth)
      .send({ roles: ['user', 'admin'] })
      .expect(200);
    const now = await clients.authenticateCached(d.client.clientId, d.secret.value);
    expect(now?.serviceUserRoles).toEqual(['user', 'admin']);
  });

  it('does not keep a success read about when its secret was revoked (announced before the commit)', async () => {
    t.clock.freeze();
    const c = await create();
    await cached(c);
    // The revocation entry alone, as between its announcement and its commit: the row still
    // reads as live, so the client is authenticated, but neither the entry nor the new read is kept.
    await revocation.revoke({ secrets: [c.secret.id] });
    const before = clients.cachedAuthentications;
    expect(await clients.authenticateCached(c.client.clientId, c.secret.value)).not.toBeNull();
    expect(clients.cachedAuthentications).toBe(before - 1);
    t.clock.advance(2);
    expect(await clients.authenticateCached(c.client.clientId, c.secret.value)).not.toBeNull();
    expect(clients.cachedAuthentications).toBe(before - 1);
    // Longer after it than any transaction may run (10 s), the revocation cannot hide behind an
    // uncommitted one: kept again.
    t.clock.advance(8);
    expect(await clients.authenticateCached(c.client.clientId, c.secret.value)).not.toBeNull();
    expect(clients.cachedAuthentications).toBe(before - 1);
    t.clock.advance(4);
    expect(await clients.authenticateCached(c.client.clientId, c.secret.value)).not.toBeNull();
    expect(clients.cachedAuthentications).toBe(before);
  });

  it('writes last_used_at at most once a minute per secret, cached or not', async () => {
    t.clock.freeze();
    const c = await create();
    const lastUsed = async () =>
      (await t.prisma.oAuthClientSecret.findUniqueOrThrow({ where: { id: c.secret.id } })).lastUsedAt?.getTime();
    const start = t.clock.nowMs();
    await cached(c);
    expect(await lastUsed()).toBe(start);
    t.clock.advance(10);
    for (let i = 0; i < 3; i++) await expectStatus(c, 200);
    t.clock.advance(TTL_S); // past the cache's TTL: read again from the database, 40 s after the write
    await expectStatus(c, 200);
    expect(await lastUsed()).toBe(start);
    t.clock.advance(20); // 60 s after the write
    await expectStatus(c, 200);
    expect(await lastUsed()).toBe(t.clock.nowMs());
  });
});

describe('ClientAuthCache', () => {
  const client = (id: string) => ({ id, secretId: `s-${id}`, serviceUserId: `u-${id}` });
  const entry = (id: string, readAtMs = 0) => ({
    client: client(id),
    readAtMs,
    secretExpiresAtMs: null,
    lastUsedAtMs: null,
  });

  it('does not cache what was read before an invalidation that arrived during the read', () => {
    const cache = new ClientAuthCache<ReturnType<typeof client>>(30_000);
    const version = cache.version;
    cache.forgetClient('other');
    cache.set('k', entry('a'), version);
    expect(cache.get('k', 1)).toBeUndefined();
    cache.set('k', entry('a'), cache.version);
    expect(cache.get('k', 1)?.client.id).toBe('a');
    cache.forgetClient('a');
    expect(cache.get('k', 1)).toBeUndefined();
  });

  it('ends an entry at its TTL or its secret expiry, whichever comes first, and holds at most its capacity', () => {
    const cache = new ClientAuthCache<ReturnType<typeof client>>(30_000, 2);
    cache.set('a', entry('a', 1000), cache.version);
    expect(cache.get('a', 30_999)).toBeDefined();
    expect(cache.get('a', 31_000)).toBeUndefined();
    cache.set('b', { ...entry('b', 1000), secretExpiresAtMs: 5000 }, cache.version);
    expect(cache.get('b', 4999)).toBeDefined();
    expect(cache.get('b', 5000)).toBeUndefined();
    for (const k of ['x', 'y', 'z']) cache.set(k, entry(k), cache.version);
    expect(cache.size).toBe(2);
    expect(cache.get('x', 1)).toBeUndefined();
    expect(ClientAuthCache.keyOf('c_A', 'b')).not.toBe(ClientAuthCache.keyOf('c_Ab', ''));
  });

  it('caches nothing with a TTL of 0', () => {
    const cache = new ClientAuthCache<ReturnType<typeof client>>(0);
    cache.set('a', entry('a'), cache.version);
    expect(cache.size).toBe(0);
  });
});
