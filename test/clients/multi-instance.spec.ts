import { randomInt } from 'node:crypto';
import type { Response, Test } from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClientsService } from '../../src/clients/clients.service.js';
import { ROOMY_LIMITS, TEST_REDIS_URL, onPostgres } from '../support/env.js';
import { bearer, decodeJwt } from '../support/factories.js';
import { es256KeyPair } from '../support/jwt.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { within } from '../support/within.js';
import { ADMIN, FORM, basic, form, type Created } from './oauth-helpers.js';

/**
 * Machine clients on two (or three) instances sharing one PostgreSQL database and one Redis
 * (contract v2 §C tests 4 and 11, §0.3): a secret revoked or a client disabled on one
 * instance refuses its tokens on the others within a second (and on a later instance too),
 * introspection answers from the database at once, and failed client authentications on
 * all instances count against one per-client limit.
 *
 * Every request comes from this run's own client address (TRUST_PROXY=true), so that the
 * per-IP counters this run leaves in the shared Redis cannot meet another run's; client ids
 * are generated, hence unique. Nothing global in Redis is flushed.
 */

const CLIENT_RATE_LIMIT = 3;

describe.runIf(onPostgres)('machine clients on several instances sharing PostgreSQL and Redis', () => {
  const keys = es256KeyPair();
  const clientIp = `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
  const env = {
    ...ROOMY_LIMITS,
    REDIS_URL: TEST_REDIS_URL,
    JWT_KEYS: keys.pem,
    LOGIN_RATE_LIMIT: '1000',
    TRUST_PROXY: 'true',
    OAUTH_CLIENT_RATE_LIMIT: String(CLIENT_RATE_LIMIT),
    ...ADMIN,
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
  // Back to real time, the same on every instance (a test may freeze or move the clocks).
  afterEach(() => {
    for (const app of [a, b]) {
      app.clock.freeze(Date.now());
      app.clock.unfreeze();
    }
  });

  const from = (req: Test): Test => req.set('X-Forwarded-For', clientIp);

  const adminAuth = async (app: TestApp) => {
    const res = await from(app.http.post('/auth/login'))
      .send({ username: ADMIN.ADMIN_USERNAME, password: ADMIN.ADMIN_PASSWORD })
      .expect(200);
    return bearer(res.body.accessToken as string);
  };
  const createClient = async (app: TestApp, allowedScopes: string[]): Promise<Created> =>
    (
      await from(app.http.post('/oauth/clients'))
        .set(await adminAuth(app))
        .send({ name: 'multi-instance', allowedScopes })
        .expect(201)
    ).body as Created;
  const addSecret = async (app: TestApp, c: Created): Promise<Created['secret']> =>
    (
      await from(app.http.post(`/oauth/clients/${c.client.id}/secrets`))
        .set(await adminAuth(app))
        .send({})
        .expect(201)
    ).body as Created['secret'];
  const setDisabled = async (app: TestApp, c: Created, disabled: boolean) =>
    from(app.http.patch(`/oauth/clients/${c.client.id}`))
      .set(await adminAuth(app))
      .send({ disabled })
      .expect(200);

  const tokenRequest = (app: TestApp, clientId: string, secret: string) =>
    from(app.http.post('/oauth/token'))
      .set('Content-Type', FORM)
      .set(basic(clientId, secret))
      .send(form({ grant_type: 'client_credentials' }));
  /** A token from this instance's token endpoint (expects 200). */
  const accessToken = async (app: TestApp, clientId: string, secret: string): Promise<string> => {
    const res = await tokenRequest(app, clientId, secret);
    expect({ status: res.status, body: res.text }).toMatchObject({ status: 200 });
    return (res.body as { access_token: string }).access_token;
  };
  const resourcesStatus = async (app: TestApp, token: string) =>
    (await from(app.http.get('/resources')).set(bearer(token))).status;
  const introspect = async (app: TestApp, introspector: Created, token: string) =>
    (
      await from(app.http.post('/oauth/introspect'))
        .set('Content-Type', FORM)
        .set(basic(introspector.client.clientId, introspector.secret.value))
        .send(form({ token }))
        .expect(200)
    ).body as { active: boolean } & Record<string, unknown>;

  const expectInvalidClient = (res: Response) => {
    expect({ status: res.status, body: res.text }).toMatchObject({ status: 401 });
    expect(res.body).toMatchObject({ error: 'invalid_client', code: 'INVALID_CLIENT' });
    expect(res.headers['www-authenticate']).toBe('Basic realm="gatehouse"');
  };

  it("revoking a secret on A refuses its tokens everywhere, the other secret's live on", async () => {
    const c = await createClient(a, ['resources:read']);
    const s1 = c.secret;
    const s2 = await addSecret(b, c);
    const introspector = await createClient(b, ['introspection']);
    const t1 = await accessToken(a, c.client.clientId, s1.value);
    const t2 = await accessToken(b, c.client.clientId, s2.value);
    expect(decodeJwt(t1).payload.sid).toBe(s1.id);
    expect(decodeJwt(t2).payload.sid).toBe(s2.id);
    // Both work on both (and B has verified, and cached, T1).
    for (const app of [a, b]) {
      for (const token of [t1, t2]) expect(await resourcesStatus(app, token)).toBe(200);
    }
    expect((await introspect(b, introspector, t1)).active).toBe(true);

    await from(a.http.delete(`/oauth/clients/${c.client.id}/secrets/${s1.id}`))
      .set(await adminAuth(a))
      .expect(204);
    const revokedAtMs = Date.now();
    expect(await resourcesStatus(a, t1)).toBe(401);
    // Introspection asks the database: inactive at once, on the other instance too.
    expect(await introspect(b, introspector, t1)).toEqual({ active: false });
    await within(1000, async () => (await resourcesStatus(b, t1)) === 401, revokedAtMs);

    // The other secret's token lives on, and the secret still gets tokens; S1 gets none.
    for (const app of [a, b]) expect(await resourcesStatus(app, t2)).toBe(200);
    expect((await introspect(b, introspector, t2)).active).toBe(true);
    expectInvalidClient(await tokenRequest(b, c.client.clientId, s1.value));
    expect(await resourcesStatus(a, await accessToken(b, c.client.clientId, s2.value))).toBe(200);

    // An instance started after the revocation refuses T1 too (the entry is in the database).
    const late = await startApp(env, { databaseUrl: a.databaseUrl });
    try {
      expect(await resourcesStatus(late, t2)).toBe(200); // it trusts the shared key
      expect(await resourcesStatus(late, t1)).toBe(401);
      expectInvalidClient(await tokenRequest(late, c.client.clientId, s1.value));
    } finally {
      await late.close();
    }
  });

  it('disabling a client on B refuses its tokens on A within 1 s; enabled again, A issues tokens that work on B', async () => {
    const c = await createClient(a, ['resources:read']);
    const t2 = await accessToken(b, c.client.clientId, c.secret.value);
    for (const app of [a, b]) expect(await resourcesStatus(app, t2)).toBe(200);

    // Start at the beginning of a second, so that the disable, the enable and the next token
    // request fall into one second: a token signed then would be born revoked (§0.3).
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 20));
    const disabledAtMs = Date.now();
    await setDisabled(b, c, true);
    expect(await resourcesStatus(b, t2)).toBe(401);
    await within(1000, async () => (await resourcesStatus(a, t2)) === 401, disabledAtMs);
    expectInvalidClient(await tokenRequest(a, c.client.clientId, c.secret.value));

    await setDisabled(b, c, false);
    const enabledAtMs = Date.now();
    const fresh = await accessToken(a, c.client.clientId, c.secret.value);
    // Signed after the not-before of the disable (A waited for it, at most a second) ...
    expect(decodeJwt(fresh).payload.iat).toBeGreaterThanOrEqual(Math.floor(disabledAtMs / 1000) + 1);
    // ... so B takes it at once, and the old token stays refused.
    expect(await resourcesStatus(b, fresh)).toBe(200);
    expect(Date.now() - enabledAtMs).toBeLessThan(1500); // at most 1 s of waiting, plus two requests
    expect(await resourcesStatus(a, fresh)).toBe(200);
    for (const app of [a, b]) expect(await resourcesStatus(app, t2)).toBe(401);
  });

  it('a client whose introspection authentication B has cached is refused on B once A revokes its secret or schedules its expiry', async () => {
    const introspectStatus = async (app: TestApp, c: Created, secret = c.secret.value) =>
      (
        await from(app.http.post('/oauth/introspect'))
          .set('Content-Type', FORM)
          .set(basic(c.client.clientId, secret))
          .send(form({ token: 'x' }))
      ).status;
    const cachedOnB = async (c: Created) => {
      const before = b.app.get(ClientsService).cachedAuthentications;
      expect(await introspectStatus(b, c)).toBe(200);
      expect(b.app.get(ClientsService).cachedAuthentications).toBe(before + 1);
      expect(await introspectStatus(b, c)).toBe(200);
    };

    // A revocation: B learns of it through Redis (tokens.revoked), as for the secret's tokens.
    const revoked = await createClient(a, ['introspection']);
    await cachedOnB(revoked);
    await from(a.http.delete(`/oauth/clients/${revoked.client.id}/secrets/${revoked.secret.id}`))
      .set(await adminAuth(a))
      .expect(204);
    const revokedAtMs = Date.now();
    await within(1000, async () => (await introspectStatus(b, revoked)) === 401, revokedAtMs);

    // No revocation, only a new expiry 3 s ahead: B drops its entry on clients.changed, so once
    // its clock passes the expiry it reads the secret again and refuses it (from the cache it
    // would have accepted it for up to CLIENT_AUTH_CACHE_TTL_MS).
    const rotated = await createClient(a, ['introspection']);
    await cachedOnB(rotated);
    await from(a.http.patch(`/oauth/clients/${rotated.client.id}/secrets/${rotated.secret.id}`))
      .set(await adminAuth(a))
      .send({ expiresAt: new Date(Date.now() + 3000).toISOString() })
      .expect(200);
    const scheduledAtMs = Date.now();
    b.clock.advance(4);
    await within(1000, async () => (await introspectStatus(b, rotated)) === 401, scheduledAtMs);
  });

  it('with Redis the token endpoint reads the client every time: what B could have missed is refused at once', async () => {
    const c = await createClient(a, ['resources:read']);
    const before = b.app.get(ClientsService).cachedAuthentications;
    expect(await resourcesStatus(a, await accessToken(b, c.client.clientId, c.secret.value))).toBe(200);
    expect(b.app.get(ClientsService).cachedAuthentications).toBe(before);

    // Disabled with no announcement at all, as for an instance whose Redis connection was down
    // when it was made: B reads the client and refuses at once.
    await a.prisma.oAuthClient.update({ where: { id: c.client.id }, data: { disabled: true } });
    expectInvalidClient(await tokenRequest(b, c.client.clientId, c.secret.value));
  });

  it('counts failed client authentications on A and B against one per-client limit', async () => {
    const c = await createClient(a, ['resources:read']);
    const bystander = await createClient(b, ['resources:read']);
    const now = Date.now();
    a.clock.freeze(now);
    b.clock.freeze(now);
    expectInvalidClient(await tokenRequest(a, c.client.clientId, 'gcs_wrong_1'));
    expectInvalidClient(await tokenRequest(b, c.client.clientId, 'gcs_wrong_2'));
    expectInvalidClient(await tokenRequest(a, c.client.clientId, 'gcs_wrong_3'));
    // The 4th wrong secret, on either instance: 429, 1 s after the 3rd failure (the clocks stand still).
    for (const app of [b, a]) {
      const res = await tokenRequest(app, c.client.clientId, 'gcs_wrong_4');
      expect({ status: res.status, body: res.text }).toMatchObject({ status: 429 });
      expect(res.body).toMatchObject({ error: 'too_many_requests', code: 'TOO_MANY_ATTEMPTS' });
      expect(res.headers['retry-after']).toBe('1');
    }
    // A client_id is public: past its limit the right secret still goes through, on either instance.
    await accessToken(b, c.client.clientId, c.secret.value);
    await accessToken(a, c.client.clientId, c.secret.value);
    // Another client, from the same address, is not affected.
    await accessToken(b, bystander.client.clientId, bystander.secret.value);
    // Once the back-off has passed, a wrong secret is a plain 401 again; it is counted on the
    // shared counter, so the next one, on the other instance, waits twice as long.
    a.clock.advance(1);
    b.clock.advance(1);
    expectInvalidClient(await tokenRequest(a, c.client.clientId, 'gcs_wrong_5'));
    const doubled = await tokenRequest(b, c.client.clientId, 'gcs_wrong_6');
    expect({ status: doubled.status, body: doubled.text }).toMatchObject({ status: 429 });
    expect(doubled.headers['retry-after']).toBe('2');
  });
});
