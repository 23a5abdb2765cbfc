import { randomInt } from 'node:crypto';
import type { Response } from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS, TEST_REDIS_URL, onPostgres } from '../support/env.js';
import { bearer, refreshCookieOf, uniqueUsername } from '../support/factories.js';
import { es256KeyPair } from '../support/jwt.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { inTenant, uniqueSlug } from './tenant-helpers.js';

/**
 * Contract v2 §E test 4, "on both instances (no stale cache)": two instances on one
 * PostgreSQL database and one Redis. Each instance caches memberships; a removal, an
 * addition, a role change or a role redefinition on one instance must act on the other's
 * very next request (the `tenants.changed` event), however warm its cache is.
 *
 * Every request comes from this run's own client address (TRUST_PROXY=true), so that the
 * per-IP counters this run leaves in the shared Redis cannot meet another run's; user names
 * and slugs are unique. Nothing global in Redis is flushed.
 */
describe.runIf(onPostgres)('tenant memberships on two instances sharing PostgreSQL and Redis', () => {
  const keys = es256KeyPair();
  const clientIp = `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
  const env = {
    ...ROOMY_LIMITS,
    REDIS_URL: TEST_REDIS_URL,
    JWT_KEYS: keys.pem,
    LOGIN_RATE_LIMIT: '1000',
    TRUST_PROXY: 'true',
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

  interface User {
    id: string;
    username: string;
    auth: { Authorization: string };
  }
  const on = (app: TestApp) => ({
    get: (path: string) => app.http.get(path).set('X-Forwarded-For', clientIp),
    post: (path: string) => app.http.post(path).set('X-Forwarded-For', clientIp),
    patch: (path: string) => app.http.patch(path).set('X-Forwarded-For', clientIp),
    put: (path: string) => app.http.put(path).set('X-Forwarded-For', clientIp),
    delete: (path: string) => app.http.delete(path).set('X-Forwarded-For', clientIp),
  });

  function expectStatus(res: Response, status: number, code?: string): void {
    expect({ status: res.status, code: res.body?.code, body: res.status === status ? undefined : res.text }).toEqual({
      status,
      code,
      body: undefined,
    });
  }

  async function signupOn(app: TestApp): Promise<User> {
    const username = uniqueUsername('mt');
    const res = await on(app).post('/auth/signup').send({ username, password: 'correct horse battery' });
    expectStatus(res, 201);
    expect(refreshCookieOf(res)).toBeDefined();
    return { id: res.body.user.id as string, username, auth: bearer(res.body.accessToken as string) };
  }
  async function tenantOn(app: TestApp, owner: User): Promise<string> {
    const slug = uniqueSlug('mt');
    const res = await on(app)
      .post('/tenants')
      .set(owner.auth)
      .send({ name: `Tenant ${slug}`, slug });
    expectStatus(res, 201);
    return res.body.id as string;
  }
  async function add(app: TestApp, tenantId: string, by: User, who: User, roles: string[]): Promise<void> {
    const res = await on(app).post(`/tenants/${tenantId}/members`).set(by.auth).send({ username: who.username, roles });
    expectStatus(res, 201);
  }
  async function remove(app: TestApp, tenantId: string, by: User, who: User): Promise<void> {
    expectStatus(await on(app).delete(`/tenants/${tenantId}/members/${who.id}`).set(by.auth), 204);
  }
  async function setRoles(app: TestApp, tenantId: string, by: User, who: User, roles: string[]): Promise<void> {
    const res = await on(app).patch(`/tenants/${tenantId}/members/${who.id}`).set(by.auth).send({ roles });
    expectStatus(res, 200);
  }
  async function createIn(app: TestApp, tenantId: string, who: User): Promise<string> {
    const res = await on(app).post('/resources').set(who.auth).set(inTenant(tenantId)).send({ title: 'shared' });
    expectStatus(res, 201);
    expect(res.body.tenantId).toBe(tenantId);
    return res.body.id as string;
  }
  const list = (app: TestApp, tenantId: string, who: User) =>
    on(app).get('/resources').set(who.auth).set(inTenant(tenantId));
  const read = (app: TestApp, id: string, who: User, headers: Record<string, string> = {}) =>
    on(app).get(`/resources/${id}`).set(who.auth).set(headers);
  const tenant = (app: TestApp, tenantId: string, who: User) => on(app).get(`/tenants/${tenantId}`).set(who.auth);

  /** Reads the tenant and its resource on both instances (200 each): both caches are warm. */
  async function warm(tenantId: string, resourceId: string, who: User): Promise<void> {
    for (const app of [a, b]) {
      expectStatus(await list(app, tenantId, who), 200);
      expectStatus(await read(app, resourceId, who), 200);
      expectStatus(await read(app, resourceId, who, inTenant(tenantId)), 200);
      expectStatus(await tenant(app, tenantId, who), 200);
    }
  }

  for (const [from, to] of [
    ['A', 'B'],
    ['B', 'A'],
  ] as const) {
    it(`a member removed on ${from} gets 404 on ${to} at the very next request`, async () => {
      const src = from === 'A' ? a : b;
      const dst = to === 'A' ? a : b;
      const owner = await signupOn(src);
      const member = await signupOn(dst);
      const tenantId = await tenantOn(src, owner);
      await add(src, tenantId, owner, member, ['member']);
      const r = await createIn(src, tenantId, owner);
      await warm(tenantId, r, member);

      await remove(src, tenantId, owner, member);

      expectStatus(await list(dst, tenantId, member), 404, 'TENANT_NOT_FOUND');
      expectStatus(await read(dst, r, member, inTenant(tenantId)), 404, 'TENANT_NOT_FOUND');
      expectStatus(await read(dst, r, member), 404, 'RESOURCE_NOT_FOUND');
      expectStatus(await tenant(dst, tenantId, member), 404, 'TENANT_NOT_FOUND');
      expectStatus(
        await on(dst).post('/resources').set(member.auth).set(inTenant(tenantId)).send({ title: 'x' }),
        404,
        'TENANT_NOT_FOUND',
      );
      // And on the instance that made the change.
      expectStatus(await list(src, tenantId, member), 404, 'TENANT_NOT_FOUND');
      expectStatus(await read(src, r, member), 404, 'RESOURCE_NOT_FOUND');
      // The owner is unaffected on both.
      for (const app of [a, b]) expectStatus(await list(app, tenantId, owner), 200);
    });

    it(`a member added on ${from} is recognised on ${to} at once, though ${to} had just refused them`, async () => {
      const src = from === 'A' ? a : b;
      const dst = to === 'A' ? a : b;
      const owner = await signupOn(src);
      const newcomer = await signupOn(dst);
      const tenantId = await tenantOn(src, owner);
      const r = await createIn(src, tenantId, owner);
      // Both instances have looked the newcomer up and found no membership.
      for (const app of [a, b]) {
        expectStatus(await list(app, tenantId, newcomer), 404, 'TENANT_NOT_FOUND');
        expectStatus(await tenant(app, tenantId, newcomer), 404, 'TENANT_NOT_FOUND');
      }

      await add(src, tenantId, owner, newcomer, ['member']);

      const listed = await list(dst, tenantId, newcomer);
      expectStatus(listed, 200);
      expect((listed.body.items as Array<{ id: string }>).map((x) => x.id)).toEqual([r]);
      expectStatus(await read(dst, r, newcomer, inTenant(tenantId)), 200);
      expectStatus(await tenant(dst, tenantId, newcomer), 200);
      await createIn(dst, tenantId, newcomer);
      expectStatus(await list(src, tenantId, newcomer), 200);
    });
  }

  it('a role downgrade on A acts on B at once, and an upgrade too', async () => {
    const owner = await signupOn(a);
    const member = await signupOn(b);
    const tenantId = await tenantOn(a, owner);
    await add(a, tenantId, owner, member, ['admin']);
    const r = await createIn(a, tenantId, owner);
    await warm(tenantId, r, member);
    // As admin on B: may change the owner's resource and create.
    expectStatus(await on(b).patch(`/resources/${r}`).set(member.auth).send({ title: 'by admin' }), 200);
    await createIn(b, tenantId, member);

    await setRoles(a, tenantId, owner, member, ['member']);
    expectStatus(await on(b).patch(`/resources/${r}`).set(member.auth).send({ title: 'again' }), 403, 'NOT_OWNER');
    expectStatus(await list(b, tenantId, member), 200);

    await setRoles(a, tenantId, owner, member, []);
    expectStatus(await list(b, tenantId, member), 403, 'INSUFFICIENT_TENANT_PERMISSION');
    expectStatus(await read(b, r, member), 403, 'INSUFFICIENT_TENANT_PERMISSION');
    expectStatus(
      await on(b).post('/resources').set(member.auth).set(inTenant(tenantId)).send({ title: 'x' }),
      403,
      'INSUFFICIENT_TENANT_PERMISSION',
    );
    expectStatus(await tenant(b, tenantId, member), 200); // an empty role list still sees the tenant

    await setRoles(a, tenantId, owner, member, ['admin']);
    expectStatus(await on(b).patch(`/resources/${r}`).set(member.auth).send({ title: 'back' }), 200);
  });

  it("redefining a custom role on B changes its holders' rights on A at once", async () => {
    const owner = await signupOn(a);
    const member = await signupOn(a);
    const tenantId = await tenantOn(a, owner);
    const define = async (app: TestApp, permissions: string[]) =>
      expectStatus(await on(app).put(`/tenants/${tenantId}/roles/writer`).set(owner.auth).send({ permissions }), 200);
    await define(a, ['resources:read', 'resources:write']);
    await add(a, tenantId, owner, member, ['writer']);
    const r = await createIn(a, tenantId, owner);
    await warm(tenantId, r, member);
    await createIn(a, tenantId, member);

    await define(b, ['resources:read']);
    expectStatus(
      await on(a).post('/resources').set(member.auth).set(inTenant(tenantId)).send({ title: 'x' }),
      403,
      'INSUFFICIENT_TENANT_PERMISSION',
    );
    expectStatus(await list(a, tenantId, member), 200);

    await define(b, []);
    expectStatus(await list(a, tenantId, member), 403, 'INSUFFICIENT_TENANT_PERMISSION');
    expectStatus(await read(a, r, member), 403, 'INSUFFICIENT_TENANT_PERMISSION');
  });

  it('20 times over: a member removed on A gets 404 on B at their very next request, though B had just served them', async () => {
    const owner = await signupOn(a);
    const member = await signupOn(b);
    const tenantId = await tenantOn(a, owner);
    await add(a, tenantId, owner, member, ['member']);
    const next: string[] = [];
    for (let round = 0; round < 20; round += 1) {
      // B has just looked the member up and let them in.
      expectStatus(await list(b, tenantId, member), 200);
      await remove(a, tenantId, owner, member);
      const res = await list(b, tenantId, member);
      next.push(`${res.status} ${(res.body?.code as string | undefined) ?? '-'}`);
      await add(a, tenantId, owner, member, ['member']);
    }
    expect(next).toEqual(Array.from({ length: 20 }, () => '404 TENANT_NOT_FOUND'));
  });
});
