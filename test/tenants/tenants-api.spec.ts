import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { createResource, login, signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { addMember, createTenant, inTenant, TENANT_KEYS, uniqueSlug } from './tenant-helpers.js';

const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
const ENV = { ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', ...ADMIN };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const TENANT_NOT_FOUND = {
  statusCode: 404,
  error: 'Not Found',
  message: 'No such tenant',
  code: 'TENANT_NOT_FOUND',
};

interface Tenant {
  id: string;
  slug: string;
  name: string;
  createdAt: string;
  myRoles: string[];
}

/** Every page of a keyset list, following nextCursor; fails on a loop. */
async function allPages<T>(
  t: TestApp,
  path: string,
  auth: { Authorization: string },
  query: Record<string, string | number> = {},
): Promise<{ pages: T[][]; items: T[] }> {
  const pages: T[][] = [];
  let cursor: string | null = null;
  do {
    const res = await t.http
      .get(path)
      .set(auth)
      .query({ ...query, ...(cursor ? { cursor } : {}) })
      .expect(200);
    expect(Object.keys(res.body).sort()).toEqual(['items', 'nextCursor']);
    pages.push(res.body.items as T[]);
    cursor = res.body.nextCursor as string | null;
    expect(pages.length).toBeLessThan(1000);
  } while (cursor !== null);
  return { pages, items: pages.flat() };
}

/** A slug of exactly `length` characters that no other test uses. */
function slugOfLength(length: number): string {
  const base = uniqueSlug('s').replace(/-/g, '');
  const filler = randomBytes(40).toString('hex');
  return (base + filler).slice(0, length);
}

describe('/tenants: creation, listing, reading, renaming and deletion', () => {
  let t: TestApp;
  let admin: SignedUp;
  beforeAll(async () => {
    t = await startApp(ENV);
    admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
  });
  afterAll(async () => t?.close());

  const getTenant = (id: string, auth: { Authorization: string }) => t.http.get(`/tenants/${id}`).set(auth);

  describe('POST /tenants', () => {
    it('answers 201 with a Tenant whose creator is its only owner', async () => {
      const owner = await signup(t);
      const slug = uniqueSlug('acme');
      const res = await t.http.post('/tenants').set(owner.auth).send({ name: 'Acme Corporation', slug }).expect(201);
      expect(Object.keys(res.body).sort()).toEqual(TENANT_KEYS);
      expect(res.body).toMatchObject({ slug, name: 'Acme Corporation', myRoles: ['owner'] });
      expect(res.body.id).toMatch(UUID);
      expect(res.body.createdAt).toMatch(ISO);

      const fetched = await getTenant(res.body.id, owner.auth).expect(200);
      expect(fetched.body).toEqual(res.body);

      const members = await t.http.get(`/tenants/${res.body.id}/members`).set(owner.auth).expect(200);
      expect(members.body.items).toHaveLength(1);
      expect(members.body.items[0]).toMatchObject({ userId: owner.id, username: owner.username, roles: ['owner'] });
      const rows = await t.prisma.tenantMembership.findMany({ where: { tenantId: res.body.id } });
      expect(rows.map((r) => [r.userId, r.roles])).toEqual([[owner.id, ['owner']]]);
    });

    it('accepts slugs of 3 and of 40 characters, and inner hyphens', async () => {
      const owner = await signup(t);
      for (const slug of [slugOfLength(3), slugOfLength(40), `${slugOfLength(4)}--x-9`]) {
        const res = await t.http.post('/tenants').set(owner.auth).send({ name: 'Bounds', slug }).expect(201);
        expect(res.body.slug).toBe(slug);
      }
    });

    const badSlugs: Array<[string, unknown]> = [
      ['"ab" (too short)', 'ab'],
      ['"-abc" (leading hyphen)', '-abc'],
      ['"abc-" (trailing hyphen)', 'abc-'],
      ['"ABC" (upper case)', 'ABC'],
      ['"Abc-def" (an upper-case letter)', 'Abc-def'],
      ['41 characters', 'a'.repeat(41)],
      ['an underscore', 'abc_def'],
      ['a dot', 'abc.def'],
      ['a space', 'abc def'],
      ['a non-ASCII letter', 'ümlaut'],
      ['an empty string', ''],
      ['a number', 12345],
      ['null', null],
    ];
    it.each(badSlugs)('answers 400 VALIDATION_FAILED to the slug %s and creates nothing', async (_name, slug) => {
      const owner = await signup(t);
      const res = await t.http.post('/tenants').set(owner.auth).send({ name: 'Bad slug', slug }).expect(400);
      expect(res.body).toMatchObject({ statusCode: 400, error: 'Bad Request', code: 'VALIDATION_FAILED' });
      expect(await t.prisma.tenantMembership.count({ where: { userId: owner.id } })).toBe(0);
    });

    const badBodies: Array<[string, (slug: string) => Record<string, unknown>]> = [
      ['no slug', () => ({ name: 'No slug' })],
      ['no name', (slug) => ({ slug })],
      ['an empty name', (slug) => ({ name: '', slug })],
      ['a 101-character name', (slug) => ({ name: 'n'.repeat(101), slug })],
      ['a name that is not a string', (slug) => ({ name: 42, slug })],
      ['a name with a right-to-left override', (slug) => ({ name: 'evil\u202Egnp.exe', slug })],
      ['a name with a zero-width space', (slug) => ({ name: 'a\u200Bb', slug })],
      ['an id (mass assignment)', (slug) => ({ name: 'Mass', slug, id: randomUUID() })],
      ['a createdBy (mass assignment)', (slug) => ({ name: 'Mass', slug, createdBy: randomUUID() })],
      ['myRoles (mass assignment)', (slug) => ({ name: 'Mass', slug, myRoles: ['owner'] })],
    ];
    it.each(badBodies)('answers 400 VALIDATION_FAILED to %s and creates nothing', async (_name, body) => {
      const owner = await signup(t);
      const slug = uniqueSlug();
      const res = await t.http.post('/tenants').set(owner.auth).send(body(slug)).expect(400);
      expect(res.body.code).toBe('VALIDATION_FAILED');
      expect(await t.prisma.tenant.count({ where: { slug } })).toBe(0);
      expect(await t.prisma.tenantMembership.count({ where: { userId: owner.id } })).toBe(0);
    });

    it('accepts a 100-character name', async () => {
      const owner = await signup(t);
      const res = await t.http
        .post('/tenants')
        .set(owner.auth)
        .send({ name: 'n'.repeat(100), slug: uniqueSlug() })
        .expect(201);
      expect(res.body.name).toBe('n'.repeat(100));
    });

    it('answers 409 TENANT_SLUG_TAKEN to a slug in use, whoever asks, and leaves the first tenant alone', async () => {
      const first = await signup(t);
      const second = await signup(t);
      const tenant = await createTenant(t, first, { name: 'First' });
      for (const who of [second, first]) {
        const res = await t.http.post('/tenants').set(who.auth).send({ name: 'Second', slug: tenant.slug }).expect(409);
        expect(res.body).toMatchObject({ statusCode: 409, code: 'TENANT_SLUG_TAKEN' });
      }
      const rows = await t.prisma.tenant.findMany({ where: { slug: tenant.slug } });
      expect(rows.map((r) => [r.id, r.name])).toEqual([[tenant.id, 'First']]);
      expect(await t.prisma.tenantMembership.count({ where: { userId: second.id } })).toBe(0);
    });

    it('answers exactly one 201 and one 409 TENANT_SLUG_TAKEN to two concurrent creations with one slug', async () => {
      const a = await signup(t);
      const b = await signup(t);
      const slug = uniqueSlug('race');
      const results = await Promise.all(
        [a, b].map((u) => t.http.post('/tenants').set(u.auth).send({ name: 'Race', slug })),
      );
      expect(results.map((r) => r.status).sort((x, y) => x - y)).toEqual([201, 409]);
      expect(results.find((r) => r.status === 409)!.body.code).toBe('TENANT_SLUG_TAKEN');
      expect(await t.prisma.tenant.count({ where: { slug } })).toBe(1);
      expect(await t.prisma.tenantMembership.count({ where: { userId: { in: [a.id, b.id] } } })).toBe(1);
    });

    it('answers 401 without a token and creates nothing', async () => {
      const slug = uniqueSlug();
      const res = await t.http.post('/tenants').send({ name: 'Anonymous', slug }).expect(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
      expect(await t.prisma.tenant.count({ where: { slug } })).toBe(0);
    });
  });

  describe('GET /tenants', () => {
    it("pages through the caller's 5 tenants 2 at a time, newest first, each once, with the caller's roles", async () => {
      const me = await signup(t);
      const other = await signup(t);
      const stranger = await signup(t);
      const expected = new Map<string, string[]>();
      for (let i = 0; i < 3; i += 1) expected.set((await createTenant(t, me)).id, ['owner']);
      const asAdmin = await createTenant(t, other);
      await addMember(t, asAdmin.id, other, me, ['admin']);
      expected.set(asAdmin.id, ['admin']);
      const asMember = await createTenant(t, other);
      await addMember(t, asMember.id, other, me, ['member']);
      expected.set(asMember.id, ['member']);
      // Tenants the caller is not in never show.
      const notMine = [(await createTenant(t, other)).id, (await createTenant(t, stranger)).id];

      const { pages, items } = await allPages<Tenant>(t, '/tenants', me.auth, { limit: 2 });
      expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
      const ids = items.map((i) => i.id);
      expect(new Set(ids).size).toBe(5);
      expect([...ids].sort()).toEqual([...expected.keys()].sort());
      for (const id of notMine) expect(ids).not.toContain(id);
      for (const item of items) {
        expect(Object.keys(item).sort()).toEqual(TENANT_KEYS);
        expect(item.myRoles).toEqual(expected.get(item.id));
      }
      const order = items.map((i) => [i.createdAt, i.id] as const);
      const sorted = [...order].sort((x, y) => (x[0] === y[0] ? y[1].localeCompare(x[1]) : y[0].localeCompare(x[0])));
      expect(order).toEqual(sorted);

      const single = await t.http.get('/tenants').set(me.auth).expect(200);
      expect(single.body.nextCursor).toBeNull();
      expect(single.body.items.map((i: Tenant) => i.id)).toEqual(ids);
    });

    it('answers an empty page to a user in no tenant', async () => {
      const loner = await signup(t);
      const res = await t.http.get('/tenants').set(loner.auth).expect(200);
      expect(res.body).toEqual({ items: [], nextCursor: null });
    });

    const badQueries: Array<[string, Record<string, string>]> = [
      ['limit=0', { limit: '0' }],
      ['limit=101', { limit: '101' }],
      ['limit=abc', { limit: 'abc' }],
      ['a cursor that is not one', { cursor: 'bm90LWEtY3Vyc29y' }],
      ['all=yes', { all: 'yes' }],
    ];
    it.each(badQueries)('answers 400 VALIDATION_FAILED to %s', async (_name, query) => {
      const me = await signup(t);
      const res = await t.http.get('/tenants').set(me.auth).query(query).expect(400);
      expect(res.body.code).toBe('VALIDATION_FAILED');
    });

    it('answers 403 INSUFFICIENT_ROLE to all=true from a user who is not a global admin', async () => {
      const me = await signup(t);
      await createTenant(t, me);
      const res = await t.http.get('/tenants').query({ all: 'true' }).set(me.auth).expect(403);
      expect(res.body).toMatchObject({ statusCode: 403, code: 'INSUFFICIENT_ROLE' });
    });

    it('gives a global admin every tenant with all=true (myRoles [] where not a member), only their own without', async () => {
      const someone = await signup(t);
      const theirs = await createTenant(t, someone);
      const own = await createTenant(t, admin);

      const { items } = await allPages<Tenant>(t, '/tenants', admin.auth, { all: 'true', limit: 3 });
      const ids = items.map((i) => i.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect([...ids].sort()).toEqual(
        (await t.prisma.tenant.findMany({ select: { id: true } })).map((r) => r.id).sort(),
      );
      expect(items.find((i) => i.id === theirs.id)).toMatchObject({ slug: theirs.slug, myRoles: [] });
      expect(items.find((i) => i.id === own.id)).toMatchObject({ myRoles: ['owner'] });

      for (const all of [undefined, 'false']) {
        const mine = await allPages<Tenant>(t, '/tenants', admin.auth, all ? { all } : {});
        const mineIds = mine.items.map((i) => i.id);
        expect(mineIds).toContain(own.id);
        expect(mineIds).not.toContain(theirs.id);
      }
    });
  });

  describe('GET /tenants/:id', () => {
    it('answers a non-member 404 with the very bytes of a random UUID and of a non-UUID id', async () => {
      const owner = await signup(t);
      const outsider = await signup(t);
      const tenant = await createTenant(t, owner);
      const hidden = await getTenant(tenant.id, outsider.auth).expect(404);
      const random = await getTenant(randomUUID(), outsider.auth).expect(404);
      const notUuid = await getTenant('not-a-uuid', outsider.auth).expect(404);
      const numeric = await getTenant('123', outsider.auth).expect(404);
      expect(hidden.body).toEqual(TENANT_NOT_FOUND);
      for (const other of [random, notUuid, numeric]) {
        expect(other.text).toBe(hidden.text);
        expect(other.headers['content-type']).toBe(hidden.headers['content-type']);
        expect(other.headers['content-length']).toBe(hidden.headers['content-length']);
      }
      expect(hidden.text).not.toContain(tenant.slug);
    });

    it('answers the members with the tenant and their own roles', async () => {
      const owner = await signup(t);
      const member = await signup(t);
      const tenant = await createTenant(t, owner, { name: 'Read me' });
      await addMember(t, tenant.id, owner, member, ['member']);
      const res = await getTenant(tenant.id, member.auth).expect(200);
      expect(Object.keys(res.body).sort()).toEqual(TENANT_KEYS);
      expect(res.body).toMatchObject({ id: tenant.id, slug: tenant.slug, name: 'Read me', myRoles: ['member'] });
      expect((await getTenant(tenant.id, owner.auth).expect(200)).body.myRoles).toEqual(['owner']);
    });

    it('answers a global admin who is not a member 200 with myRoles []', async () => {
      const owner = await signup(t);
      const tenant = await createTenant(t, owner);
      const res = await getTenant(tenant.id, admin.auth).expect(200);
      expect(res.body).toMatchObject({ id: tenant.id, slug: tenant.slug, myRoles: [] });
    });

    it('answers 401 without a token', async () => {
      const owner = await signup(t);
      const tenant = await createTenant(t, owner);
      await t.http.get(`/tenants/${tenant.id}`).expect(401);
    });
  });

  describe('PATCH /tenants/:id', () => {
    it('lets the owner and a tenant admin rename the tenant; the slug stays', async () => {
      const owner = await signup(t);
      const tadmin = await signup(t);
      const tenant = await createTenant(t, owner, { name: 'Old name' });
      await addMember(t, tenant.id, owner, tadmin, ['admin']);

      const byOwner = await t.http
        .patch(`/tenants/${tenant.id}`)
        .set(owner.auth)
        .send({ name: 'New name' })
        .expect(200);
      expect(Object.keys(byOwner.body).sort()).toEqual(TENANT_KEYS);
      expect(byOwner.body).toMatchObject({ id: tenant.id, slug: tenant.slug, name: 'New name', myRoles: ['owner'] });

      const byAdmin = await t.http
        .patch(`/tenants/${tenant.id}`)
        .set(tadmin.auth)
        .send({ name: 'Admin name' })
        .expect(200);
      expect(byAdmin.body).toMatchObject({ slug: tenant.slug, name: 'Admin name', myRoles: ['admin'] });
      expect((await getTenant(tenant.id, owner.auth).expect(200)).body.name).toBe('Admin name');
      expect(await t.prisma.tenant.findUniqueOrThrow({ where: { id: tenant.id } })).toMatchObject({
        slug: tenant.slug,
        name: 'Admin name',
      });
    });

    it('answers a plain member 403 INSUFFICIENT_TENANT_PERMISSION and keeps the name', async () => {
      const owner = await signup(t);
      const member = await signup(t);
      const tenant = await createTenant(t, owner, { name: 'Keep me' });
      await addMember(t, tenant.id, owner, member, ['member']);
      const res = await t.http.patch(`/tenants/${tenant.id}`).set(member.auth).send({ name: 'Taken over' }).expect(403);
      expect(res.body).toMatchObject({ statusCode: 403, code: 'INSUFFICIENT_TENANT_PERMISSION' });
      expect((await getTenant(tenant.id, owner.auth).expect(200)).body.name).toBe('Keep me');
    });

    it('answers 400 VALIDATION_FAILED to a slug in the body, even from the owner, and changes nothing', async () => {
      const owner = await signup(t);
      const tenant = await createTenant(t, owner, { name: 'Immutable' });
      for (const body of [{ slug: uniqueSlug() }, { name: 'Renamed', slug: uniqueSlug() }, { slug: tenant.slug }]) {
        const res = await t.http.patch(`/tenants/${tenant.id}`).set(owner.auth).send(body).expect(400);
        expect(res.body.code).toBe('VALIDATION_FAILED');
      }
      expect(await t.prisma.tenant.findUniqueOrThrow({ where: { id: tenant.id } })).toMatchObject({
        slug: tenant.slug,
        name: 'Immutable',
      });
    });

    it('answers 400 to an invalid name', async () => {
      const owner = await signup(t);
      const tenant = await createTenant(t, owner, { name: 'Valid' });
      for (const name of ['', 'n'.repeat(101), 7, 'a\u200Bb']) {
        const res = await t.http.patch(`/tenants/${tenant.id}`).set(owner.auth).send({ name }).expect(400);
        expect(res.body.code).toBe('VALIDATION_FAILED');
      }
      expect((await getTenant(tenant.id, owner.auth).expect(200)).body.name).toBe('Valid');
    });

    it('answers a non-member 404, the same as for a tenant that does not exist', async () => {
      const owner = await signup(t);
      const outsider = await signup(t);
      const tenant = await createTenant(t, owner, { name: 'Private' });
      const hidden = await t.http.patch(`/tenants/${tenant.id}`).set(outsider.auth).send({ name: 'x' }).expect(404);
      const missing = await t.http.patch(`/tenants/${randomUUID()}`).set(outsider.auth).send({ name: 'x' }).expect(404);
      expect(hidden.body).toEqual(TENANT_NOT_FOUND);
      expect(missing.text).toBe(hidden.text);
      expect((await getTenant(tenant.id, owner.auth).expect(200)).body.name).toBe('Private');
    });
  });

  describe('DELETE /tenants/:id', () => {
    it('answers a tenant admin and a member 403 INSUFFICIENT_TENANT_PERMISSION, even with a wrong confirm', async () => {
      const owner = await signup(t);
      const tadmin = await signup(t);
      const member = await signup(t);
      const tenant = await createTenant(t, owner);
      await addMember(t, tenant.id, owner, tadmin, ['admin']);
      await addMember(t, tenant.id, owner, member, ['member']);
      for (const who of [tadmin, member]) {
        for (const confirm of [tenant.slug, 'wrong-slug']) {
          const res = await t.http.delete(`/tenants/${tenant.id}`).set(who.auth).send({ confirm }).expect(403);
          expect(res.body).toMatchObject({ statusCode: 403, code: 'INSUFFICIENT_TENANT_PERMISSION' });
        }
      }
      await getTenant(tenant.id, owner.auth).expect(200);
    });

    it('answers the owner 400 CONFIRMATION_MISMATCH unless confirm is the slug, and keeps the tenant', async () => {
      const owner = await signup(t);
      const tenant = await createTenant(t, owner);
      for (const confirm of ['wrong', tenant.slug.toUpperCase(), ` ${tenant.slug}`, tenant.id, tenant.name]) {
        const res = await t.http.delete(`/tenants/${tenant.id}`).set(owner.auth).send({ confirm }).expect(400);
        expect(res.body).toMatchObject({ statusCode: 400, code: 'CONFIRMATION_MISMATCH' });
      }
      for (const body of [{}, { confirm: 42 }]) {
        const res = await t.http.delete(`/tenants/${tenant.id}`).set(owner.auth).send(body).expect(400);
        expect(res.body.code).toBe('VALIDATION_FAILED');
      }
      await getTenant(tenant.id, owner.auth).expect(200);
      expect(await t.prisma.tenant.count({ where: { id: tenant.id } })).toBe(1);
    });

    it('answers a non-member 404 even with the right slug', async () => {
      const owner = await signup(t);
      const outsider = await signup(t);
      const tenant = await createTenant(t, owner);
      const res = await t.http
        .delete(`/tenants/${tenant.id}`)
        .set(outsider.auth)
        .send({ confirm: tenant.slug })
        .expect(404);
      expect(res.body).toEqual(TENANT_NOT_FOUND);
      await getTenant(tenant.id, owner.auth).expect(200);
    });

    it('deletes with the owner and the slug (204), then 404, cascading resources, members, roles and invitations', async () => {
      const owner = await signup(t);
      const member = await signup(t);
      const tenant = await createTenant(t, owner);
      const survivor = await createTenant(t, owner);
      await addMember(t, tenant.id, owner, member, ['member']);
      await addMember(t, survivor.id, owner, member, ['member']);
      await t.http
        .put(`/tenants/${tenant.id}/roles/auditor`)
        .set(owner.auth)
        .send({ permissions: ['resources:read'] })
        .expect(200);
      await t.http
        .post(`/tenants/${tenant.id}/invitations`)
        .set(owner.auth)
        .send({ email: `invitee-${randomBytes(4).toString('hex')}@example.com`, roles: ['auditor'] })
        .expect(201);
      const memberRes = await t.http
        .post('/resources')
        .set(member.auth)
        .set(inTenant(tenant.id))
        .send({ title: 'member tenant note' })
        .expect(201);
      const ownerRes = await t.http
        .post('/resources')
        .set(owner.auth)
        .set(inTenant(tenant.id))
        .send({ title: 'owner tenant note' })
        .expect(201);
      expect(memberRes.body.tenantId).toBe(tenant.id);
      const personal = await createResource(t, member.auth);
      const elsewhere = await t.http
        .post('/resources')
        .set(member.auth)
        .set(inTenant(survivor.id))
        .send({ title: 'other tenant note' })
        .expect(201);
      await t.http.get(`/resources/${memberRes.body.id}`).set(member.auth).expect(200);
      expect((await t.http.get('/tenants').set(member.auth).expect(200)).body.items.map((i: Tenant) => i.id)).toContain(
        tenant.id,
      );

      await t.http.delete(`/tenants/${tenant.id}`).set(owner.auth).send({ confirm: tenant.slug }).expect(204);

      expect((await getTenant(tenant.id, owner.auth).expect(404)).body).toEqual(TENANT_NOT_FOUND);
      expect((await getTenant(tenant.id, member.auth).expect(404)).body).toEqual(TENANT_NOT_FOUND);
      for (const id of [memberRes.body.id as string, ownerRes.body.id as string]) {
        for (const who of [member, owner]) {
          const res = await t.http.get(`/resources/${id}`).set(who.auth).expect(404);
          expect(res.body.code).toBe('RESOURCE_NOT_FOUND');
        }
      }
      for (const who of [member, owner]) {
        const ids = (await allPages<Tenant>(t, '/tenants', who.auth)).items.map((i) => i.id);
        expect(ids).not.toContain(tenant.id);
        expect(ids).toContain(survivor.id);
        const ctx = await t.http.get('/resources').set(who.auth).set(inTenant(tenant.id)).expect(404);
        expect(ctx.body.code).toBe('TENANT_NOT_FOUND');
      }
      const again = await t.http
        .delete(`/tenants/${tenant.id}`)
        .set(owner.auth)
        .send({ confirm: tenant.slug })
        .expect(404);
      expect(again.body).toEqual(TENANT_NOT_FOUND);

      expect(await t.prisma.tenant.count({ where: { id: tenant.id } })).toBe(0);
      expect(await t.prisma.resource.count({ where: { tenantId: tenant.id } })).toBe(0);
      expect(await t.prisma.tenantMembership.count({ where: { tenantId: tenant.id } })).toBe(0);
      expect(await t.prisma.tenantRole.count({ where: { tenantId: tenant.id } })).toBe(0);
      expect(await t.prisma.tenantInvitation.count({ where: { tenantId: tenant.id } })).toBe(0);
      // What belongs elsewhere stays.
      await t.http.get(`/resources/${personal.id}`).set(member.auth).expect(200);
      await t.http.get(`/resources/${elsewhere.body.id}`).set(member.auth).expect(200);
      await getTenant(survivor.id, member.auth).expect(200);
      const audit = await t.prisma.auditEvent.findMany({ where: { type: 'tenant.deleted', userId: owner.id } });
      expect(audit).toHaveLength(1);
    });

    it('lets a global admin delete a tenant they are not in (204), audited as an override', async () => {
      const owner = await signup(t);
      const tenant = await createTenant(t, owner);
      await t.http.delete(`/tenants/${tenant.id}`).set(admin.auth).send({ confirm: 'nope' }).expect(400);
      await t.http.delete(`/tenants/${tenant.id}`).set(admin.auth).send({ confirm: tenant.slug }).expect(204);
      await getTenant(tenant.id, owner.auth).expect(404);
      const overrides = await t.prisma.auditEvent.findMany({
        where: { type: 'tenant.admin_override', userId: admin.id },
      });
      expect(overrides.some((e) => JSON.stringify(e).includes(tenant.id))).toBe(true);
    });
  });
});

describe('/tenants with TENANT_CREATION=admin and TENANT_LIMIT_PER_USER=2', () => {
  let t: TestApp;
  let admin: SignedUp;
  beforeAll(async () => {
    t = await startApp({ ...ENV, TENANT_CREATION: 'admin', TENANT_LIMIT_PER_USER: '2' });
    admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
  });
  afterAll(async () => t?.close());

  /** A new global admin (signed up, promoted by root, signed in again). */
  const newAdmin = async (): Promise<SignedUp> => {
    const user = await signup(t);
    await t.http
      .patch(`/users/${user.id}`)
      .set(admin.auth)
      .send({ roles: ['user', 'admin'] })
      .expect(200);
    return login(t, user.username, user.password);
  };

  it('answers a user 403 TENANT_CREATION_DISABLED and creates nothing', async () => {
    const user = await signup(t);
    const slug = uniqueSlug();
    const res = await t.http.post('/tenants').set(user.auth).send({ name: 'Not allowed', slug }).expect(403);
    expect(res.body).toMatchObject({ statusCode: 403, code: 'TENANT_CREATION_DISABLED' });
    expect(await t.prisma.tenant.count({ where: { slug } })).toBe(0);
    expect(await t.prisma.tenantMembership.count({ where: { userId: user.id } })).toBe(0);
  });

  it('lets a global admin create a tenant (201, owner), who may then add users', async () => {
    const user = await signup(t);
    const res = await t.http
      .post('/tenants')
      .set(admin.auth)
      .send({ name: 'Platform tenant', slug: uniqueSlug() })
      .expect(201);
    expect(Object.keys(res.body).sort()).toEqual(TENANT_KEYS);
    expect(res.body.myRoles).toEqual(['owner']);
    await addMember(t, res.body.id, admin, user, ['admin']);
    const seen = await t.http.get(`/tenants/${res.body.id}`).set(user.auth).expect(200);
    expect(seen.body.myRoles).toEqual(['admin']);
    // Being a tenant admin does not make a user a global one.
    await t.http.post('/tenants').set(user.auth).send({ name: 'Still not', slug: uniqueSlug() }).expect(403);
  });

  it('answers the third creation 409 TENANT_LIMIT_REACHED; memberships without owner do not count', async () => {
    const me = await newAdmin();
    const theirs = await createTenant(t, admin);
    await addMember(t, theirs.id, admin, me, ['admin']);
    const first = await createTenant(t, me);
    await createTenant(t, me);
    const slug = uniqueSlug();
    const res = await t.http.post('/tenants').set(me.auth).send({ name: 'Third', slug }).expect(409);
    expect(res.body).toMatchObject({ statusCode: 409, code: 'TENANT_LIMIT_REACHED' });
    expect(await t.prisma.tenant.count({ where: { slug } })).toBe(0);

    // Deleting one of them makes room again.
    await t.http.delete(`/tenants/${first.id}`).set(me.auth).send({ confirm: first.slug }).expect(204);
    await t.http.post('/tenants').set(me.auth).send({ name: 'Third', slug }).expect(201);
  });

  it('lets exactly 2 of 4 concurrent creations by one user through', async () => {
    const me = await newAdmin();
    const results = await Promise.all(
      [0, 1, 2, 3].map(() =>
        t.http
          .post('/tenants')
          .set(me.auth)
          .send({ name: 'Burst', slug: uniqueSlug('burst') }),
      ),
    );
    expect(results.map((r) => r.status).sort((x, y) => x - y)).toEqual([201, 201, 409, 409]);
    for (const r of results.filter((x) => x.status === 409)) expect(r.body.code).toBe('TENANT_LIMIT_REACHED');
    expect(await t.prisma.tenantMembership.count({ where: { userId: me.id, roles: { has: 'owner' } } })).toBe(2);
  });
});
