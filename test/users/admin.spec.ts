import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { ME_KEYS, USER_KEYS, bearer, decodeJwt, login, refresh, signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
const ENV = { ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', ...ADMIN };
const sortedRoles = (token: string) => [...(decodeJwt(token).payload.roles as string[])].sort();

describe('/users administration', () => {
  let t: TestApp;
  let admin: SignedUp;
  beforeAll(async () => {
    t = await startApp(ENV);
    admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
  });
  afterAll(async () => t?.close());

  /** Every page of GET /users with this limit; optionally runs `between` after each page. */
  async function allUserPages(limit: number, between?: () => Promise<void>) {
    type Page = { items: Array<Record<string, unknown>>; nextCursor: string | null };
    const pages: Page[] = [];
    let cursor: string | null = null;
    do {
      const query: Record<string, string | number> = cursor ? { limit, cursor } : { limit };
      const page: Page = (await t.http.get('/users').query(query).set(admin.auth).expect(200)).body;
      pages.push(page);
      cursor = page.nextCursor;
      if (between) await between();
      if (pages.length > 1000) throw new Error('pagination does not end');
    } while (cursor !== null);
    return pages;
  }

  describe('the bootstrap admin (ADMIN_USERNAME / ADMIN_PASSWORD)', () => {
    it('exists with roles ["user","admin"] and can log in', async () => {
      const me = await t.http.get('/users/me').set(admin.auth).expect(200);
      expect(me.body).toMatchObject({ username: 'root', roles: ['user', 'admin'] });
      expect(Object.keys(me.body).sort()).toEqual(ME_KEYS);
      expect(sortedRoles(admin.accessToken)).toEqual(['admin', 'user']);
      await t.http.get('/users').set(admin.auth).expect(200);
    });

    it('is a single account', async () => {
      expect(await t.prisma.user.count({ where: { usernameKey: 'root' } })).toBe(1);
    });
  });

  describe('GET /users', () => {
    it('answers 401 without a token', async () => {
      const res = await t.http.get('/users').expect(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    });

    it('answers 403 to a non-admin', async () => {
      const u = await signup(t);
      const res = await t.http.get('/users').set(u.auth).expect(403);
      expect(res.body).toMatchObject({ statusCode: 403, error: 'Forbidden', code: expect.any(String) });
      expect(JSON.stringify(res.body)).not.toContain(u.username);
    });

    it('pages through every user exactly once with limit and nextCursor', async () => {
      for (let i = 0; i < 5; i++) await signup(t);
      const pages = await allUserPages(2);
      const ids = pages.flatMap((p) => p.items.map((u) => u.id as string));
      const expected = (await t.prisma.user.findMany({ select: { id: true } })).map((u) => u.id);

      expect(pages.length).toBe(Math.ceil(expected.length / 2));
      pages.slice(0, -1).forEach((p) => {
        expect(p.items).toHaveLength(2);
        expect(typeof p.nextCursor).toBe('string');
      });
      expect(pages.at(-1)!.items.length).toBeGreaterThanOrEqual(1);
      expect(pages.at(-1)!.nextCursor).toBeNull();
      expect(new Set(ids).size).toBe(ids.length);
      expect([...ids].sort()).toEqual([...expected].sort());
    });

    it('lists User objects only: no hash, no token, no extra field', async () => {
      const res = await t.http.get('/users').query({ limit: 100 }).set(admin.auth).expect(200);
      expect(Object.keys(res.body).sort()).toEqual(['items', 'nextCursor']);
      expect(res.body.items.length).toBeGreaterThan(0);
      for (const user of res.body.items) {
        expect(Object.keys(user).sort()).toEqual(USER_KEYS);
        expect([['user'], ['user', 'admin']]).toContainEqual(user.roles);
      }
      expect(JSON.stringify(res.body)).not.toMatch(/\$2[aby]\$|password|hash/i);
    });

    it('shows each user once while users sign up between page fetches', async () => {
      const before = (await t.prisma.user.findMany({ select: { id: true } })).map((u) => u.id);
      const pages = await allUserPages(3, async () => {
        await signup(t);
      });
      const ids = pages.flatMap((p) => p.items.map((u) => u.id as string));
      expect(new Set(ids).size).toBe(ids.length);
      for (const id of before) expect(ids.filter((x) => x === id)).toHaveLength(1);
    });

    it('accepts limit 1 and 100', async () => {
      const one = await t.http.get('/users').query({ limit: 1 }).set(admin.auth).expect(200);
      expect(one.body.items).toHaveLength(1);
      expect(typeof one.body.nextCursor).toBe('string');
      const all = await t.http.get('/users').query({ limit: 100 }).set(admin.auth).expect(200);
      expect(all.body.items.length).toBe(Math.min(100, await t.prisma.user.count()));
    });

    it.each([['0'], ['101'], ['abc'], ['-1'], ['1.5'], ['']])('answers 400 to limit=%s', async (limit) => {
      const res = await t.http.get('/users').query({ limit }).set(admin.auth).expect(400);
      expect(res.body).toMatchObject({ statusCode: 400, code: 'VALIDATION_FAILED' });
    });

    const badCursors: Array<[string, string]> = [
      ['garbage', 'not a cursor!'],
      ['base64 of an object', Buffer.from('{"a":1}').toString('base64url')],
      ['a non-UUID id', Buffer.from(JSON.stringify([new Date().toISOString(), 'nope'])).toString('base64url')],
      [
        'a bad date',
        Buffer.from(JSON.stringify(['yesterday', '00000000-0000-4000-8000-000000000000'])).toString('base64url'),
      ],
      ['an overlong cursor', 'A'.repeat(500)],
    ];
    it.each(badCursors)('answers 400 to a cursor that is %s', async (_name, cursor) => {
      const res = await t.http.get('/users').query({ cursor }).set(admin.auth).expect(400);
      expect(res.body).toMatchObject({ statusCode: 400, code: 'VALIDATION_FAILED' });
    });

    it('answers 400 to unknown query parameters', async () => {
      await t.http.get('/users').query({ sort: 'username' }).set(admin.auth).expect(400);
    });
  });

  describe('PATCH /users/:id', () => {
    it('answers 401 without a token', async () => {
      const u = await signup(t);
      await t.http.patch(`/users/${u.id}`).send({ disabled: true }).expect(401);
    });

    it('answers 403 to a non-admin and changes nothing, even on themselves', async () => {
      const u = await signup(t);
      const victim = await signup(t);
      await t.http.patch(`/users/${victim.id}`).set(u.auth).send({ disabled: true }).expect(403);
      await t.http
        .patch(`/users/${u.id}`)
        .set(u.auth)
        .send({ roles: ['user', 'admin'] })
        .expect(403);
      await t.http
        .patch('/users/00000000-0000-4000-8000-000000000000')
        .set(u.auth)
        .send({ disabled: true })
        .expect(403);
      await t.http.get('/users/me').set(victim.auth).expect(200);
      const fresh = await login(t, u.username, u.password);
      expect(sortedRoles(fresh.accessToken)).toEqual(['user']);
    });

    it('answers 404 to an unknown id', async () => {
      const res = await t.http
        .patch('/users/6f1c2b1e-4b7a-4c1e-9a43-2d3f0a5b8c7d')
        .set(admin.auth)
        .send({ roles: ['user'] })
        .expect(404);
      expect(res.body).toMatchObject({ statusCode: 404, error: 'Not Found', code: expect.any(String) });
    });

    it.each([['not-a-uuid'], ['123'], ['6f1c2b1e-4b7a-4c1e-9a43-2d3f0a5b8c7']])(
      'answers 404 to the non-UUID id %s',
      async (id) => {
        await t.http.patch(`/users/${id}`).set(admin.auth).send({ disabled: false }).expect(404);
      },
    );

    const badBodies: Array<[string, Record<string, unknown>]> = [
      ['username', { username: 'renamed' }],
      ['email', { email: 'x@example.com' }],
      ['displayName', { displayName: 'x' }],
      ['id', { id: '00000000-0000-4000-8000-000000000000' }],
      ['passwordHash', { passwordHash: 'x' }],
      ['an unknown role', { roles: ['user', 'superuser'] }],
      ['roles as a string', { roles: 'admin' }],
      ['disabled as a string', { disabled: 'yes' }],
      ['disabled null', { disabled: null }],
      ['roles null', { roles: null }],
      ['no roles at all', { roles: [] }],
    ];
    it.each(badBodies)('answers 400 to %s in the body and changes nothing', async (_name, body) => {
      const u = await signup(t);
      const before = await t.prisma.user.findUniqueOrThrow({ where: { id: u.id } });
      const res = await t.http.patch(`/users/${u.id}`).set(admin.auth).send(body).expect(400);
      expect(res.body.code).toBe('VALIDATION_FAILED');
      const after = await t.prisma.user.findUniqueOrThrow({ where: { id: u.id } });
      expect(after).toEqual(before);
    });

    it('promotes a user to admin; the new role shows in tokens from the next refresh or login', async () => {
      const u = await signup(t);
      await t.http.get('/users').set(u.auth).expect(403);

      const res = await t.http
        .patch(`/users/${u.id}`)
        .set(admin.auth)
        .send({ roles: ['user', 'admin'] })
        .expect(200);
      expect(Object.keys(res.body).sort()).toEqual(USER_KEYS);
      expect(res.body).toMatchObject({ id: u.id, username: u.username, roles: ['user', 'admin'] });

      const refreshed = await refresh(t, u.refreshToken).expect(200);
      expect(sortedRoles(refreshed.body.accessToken)).toEqual(['admin', 'user']);
      await t.http.get('/users').set(bearer(refreshed.body.accessToken)).expect(200);
      const loggedIn = await login(t, u.username, u.password);
      expect(sortedRoles(loggedIn.accessToken)).toEqual(['admin', 'user']);
      expect((await t.http.get('/users/me').set(loggedIn.auth).expect(200)).body.roles).toEqual(['user', 'admin']);

      // And back: demoted, the next token is a plain user's again.
      const demoted = await t.http
        .patch(`/users/${u.id}`)
        .set(admin.auth)
        .send({ roles: ['user'] })
        .expect(200);
      expect(demoted.body.roles).toEqual(['user']);
      const again = await refresh(t, loggedIn.refreshToken).expect(200);
      expect(sortedRoles(again.body.accessToken)).toEqual(['user']);
      await t.http.get('/users').set(bearer(again.body.accessToken)).expect(403);
    });

    it('disabling revokes every session of the user at once; login then gives 403 ACCOUNT_DISABLED', async () => {
      const u = await signup(t);
      const second = await login(t, u.username, u.password);
      for (const s of [u, second]) await t.http.get('/users/me').set(s.auth).expect(200);

      const res = await t.http.patch(`/users/${u.id}`).set(admin.auth).send({ disabled: true }).expect(200);
      expect(Object.keys(res.body).sort()).toEqual(USER_KEYS);
      expect(res.body.id).toBe(u.id);

      for (const s of [u, second]) {
        const denied = await t.http.get('/users/me').set(s.auth).expect(401);
        expect(denied.headers['www-authenticate']).toMatch(/^Bearer/);
        expect((await refresh(t, s.refreshToken)).status).toBe(401);
      }
      const blocked = await t.http.post('/auth/login').send({ username: u.username, password: u.password }).expect(403);
      expect(blocked.body).toMatchObject({ statusCode: 403, code: 'ACCOUNT_DISABLED' });
    });

    it('re-enabling lets the user log in again (old sessions stay revoked)', async () => {
      const u = await signup(t);
      await t.http.patch(`/users/${u.id}`).set(admin.auth).send({ disabled: true }).expect(200);
      await t.http.post('/auth/login').send({ username: u.username, password: u.password }).expect(403);

      const res = await t.http.patch(`/users/${u.id}`).set(admin.auth).send({ disabled: false }).expect(200);
      expect(res.body.id).toBe(u.id);
      const back = await login(t, u.username, u.password);
      await t.http.get('/users/me').set(back.auth).expect(200);
      await refresh(t, back.refreshToken).expect(200);
      expect((await refresh(t, u.refreshToken)).status).toBe(401);
      await t.http.get('/users/me').set(u.auth).expect(401);
    });

    it('disabling one user leaves the sessions of others alone', async () => {
      const u = await signup(t);
      const bystander = await signup(t);
      await t.http.patch(`/users/${u.id}`).set(admin.auth).send({ disabled: true }).expect(200);
      await t.http.get('/users/me').set(bystander.auth).expect(200);
      await t.http.get('/users/me').set(admin.auth).expect(200);
    });
  });
});
