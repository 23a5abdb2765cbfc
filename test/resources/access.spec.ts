import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { bearer, createResource, login, signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
// Contract v2 §0.5: a Resource adds tenantId (null for a personal one).
const RESOURCE_KEYS = ['body', 'createdAt', 'id', 'ownerId', 'tenantId', 'title', 'updatedAt', 'visibility'];
const MISSING_ID = '3b241101-e2bb-4255-8caf-4136c566a962';
const NON_UUIDS = ['not-a-uuid', '123', '3b241101-e2bb-4255-8caf-4136c566a96', '..%2F..%2Fusers'];

describe('/resources: creation and access control', () => {
  let t: TestApp;
  let admin: SignedUp;
  let alice: SignedUp;
  let bob: SignedUp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', ...ADMIN });
    admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
    alice = await signup(t, { username: 'alice' });
    bob = await signup(t, { username: 'bob' });
  });
  afterAll(async () => t?.close());

  const countOf = (ownerId: string) => t.prisma.resource.count({ where: { ownerId } });

  describe('POST /resources', () => {
    it('answers 201 with a Resource owned by the caller, private with an empty body by default', async () => {
      const res = await t.http.post('/resources').set(alice.auth).send({ title: 'My notes' }).expect(201);
      expect(Object.keys(res.body).sort()).toEqual(RESOURCE_KEYS);
      expect(res.body).toMatchObject({ ownerId: alice.id, title: 'My notes', body: '', visibility: 'private' });
      expect(res.body.id).toMatch(UUID);
      expect(res.body.createdAt).toMatch(ISO);
      expect(res.body.updatedAt).toMatch(ISO);
      const fetched = await t.http.get(`/resources/${res.body.id}`).set(alice.auth).expect(200);
      expect(fetched.body).toEqual(res.body);
    });

    it('stores the given body and visibility', async () => {
      const res = await t.http
        .post('/resources')
        .set(alice.auth)
        .send({ title: 'Public post', body: 'Hello, world', visibility: 'public' })
        .expect(201);
      expect(res.body).toMatchObject({
        ownerId: alice.id,
        title: 'Public post',
        body: 'Hello, world',
        visibility: 'public',
      });
      const stored = await t.prisma.resource.findUniqueOrThrow({ where: { id: res.body.id } });
      expect(stored).toMatchObject({ ownerId: alice.id, body: 'Hello, world', visibility: 'public' });
    });

    it('accepts the longest title (200) and body (10,000)', async () => {
      const res = await t.http
        .post('/resources')
        .set(alice.auth)
        .send({ title: 't'.repeat(200), body: 'b'.repeat(10_000) })
        .expect(201);
      expect(res.body.title).toHaveLength(200);
      expect(res.body.body).toHaveLength(10_000);
    });

    const invalid: Array<[string, Record<string, unknown>]> = [
      ['an empty title', { title: '' }],
      ['a 201-character title', { title: 't'.repeat(201) }],
      ['a missing title', {}],
      ['a title that is not a string', { title: 42 }],
      ['a 10,001-character body', { title: 'ok', body: 'b'.repeat(10_001) }],
      ['a body that is not a string', { title: 'ok', body: { text: 'x' } }],
      ['visibility "secret"', { title: 'ok', visibility: 'secret' }],
      ['visibility "PUBLIC"', { title: 'ok', visibility: 'PUBLIC' }],
      ['an ownerId (mass assignment)', { title: 'ok', ownerId: 'BOB' }],
      ['an id (mass assignment)', { title: 'ok', id: MISSING_ID }],
      ['a createdAt (mass assignment)', { title: 'ok', createdAt: '2000-01-01T00:00:00.000Z' }],
      ['an updatedAt (mass assignment)', { title: 'ok', updatedAt: '2000-01-01T00:00:00.000Z' }],
    ];
    it.each(invalid)('answers 400 to %s and creates nothing', async (_name, body) => {
      const resolved = 'ownerId' in body ? { ...body, ownerId: bob.id } : body;
      const before = [await countOf(alice.id), await countOf(bob.id)];
      const res = await t.http.post('/resources').set(alice.auth).send(resolved).expect(400);
      expect(res.body).toMatchObject({ statusCode: 400, error: 'Bad Request', code: 'VALIDATION_FAILED' });
      expect([await countOf(alice.id), await countOf(bob.id)]).toEqual(before);
    });

    it('answers 401 without a token and creates nothing', async () => {
      const before = await t.prisma.resource.count();
      const res = await t.http.post('/resources').send({ title: 'anonymous' }).expect(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
      expect(await t.prisma.resource.count()).toBe(before);
    });
  });

  describe('GET /resources/:id', () => {
    it('answers 200 to the owner for their private resource', async () => {
      const r = await createResource(t, alice.auth);
      const res = await t.http.get(`/resources/${r.id}`).set(alice.auth).expect(200);
      expect(res.body).toEqual(r);
    });

    it('answers 404 to another user for a private resource, exactly as for one that does not exist', async () => {
      const r = await createResource(t, alice.auth);
      const hidden = await t.http.get(`/resources/${r.id}`).set(bob.auth).expect(404);
      const missing = await t.http.get(`/resources/${MISSING_ID}`).set(bob.auth).expect(404);
      expect(hidden.body).toMatchObject({ statusCode: 404, error: 'Not Found', code: expect.any(String) });
      const { message: _m1, ...hiddenRest } = hidden.body;
      const { message: _m2, ...missingRest } = missing.body;
      expect(hiddenRest).toEqual(missingRest);
      expect(JSON.stringify(hidden.body)).not.toContain(r.title);
    });

    it('answers 200 to another user and to anonymous callers for a public resource', async () => {
      const r = await createResource(t, alice.auth, { visibility: 'public', body: 'for everyone' });
      expect((await t.http.get(`/resources/${r.id}`).set(bob.auth).expect(200)).body).toEqual(r);
      expect((await t.http.get(`/resources/${r.id}`).expect(200)).body).toEqual(r);
    });

    it('answers 404 to anonymous callers for a private resource', async () => {
      const r = await createResource(t, alice.auth);
      const res = await t.http.get(`/resources/${r.id}`).expect(404);
      expect(JSON.stringify(res.body)).not.toContain(r.title);
    });

    it("answers 200 to an admin for anyone's private resource", async () => {
      const r = await createResource(t, alice.auth);
      expect((await t.http.get(`/resources/${r.id}`).set(admin.auth).expect(200)).body).toEqual(r);
    });

    it('answers 404 to an id that does not exist, with or without a token', async () => {
      await t.http.get(`/resources/${MISSING_ID}`).set(alice.auth).expect(404);
      await t.http.get(`/resources/${MISSING_ID}`).set(admin.auth).expect(404);
      await t.http.get(`/resources/${MISSING_ID}`).expect(404);
    });

    it.each(NON_UUIDS)('answers 404 to the non-UUID id %s', async (id) => {
      await t.http.get(`/resources/${id}`).set(alice.auth).expect(404);
      await t.http.get(`/resources/${id}`).expect(404);
    });

    describe('with a bad token on a public resource: 401, never treated as anonymous', () => {
      it('a garbage token', async () => {
        const r = await createResource(t, alice.auth, { visibility: 'public' });
        const res = await t.http.get(`/resources/${r.id}`).set(bearer('not.a.jwt')).expect(401);
        expect(res.headers['www-authenticate']).toMatch(/^Bearer .*error="invalid_token"/);
      });

      it('a tampered token', async () => {
        const r = await createResource(t, alice.auth, { visibility: 'public' });
        const [h, p, s] = bob.accessToken.split('.');
        const payload = JSON.parse(Buffer.from(p!, 'base64url').toString('utf8'));
        const forged = Buffer.from(JSON.stringify({ ...payload, roles: ['user', 'admin'] })).toString('base64url');
        await t.http
          .get(`/resources/${r.id}`)
          .set(bearer(`${h}.${forged}.${s}`))
          .expect(401);
      });

      it('a non-Bearer Authorization header', async () => {
        const r = await createResource(t, alice.auth, { visibility: 'public' });
        await t.http.get(`/resources/${r.id}`).set('Authorization', 'Basic Ym9iOnBhc3N3b3Jk').expect(401);
        await t.http.get(`/resources/${r.id}`).set('Authorization', 'Bearer').expect(401);
      });

      it('an expired token', async () => {
        const r = await createResource(t, alice.auth, { visibility: 'public' });
        const carol = await signup(t);
        await t.http.get(`/resources/${r.id}`).set(carol.auth).expect(200);
        const skip = t.config.ACCESS_TOKEN_TTL + 5;
        t.clock.advance(skip);
        try {
          const res = await t.http.get(`/resources/${r.id}`).set(carol.auth).expect(401);
          expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
        } finally {
          t.clock.advance(-skip);
        }
      });

      it('a revoked token (after logout)', async () => {
        const r = await createResource(t, alice.auth, { visibility: 'public' });
        const dave = await signup(t);
        await t.http.get(`/resources/${r.id}`).set(dave.auth).expect(200);
        await t.http.post('/auth/logout').set(dave.auth).expect(204);
        await t.http.get(`/resources/${r.id}`).set(dave.auth).expect(401);
      });
    });
  });

  describe('PATCH /resources/:id', () => {
    it('lets the owner change title, body and visibility; updatedAt moves, owner and createdAt stay', async () => {
      const r = await createResource(t, alice.auth, { title: 'Draft', body: 'v1' });
      t.clock.advance(2);
      const res = await t.http
        .patch(`/resources/${r.id}`)
        .set(alice.auth)
        .send({ title: 'Final', body: 'v2', visibility: 'public' })
        .expect(200);
      expect(Object.keys(res.body).sort()).toEqual(RESOURCE_KEYS);
      expect(res.body).toMatchObject({
        id: r.id,
        ownerId: alice.id,
        title: 'Final',
        body: 'v2',
        visibility: 'public',
        createdAt: r.createdAt,
      });
      expect(Date.parse(res.body.updatedAt)).toBeGreaterThan(Date.parse(r.updatedAt));
      expect((await t.http.get(`/resources/${r.id}`).expect(200)).body).toEqual(res.body);
    });

    it('changes only the fields that are sent', async () => {
      const r = await createResource(t, alice.auth, { title: 'Keep', body: 'keep me', visibility: 'public' });
      const res = await t.http.patch(`/resources/${r.id}`).set(alice.auth).send({ body: '' }).expect(200);
      expect(res.body).toMatchObject({ title: 'Keep', body: '', visibility: 'public' });
      const res2 = await t.http.patch(`/resources/${r.id}`).set(alice.auth).send({ visibility: 'private' }).expect(200);
      expect(res2.body).toMatchObject({ title: 'Keep', body: '', visibility: 'private' });
    });

    it('answers 404 to another user for a private resource and changes nothing', async () => {
      const r = await createResource(t, alice.auth, { title: 'Mine' });
      const res = await t.http.patch(`/resources/${r.id}`).set(bob.auth).send({ title: 'Stolen' }).expect(404);
      expect(res.body).toMatchObject({ statusCode: 404, code: expect.any(String) });
      expect((await t.http.get(`/resources/${r.id}`).set(alice.auth).expect(200)).body).toEqual(r);
    });

    it('answers 403 to another user for a public resource and changes nothing', async () => {
      const r = await createResource(t, alice.auth, { title: 'Mine', visibility: 'public' });
      const res = await t.http.patch(`/resources/${r.id}`).set(bob.auth).send({ title: 'Defaced' }).expect(403);
      expect(res.body).toMatchObject({ statusCode: 403, error: 'Forbidden', code: expect.any(String) });
      expect((await t.http.get(`/resources/${r.id}`).expect(200)).body).toEqual(r);
    });

    it("lets an admin change anyone's resource, which keeps its owner", async () => {
      const r = await createResource(t, alice.auth, { title: 'Rude' });
      const res = await t.http.patch(`/resources/${r.id}`).set(admin.auth).send({ title: 'Moderated' }).expect(200);
      expect(res.body).toMatchObject({ id: r.id, ownerId: alice.id, title: 'Moderated', visibility: 'private' });
      expect((await t.http.get(`/resources/${r.id}`).set(alice.auth).expect(200)).body.title).toBe('Moderated');
    });

    it('answers 401 without a token, even for a public resource', async () => {
      const r = await createResource(t, alice.auth, { visibility: 'public' });
      const res = await t.http.patch(`/resources/${r.id}`).send({ title: 'anon' }).expect(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
      expect((await t.http.get(`/resources/${r.id}`).expect(200)).body.title).toBe(r.title);
    });

    it('answers 404 to a missing or non-UUID id', async () => {
      await t.http.patch(`/resources/${MISSING_ID}`).set(alice.auth).send({ title: 'x' }).expect(404);
      await t.http.patch(`/resources/${MISSING_ID}`).set(admin.auth).send({ title: 'x' }).expect(404);
      for (const id of NON_UUIDS)
        await t.http.patch(`/resources/${id}`).set(alice.auth).send({ title: 'x' }).expect(404);
    });

    const invalid: Array<[string, Record<string, unknown>]> = [
      ['an empty title', { title: '' }],
      ['a 201-character title', { title: 't'.repeat(201) }],
      ['a 10,001-character body', { body: 'b'.repeat(10_001) }],
      ['a bad visibility', { visibility: 'friends' }],
      ['a null title', { title: null }],
      ['a null body', { body: null }],
      ['a null visibility', { visibility: null }],
      ['an ownerId', { ownerId: MISSING_ID }],
      ['an id', { id: MISSING_ID }],
      ['a createdAt', { createdAt: '2000-01-01T00:00:00.000Z' }],
      ['an updatedAt', { updatedAt: '2000-01-01T00:00:00.000Z' }],
    ];
    it.each(invalid)('answers 400 to %s and changes nothing', async (_name, body) => {
      const r = await createResource(t, alice.auth);
      const res = await t.http.patch(`/resources/${r.id}`).set(alice.auth).send(body).expect(400);
      expect(res.body.code).toBe('VALIDATION_FAILED');
      expect((await t.http.get(`/resources/${r.id}`).set(alice.auth).expect(200)).body).toEqual(r);
    });

    it('answers 400 to an admin trying to move a resource to another owner', async () => {
      const r = await createResource(t, alice.auth);
      await t.http.patch(`/resources/${r.id}`).set(admin.auth).send({ ownerId: bob.id }).expect(400);
      expect((await t.prisma.resource.findUniqueOrThrow({ where: { id: r.id } })).ownerId).toBe(alice.id);
    });
  });

  describe('DELETE /resources/:id', () => {
    it('lets the owner delete: 204, then the resource is gone', async () => {
      const r = await createResource(t, alice.auth, { visibility: 'public' });
      const res = await t.http.delete(`/resources/${r.id}`).set(alice.auth).expect(204);
      expect(res.text).toBe('');
      await t.http.get(`/resources/${r.id}`).set(alice.auth).expect(404);
      await t.http.get(`/resources/${r.id}`).expect(404);
      await t.http.delete(`/resources/${r.id}`).set(alice.auth).expect(404);
    });

    it('answers 404 to another user for a private resource, which stays', async () => {
      const r = await createResource(t, alice.auth);
      await t.http.delete(`/resources/${r.id}`).set(bob.auth).expect(404);
      await t.http.get(`/resources/${r.id}`).set(alice.auth).expect(200);
    });

    it('answers 403 to another user for a public resource, which stays', async () => {
      const r = await createResource(t, alice.auth, { visibility: 'public' });
      const res = await t.http.delete(`/resources/${r.id}`).set(bob.auth).expect(403);
      expect(res.body).toMatchObject({ statusCode: 403, code: expect.any(String) });
      await t.http.get(`/resources/${r.id}`).expect(200);
    });

    it("lets an admin delete anyone's resource", async () => {
      const r = await createResource(t, alice.auth);
      await t.http.delete(`/resources/${r.id}`).set(admin.auth).expect(204);
      await t.http.get(`/resources/${r.id}`).set(alice.auth).expect(404);
    });

    it('answers 401 without a token, even for a public resource', async () => {
      const r = await createResource(t, alice.auth, { visibility: 'public' });
      await t.http.delete(`/resources/${r.id}`).expect(401);
      await t.http.get(`/resources/${r.id}`).expect(200);
    });

    it('answers 404 to a missing or non-UUID id', async () => {
      await t.http.delete(`/resources/${MISSING_ID}`).set(alice.auth).expect(404);
      await t.http.delete(`/resources/${MISSING_ID}`).set(admin.auth).expect(404);
      for (const id of NON_UUIDS) await t.http.delete(`/resources/${id}`).set(alice.auth).expect(404);
    });
  });

  describe('GET /resources', () => {
    it("lists only the caller's own resources, private and public", async () => {
      const mine = [await createResource(t, bob.auth), await createResource(t, bob.auth, { visibility: 'public' })];
      await createResource(t, alice.auth, { visibility: 'public' });
      const res = await t.http.get('/resources').query({ limit: 100 }).set(bob.auth).expect(200);
      expect(Object.keys(res.body).sort()).toEqual(['items', 'nextCursor']);
      expect(res.body.items.length).toBe(await countOf(bob.id));
      for (const item of res.body.items) {
        expect(item.ownerId).toBe(bob.id);
        expect(Object.keys(item).sort()).toEqual(RESOURCE_KEYS);
      }
      const ids = res.body.items.map((i: { id: string }) => i.id);
      for (const r of mine) expect(ids).toContain(r.id);
    });

    it('gives an admin their own resources by default', async () => {
      const own = await createResource(t, admin.auth);
      const res = await t.http.get('/resources').query({ limit: 100 }).set(admin.auth).expect(200);
      expect(res.body.items.map((i: { id: string }) => i.id)).toContain(own.id);
      for (const item of res.body.items) expect(item.ownerId).toBe(admin.id);
    });

    it("gives an admin everyone's resources with scope=all", async () => {
      const a = await createResource(t, alice.auth);
      const b = await createResource(t, bob.auth);
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const query: Record<string, string | number> = cursor
          ? { scope: 'all', limit: 100, cursor }
          : { scope: 'all', limit: 100 };
        const page: { items: Array<{ id: string }>; nextCursor: string | null } = (
          await t.http.get('/resources').query(query).set(admin.auth).expect(200)
        ).body;
        seen.push(...page.items.map((i) => i.id));
        cursor = page.nextCursor;
      } while (cursor);
      expect(seen).toContain(a.id);
      expect(seen).toContain(b.id);
      expect(seen.length).toBe(await t.prisma.resource.count());
    });

    it('pages scope=all by cursor: every resource once, newest first, as the table orders them', async () => {
      // Several owners' rows, six of them given the same instant, so that the cursor's tie-break
      // on id is exercised across owners and across pages.
      const made = await Promise.all(
        [alice, bob, admin].flatMap((u) => [1, 2, 3].map(() => createResource(t, u.auth))),
      );
      await t.prisma.resource.updateMany({
        where: { id: { in: made.slice(0, 6).map((r) => r.id) } },
        data: { createdAt: new Date() },
      });
      type Item = { id: string; createdAt: string };
      const seen: Item[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query: Record<string, string | number> = cursor
          ? { scope: 'all', limit: 2, cursor }
          : { scope: 'all', limit: 2 };
        const page: { items: Item[]; nextCursor: string | null } = (
          await t.http.get('/resources').query(query).set(admin.auth).expect(200)
        ).body;
        expect(page.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.items);
        cursor = page.nextCursor;
        pages += 1;
      } while (cursor);
      const expected = await t.prisma.resource.findMany({
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        select: { id: true },
      });
      expect(pages).toBeGreaterThanOrEqual(Math.ceil(expected.length / 2));
      expect(seen.map((i) => i.id)).toEqual(expected.map((r) => r.id));
      expect(new Set(seen.map((i) => i.id)).size).toBe(seen.length);
    });

    it('answers 403 to scope=all from a non-admin', async () => {
      const res = await t.http.get('/resources').query({ scope: 'all' }).set(bob.auth).expect(403);
      expect(res.body).toMatchObject({ statusCode: 403, code: expect.any(String) });
    });

    it('answers 400 to an unknown scope or query parameter', async () => {
      await t.http.get('/resources').query({ scope: 'everyone' }).set(admin.auth).expect(400);
      await t.http.get('/resources').query({ ownerId: alice.id }).set(bob.auth).expect(400);
    });

    it('answers 401 without a token', async () => {
      const res = await t.http.get('/resources').expect(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    });
  });
});
