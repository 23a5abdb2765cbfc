import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, login, refresh, signup, uniqueEmail, uniqueUsername, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { enrol, mfaLogin } from '../mfa/mfa-helpers.js';
import {
  ACTIVITY_KEYS,
  ADMIN,
  ENV,
  ISO,
  activityPage,
  auditPage,
  clientToken,
  createClient,
  expectError,
  expectNewestFirst,
  expectStatus,
  sidOf,
  walk,
  type Activity,
} from './audit-helpers.js';

/** The types a person's activity may show (docs/api.md, GET /users/me/activity). */
const ACTIVITY_TYPES = new Set([
  'signup',
  'login.succeeded',
  'login.failed',
  'login.mfa_succeeded',
  'mfa.challenge_failed',
  'federation.session',
  'refresh.reuse_detected',
  'logout',
  'logout_all',
  'session.revoked',
  'password.changed',
  'password.reset',
  'email.verified',
  'email.change_requested',
  'email.change_cancelled',
  'email.changed',
  'mfa.enrolled',
  'mfa.disabled',
  'mfa.reset_by_admin',
  'mfa.recovery_code_used',
  'mfa.recovery_codes_regenerated',
  'account.disabled',
  'account.enabled',
  'roles.changed',
  'identity.linked',
  'identity.unlinked',
]);

