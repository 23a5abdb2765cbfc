import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, login, refresh, refreshCookieOf, signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import {
  ADMIN,
  ADMIN_SESSION_KEYS,
  ENV,
  ISO,
  adminClient,
  auditPage,
  clientToken,
  createClient,
  expectError,
  expectStatus,
  sidOf,
} from './audit-helpers.js';

const UNKNOWN = '6f1c2b1e-4b7a-4c1e-9a43-2d3f0a5b8c7d';

/** An administrator's view of a user's sessions: GET /users/:id/sessions, DELETE one or all. */
describe('admin sessions', () => {
  let t: TestApp;
  beforeAll(async () => {
    // Sessions idle for an hour expire, so that one test can let one expire.
    t = await startApp({ ...ENV, TRUST_PROXY: '1', REFRESH_TOKEN_TTL: '3600' });
  });
  afterAll(async () => t?.close());

  /** A fresh session of the bootstrap admin (tests move the clock past access-token lifetimes). */
  const root = () => login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
  const sessionsOf = async (auth: { Authorization: string }, id: string) => {
    const res = await t.http.get(`/users/${id}/sessions`).set(auth);
    expectStatus(res, 200);
    return res.body as Array<Record<string, string | null>>;
  };
  /** A login from this user agent and address. */
  const loginFrom = async (u: SignedUp, ua: string, ip: string): Promise<SignedUp> => {
    const res = await t.http
      .post('/auth/login')
      .set({ 'User-Agent': ua, 'X-Forwarded-For': ip })
      .send({ username: u.username, password: u.password });
    expectStatus(res, 200);
    const accessToken = res.body.accessToken as string;
    return { ...u, accessToken, auth: bearer(accessToken), refreshToken: refreshCookieOf(res)! };
  };
  /** Whether a session's access token and refresh token still work (keeps the rotated refresh token). */
  const alive = async (s: SignedUp) => {
    const access = (await t.http.get('/users/me').set(s.auth)).status;
    const res = await refresh(t, s.refreshToken);
    const next = refreshCookieOf(res);
    if (res.status === 200 && next) s.refreshToken = next;
    return { access, refresh: res.status };
  };

  describe('GET /users/:id/sessions', () => {
    it('answers 401 without a token and 403 INSUFFICIENT_ROLE to a non-admin, even for themselves', async () => {
      const u = await signup(t);
      expectError(await t.http.get(`/users/${u.id}/sessions`), 401, 'UNAUTHORIZED');
      expectError(await t.http.get(`/users/${u.id}/sessions`).set(u.auth), 403, 'INSUFFICIENT_ROLE');
    });

    it('answers 403 INSUFFICIENT_SCOPE to an admin-role token without users:admin', async () => {
      const admin = await root();
      const u = await signup(t);
      const bot = await adminClient(t, admin.auth, ['users:admin', 'resources:read'], 'narrow-sessions');
      const narrow = bearer(await clientToken(t, bot, 'resources:read'));
      expectError(await t.http.get(`/users/${u.id}/sessions`).set(narrow), 403, 'INSUFFICIENT_SCOPE');
      expectError(await t.http.delete(`/users/${u.id}/sessions`).set(narrow), 403, 'INSUFFICIENT_SCOPE');
      expectError(
        await t.http.delete(`/users/${u.id}/sessions/${sidOf(u.accessToken)}`).set(narrow),
        403,
        'INSUFFICIENT_SCOPE',
      );
      expect(await alive(u)).toEqual({ access: 200, refresh: 200 });
    });

    it.each([[UNKNOWN], ['not-a-uuid'], ['123'], [UNKNOWN.slice(0, -1)]])(
      'answers 404 USER_NOT_FOUND to the id %s',
      async (id) => {
        const admin = await root();
        expectError(await t.http.get(`/users/${id}/sessions`).set(admin.auth), 404, 'USER_NOT_FOUND');
      },
    );

    it('lists the live sessions, newest first, with exactly {id, createdAt, lastUsedAt, expiresAt, userAgent, ip}', async () => {
      const admin = await root();
      const u = await signup(t);
      t.clock.advance(1);
      const a = await loginFrom(u, 'Phone/1', '203.0.113.1');
      t.clock.advance(1);
      const b = await loginFrom(u, 'Laptop/2', '203.0.113.2');
      t.clock.advance(1);
      const c = await loginFrom(u, 'Tablet/3', '203.0.113.3');
      t.clock.advance(1);
      // Signed out and revoked sessions are not listed.
      await t.http.post('/auth/logout').set(b.auth).expect(204);
      await t.http
        .delete(`/auth/sessions/${sidOf(u.accessToken)}`)
        .set(c.auth)
        .expect(204);

      const list = await sessionsOf(admin.auth, u.id);
      expect(list.map((s) => s.id)).toEqual([sidOf(c.accessToken), sidOf(a.accessToken)]);
      for (const s of list) {
        expect(Object.keys(s).sort()).toEqual(ADMIN_SESSION_KEYS);
        for (const field of ['createdAt', 'lastUsedAt', 'expiresAt'] as const) expect(s[field]).toMatch(ISO);
        expect(Date.parse(s.expiresAt!)).toBeGreaterThan(t.clock.nowMs());
      }
      expect(list[0]).toMatchObject({ userAgent: 'Tablet/3', ip: '203.0.113.3' });
      expect(list[1]).toMatchObject({ userAgent: 'Phone/1', ip: '203.0.113.1' });
      expect(Date.parse(list[0]!.createdAt!)).toBeGreaterThan(Date.parse(list[1]!.createdAt!));
      // No token, hash or other secret.
      expect(JSON.stringify(list)).not.toMatch(/token|hash|amr|acr/i);
      expect(JSON.stringify(list)).not.toContain(a.refreshToken);
    });

    it("lists them as GET /auth/sessions lists one's own, without current", async () => {
      const admin = await root();
      const u = await signup(t);
      t.clock.advance(1);
      const later = await login(t, u.username, u.password);
      t.clock.advance(1);
      await refresh(t, u.refreshToken).expect(200); // the older session is used again
      const own = await t.http.get('/auth/sessions').set(later.auth).expect(200);
      const mine = (own.body as Array<Record<string, unknown>>).map(({ current: _current, ...rest }) => rest);
      expect(mine).toHaveLength(2);
      expect(await sessionsOf(admin.auth, u.id)).toEqual(mine);
    });

    it('does not list expired sessions', async () => {
      const u = await signup(t);
      t.clock.advance(1800);
      const fresh = await login(t, u.username, u.password);
      t.clock.advance(1801); // the sign-up's session has been idle for more than REFRESH_TOKEN_TTL
      const admin = await root();
      const list = await sessionsOf(admin.auth, u.id);
      expect(list.map((s) => s.id)).toEqual([sidOf(fresh.accessToken)]);
    });

    it('answers [] for a user without sessions (a machine client, an account signed out everywhere)', async () => {
      const admin = await root();
      const c = await createClient(t, admin.auth, ['resources:read'], 'no-sessions');
      await clientToken(t, c);
      expect(await sessionsOf(admin.auth, c.client.serviceUserId)).toEqual([]);
      const u = await signup(t);
      await t.http.post('/auth/logout-all').set(u.auth).expect(204);
      expect(await sessionsOf(admin.auth, u.id)).toEqual([]);
    });
  });

  describe('DELETE /users/:id/sessions/:sessionId', () => {
    it("ends that session at once (refresh and access token refused); the user's other sessions keep working", async () => {
      const admin = await root();
      const u = await signup(t);
      const other = await login(t, u.username, u.password);
      const target = await login(t, u.username, u.password);
      expect(await alive(target)).toMatchObject({ access: 200 });

      const res = await t.http.delete(`/users/${u.id}/sessions/${sidOf(target.accessToken)}`).set(admin.auth);
      expectStatus(res, 204);
      expect(res.text).toBe('');

      // The access token is refused at once, before it expires; the refresh cookie is dead.
      const denied = await t.http.get('/users/me').set(target.auth);
      expectError(denied, 401, 'INVALID_TOKEN');
      expect((await refresh(t, target.refreshToken)).status).toBe(401);
      for (const s of [u, other]) {
        await t.http.get('/users/me').set(s.auth).expect(200);
      }
      await refresh(t, other.refreshToken).expect(200);
      const listed = (await sessionsOf(admin.auth, u.id)).map((s) => s.id);
      expect(listed).not.toContain(sidOf(target.accessToken));
      expect(listed).toHaveLength(2);
    });

    it('answers 204 again for a session already ended, and records nothing more', async () => {
      const admin = await root();
      const u = await signup(t);
      const target = await login(t, u.username, u.password);
      const path = `/users/${u.id}/sessions/${sidOf(target.accessToken)}`;
      await t.http.delete(path).set(admin.auth).expect(204);
      const again = await t.http.delete(path).set(admin.auth);
      expectStatus(again, 204);
      // Signed out by the user first: also 204.
      const third = await login(t, u.username, u.password);
      await t.http.post('/auth/logout').set(third.auth).expect(204);
      await t.http
        .delete(`/users/${u.id}/sessions/${sidOf(third.accessToken)}`)
        .set(admin.auth)
        .expect(204);

      const events = (await auditPage(t, admin.auth, { userId: u.id, type: 'session.revoked' })).items;
      expect(events.map((e) => e.sessionId)).toEqual([sidOf(target.accessToken)]);
      expect(events[0]).toMatchObject({ actorId: admin.id, actorUsername: ADMIN.ADMIN_USERNAME, userId: u.id });
      await t.http.get('/users/me').set(u.auth).expect(200);
    });

    it("answers 404 NOT_FOUND to another user's session, and leaves it alone", async () => {
      const admin = await root();
      const u = await signup(t);
      const victim = await signup(t);
      const res = await t.http.delete(`/users/${u.id}/sessions/${sidOf(victim.accessToken)}`).set(admin.auth);
      expectError(res, 404, 'NOT_FOUND');
      expect(await alive(victim)).toEqual({ access: 200, refresh: 200 });
      // Nor the other way round.
      const back = await t.http.delete(`/users/${victim.id}/sessions/${sidOf(u.accessToken)}`).set(admin.auth);
      expectError(back, 404, 'NOT_FOUND');
      expect(await alive(u)).toEqual({ access: 200, refresh: 200 });
      // An admin's own session through someone else's id: refused as well.
      const own = await t.http.delete(`/users/${u.id}/sessions/${sidOf(admin.accessToken)}`).set(admin.auth);
      expectError(own, 404, 'NOT_FOUND');
      await t.http.get('/users/me').set(admin.auth).expect(200);
      expect((await auditPage(t, admin.auth, { type: 'session.revoked', userId: victim.id })).items).toEqual([]);
    });

    it.each([
      ['an unknown session', UNKNOWN],
      ['a session id that is not a UUID', 'not-a-uuid'],
      ['a session id one character short', UNKNOWN.slice(0, -1)],
    ])('answers 404 NOT_FOUND to %s', async (_name, sid) => {
      const admin = await root();
      const u = await signup(t);
      expectError(await t.http.delete(`/users/${u.id}/sessions/${sid}`).set(admin.auth), 404, 'NOT_FOUND');
    });

    it('answers 404 USER_NOT_FOUND to an unknown user', async () => {
      const admin = await root();
      const u = await signup(t);
      const res = await t.http.delete(`/users/${UNKNOWN}/sessions/${sidOf(u.accessToken)}`).set(admin.auth);
      expectError(res, 404, 'USER_NOT_FOUND');
      expectError(
        await t.http.delete(`/users/not-a-uuid/sessions/${sidOf(u.accessToken)}`).set(admin.auth),
        404,
        'USER_NOT_FOUND',
      );
      expect(await alive(u)).toEqual({ access: 200, refresh: 200 });
    });

    it('answers 401 without a token and 403 to a non-admin, even for their own session', async () => {
      const u = await signup(t);
      const path = `/users/${u.id}/sessions/${sidOf(u.accessToken)}`;
      expectError(await t.http.delete(path), 401, 'UNAUTHORIZED');
      const other = await signup(t);
      expectError(await t.http.delete(path).set(other.auth), 403, 'INSUFFICIENT_ROLE');
      expectError(await t.http.delete(path).set(u.auth), 403, 'INSUFFICIENT_ROLE');
      expect(await alive(u)).toEqual({ access: 200, refresh: 200 });
    });
  });

  describe('DELETE /users/:id/sessions', () => {
    it('ends every session of the user at once, audited logout_all with the admin and the count', async () => {
      const admin = await root();
      const u = await signup(t);
      const s2 = await login(t, u.username, u.password);
      const s3 = await login(t, u.username, u.password);
      const bystander = await signup(t);

      const res = await t.http.delete(`/users/${u.id}/sessions`).set(admin.auth);
      expectStatus(res, 204);
      for (const s of [u, s2, s3]) expect(await alive(s)).toEqual({ access: 401, refresh: 401 });
      expect(await sessionsOf(admin.auth, u.id)).toEqual([]);
      expect(await alive(bystander)).toEqual({ access: 200, refresh: 200 });
      await t.http.get('/users/me').set(admin.auth).expect(200);

      const events = (await auditPage(t, admin.auth, { userId: u.id, type: 'logout_all' })).items;
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        userId: u.id,
        username: u.username,
        actorId: admin.id,
        actorUsername: ADMIN.ADMIN_USERNAME,
        requestId: res.headers['x-request-id'],
        details: { sessions: 3 },
      });

      // The account stays enabled: the user signs in again.
      const back = await login(t, u.username, u.password);
      await t.http.get('/users/me').set(back.auth).expect(200);
      const detail = await t.http.get(`/users/${u.id}`).set(admin.auth).expect(200);
      expect(detail.body.disabled).toBe(false);
    });

    it('answers 204 for a user without sessions, counting 0', async () => {
      const admin = await root();
      const u = await signup(t);
      await t.http.post('/auth/logout-all').set(u.auth).expect(204);
      await t.http.delete(`/users/${u.id}/sessions`).set(admin.auth).expect(204);
      const events = (await auditPage(t, admin.auth, { userId: u.id, type: 'logout_all', actorId: admin.id })).items;
      expect(events.map((e) => e.details)).toEqual([expect.objectContaining({ sessions: 0 })]);
    });

    it('answers 404 USER_NOT_FOUND to an unknown id, 401 without a token, 403 to a non-admin', async () => {
      const admin = await root();
      expectError(await t.http.delete(`/users/${UNKNOWN}/sessions`).set(admin.auth), 404, 'USER_NOT_FOUND');
      expectError(await t.http.delete('/users/not-a-uuid/sessions').set(admin.auth), 404, 'USER_NOT_FOUND');
      const u = await signup(t);
      expectError(await t.http.delete(`/users/${u.id}/sessions`), 401, 'UNAUTHORIZED');
      expectError(await t.http.delete(`/users/${u.id}/sessions`).set(u.auth), 403, 'INSUFFICIENT_ROLE');
      expect(await alive(u)).toEqual({ access: 200, refresh: 200 });
    });
  });

  describe('a machine client with the admin role and users:admin', () => {
    it("cannot end an admin's sessions, nor its own service user's; it can end a plain person's", async () => {
      const admin = await root();
      const bot = await adminClient(t, admin.auth, ['users:admin', 'clients:admin'], 'session-bot');
      const strong = await createClient(t, admin.auth, ['introspection'], 'stronger');
      const auth = bearer(await clientToken(t, bot));
      const otherAdmin = await signup(t);
      await t.http
        .patch(`/users/${otherAdmin.id}`)
        .set(admin.auth)
        .send({ roles: ['user', 'admin'] })
        .expect(200);
      t.clock.advance(2);
      const otherAdminSession = await login(t, otherAdmin.username, otherAdmin.password);

      const cases: Array<[string, () => ReturnType<TestApp['http']['delete']>, string]> = [
        [
          "one of the bootstrap admin's sessions",
          () => t.http.delete(`/users/${admin.id}/sessions/${sidOf(admin.accessToken)}`),
          'INSUFFICIENT_SCOPE',
        ],
        [
          "all of the bootstrap admin's sessions",
          () => t.http.delete(`/users/${admin.id}/sessions`),
          'INSUFFICIENT_SCOPE',
        ],
        [
          "one of another admin's sessions",
          () => t.http.delete(`/users/${otherAdmin.id}/sessions/${sidOf(otherAdminSession.accessToken)}`),
          'INSUFFICIENT_SCOPE',
        ],
        [
          "all of another admin's sessions",
          () => t.http.delete(`/users/${otherAdmin.id}/sessions`),
          'INSUFFICIENT_SCOPE',
        ],
        [
          'one session of its own service user',
          () => t.http.delete(`/users/${bot.client.serviceUserId}/sessions/${UNKNOWN}`),
          'CANNOT_TARGET_SELF',
        ],
        [
          'all of its own service user',
          () => t.http.delete(`/users/${bot.client.serviceUserId}/sessions`),
          'CANNOT_TARGET_SELF',
        ],
        [
          "a stronger client's service user",
          () => t.http.delete(`/users/${strong.client.serviceUserId}/sessions`),
          'INSUFFICIENT_SCOPE',
        ],
      ];
      for (const [what, req, code] of cases) {
        const res = await req().set(auth);
        expect({ what, status: res.status, code: res.body.code }).toEqual({ what, status: 403, code });
      }
      expect(await alive(admin)).toMatchObject({ access: 200 });
      expect(await alive(otherAdminSession)).toEqual({ access: 200, refresh: 200 });
      const logged = (
        await auditPage(t, admin.auth, { actorId: bot.client.serviceUserId, type: 'session.revoked,logout_all' })
      ).items;
      expect(logged).toEqual([]);

      // Within its powers: a person who is not an admin, one session, then all.
      const person = await signup(t);
      const second = await login(t, person.username, person.password);
      await t.http
        .delete(`/users/${person.id}/sessions/${sidOf(second.accessToken)}`)
        .set(auth)
        .expect(204);
      expect(await alive(second)).toEqual({ access: 401, refresh: 401 });
      expect(await alive(person)).toEqual({ access: 200, refresh: 200 });
      await t.http.delete(`/users/${person.id}/sessions`).set(auth).expect(204);
      expect(await alive(person)).toEqual({ access: 401, refresh: 401 });
      const events = (await auditPage(t, admin.auth, { userId: person.id, type: 'session.revoked,logout_all' })).items;
      expect(events.map((e) => [e.type, e.actorId])).toEqual([
        ['logout_all', bot.client.serviceUserId],
        ['session.revoked', bot.client.serviceUserId],
      ]);
    });
  });
});
