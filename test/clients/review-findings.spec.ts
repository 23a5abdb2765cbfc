import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { bearer, login, signup, uniqueUsername } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { ADMIN, FORM, GRANT, basic, form, type Created } from './oauth-helpers.js';

/**
 * Machine clients, attacked from outside: each case below was reproduced against a running
 * pair of servers before its fix, and fails without it.
 */

describe('machine clients: review findings', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', OAUTH_MAX_SECRETS_PER_CLIENT: '2', ...ADMIN });
  });
  afterAll(async () => t?.close());

  const rootAuth = async () => (await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD)).auth;
  const create = async (auth: { Authorization: string }, allowedScopes: string[], name = 'machine') => {
    const res = await t.http.post('/oauth/clients').set(auth).send({ name, allowedScopes });
    expect({ status: res.status, body: res.text }).toMatchObject({ status: 201 });
    return res.body as Created;
  };
  const tokenFor = async (c: Created, secret = c.secret.value, scope?: string): Promise<string> => {
    const res = await t.http
      .post('/oauth/token')
      .set('Content-Type', FORM)
      .set(basic(c.client.clientId, secret))
      .send(form({ ...GRANT, ...(scope ? { scope } : {}) }));
    expect({ status: res.status, body: res.text }).toMatchObject({ status: 200 });
    return res.body.access_token as string;
  };
  const giveAdminRole = async (c: Created) =>
    t.http
      .patch(`/users/${c.client.serviceUserId}`)
      .set(await rootAuth())
      .send({ roles: ['user', 'admin'] })
      .expect(200);

  it("disabling a client's service user ends the tokens it already has, at once", async () => {
    const c = await create(await rootAuth(), ['resources:read', 'resources:write']);
    const token = await tokenFor(c);
    await t.http.get('/resources').set(bearer(token)).expect(200);
    await t.http
      .patch(`/users/${c.client.serviceUserId}`)
      .set(await rootAuth())
      .send({ disabled: true })
      .expect(200);
    await t.http.get('/resources').set(bearer(token)).expect(401);
    await t.http.post('/resources').set(bearer(token)).send({ title: 'after the disable' }).expect(401);
  });

  it('never writes a presented secret to the audit log, whichever field it was sent in', async () => {
    const c = await create(await rootAuth(), ['resources:read']);
    const attempts = [
      // id and secret swapped (client_secret_post)
      t.http
        .post('/oauth/token')
        .set('Content-Type', FORM)
        .send(
          `grant_type=client_credentials&client_id=${encodeURIComponent(c.secret.value)}&client_secret=${c.client.clientId}`,
        ),
      // "id:secret" percent-encoded into the id (client_secret_basic)
      t.http
        .post('/oauth/token')
        .set('Content-Type', FORM)
        .set({
          Authorization: `Basic ${Buffer.from(`${encodeURIComponent(`${c.client.clientId}:${c.secret.value}`)}:x`).toString('base64')}`,
        })
        .send('grant_type=client_credentials'),
    ];
    for (const res of await Promise.all(attempts)) expect(res.status).toBe(401);
    const rows = await t.prisma.auditEvent.findMany({ where: { type: 'client.auth_failed' } });
    expect(rows.length).toBeGreaterThanOrEqual(2);
    const dump = JSON.stringify(rows);
    expect(dump).not.toContain(c.secret.value);
    expect(dump).not.toContain('gcs_');
  });

  it('answers a NUL byte in client credentials with an OAuth 4xx, never a 500', async () => {
    const viaForm = await t.http
      .post('/oauth/token')
      .set('Content-Type', FORM)
      .send('grant_type=client_credentials&client_id=c_%00&client_secret=x');
    expect(viaForm.status).toBe(400);
    expect(viaForm.body).toMatchObject({ error: 'invalid_request', code: 'INVALID_REQUEST' });
    for (const path of ['/oauth/token', '/oauth/introspect', '/oauth/revoke']) {
      const viaBasic = await t.http
        .post(path)
        .set('Content-Type', FORM)
        .set({ Authorization: `Basic ${Buffer.from('c_%00:x').toString('base64')}` })
        .send('grant_type=client_credentials&token=x');
      expect({ path, status: viaBasic.status, error: viaBasic.body.error }).toEqual({
        path,
        status: 401,
        error: 'invalid_client',
      });
    }
  });

  describe('a machine client with clients:admin gains nothing by it', () => {
    it('cannot allow itself more, change itself, or touch a stronger client', async () => {
      const root = await rootAuth();
      const bot = await create(root, ['clients:admin', 'resources:read'], 'ops-bot');
      await giveAdminRole(bot);
      const strong = await create(root, ['users:admin', 'resources:read'], 'strong');
      const weak = await create(root, ['resources:read'], 'weak');
      const auth = bearer(await tokenFor(bot));

      const self = await t.http
        .patch(`/oauth/clients/${bot.client.id}`)
        .set(auth)
        .send({ allowedScopes: ['clients:admin', 'users:admin'] });
      expect({ status: self.status, code: self.body.code }).toEqual({ status: 403, code: 'CANNOT_TARGET_SELF' });
      const selfSecret = await t.http.post(`/oauth/clients/${bot.client.id}/secrets`).set(auth).send({});
      expect(selfSecret.body.code).toBe('CANNOT_TARGET_SELF');

      const stronger = await t.http
        .post('/oauth/clients')
        .set(auth)
        .send({ name: 'escalate', allowedScopes: ['users:admin'] });
      expect({ status: stronger.status, code: stronger.body.code }).toEqual({
        status: 403,
        code: 'INSUFFICIENT_SCOPE',
      });
      const exchange = await t.http
        .post('/oauth/clients')
        .set(auth)
        .send({ name: 'exchange', allowedScopes: ['resources:read'], tokenExchange: true });
      expect(exchange.body.code).toBe('INSUFFICIENT_SCOPE');
      for (const req of [
        t.http.post(`/oauth/clients/${strong.client.id}/secrets`).set(auth).send({}),
        t.http.patch(`/oauth/clients/${strong.client.id}`).set(auth).send({ name: 'mine now' }),
        t.http.delete(`/oauth/clients/${strong.client.id}/secrets/${strong.secret.id}`).set(auth),
        t.http
          .patch(`/oauth/clients/${weak.client.id}`)
          .set(auth)
          .send({ allowedScopes: ['resources:read', 'users:admin'] }),
      ]) {
        const res = await req;
        expect({ status: res.status, code: res.body.code }).toEqual({ status: 403, code: 'INSUFFICIENT_SCOPE' });
      }
      expect(await t.prisma.oAuthClientSecret.count({ where: { clientId: strong.client.id } })).toBe(1);
      expect(await t.prisma.oAuthClient.count({ where: { name: { in: ['escalate', 'exchange'] } } })).toBe(0);

      // Within what it holds, it administers as an admin would.
      const made = await t.http
        .post('/oauth/clients')
        .set(auth)
        .send({ name: 'delegated', allowedScopes: ['resources:read'] })
        .expect(201);
      await t.http.post(`/oauth/clients/${weak.client.id}/secrets`).set(auth).send({}).expect(201);
      await t.http.delete(`/oauth/clients/${made.body.client.id}`).set(auth).expect(204);
    });
  });

  describe('a machine client with users:admin gains nothing by it either', () => {
    it('cannot make anyone an admin, touch an admin, itself, or a stronger client', async () => {
      const root = await rootAuth();
      const bot = await create(root, ['users:admin', 'clients:admin', 'resources:read'], 'user-bot');
      await giveAdminRole(bot);
      const strong = await create(root, ['introspection'], 'strong');
      const person = await signup(t);
      const rootId = (await t.http.get('/users/me').set(root).expect(200)).body.id as string;
      const auth = bearer(await tokenFor(bot));

      const cases: Array<[string, ReturnType<TestApp['http']['patch']>, string]> = [
        [
          'promote a person',
          t.http
            .patch(`/users/${person.id}`)
            .set(auth)
            .send({ roles: ['user', 'admin'] }),
          'INSUFFICIENT_SCOPE',
        ],
        ['disable an admin', t.http.patch(`/users/${rootId}`).set(auth).send({ disabled: true }), 'INSUFFICIENT_SCOPE'],
        ["reset an admin's MFA", t.http.delete(`/users/${rootId}/mfa`).set(auth), 'INSUFFICIENT_SCOPE'],
        [
          'itself',
          t.http.patch(`/users/${bot.client.serviceUserId}`).set(auth).send({ disabled: false }),
          'CANNOT_TARGET_SELF',
        ],
        [
          'a stronger client',
          t.http.patch(`/users/${strong.client.serviceUserId}`).set(auth).send({ disabled: true }),
          'INSUFFICIENT_SCOPE',
        ],
      ];
      for (const [what, req, code] of cases) {
        const res = await req;
        expect({ what, status: res.status, code: res.body.code }).toEqual({ what, status: 403, code });
      }
      const after = await t.prisma.user.findMany({
        where: { id: { in: [person.id, rootId, strong.client.serviceUserId] } },
      });
      const state = Object.fromEntries(
        after.map((u) => [u.id, { admin: u.roles.includes('admin'), disabled: u.disabled }]),
      );
      expect(state).toEqual({
        [person.id]: { admin: false, disabled: false },
        [rootId]: { admin: true, disabled: false },
        [strong.client.serviceUserId]: { admin: false, disabled: false },
      });
      // Within its powers: a person who is not an admin.
      await t.http.patch(`/users/${person.id}`).set(auth).send({ disabled: true }).expect(200);
    });

    it('admin powers over resources need users:admin in the token, not only the role', async () => {
      const root = await rootAuth();
      const bot = await create(root, ['users:admin', 'resources:read', 'resources:write'], 'resource-bot');
      await giveAdminRole(bot);
      const victim = await signup(t);
      const hidden = (
        await t.http.post('/resources').set(victim.auth).send({ title: 'mine', visibility: 'private' }).expect(201)
      ).body as { id: string };

      const narrow = bearer(await tokenFor(bot, bot.secret.value, 'resources:read resources:write'));
      const all = await t.http.get('/resources?scope=all').set(narrow);
      expect({ status: all.status, code: all.body.code }).toEqual({ status: 403, code: 'INSUFFICIENT_SCOPE' });
      await t.http.get(`/resources/${hidden.id}`).set(narrow).expect(404);
      await t.http.patch(`/resources/${hidden.id}`).set(narrow).send({ title: 'pwned' }).expect(404);

      const wide = bearer(await tokenFor(bot));
      await t.http.get('/resources?scope=all').set(wide).expect(200);
      await t.http.get(`/resources/${hidden.id}`).set(wide).expect(200);
    });

    it('asking for a verification mail with a token needs profile', async () => {
      const c = await create(await rootAuth(), ['resources:read']);
      const res = await t.http
        .post('/auth/email/verify-request')
        .set(bearer(await tokenFor(c)))
        .send({});
      expect({ status: res.status, code: res.body.code }).toEqual({ status: 403, code: 'INSUFFICIENT_SCOPE' });
    });
  });

  it('a service user with the admin role does not count as the remaining admin', async () => {
    const root = await rootAuth();
    const bot = await create(root, ['users:admin'], 'admin-bot');
    await giveAdminRole(bot);
    const me = await t.http.get('/users/me').set(root).expect(200);
    // The only person admin steps down while a service user has the admin role: refused.
    const demote = await t.http
      .patch(`/users/${me.body.id}`)
      .set(root)
      .send({ roles: ['user'] });
    expect({ status: demote.status, code: demote.body.code }).toEqual({ status: 403, code: 'LAST_ADMIN' });
    // Disabling the service user itself is no loss of the last admin.
    await t.http.patch(`/users/${bot.client.serviceUserId}`).set(root).send({ disabled: true }).expect(200);
  });

  it('an expired secret stays ended: its expiry cannot be moved, so the cap holds', async () => {
    const root = await rootAuth();
    const c = await create(root, ['resources:read']);
    const soon = new Date(t.clock.nowMs() + 60_000).toISOString();
    const second = await t.http.post(`/oauth/clients/${c.client.id}/secrets`).set(root).send({ expiresAt: soon });
    expect(second.status).toBe(201);
    t.clock.advance(61);
    const third = await t.http
      .post(`/oauth/clients/${c.client.id}/secrets`)
      .set(await rootAuth())
      .send({});
    expect(third.status).toBe(201); // the expired one no longer counts against 2
    const revive = await t.http
      .patch(`/oauth/clients/${c.client.id}/secrets/${second.body.id}`)
      .set(await rootAuth())
      .send({ expiresAt: null });
    expect({ status: revive.status, code: revive.body.code }).toEqual({ status: 404, code: 'CLIENT_NOT_FOUND' });
    const res = await t.http
      .post('/oauth/token')
      .set('Content-Type', FORM)
      .set(basic(c.client.clientId, second.body.value))
      .send('grant_type=client_credentials');
    expect(res.status).toBe(401);
  });

  it('tokens obtained before a scheduled expiry live to their own exp, for introspection as for the API', async () => {
    const root = await rootAuth();
    const c = await create(root, ['resources:read']);
    const introspector = await create(root, ['introspection'], 'introspector');
    const soon = new Date(t.clock.nowMs() + 30_000).toISOString();
    await t.http.patch(`/oauth/clients/${c.client.id}/secrets/${c.secret.id}`).set(root).send({ expiresAt: soon });
    const token = await tokenFor(c);
    t.clock.advance(31);
    await t.http.get('/resources').set(bearer(token)).expect(200);
    const intro = await t.http
      .post('/oauth/introspect')
      .set('Content-Type', FORM)
      .set(basic(introspector.client.clientId, introspector.secret.value))
      .send(`token=${token}`)
      .expect(200);
    expect(intro.body).toMatchObject({ active: true, client_id: c.client.clientId });
  });

  it("records a secret's last use to the minute, not on every token", async () => {
    const c = await create(await rootAuth(), ['resources:read']);
    const lastUsed = async () =>
      (await t.prisma.oAuthClientSecret.findUniqueOrThrow({ where: { id: c.secret.id } })).lastUsedAt?.getTime();
    t.clock.freeze();
    await tokenFor(c);
    const first = await lastUsed();
    expect(first).toBe(t.clock.nowMs());
    t.clock.advance(30);
    await tokenFor(c);
    expect(await lastUsed()).toBe(first);
    t.clock.advance(31);
    await tokenFor(c);
    expect(await lastUsed()).toBe(t.clock.nowMs());
    t.clock.unfreeze();
  });

  it("contract §C test 8: client B gets 404 on client A's private resource, and sees A's public one", async () => {
    const root = await rootAuth();
    const a = bearer(await tokenFor(await create(root, ['resources:read', 'resources:write'], 'client-a')));
    const b = bearer(await tokenFor(await create(root, ['resources:read', 'resources:write'], 'client-b')));
    const hidden = await t.http.post('/resources').set(a).send({ title: 'a private' }).expect(201);
    const shown = await t.http.post('/resources').set(a).send({ title: 'a public', visibility: 'public' }).expect(201);
    const res = await t.http.get(`/resources/${hidden.body.id}`).set(b).expect(404);
    expect(res.body.code).toBe('RESOURCE_NOT_FOUND');
    await t.http.patch(`/resources/${hidden.body.id}`).set(b).send({ title: 'b was here' }).expect(404);
    await t.http.get(`/resources/${shown.body.id}`).set(b).expect(200);
    const mine = await t.http.get('/resources').set(b).expect(200);
    expect(mine.body.items).toEqual([]);
  });

  it('contract §C test 12: no table holds a secret, once created, rotated, used and failed', async () => {
    const root = await rootAuth();
    const c = await create(root, ['resources:read', 'introspection']);
    const second = await t.http.post(`/oauth/clients/${c.client.id}/secrets`).set(root).send({}).expect(201);
    const token = await tokenFor(c, second.body.value);
    await t.http
      .post('/oauth/introspect')
      .set('Content-Type', FORM)
      .set(basic(c.client.clientId, c.secret.value))
      .send(form({ token }))
      .expect(200);
    await t.http
      .post('/oauth/token')
      .set('Content-Type', FORM)
      .send(form({ ...GRANT, client_id: c.client.clientId, client_secret: `${c.secret.value}x` }))
      .expect(401);
    await t.http.delete(`/oauth/clients/${c.client.id}/secrets/${c.secret.id}`).set(root).expect(204);
    const tables = await t.prisma.$queryRaw<Array<{ tablename: string }>>`
      SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`;
    expect(tables.map((r) => r.tablename)).toContain('oauth_client_secrets');
    for (const { tablename } of tables) {
      const rows = await t.prisma.$queryRawUnsafe<unknown[]>(`SELECT * FROM "${tablename}"`);
      const dump = JSON.stringify(rows, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
      for (const secret of [c.secret.value, second.body.value as string]) {
        expect({ tablename, holds: dump.includes(secret) || dump.includes(secret.slice(4)) }).toEqual({
          tablename,
          holds: false,
        });
      }
    }
  });

  it('keeps the svc. prefix of service users from signups', async () => {
    for (const username of [`svc.${uniqueUsername('x')}`.slice(0, 32), 'SVC.c_AAAAAAAAAAAAAAAAAAAA']) {
      const res = await t.http.post('/auth/signup').send({ username, password: 'correct horse battery' });
      expect({ username, status: res.status, code: res.body.code }).toEqual({
        username,
        status: 400,
        code: 'VALIDATION_FAILED',
      });
    }
    await signup(t, { username: uniqueUsername('svcish') });
  });
});