/** GET /users/me/activity: one's own security events, as the account page shows them. */
describe('GET /users/me/activity', () => {
  let t: TestApp;
  let admin: SignedUp;
  beforeAll(async () => {
    t = await startApp({ ...ENV, TRUST_PROXY: '1' });
    admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
  });
  afterAll(async () => {
    t?.clock.unfreeze();
    await t?.close();
  });

  /** Every activity item of this caller (all pages of 100). */
  const activity = async (auth: { Authorization: string }) =>
    (await walk((q) => activityPage(t, auth, q), { limit: 100 })).flatMap((p) => p.items);
  const types = (items: Activity[]) => items.map((a) => a.type);
  const byType = (items: Activity[], type: string) => {
    const found = items.filter((a) => a.type === type);
    expect(found, `${type} in ${types(items).join(', ')}`).toHaveLength(1);
    return found[0]!;
  };
  const wrongLogin = (username: string, headers: Record<string, string> = {}) =>
    t.http.post('/auth/login').set(headers).send({ username, password: 'not the password' }).expect(401);
  /** Signs up with a user agent and client address of its own. */
  const signupFrom = async (ua: string, ip: string, fields: Record<string, unknown> = {}) => {
    const username = uniqueUsername('act');
    const res = await t.http
      .post('/auth/signup')
      .set({ 'User-Agent': ua, 'X-Forwarded-For': ip })
      .send({ username, password: 'correct horse battery', ...fields });
    expectStatus(res, 201);
    const accessToken = res.body.accessToken as string;
    return {
      id: res.body.user.id as string,
      username,
      password: 'correct horse battery',
      accessToken,
      auth: bearer(accessToken),
    };
  };
  const loginFrom = async (u: { username: string; password: string }, ua: string, ip = '198.51.100.20') => {
    const res = await t.http
      .post('/auth/login')
      .set({ 'User-Agent': ua, 'X-Forwarded-For': ip })
      .send({ username: u.username, password: u.password });
    expectStatus(res, 200);
    return { accessToken: res.body.accessToken as string, auth: bearer(res.body.accessToken as string) };
  };

  it('keeps 512 characters of a long User-Agent, as the session does', async () => {
    const ua = `Long/1 ${'x'.repeat(12_000)}`;
    const a = await signupFrom(ua, '203.0.113.9');
    const items = await activity(a.auth);
    expect(byType(items, 'signup').userAgent).toBe(ua.slice(0, 512));
  });

  it('answers 401 without a token, or with a bad one', async () => {
    const res = await t.http.get('/users/me/activity');
    expectError(res, 401, 'UNAUTHORIZED');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    expectError(await t.http.get('/users/me/activity').set(bearer('not.a.token')), 401, 'INVALID_TOKEN');
  });

  it("lists only the caller's events, newest first, with exactly the Activity fields", async () => {
    const a = await signupFrom('Phone/1', '203.0.113.1');
    const b = await signupFrom('Laptop/2', '203.0.113.2');
    t.clock.advance(1);
    await wrongLogin(a.username, { 'User-Agent': 'Thief/6', 'X-Forwarded-For': '192.0.2.66' });
    await wrongLogin(b.username);
    t.clock.advance(1);
    const second = await loginFrom(a, 'Tablet/3', '203.0.113.3');

    const items = await activity(second.auth);
    expect(types(items)).toEqual(['login.succeeded', 'login.failed', 'signup']);
    expectNewestFirst(items);
    for (const item of items) {
      expect(Object.keys(item).sort()).toEqual(ACTIVITY_KEYS);
      expect(item.createdAt).toMatch(ISO);
    }
    expect(byType(items, 'signup')).toMatchObject({
      ip: '203.0.113.1',
      userAgent: 'Phone/1',
      sessionId: sidOf(a.accessToken),
    });
    // Someone else's failed attempt against this account: shown, with where it came from.
    expect(byType(items, 'login.failed')).toMatchObject({
      ip: '192.0.2.66',
      userAgent: 'Thief/6',
      sessionId: null,
      currentSession: false,
      byAdministrator: false,
    });
    expect(byType(items, 'login.succeeded')).toMatchObject({
      ip: '203.0.113.3',
      userAgent: 'Tablet/3',
      sessionId: sidOf(second.accessToken),
    });
    // The same events as the administrators' log has about the account, nothing of b's.
    const log = (await auditPage(t, admin.auth, { userId: a.id, limit: 100 })).items;
    expect(items.map((i) => i.id)).toEqual(log.map((e) => e.id));
    const bIds = (await auditPage(t, admin.auth, { userId: b.id, limit: 100 })).items.map((e) => e.id);
    expect(items.map((i) => i.id).filter((id) => bIds.includes(id))).toEqual([]);
    expect(types(await activity(b.auth))).toEqual(['login.failed', 'signup']);
    // No details: the name typed at a failed sign-in stays in the administrators' log.
    expect(JSON.stringify(items)).not.toContain(a.username);
  });

  it('currentSession is true exactly for the events of the calling session', async () => {
    const u = await signupFrom('Desk/1', '203.0.113.10');
    t.clock.advance(1);
    const other = await loginFrom(u, 'Desk/2');
    t.clock.advance(1);
    await wrongLogin(u.username);

    const fromFirst = await activity(u.auth);
    expect(types(fromFirst)).toEqual(['login.failed', 'login.succeeded', 'signup']);
    expect(fromFirst.map((i) => i.currentSession)).toEqual([false, false, true]);
    const fromOther = await activity(other.auth);
    expect(fromOther.map((i) => i.currentSession)).toEqual([false, true, false]);
  });

  it('currentSession holds across a refresh of the same session', async () => {
    const u = await signup(t);
    const refreshed = await refresh(t, u.refreshToken);
    expectStatus(refreshed, 200);
    const items = await activity(bearer(refreshed.body.accessToken as string));
    expect(byType(items, 'signup').currentSession).toBe(true);
  });

  it("byAdministrator: an admin's disable, enable, role change, ended sessions and MFA reset; not one's own", async () => {
    const u = await signup(t);
    t.clock.advance(1);
    const own = await login(t, u.username, u.password);
    await t.http
      .delete(`/auth/sessions/${sidOf(own.accessToken)}`)
      .set(u.auth)
      .expect(204); // own: session.revoked
    t.clock.advance(1);
    await t.http
      .post('/users/me/password')
      .set(u.auth)
      .send({ currentPassword: u.password, newPassword: 'another good password' })
      .expect(204);
    const password = 'another good password';
    t.clock.advance(1);
    await t.http.post('/auth/logout-all').set(u.auth).expect(204); // own: logout_all
    t.clock.advance(1);

    await t.http.patch(`/users/${u.id}`).set(admin.auth).send({ disabled: true }).expect(200);
    t.clock.advance(1);
    await t.http.patch(`/users/${u.id}`).set(admin.auth).send({ disabled: false }).expect(200);
    t.clock.advance(1);
    await t.http
      .patch(`/users/${u.id}`)
      .set(admin.auth)
      .send({ roles: ['user', 'admin'] })
      .expect(200);
    t.clock.advance(1);
    await t.http
      .patch(`/users/${u.id}`)
      .set(admin.auth)
      .send({ roles: ['user'] })
      .expect(200);
    t.clock.advance(2);
    const s1 = await login(t, u.username, password);
    t.clock.advance(1);
    const s2 = await login(t, u.username, password);
    t.clock.advance(1);
    await t.http
      .delete(`/users/${u.id}/sessions/${sidOf(s1.accessToken)}`)
      .set(admin.auth)
      .expect(204);
    t.clock.advance(1);
    await t.http.delete(`/users/${u.id}/sessions`).set(admin.auth).expect(204);
    await t.http.get('/users/me').set(s2.auth).expect(401);
    t.clock.advance(1);

    // Two-step sign-in, reset by an admin.
    t.clock.freeze();
    let m: SignedUp;
    try {
      const fresh = await login(t, u.username, password);
      t.clock.advance(1);
      m = await enrol(t, fresh);
    } finally {
      t.clock.unfreeze();
    }
    t.clock.advance(1);
    await t.http.delete(`/users/${u.id}/mfa`).set(admin.auth).expect(204);
    t.clock.advance(1);
    const last = await login(t, u.username, password);
    expect(m.id).toBe(u.id);

    const items = await activity(last.auth);
    const seen = items.map((i) => [i.type, i.byAdministrator]);
    // An administrator's change shows no session: the one recorded is the administrator's.
    // Nor the administrator's address or device.
    expect(
      items.filter((i) => i.byAdministrator && (i.sessionId !== null || i.ip !== null || i.userAgent !== null)),
    ).toEqual([]);
    expect(seen).toEqual([
      ['login.succeeded', false],
      ['mfa.reset_by_admin', true],
      ['mfa.enrolled', false],
      ['login.succeeded', false],
      ['logout_all', true],
      ['session.revoked', true],
      ['login.succeeded', false],
      ['login.succeeded', false],
      ['roles.changed', true],
      ['roles.changed', true],
      ['account.enabled', true],
      ['account.disabled', true],
      ['logout_all', false],
      ['password.changed', false],
      ['session.revoked', false],
      ['login.succeeded', false],
      ['signup', false],
    ]);
    expectNewestFirst(items);
    // The administrator is not named anywhere.
    const text = JSON.stringify(items);
    expect(text).not.toContain(admin.id);
    expect(text).not.toContain(ADMIN.ADMIN_USERNAME);
  });

  it('a failed attempt by another signed-in person is still not "by an administrator"', async () => {
    const victim = await signup(t);
    const other = await signup(t);
    // A login carries no caller, whatever token is sent along.
    await t.http.post('/auth/login').set(other.auth).send({ username: victim.username, password: 'guess' }).expect(401);
    const failed = byType(await activity(victim.auth), 'login.failed');
    expect(failed.byAdministrator).toBe(false);
  });

  it('shows only the security types: not tenant, client, mail or second-step prompts', async () => {
    const u = await signup(t, { email: uniqueEmail('act') });
    const slug = `act-${u.id.slice(0, 8)}`;
    await t.http.post('/tenants').set(u.auth).send({ name: 'Activity Inc', slug }).expect(201);
    // Two-step sign-in: the password step records login.mfa_required, which is not shown.
    t.clock.freeze();
    try {
      const m = await enrol(t, u);
      await mfaLogin(t, m);
    } finally {
      t.clock.unfreeze();
    }
    const log = (await auditPage(t, admin.auth, { userId: u.id, limit: 100 })).items.map((e) => e.type);
    expect(log).toEqual(expect.arrayContaining(['tenant.created', 'login.mfa_required', 'mfa.enrolled']));

    const items = await activity(u.auth);
    const shown = types(items);
    expect(shown).toEqual(log.filter((type) => ACTIVITY_TYPES.has(type)));
    expect(shown).toContain('login.mfa_succeeded');
    expect(shown).not.toContain('tenant.created');
    expect(shown).not.toContain('login.mfa_required');
    expect(shown.every((type) => ACTIVITY_TYPES.has(type))).toBe(true);
  });

  it("a machine client's service user sees none of its client.* events", async () => {
    const c = await createClient(t, admin.auth, ['profile', 'resources:read'], 'activity-bot');
    const token = bearer(await clientToken(t, c));
    await t.http.post(`/oauth/clients/${c.client.id}/secrets`).set(admin.auth).send({}).expect(201);
    const log = (await auditPage(t, admin.auth, { userId: c.client.serviceUserId, limit: 100 })).items;
    expect(log.map((e) => e.type)).toEqual(expect.arrayContaining(['client.created', 'client.secret_created']));
    expect(await activity(token)).toEqual([]);

    // Without profile in its token: 403 INSUFFICIENT_SCOPE.
    const narrow = bearer(await clientToken(t, c, 'resources:read'));
    const res = await t.http.get('/users/me/activity').set(narrow);
    expectError(res, 403, 'INSUFFICIENT_SCOPE');
    expect(res.headers['www-authenticate']).toContain('scope="profile"');
  });

  it('newDevice: a sign-in from a user agent new to the account', async () => {
    const u = await signupFrom('Browser/A', '203.0.113.30');
    t.clock.advance(1);
    await loginFrom(u, 'Browser/A');
    t.clock.advance(1);
    await loginFrom(u, 'Browser/B');
    t.clock.advance(1);
    await wrongLogin(u.username, { 'User-Agent': 'Browser/C' });
    t.clock.advance(1);
    const last = await loginFrom(u, 'Browser/B');

    const items = await activity(last.auth);
    expect(items.map((i) => [i.type, i.userAgent, i.newDevice])).toEqual([
      ['login.succeeded', 'Browser/B', false],
      ['login.failed', 'Browser/C', false],
      ['login.succeeded', 'Browser/B', true],
      ['login.succeeded', 'Browser/A', false],
      ['signup', 'Browser/A', true],
    ]);
    // The same on pages of one item.
    const paged = (await walk((q) => activityPage(t, last.auth, q), { limit: 1 })).flatMap((p) => p.items);
    expect(paged).toEqual(items);
  });

  describe('pages', () => {
    let u: SignedUp;
    beforeAll(async () => {
      u = await signup(t);
      for (let i = 0; i < 6; i++) {
        t.clock.advance(1);
        await wrongLogin(u.username);
      }
      // And seven at one instant: the id breaks the tie.
      t.clock.freeze();
      try {
        t.clock.advance(1);
        for (let i = 0; i < 7; i++) await wrongLogin(u.username);
      } finally {
        t.clock.unfreeze();
      }
    });

    it('default 20; limit and nextCursor walk every item exactly once', async () => {
      const full = await activity(u.auth);
      expect(full).toHaveLength(14);
      expectNewestFirst(full);
      expect((await activityPage(t, u.auth)).items).toEqual(full);
      for (const limit of [1, 3, 7, 13, 14]) {
        const pages = await walk((q) => activityPage(t, u.auth, q), { limit });
        expect(pages.length).toBe(Math.ceil(14 / limit));
        pages.slice(0, -1).forEach((p) => {
          expect(p.items).toHaveLength(limit);
          expect(typeof p.nextCursor).toBe('string');
        });
        expect(pages.at(-1)!.nextCursor).toBeNull();
        expect(pages.flatMap((p) => p.items)).toEqual(full);
      }
    });

    it('new events between page fetches do not shift the pages', async () => {
      const before = await activity(u.auth);
      const pages = await walk(
        (q) => activityPage(t, u.auth, q),
        { limit: 4 },
        async () => {
          t.clock.advance(1);
          await wrongLogin(u.username);
        },
      );
      expect(pages.flatMap((p) => p.items)).toEqual(before);
    });

    const cursorOf = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    it.each([
      ['limit 0', { limit: 0 }],
      ['limit 101', { limit: 101 }],
      ['limit abc', { limit: 'abc' }],
      ['a garbage cursor', { cursor: 'not a cursor!' }],
      ['a cursor of an object', { cursor: cursorOf({ a: 1 }) }],
      [
        'a cursor in year 0',
        { cursor: cursorOf(['0000-01-01T00:00:00.000Z', '6f1c2b1e-4b7a-4c1e-9a43-2d3f0a5b8c7d']) },
      ],
      ['an unknown parameter', { userId: '6f1c2b1e-4b7a-4c1e-9a43-2d3f0a5b8c7d' }],
    ])('answers 400 VALIDATION_FAILED to %s', async (_name, query) => {
      const res = await t.http.get('/users/me/activity').query(query).set(u.auth);
      expectError(res, 400, 'VALIDATION_FAILED');
    });
  });
});
