import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { USER_KEYS, bearer, login, signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import {
  ADMIN,
  ENV,
  adminClient,
  clientToken,
  createClient,
  expectError,
  expectStatus,
  walk,
} from './audit-helpers.js';

const UNKNOWN = '6f1c2b1e-4b7a-4c1e-9a43-2d3f0a5b8c7d';
const ADMIN_USER_KEYS = [...USER_KEYS, 'disabled'].sort();

type User = Record<string, unknown> & { id: string; username: string };

/** GET /users/:id (an admin's view of one user) and GET /users?q= (search). */
describe('admin user lookup and search', () => {
  let t: TestApp;
  let admin: SignedUp;
  beforeAll(async () => {
    t = await startApp(ENV);
    admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
  });
  afterAll(async () => t?.close());

  const getUser = (id: string, auth = admin.auth) => t.http.get(`/users/${id}`).set(auth);
  const search = (query: Record<string, string | number>) => t.http.get('/users').query(query).set(admin.auth);
  /** Every user the search finds, following the pages. */
  const found = async (q: string, limit = 100): Promise<User[]> =>
    (
      await walk(
        async (query) => {
          const res = await search(query);
          expectStatus(res, 200);
          return res.body as { items: User[]; nextCursor: string | null };
        },
        { q, limit },
      )
    ).flatMap((p) => p.items);
  /** What the search must find: every user whose username, email or display name contains q, ignoring case, oldest first. */
  const expected = async (q: string): Promise<string[]> => {
    const users = await t.prisma.user.findMany({ orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });
    const needle = q.toLowerCase();
    return users
      .filter((u) => [u.username, u.email, u.displayName].some((v) => v?.toLowerCase().includes(needle)))
      .map((u) => u.id);
  };

  describe('GET /users/:id', () => {
    it('answers the User with disabled; true after a disable, false again after an enable', async () => {
      const u = await signup(t, {
        email: `lookup.${randomBytes(3).toString('hex')}@example.com`,
        displayName: 'Look Up',
      });
      const res = await getUser(u.id);
      expectStatus(res, 200);
      expect(Object.keys(res.body).sort()).toEqual(ADMIN_USER_KEYS);
      expect(res.body).toMatchObject({
        id: u.id,
        username: u.username,
        displayName: 'Look Up',
        emailVerified: false,
        roles: ['user'],
        kind: 'person',
        mfaEnabled: false,
        disabled: false,
      });
      // The same User as the list shows, plus disabled.
      const listed = (await found(u.username)).find((x) => x.id === u.id)!;
      const { disabled, ...rest } = res.body as User;
      expect(disabled).toBe(false);
      expect(rest).toEqual(listed);

      const patched = await t.http.patch(`/users/${u.id}`).set(admin.auth).send({ disabled: true });
      expectStatus(patched, 200);
      expect(Object.keys(patched.body).sort()).toEqual(USER_KEYS);
      expect((await getUser(u.id)).body.disabled).toBe(true);
      await t.http.patch(`/users/${u.id}`).set(admin.auth).send({ disabled: false }).expect(200);
      expect((await getUser(u.id)).body.disabled).toBe(false);
    });

    it("shows an admin's roles and a service user's kind", async () => {
      const me = await getUser(admin.id);
      expect(me.body).toMatchObject({ username: ADMIN.ADMIN_USERNAME, roles: ['user', 'admin'], disabled: false });
      const c = await createClient(t, admin.auth, ['resources:read'], 'lookup-bot');
      const svc = await getUser(c.client.serviceUserId);
      expectStatus(svc, 200);
      expect(svc.body).toMatchObject({ kind: 'service', disabled: false });
    });

    it.each([[UNKNOWN], ['not-a-uuid'], ['123'], [UNKNOWN.slice(0, -1)]])(
      'answers 404 USER_NOT_FOUND to %s',
      async (id) => {
        expectError(await getUser(id), 404, 'USER_NOT_FOUND');
      },
    );

    it('answers 401 without a token, 403 INSUFFICIENT_ROLE to a non-admin (even about themselves)', async () => {
      const u = await signup(t);
      expectError(await t.http.get(`/users/${u.id}`), 401, 'UNAUTHORIZED');
      expectError(await getUser(u.id, u.auth), 403, 'INSUFFICIENT_ROLE');
      expectError(await getUser(admin.id, u.auth), 403, 'INSUFFICIENT_ROLE');
    });

    it('answers 403 INSUFFICIENT_SCOPE to an admin-role token without users:admin', async () => {
      const bot = await adminClient(t, admin.auth, ['users:admin', 'resources:read'], 'lookup-narrow');
      const narrow = bearer(await clientToken(t, bot, 'resources:read'));
      expectError(await getUser(admin.id, narrow), 403, 'INSUFFICIENT_SCOPE');
      expectError(await search({ q: 'root' }).set(narrow), 403, 'INSUFFICIENT_SCOPE');
    });

    it('GET /users keeps the User shape without disabled, also for a disabled user', async () => {
      const u = await signup(t);
      await t.http.patch(`/users/${u.id}`).set(admin.auth).send({ disabled: true }).expect(200);
      const res = await t.http.get('/users').query({ limit: 100 }).set(admin.auth);
      expectStatus(res, 200);
      for (const item of res.body.items as User[]) expect(Object.keys(item).sort()).toEqual(USER_KEYS);
      expect((res.body.items as User[]).some((x) => x.id === u.id)).toBe(true);
      for (const item of await found(u.username)) expect(Object.keys(item).sort()).toEqual(USER_KEYS);
    });
  });

  describe('GET /users?q=', () => {
    // Consonants only: the tag never spells part of the other texts searched for.
    const tag = Array.from(randomBytes(8), (b) => 'bcdfghjkmnpqrstvwxz'[b % 19]).join('');
    let alice: SignedUp;
    let malik: SignedUp;
    let bob: SignedUp;
    let percent: SignedUp;
    let under: SignedUp;
    let backslash: SignedUp;
    let unicode: SignedUp;
    beforeAll(async () => {
      alice = await signup(t, {
        username: `Alice-${tag}`,
        email: `alice.${tag}@example.com`,
        displayName: 'Alice Liddell',
      });
      malik = await signup(t, { username: `malik.${tag}` });
      bob = await signup(t, { username: `bob-${tag}`, email: `bob.${tag}@alinea.example`, displayName: 'Robert' });
      percent = await signup(t, { username: `pct-${tag}`, displayName: `100% sure ${tag}` });
      under = await signup(t, { username: `under_${tag}` });
      backslash = await signup(t, { username: `bs-${tag}`, displayName: `back\\slash ${tag}` });
      unicode = await signup(t, { username: `uni-${tag}`, displayName: `Émile Zola ${tag}` });
    });
    const ids = (users: User[]) => users.map((u) => u.id);

    it('matches username, email or display name, as a substring, ignoring case', async () => {
      const tagged = ids(await found(tag));
      expect(tagged).toEqual(await expected(tag));
      expect([...tagged].sort()).toEqual(
        [alice, malik, bob, percent, under, backslash, unicode].map((u) => u.id).sort(),
      );
      expect(ids(await found(tag.toUpperCase()))).toEqual(ids(await found(tag)));
      // Username (in any case), email, display name.
      expect(ids(await found(`ALICE-${tag}`))).toEqual([alice.id]);
      expect(ids(await found(`lik.${tag}`))).toEqual([malik.id]);
      expect(ids(await found(`@alinea.exa`))).toEqual(await expected('@alinea.exa'));
      expect(ids(await found(`@alinea.exa`))).toContain(bob.id);
      expect(ids(await found('LIDDELL'))).toEqual(await expected('liddell'));
      expect(ids(await found('LIDDELL'))).toContain(alice.id);
      // The documented example: "ali" finds Alice, malik and bob@alinea….
      const ali = ids(await found('ali'));
      expect(ali).toEqual(await expected('ali'));
      expect(ali).toEqual(expect.arrayContaining([alice.id, malik.id, bob.id]));
      expect(ali).not.toContain(percent.id);
    });

    it('"%" and "_" are not wildcards', async () => {
      const pct = ids(await found('%'));
      expect(pct).toEqual(await expected('%'));
      expect(pct).toContain(percent.id);
      expect(pct).not.toContain(alice.id);
      expect(ids(await found(`100%`))).toEqual([percent.id]);
      expect(await found(`100%${tag}`)).toEqual([]);
      expect(await found(`1%0`)).toEqual([]);

      const underscore = ids(await found('_'));
      expect(underscore).toEqual(await expected('_'));
      expect(underscore).toContain(under.id);
      for (const u of [alice, malik, bob, percent, backslash, unicode]) expect(underscore).not.toContain(u.id);
      expect(ids(await found(`under_${tag}`))).toEqual([under.id]);
      expect(await found(`unde__${tag}`)).toEqual([]);
      expect(await found(`pct_${tag}`)).toEqual([]);
    });

    it('a backslash matches itself, and LIKE escapes do not leak', async () => {
      expect(ids(await found('\\'))).toEqual(await expected('\\'));
      expect(ids(await found('\\'))).toContain(backslash.id);
      expect(ids(await found(`back\\slash`))).toEqual([backslash.id]);
      expect(await found(`back\\\\slash`)).toEqual([]);
      expect(await found(`\\%`)).toEqual([]);
      expect(await found(`\\_`)).toEqual([]);
      expect(await found(`bs\\-${tag}`)).toEqual([]);
    });

    it('ignores case beyond ASCII', async () => {
      expect(ids(await found('émile zola'))).toEqual([unicode.id]);
      expect(ids(await found('ÉMILE'))).toEqual([unicode.id]);
    });

    it('never matches a password hash or anything but the three fields', async () => {
      expect(await found('$2b$')).toEqual([]);
      expect(await found('correct horse')).toEqual([]);
      expect(await found(under.id)).toEqual([]);
    });

    it('pages a search with limit and cursor: every match exactly once, oldest first', async () => {
      const all = ids(await found(tag));
      for (const limit of [1, 2, 3, 7]) {
        const pages = await walk(
          async (query) => {
            const res = await search(query);
            expectStatus(res, 200);
            return res.body as { items: User[]; nextCursor: string | null };
          },
          { q: tag, limit },
        );
        expect(pages.length).toBe(Math.ceil(all.length / limit));
        expect(pages.flatMap((p) => ids(p.items))).toEqual(all);
        expect(pages.at(-1)!.nextCursor).toBeNull();
      }
      // A cursor keeps working while other users sign up.
      const first = (await search({ q: tag, limit: 3 })).body as { items: User[]; nextCursor: string };
      await signup(t, { username: `late-${tag}` });
      const rest = await found(tag);
      const second = (await search({ q: tag, limit: 100, cursor: first.nextCursor })).body as { items: User[] };
      expect([...ids(first.items), ...ids(second.items)]).toEqual(ids(rest));
    });

    it('finds nothing for a text no one has, and the whole list without q', async () => {
      expect(await search({ q: `nobody-${tag}-zz` }).expect(200)).toMatchObject({
        body: { items: [], nextCursor: null },
      });
      const all = await t.http.get('/users').query({ limit: 100 }).set(admin.auth).expect(200);
      expect(all.body.items.length).toBe(Math.min(100, await t.prisma.user.count()));
    });

    it('accepts a q of 100 characters', async () => {
      expectStatus(await search({ q: 'a'.repeat(100) }), 200);
    });

    it.each([
      ['an empty q', 'q='],
      ['a q of 101 characters', `q=${'a'.repeat(101)}`],
      ['a repeated q', 'q=ali&q=bob'],
      ['a NUL character in q', 'q=a%00b'],
      ['a bad limit with q', 'q=ali&limit=0'],
      ['a bad cursor with q', 'q=ali&cursor=garbage!'],
    ])('answers 400 VALIDATION_FAILED to %s', async (_name, qs) => {
      const res = await t.http.get(`/users?${qs}`).set(admin.auth);
      expectError(res, 400, 'VALIDATION_FAILED');
    });

    it('answers 401 without a token and 403 to a non-admin', async () => {
      expectError(await t.http.get('/users').query({ q: 'root' }), 401, 'UNAUTHORIZED');
      const u = await signup(t);
      const res = await t.http.get('/users').query({ q: u.username }).set(u.auth);
      expectError(res, 403, 'INSUFFICIENT_ROLE');
    });
  });
});
