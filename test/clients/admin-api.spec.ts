import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientsService } from '../../src/clients/clients.service.js';
import { ROOMY_LIMITS } from '../support/env.js';
import { login, signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
const MAX_SECRETS = 3;
const ENV = {
  ...ROOMY_LIMITS,
  LOGIN_RATE_LIMIT: '1000',
  ...ADMIN,
  OAUTH_MAX_SECRETS_PER_CLIENT: String(MAX_SECRETS),
  OAUTH_EXTRA_SCOPES: 'billing:read',
};

const CLIENT_KEYS = [
  'accessTokenTtl',
  'allowedScopes',
  'clientId',
  'createdAt',
  'description',
  'disabled',
  'id',
  'name',
  'secrets',
  'serviceUserId',
  'tokenExchange',
].sort();
const SECRET_KEYS = ['createdAt', 'expiresAt', 'id', 'label', 'lastUsedAt', 'prefix', 'revokedAt'].sort();
const SECRET_FORMAT = /^gcs_[A-Za-z0-9_-]{43}$/;

interface Created {
  client: {
    id: string;
    clientId: string;
    serviceUserId: string;
    secrets: Array<Record<string, unknown> & { id: string }>;
  } & Record<string, unknown>;
  secret: { id: string; value: string; expiresAt: string | null };
}

describe('/oauth/clients administration', () => {
  let t: TestApp;
  let admin: SignedUp;
  let clients: ClientsService;
  beforeAll(async () => {
    t = await startApp(ENV);
    admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
    clients = t.app.get(ClientsService);
  });
  afterAll(async () => t?.close());

  const create = async (body: Record<string, unknown> = {}): Promise<Created> => {
    const res = await t.http
      .post('/oauth/clients')
      .set(admin.auth)
      .send({ name: 'reporting job', allowedScopes: ['resources:read'], ...body })
      .expect(201);
    return res.body as Created;
  };
  const revocationKeys = async () => (await t.prisma.revocation.findMany({ select: { key: true } })).map((r) => r.key);

  describe('POST /oauth/clients', () => {
    it('creates a client, its service user and a first secret shown once', async () => {
      const res = await t.http
        .post('/oauth/clients')
        .set(admin.auth)
        .send({
          name: '  nightly export ',
          description: 'exports resources',
          allowedScopes: ['resources:write', 'resources:read', 'resources:read', 'billing:read'],
          accessTokenTtl: 600,
        })
        .expect(201);
      expect(res.headers['cache-control']).toBe('no-store');
      const { client, secret } = res.body as Created;
      expect(Object.keys(res.body as object).sort()).toEqual(['client', 'secret']);
      expect(Object.keys(client).sort()).toEqual(CLIENT_KEYS);
      expect(client).toMatchObject({
        name: 'nightly export',
        description: 'exports resources',
        allowedScopes: ['billing:read', 'resources:read', 'resources:write'],
        accessTokenTtl: 600,
        tokenExchange: false,
        disabled: false,
      });
      expect(client.clientId).toMatch(/^c_[A-Z2-7]{20}$/);
      expect(secret.value).toMatch(SECRET_FORMAT);
      expect(Object.keys(secret).sort()).toEqual(['expiresAt', 'id', 'value']);
      expect(secret.expiresAt).toBeNull();
      expect(client.secrets).toHaveLength(1);
      expect(Object.keys(client.secrets[0]!).sort()).toEqual(SECRET_KEYS);
      expect(client.secrets[0]).toMatchObject({ id: secret.id, prefix: secret.value.slice(0, 8), revokedAt: null });

      const user = await t.prisma.user.findUniqueOrThrow({ where: { id: client.serviceUserId } });
      expect(user).toMatchObject({
        kind: 'service',
        username: `svc.${client.clientId}`,
        usernameKey: `svc.${client.clientId}`.toLowerCase(),
        email: null,
        passwordHash: null,
        roles: ['user'],
        disabled: false,
      });
    });

    it('never shows the secret (or its hash) again: not in GET, not in the audit', async () => {
      const { client, secret } = await create();
      const hash = createHash('sha256').update(secret.value).digest();
      const forms = [secret.value, secret.value.slice(4), hash.toString('hex'), hash.toString('base64')];
      const one = await t.http.get(`/oauth/clients/${client.id}`).set(admin.auth).expect(200);
      const list = await t.http.get('/oauth/clients').query({ limit: 100 }).set(admin.auth).expect(200);
      const audit = await t.prisma.auditEvent.findMany({ where: { type: { startsWith: 'client.' } } });
      for (const text of [one.text, list.text, JSON.stringify(audit)]) {
        for (const form of forms) expect(text).not.toContain(form);
      }
      expect(one.body).toEqual(client);
      const created = audit.find((e) => e.type === 'client.created' && e.userId === client.serviceUserId);
      expect(created?.details).toMatchObject({ by: admin.id, clientId: client.clientId, secretId: secret.id });
    });

    it('gives the first secret an expiry in the future, and refuses one in the past', async () => {
      const at = new Date(t.clock.nowMs() + 86_400_000).toISOString();
      const { secret, client } = await create({ secretExpiresAt: at });
      expect(secret.expiresAt).toBe(at);
      expect(client.secrets[0]!.expiresAt).toBe(at);
      const past = new Date(t.clock.nowMs() - 1000).toISOString();
      const res = await t.http
        .post('/oauth/clients')
        .set(admin.auth)
        .send({ name: 'x', allowedScopes: [], secretExpiresAt: past })
        .expect(400);
      expect(res.body.code).toBe('VALIDATION_FAILED');
    });

    it.each([
      ['an unknown scope', { allowedScopes: ['resources:read', 'nope:nothing'] }],
      ['offline_access', { allowedScopes: ['offline_access'] }],
      ['a clientId chosen by the caller', { clientId: 'c_AAAAAAAAAAAAAAAAAAAA' }],
      ['a TTL below 60 s', { accessTokenTtl: 59 }],
      ['a TTL above OAUTH_MAX_TOKEN_TTL', { accessTokenTtl: 3601 }],
      ['an empty name', { name: '  ' }],
      ['allowedScopes not a list', { allowedScopes: 'resources:read' }],
      ['a malformed expiry', { secretExpiresAt: 'tomorrow' }],
    ])('answers 400 VALIDATION_FAILED to %s', async (_, patch) => {
      const before = await t.prisma.oAuthClient.count();
      const res = await t.http
        .post('/oauth/clients')
        .set(admin.auth)
        .send({ name: 'bad', allowedScopes: ['resources:read'], ...patch })
        .expect(400);
      expect(res.body).toMatchObject({ statusCode: 400, code: 'VALIDATION_FAILED' });
      expect(await t.prisma.oAuthClient.count()).toBe(before);
    });

    it('names the unknown scope', async () => {
      const res = await t.http
        .post('/oauth/clients')
        .set(admin.auth)
        .send({ name: 'bad', allowedScopes: ['nope:nothing'] })
        .expect(400);
      expect(JSON.stringify(res.body.message)).toContain('nope:nothing');
    });
  });

  describe('access', () => {
    it('answers 401 without a token and 403 to a non-admin, on every route', async () => {
      const user = await signup(t);
      const { client, secret } = await create();
      const calls = [
        () => t.http.post('/oauth/clients').send({ name: 'x', allowedScopes: [] }),
        () => t.http.get('/oauth/clients'),
        () => t.http.get(`/oauth/clients/${client.id}`),
        () => t.http.patch(`/oauth/clients/${client.id}`).send({ disabled: true }),
        () => t.http.delete(`/oauth/clients/${client.id}`),
        () => t.http.post(`/oauth/clients/${client.id}/secrets`).send({}),
        () => t.http.patch(`/oauth/clients/${client.id}/secrets/${secret.id}`).send({ expiresAt: null }),
        () => t.http.delete(`/oauth/clients/${client.id}/secrets/${secret.id}`),
      ];
      for (const call of calls) {
        expect((await call()).status).toBe(401);
        const res = await call().set(user.auth);
        expect(res.status).toBe(403);
        expect(res.body.code).toBe('INSUFFICIENT_ROLE');
      }
      // Nothing changed.
      const after = await t.http.get(`/oauth/clients/${client.id}`).set(admin.auth).expect(200);
      expect(after.body).toEqual(client);
    });

    it('answers 404 CLIENT_NOT_FOUND to a malformed or unknown id, and to a secret of another client', async () => {
      const a = await create();
      const b = await create();
      for (const path of ['/oauth/clients/not-a-uuid', `/oauth/clients/${randomUUID()}`]) {
        const res = await t.http.get(path).set(admin.auth).expect(404);
        expect(res.body.code).toBe('CLIENT_NOT_FOUND');
        await t.http.patch(path).set(admin.auth).send({ name: 'x' }).expect(404);
        await t.http.delete(path).set(admin.auth).expect(404);
        await t.http.post(`${path}/secrets`).set(admin.auth).send({}).expect(404);
      }
      for (const sid of ['nope', randomUUID(), b.secret.id]) {
        const path = `/oauth/clients/${a.client.id}/secrets/${sid}`;
        const patched = await t.http.patch(path).set(admin.auth).send({ expiresAt: null }).expect(404);
        expect(patched.body.code).toBe('CLIENT_NOT_FOUND');
        await t.http.delete(path).set(admin.auth).expect(404);
      }
      expect(await clients.authenticate(b.client.clientId, b.secret.value)).not.toBeNull();
    });
  });

  describe('GET /oauth/clients', () => {
    it('pages through every client exactly once, newest first', async () => {
      for (let i = 0; i < 3; i++) {
        await create({ name: `paged ${i}` });
        t.clock.advance(1);
      }
      const ids: string[] = [];
      const stamps: string[] = [];
      let cursor: string | null = null;
      do {
        const query: Record<string, string | number> = cursor ? { limit: 2, cursor } : { limit: 2 };
        const page = (await t.http.get('/oauth/clients').query(query).set(admin.auth).expect(200)).body as {
          items: Array<{ id: string; createdAt: string }>;
          nextCursor: string | null;
        };
        expect(page.items.length).toBeLessThanOrEqual(2);
        ids.push(...page.items.map((c) => c.id));
        stamps.push(...page.items.map((c) => c.createdAt));
        cursor = page.nextCursor;
      } while (cursor !== null);
      const all = await t.prisma.oAuthClient.findMany({ select: { id: true } });
      expect(new Set(ids).size).toBe(ids.length);
      expect([...ids].sort()).toEqual(all.map((c) => c.id).sort());
      expect(stamps).toEqual([...stamps].sort((x, y) => y.localeCompare(x)));
    });

    it('answers 400 to a bad cursor', async () => {
      const res = await t.http.get('/oauth/clients').query({ cursor: 'garbage' }).set(admin.auth).expect(400);
      expect(res.body.code).toBe('VALIDATION_FAILED');
    });
  });

  describe('PATCH /oauth/clients/:id', () => {
    it('changes fields, and refuses unknown scopes and a clientId', async () => {
      const { client } = await create();
      const res = await t.http
        .patch(`/oauth/clients/${client.id}`)
        .set(admin.auth)
        .send({ name: 'renamed', description: null, accessTokenTtl: null, tokenExchange: true })
        .expect(200);
      expect(res.body).toMatchObject({ name: 'renamed', description: null, accessTokenTtl: null, tokenExchange: true });
      await t.http
        .patch(`/oauth/clients/${client.id}`)
        .set(admin.auth)
        .send({ allowedScopes: ['nope'] })
        .expect(400);
      await t.http
        .patch(`/oauth/clients/${client.id}`)
        .set(admin.auth)
        .send({ clientId: 'c_AAAAAAAAAAAAAAAAAAAA' })
        .expect(400);
      await t.http.patch(`/oauth/clients/${client.id}`).set(admin.auth).send({ disabled: null }).expect(400);
      const audit = await t.prisma.auditEvent.findMany({
        where: { type: 'client.updated', userId: client.serviceUserId },
      });
      expect(audit).toHaveLength(1);
      expect(audit[0]!.details).toMatchObject({ by: admin.id });
    });

    it("disabling revokes every secret's tokens and refuses the client; enabling lets it in again", async () => {
      const { client, secret } = await create();
      const second = (await t.http.post(`/oauth/clients/${client.id}/secrets`).set(admin.auth).send({}).expect(201))
        .body as { id: string; value: string };
      const off = await t.http
        .patch(`/oauth/clients/${client.id}`)
        .set(admin.auth)
        .send({ disabled: true })
        .expect(200);
      expect(off.body.disabled).toBe(true);
      expect(await revocationKeys()).toEqual(expect.arrayContaining([`sid:${secret.id}`, `sid:${second.id}`]));
      expect(await clients.authenticate(client.clientId, secret.value)).toBeNull();
      expect(await clients.authenticate(client.clientId, second.value)).toBeNull();
      expect(await clients.isClientTokenActive(secret.id, client.clientId, client.serviceUserId)).toBe(false);

      await t.http.patch(`/oauth/clients/${client.id}`).set(admin.auth).send({ disabled: false }).expect(200);
      expect(await clients.authenticate(client.clientId, secret.value)).not.toBeNull();
      const types = (
        await t.prisma.auditEvent.findMany({
          where: { userId: client.serviceUserId },
          orderBy: { createdAt: 'asc' },
        })
      ).map((e) => e.type);
      expect(types.sort()).toEqual(['client.created', 'client.disabled', 'client.enabled', 'client.secret_created']);
    });
  });

  describe('secrets', () => {
    it('adds secrets up to OAUTH_MAX_SECRETS_PER_CLIENT live ones: 409 TOO_MANY_SECRETS beyond', async () => {
      const { client, secret } = await create();
      const added: Array<{ id: string; value: string; expiresAt: string | null }> = [];
      for (let i = 1; i < MAX_SECRETS; i++) {
        const res = await t.http
          .post(`/oauth/clients/${client.id}/secrets`)
          .set(admin.auth)
          .send({ label: `rotation ${i}` })
          .expect(201);
        expect(res.headers['cache-control']).toBe('no-store');
        expect(Object.keys(res.body as object).sort()).toEqual(['expiresAt', 'id', 'value']);
        expect(res.body.value).toMatch(SECRET_FORMAT);
        added.push(res.body);
      }
      const refused = await t.http.post(`/oauth/clients/${client.id}/secrets`).set(admin.auth).send({}).expect(409);
      expect(refused.body.code).toBe('TOO_MANY_SECRETS');

      // Every secret works; a revoked one frees a place.
      for (const s of [secret, ...added]) expect(await clients.authenticate(client.clientId, s.value)).not.toBeNull();
      await t.http.delete(`/oauth/clients/${client.id}/secrets/${added[0]!.id}`).set(admin.auth).expect(204);
      await t.http.post(`/oauth/clients/${client.id}/secrets`).set(admin.auth).send({}).expect(201);
      await t.http.post(`/oauth/clients/${client.id}/secrets`).set(admin.auth).send({}).expect(409);

      const listed = (await t.http.get(`/oauth/clients/${client.id}`).set(admin.auth).expect(200)).body as {
        secrets: Array<{ id: string; label: string | null; revokedAt: string | null }>;
      };
      expect(listed.secrets).toHaveLength(MAX_SECRETS + 1);
      expect(listed.secrets.find((s) => s.id === added[0]!.id)).toMatchObject({
        label: 'rotation 1',
        revokedAt: expect.any(String),
      });
    });

    it('never lets concurrent additions pass the cap', async () => {
      const { client } = await create();
      const results = await Promise.all(
        Array.from({ length: 6 }, () => t.http.post(`/oauth/clients/${client.id}/secrets`).set(admin.auth).send({})),
      );
      expect(results.filter((r) => r.status === 201)).toHaveLength(MAX_SECRETS - 1);
      expect(results.filter((r) => r.status === 409)).toHaveLength(6 - (MAX_SECRETS - 1));
      expect(await t.prisma.oAuthClientSecret.count({ where: { clientId: client.id } })).toBe(MAX_SECRETS);
    });

    it('revoking a secret ends it and its tokens at once; the other secret keeps working', async () => {
      const { client, secret } = await create();
      const other = (await t.http.post(`/oauth/clients/${client.id}/secrets`).set(admin.auth).send({}).expect(201))
        .body as { id: string; value: string };
      expect(await clients.isClientTokenActive(secret.id, client.clientId, client.serviceUserId)).toBe(true);
      await t.http.delete(`/oauth/clients/${client.id}/secrets/${secret.id}`).set(admin.auth).expect(204);
      expect(await revocationKeys()).toContain(`sid:${secret.id}`);
      expect(await revocationKeys()).not.toContain(`sid:${other.id}`);
      expect(await clients.authenticate(client.clientId, secret.value)).toBeNull();
      expect(await clients.isClientTokenActive(secret.id, client.clientId, client.serviceUserId)).toBe(false);
      expect(await clients.authenticate(client.clientId, other.value)).toMatchObject({ secretId: other.id });
      // Revoking again is harmless (its revocation time stays), and audited once.
      const first = await t.prisma.oAuthClientSecret.findUniqueOrThrow({ where: { id: secret.id } });
      t.clock.advance(5);
      await t.http.delete(`/oauth/clients/${client.id}/secrets/${secret.id}`).set(admin.auth).expect(204);
      const again = await t.prisma.oAuthClientSecret.findUniqueOrThrow({ where: { id: secret.id } });
      expect(again.revokedAt).toEqual(first.revokedAt);
      expect(
        await t.prisma.auditEvent.count({ where: { type: 'client.secret_revoked', userId: client.serviceUserId } }),
      ).toBe(1);
    });

    it('an expiry schedules the rotation; one in the past ends the secret now', async () => {
      const { client, secret } = await create();
      const soon = new Date(t.clock.nowMs() + 60_000).toISOString();
      const res = await t.http
        .patch(`/oauth/clients/${client.id}/secrets/${secret.id}`)
        .set(admin.auth)
        .send({ expiresAt: soon })
        .expect(200);
      expect(Object.keys(res.body as object).sort()).toEqual(SECRET_KEYS);
      expect(res.body).toMatchObject({ id: secret.id, expiresAt: soon });
      expect(await clients.authenticate(client.clientId, secret.value)).not.toBeNull();
      t.clock.advance(61);
      expect(await clients.authenticate(client.clientId, secret.value)).toBeNull();

      const fresh = await create();
      await t.http
        .patch(`/oauth/clients/${fresh.client.id}/secrets/${fresh.secret.id}`)
        .set(admin.auth)
        .send({ expiresAt: new Date(t.clock.nowMs() - 1000).toISOString() })
        .expect(200);
      expect(await revocationKeys()).toContain(`sid:${fresh.secret.id}`);
      expect(await clients.authenticate(fresh.client.clientId, fresh.secret.value)).toBeNull();
      await t.http
        .patch(`/oauth/clients/${fresh.client.id}/secrets/${fresh.secret.id}`)
        .set(admin.auth)
        .send({})
        .expect(400);
    });

    it('expired secrets do not count against the cap', async () => {
      const { client, secret } = await create();
      for (let i = 1; i < MAX_SECRETS; i++) {
        await t.http.post(`/oauth/clients/${client.id}/secrets`).set(admin.auth).send({}).expect(201);
      }
      await t.http.post(`/oauth/clients/${client.id}/secrets`).set(admin.auth).send({}).expect(409);
      await t.http
        .patch(`/oauth/clients/${client.id}/secrets/${secret.id}`)
        .set(admin.auth)
        .send({ expiresAt: new Date(t.clock.nowMs()).toISOString() })
        .expect(200);
      await t.http.post(`/oauth/clients/${client.id}/secrets`).set(admin.auth).send({}).expect(201);
    });
  });

  describe('DELETE /oauth/clients/:id', () => {
    it('deletes the client and its secrets, ends its tokens, and keeps its service user disabled', async () => {
      const { client, secret } = await create();
      await t.http.delete(`/oauth/clients/${client.id}`).set(admin.auth).expect(204);
      await t.http.get(`/oauth/clients/${client.id}`).set(admin.auth).expect(404);
      await t.http.delete(`/oauth/clients/${client.id}`).set(admin.auth).expect(404);
      expect(await t.prisma.oAuthClientSecret.count({ where: { clientId: client.id } })).toBe(0);
      const user = await t.prisma.user.findUniqueOrThrow({ where: { id: client.serviceUserId } });
      expect(user).toMatchObject({ kind: 'service', disabled: true });
      expect(await revocationKeys()).toEqual(
        expect.arrayContaining([`sid:${secret.id}`, `user:${client.serviceUserId}`]),
      );
      expect(await clients.authenticate(client.clientId, secret.value)).toBeNull();
      const deleted = await t.prisma.auditEvent.findFirst({
        where: { type: 'client.deleted', userId: client.serviceUserId },
      });
      expect(deleted?.details).toMatchObject({ by: admin.id, clientId: client.clientId });
    });
  });

  describe('ClientsService.authenticate', () => {
    it('gives the client for its secret, and null for anything else', async () => {
      const { client, secret } = await create({ accessTokenTtl: 120, allowedScopes: ['introspection'] });
      const ok = await clients.authenticate(client.clientId, secret.value);
      expect(ok).toEqual({
        id: client.id,
        clientId: client.clientId,
        name: 'reporting job',
        allowedScopes: ['introspection'],
        accessTokenTtl: 120,
        tokenExchange: false,
        serviceUserId: client.serviceUserId,
        serviceUserRoles: ['user'],
        secretId: secret.id,
      });
      const row = await t.prisma.oAuthClientSecret.findUniqueOrThrow({ where: { id: secret.id } });
      expect(row.lastUsedAt).not.toBeNull();

      const other = await create();
      expect(await clients.authenticate(client.clientId, other.secret.value)).toBeNull();
      expect(await clients.authenticate(client.clientId, `${secret.value}x`)).toBeNull();
      expect(await clients.authenticate('c_AAAAAAAAAAAAAAAAAAAA', secret.value)).toBeNull();
      expect(await clients.authenticate('', '')).toBeNull();

      // A disabled service user (PATCH /users/:id) refuses the client too.
      await t.http.patch(`/users/${client.serviceUserId}`).set(admin.auth).send({ disabled: true }).expect(200);
      expect(await clients.authenticate(client.clientId, secret.value)).toBeNull();
      expect(await clients.isClientTokenActive(secret.id, client.clientId, client.serviceUserId)).toBe(false);
    });

    it('uses OAUTH_TOKEN_TTL when the client has no TTL of its own', async () => {
      const { client, secret } = await create();
      const ok = await clients.authenticate(client.clientId, secret.value);
      expect(ok?.accessTokenTtl).toBe(t.config.OAUTH_TOKEN_TTL);
    });

    it('tells whether a client token or a user session is active, from the database', async () => {
      const { client, secret } = await create();
      expect(await clients.isClientTokenActive(secret.id, client.clientId, client.serviceUserId)).toBe(true);
      expect(await clients.isClientTokenActive(secret.id, 'c_AAAAAAAAAAAAAAAAAAAA', client.serviceUserId)).toBe(false);
      expect(await clients.isClientTokenActive(secret.id, client.clientId, admin.id)).toBe(false);
      expect(await clients.isClientTokenActive('not-a-uuid', client.clientId, client.serviceUserId)).toBe(false);

      const user = await signup(t);
      const sid = (await t.prisma.session.findFirstOrThrow({ where: { userId: user.id } })).id;
      expect(await clients.activeSessionUsername(sid, user.id)).toBe(user.username);
      expect(await clients.activeSessionUsername(sid, admin.id)).toBeNull();
      expect(await clients.activeSessionUsername('nope', user.id)).toBeNull();
      // One statement decides it all: the user disabled, the session idle- or absolutely expired.
      await t.prisma.user.update({ where: { id: user.id }, data: { disabled: true } });
      expect(await clients.activeSessionUsername(sid, user.id)).toBeNull();
      await t.prisma.user.update({ where: { id: user.id }, data: { disabled: false } });
      expect(await clients.activeSessionUsername(sid, user.id)).toBe(user.username);
      const { expiresAt, absoluteExpiresAt } = await t.prisma.session.findUniqueOrThrow({ where: { id: sid } });
      await t.prisma.session.update({ where: { id: sid }, data: { expiresAt: t.clock.now() } });
      expect(await clients.activeSessionUsername(sid, user.id)).toBeNull();
      await t.prisma.session.update({ where: { id: sid }, data: { expiresAt, absoluteExpiresAt: t.clock.now() } });
      expect(await clients.activeSessionUsername(sid, user.id)).toBeNull();
      await t.prisma.session.update({ where: { id: sid }, data: { absoluteExpiresAt } });
      expect(await clients.activeSessionUsername(sid, user.id)).toBe(user.username);
      await t.http.post('/auth/logout-all').set(user.auth).expect(204);
      expect(await clients.activeSessionUsername(sid, user.id)).toBeNull();
    });
  });
});

describe('/oauth/clients without the clients:admin scope', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ENV, USER_TOKEN_SCOPES: 'profile users:admin' });
  });
  afterAll(async () => t?.close());

  it('answers an admin whose token lacks clients:admin 403 INSUFFICIENT_SCOPE', async () => {
    const admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
    const res = await t.http.get('/oauth/clients').set(admin.auth).expect(403);
    expect(res.body.code).toBe('INSUFFICIENT_SCOPE');
    expect(res.headers['www-authenticate']).toContain('scope="clients:admin"');
  });
});
