import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, login, signup, uniqueUsername, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { enrol } from '../mfa/mfa-helpers.js';
import {
  ADMIN,
  AUDIT_KEYS,
  ENV,
  ISO,
  adminClient,
  auditPage,
  clientToken,
  expectError,
  expectNewestFirst,
  expectStatus,
  shifted,
  sidOf,
  walk,
  type AuditEvent,
} from './audit-helpers.js';

/**
 * GET /audit-events as an administrator's client uses it: who may read it, what the real
 * flows record, the filters, keyset pages and the validation of every parameter.
 */
describe('GET /audit-events', () => {
  let t: TestApp;
  let admin: SignedUp;
  beforeAll(async () => {
    // TRUST_PROXY=1: X-Forwarded-For names the client address, so `ip` can be checked exactly.
    t = await startApp({ ...ENV, TRUST_PROXY: '1' });
    admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
  });
  afterAll(async () => {
    t?.clock.unfreeze();
    await t?.close();
  });

  const page = (query: Record<string, string | number> = {}) => auditPage(t, admin.auth, query);
  /** Every event matching the query (all pages of 100). */
  const all = async (query: Record<string, string | number> = {}) =>
    (await walk(page, { limit: 100, ...query })).flatMap((p) => p.items);
  /** The single event of this type about this user. */
  const only = async (userId: string, type: string): Promise<AuditEvent> => {
    const items = (await page({ userId, type })).items;
    expect(items.map((e) => e.type)).toEqual([type]);
    return items[0]!;
  };
  const get = (query: Record<string, string | number> = {}) => t.http.get('/audit-events').query(query);
  const wrongLogin = (username: string, headers: Record<string, string> = {}) =>
    t.http.post('/auth/login').set(headers).send({ username, password: 'not the password' }).expect(401);
  /** a, b, … z, ba, bb…: type names are letters only. */
  const letter = (i: number): string => (i < 26 ? '' : letter(Math.floor(i / 26))) + String.fromCharCode(97 + (i % 26));
  const requestIdOf = (res: { headers: Record<string, unknown> }) => res.headers['x-request-id'] as string;

  describe('access', () => {
    it('answers 401 without a token', async () => {
      const res = await get();
      expectError(res, 401, 'UNAUTHORIZED');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    });

    it('answers 401 to a malformed token', async () => {
      const res = await get().set(bearer('not.a.token'));
      expectError(res, 401, 'INVALID_TOKEN');
    });

    it('answers 403 INSUFFICIENT_ROLE to a signed-in user who is not an admin, and shows nothing', async () => {
      const u = await signup(t);
      const res = await get().set(u.auth);
      expectError(res, 403, 'INSUFFICIENT_ROLE');
      expect(res.text).not.toContain(u.id);
      // Not even the events about themselves.
      expectError(await get({ userId: u.id }).set(u.auth), 403, 'INSUFFICIENT_ROLE');
    });

    it('answers 403 INSUFFICIENT_SCOPE to an admin-role token without users:admin', async () => {
      const bot = await adminClient(t, admin.auth, ['users:admin', 'resources:read'], 'audit-reader');
      const narrow = bearer(await clientToken(t, bot, 'resources:read'));
      const res = await get().set(narrow);
      expectError(res, 403, 'INSUFFICIENT_SCOPE');
      expect(res.headers['www-authenticate']).toContain('scope="users:admin"');

      // The same client with users:admin in its token reads the log.
      const wide = bearer(await clientToken(t, bot));
      const ok = await get({ limit: 1 }).set(wide);
      expectStatus(ok, 200);
      expect(ok.body.items).toHaveLength(1);
    });

    it('reading the log records nothing', async () => {
      const before = await t.prisma.auditEvent.count();
      await page();
      await page({ type: 'login.*' });
      expect(await t.prisma.auditEvent.count()).toBe(before);
    });
  });

  describe('events of the real flows', () => {
    it('signup: the account, its session, no actor, the request id, ip and user agent', async () => {
      const username = uniqueUsername('signup');
      const res = await t.http
        .post('/auth/signup')
        .set({ 'User-Agent': 'AuditTest/1.0 (signup)', 'X-Forwarded-For': '203.0.113.7' })
        .send({ username, password: 'correct horse battery' });
      expectStatus(res, 201);
      const id = res.body.user.id as string;

      const ev = await only(id, 'signup');
      expect(Object.keys(ev).sort()).toEqual(AUDIT_KEYS);
      expect(ev).toEqual({
        id: expect.any(String),
        type: 'signup',
        createdAt: expect.stringMatching(ISO),
        userId: id,
        username,
        actorId: null,
        actorUsername: null,
        sessionId: sidOf(res.body.accessToken),
        ip: '203.0.113.7',
        userAgent: 'AuditTest/1.0 (signup)',
        requestId: requestIdOf(res),
        details: null,
      });
      expect(requestIdOf(res)).toMatch(/^[0-9a-f-]{36}$/);
      expect(Math.abs(Date.parse(ev.createdAt) - t.clock.nowMs())).toBeLessThan(60_000);
    });

    it('login.succeeded and login.failed (wrong password: the account set, no actor; unknown: no account)', async () => {
      const u = await signup(t);
      const ok = await t.http
        .post('/auth/login')
        .set({ 'User-Agent': 'AuditTest/1.0 (login)', 'X-Forwarded-For': '198.51.100.1' })
        .send({ username: u.username, password: u.password });
      expectStatus(ok, 200);
      const succeeded = await only(u.id, 'login.succeeded');
      expect(succeeded).toMatchObject({
        userId: u.id,
        username: u.username,
        actorId: null,
        actorUsername: null,
        sessionId: sidOf(ok.body.accessToken),
        ip: '198.51.100.1',
        userAgent: 'AuditTest/1.0 (login)',
        requestId: requestIdOf(ok),
      });

      const bad = await wrongLogin(u.username, { 'User-Agent': 'Guesser/2', 'X-Forwarded-For': '192.0.2.99' });
      const failed = await only(u.id, 'login.failed');
      expect(failed).toMatchObject({
        userId: u.id,
        username: u.username,
        actorId: null,
        actorUsername: null,
        sessionId: null,
        ip: '192.0.2.99',
        userAgent: 'Guesser/2',
        requestId: requestIdOf(bad),
        details: { login: u.username.toLowerCase() },
      });
      expect(JSON.stringify(failed)).not.toContain('not the password');

      // An unknown name: the event names no account.
      const ghost = uniqueUsername('ghost');
      const unknown = await wrongLogin(ghost);
      const events = (await page({ type: 'login.failed', limit: 100 })).items.filter(
        (e) => e.requestId === requestIdOf(unknown),
      );
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ userId: null, username: null, actorId: null, details: { login: ghost } });
    });

    it('password.changed: the user is the actor, in their session', async () => {
      const u = await signup(t);
      const res = await t.http
        .post('/users/me/password')
        .set(u.auth)
        .send({ currentPassword: u.password, newPassword: 'another good password' });
      expectStatus(res, 204);
      expect(await only(u.id, 'password.changed')).toMatchObject({
        userId: u.id,
        username: u.username,
        actorId: u.id,
        actorUsername: u.username,
        sessionId: sidOf(u.accessToken),
        requestId: requestIdOf(res),
      });
    });

    it("an admin's disable, enable and role change: the admin as actor, the target as the account", async () => {
      const u = await signup(t);
      const adminSid = sidOf(admin.accessToken);
      const byAdmin = { actorId: admin.id, actorUsername: ADMIN.ADMIN_USERNAME, userId: u.id, username: u.username };

      const disable = await t.http.patch(`/users/${u.id}`).set(admin.auth).send({ disabled: true });
      expectStatus(disable, 200);
      expect(await only(u.id, 'account.disabled')).toMatchObject({
        ...byAdmin,
        sessionId: adminSid,
        requestId: requestIdOf(disable),
        details: { by: admin.id },
      });

      const enable = await t.http.patch(`/users/${u.id}`).set(admin.auth).send({ disabled: false });
      expectStatus(enable, 200);
      expect(await only(u.id, 'account.enabled')).toMatchObject({
        ...byAdmin,
        requestId: requestIdOf(enable),
        details: { by: admin.id },
      });

      const promote = await t.http
        .patch(`/users/${u.id}`)
        .set(admin.auth)
        .send({ roles: ['user', 'admin'] });
      expectStatus(promote, 200);
      expect(await only(u.id, 'roles.changed')).toMatchObject({
        ...byAdmin,
        requestId: requestIdOf(promote),
        details: { by: admin.id, roles: ['user', 'admin'] },
      });
      await t.http
        .patch(`/users/${u.id}`)
        .set(admin.auth)
        .send({ roles: ['user'] })
        .expect(200);
    });

    it("an admin's MFA reset: mfa.reset_by_admin with the admin as actor", async () => {
      t.clock.freeze(); // a TOTP step must not end between the code and its check
      let m: SignedUp;
      try {
        m = await enrol(t, await signup(t));
      } finally {
        t.clock.unfreeze();
      }
      const res = await t.http.delete(`/users/${m.id}/mfa`).set(admin.auth);
      expectStatus(res, 204);
      expect(await only(m.id, 'mfa.reset_by_admin')).toMatchObject({
        userId: m.id,
        username: m.username,
        actorId: admin.id,
        actorUsername: ADMIN.ADMIN_USERNAME,
        sessionId: sidOf(admin.accessToken),
        requestId: requestIdOf(res),
        details: { by: admin.id },
      });
      // The user's own enrolment: the user is its actor.
      expect(await only(m.id, 'mfa.enrolled')).toMatchObject({ actorId: m.id, actorUsername: m.username });
    });

    it('an admin ends a session: session.revoked names the ended session; all: logout_all with the count', async () => {
      const u = await signup(t);
      const second = await login(t, u.username, u.password);
      const third = await login(t, u.username, u.password);

      const one = await t.http.delete(`/users/${u.id}/sessions/${sidOf(second.accessToken)}`).set(admin.auth);
      expectStatus(one, 204);
      expect(await only(u.id, 'session.revoked')).toMatchObject({
        userId: u.id,
        username: u.username,
        actorId: admin.id,
        actorUsername: ADMIN.ADMIN_USERNAME,
        sessionId: sidOf(second.accessToken),
        requestId: requestIdOf(one),
      });

      const rest = await t.http.delete(`/users/${u.id}/sessions`).set(admin.auth);
      expectStatus(rest, 204);
      const ev = await only(u.id, 'logout_all');
      expect(ev).toMatchObject({
        userId: u.id,
        username: u.username,
        actorId: admin.id,
        actorUsername: ADMIN.ADMIN_USERNAME,
        requestId: requestIdOf(rest),
        details: { sessions: 2 },
      });
      await t.http.get('/users/me').set(third.auth).expect(401);
    });

    it("a machine client's change: its service user is the actor", async () => {
      const bot = await adminClient(t, admin.auth, ['users:admin'], 'audit-actor');
      const auth = bearer(await clientToken(t, bot));
      const u = await signup(t);
      const res = await t.http.patch(`/users/${u.id}`).set(auth).send({ disabled: true });
      expectStatus(res, 200);
      const ev = await only(u.id, 'account.disabled');
      const svc = await t.http.get(`/users/${bot.client.serviceUserId}`).set(admin.auth).expect(200);
      expect(ev).toMatchObject({
        userId: u.id,
        username: u.username,
        actorId: bot.client.serviceUserId,
        actorUsername: svc.body.username,
        // A client has no session: its token's `sid` is the id of a client secret, not a session.
        sessionId: null,
        requestId: requestIdOf(res),
      });
    });

    it("records the caller's well-formed X-Request-Id verbatim, and replaces a malformed one", async () => {
      const u = await signup(t);
      const mine = `audit.test:${randomBytes(4).toString('hex')}-A_b`;
      const res = await wrongLogin(u.username, { 'X-Request-Id': mine });
      expect(requestIdOf(res)).toBe(mine);
      expect((await only(u.id, 'login.failed')).requestId).toBe(mine);

      const v = await signup(t);
      const malformed = 'has spaces and / slashes';
      const res2 = await wrongLogin(v.username, { 'X-Request-Id': malformed });
      expect(requestIdOf(res2)).not.toBe(malformed);
      expect(requestIdOf(res2)).toMatch(/^[0-9a-f-]{36}$/);
      expect((await only(v.id, 'login.failed')).requestId).toBe(requestIdOf(res2));

      const w = await signup(t);
      const res3 = await wrongLogin(w.username, { 'X-Request-Id': 'x'.repeat(129) });
      expect(requestIdOf(res3)).toHaveLength(36);
      expect((await only(w.id, 'login.failed')).requestId).toBe(requestIdOf(res3));
    });

    it("a deleted account's events keep its id, with username null", async () => {
      const u = await signup(t);
      t.clock.advance(1);
      await wrongLogin(u.username);
      t.clock.advance(1);
      await t.http.delete('/users/me').set(u.auth).send({ password: u.password }).expect(204);
      const events = await all({ userId: u.id });
      expect(events.map((e) => e.type)).toEqual(['account.deleted', 'login.failed', 'signup']);
      for (const e of events) expect(e).toMatchObject({ userId: u.id, username: null });
      // Its own deletion: the deleted user was the actor, whose name is gone as well.
      expect(events[0]).toMatchObject({ actorId: u.id, actorUsername: null });
    });

    it('never shows a password, hash or token', async () => {
      const items = (await page({ limit: 100 })).items;
      expect(items.length).toBeGreaterThan(10);
      const dump = JSON.stringify(items);
      expect(dump).not.toMatch(/\$2[aby]\$|correct horse|not the password|eyJ[A-Za-z0-9_-]{10,}/);
    });
  });

  describe('filters', () => {
    /**
     * One account's history, a minute between steps:
     * T0 signup, T1 login.failed, T2 login.succeeded, T3 password.changed (the user),
     * T4 logout, T5 account.disabled then account.enabled (the admin).
     */
    let a: SignedUp;
    let b: SignedUp;
    let at: Record<string, AuditEvent>;
    beforeAll(async () => {
      a = await signup(t);
      t.clock.advance(60);
      await wrongLogin(a.username);
      t.clock.advance(60);
      const session = await login(t, a.username, a.password);
      t.clock.advance(60);
      await t.http
        .post('/users/me/password')
        .set(session.auth)
        .send({ currentPassword: a.password, newPassword: 'another good password' })
        .expect(204);
      t.clock.advance(60);
      await t.http.post('/auth/logout').set(session.auth).expect(204);
      t.clock.advance(60);
      await t.http.patch(`/users/${a.id}`).set(admin.auth).send({ disabled: true }).expect(200);
      t.clock.advance(1);
      await t.http.patch(`/users/${a.id}`).set(admin.auth).send({ disabled: false }).expect(200);
      t.clock.advance(60);
      // Someone else, meanwhile.
      b = await signup(t);
      await wrongLogin(b.username);
      t.clock.advance(60);
      const events = await all({ userId: a.id });
      at = Object.fromEntries(events.map((e) => [e.type, e]));
    });
    const types = (events: AuditEvent[]) => events.map((e) => e.type);

    it('userId: every event about the account, newest first', async () => {
      const events = await all({ userId: a.id });
      expect(types(events)).toEqual([
        'account.enabled',
        'account.disabled',
        'logout',
        'password.changed',
        'login.succeeded',
        'login.failed',
        'signup',
      ]);
      expectNewestFirst(events);
      expect(events.every((e) => e.userId === a.id)).toBe(true);
      expect(types(await all({ userId: b.id }))).toEqual(['login.failed', 'signup']);
    });

    it('userId in upper case finds the same events', async () => {
      expect(await all({ userId: a.id.toUpperCase() })).toEqual(await all({ userId: a.id }));
    });

    it('an unknown userId or actorId: no events, not an error', async () => {
      expect(await page({ userId: '00000000-0000-4000-8000-000000000000' })).toEqual({ items: [], nextCursor: null });
      expect(await page({ actorId: '00000000-0000-4000-8000-000000000000' })).toEqual({ items: [], nextCursor: null });
    });

    it('actorId: only what that caller did', async () => {
      expect(types(await all({ actorId: a.id }))).toEqual(['password.changed']);
      const byAdmin = await all({ actorId: admin.id });
      expect(byAdmin.length).toBeGreaterThanOrEqual(2);
      expect(byAdmin.every((e) => e.actorId === admin.id && e.actorUsername === ADMIN.ADMIN_USERNAME)).toBe(true);
      expect(types(await all({ actorId: admin.id, userId: a.id }))).toEqual(['account.enabled', 'account.disabled']);
    });

    it('type: an exact type', async () => {
      expect(types(await all({ userId: a.id, type: 'login.failed' }))).toEqual(['login.failed']);
      const failed = await all({ type: 'login.failed' });
      expect(failed.length).toBeGreaterThanOrEqual(2);
      expect(failed.every((e) => e.type === 'login.failed')).toBe(true);
      expect(failed.map((e) => e.id)).toEqual(expect.arrayContaining([at['login.failed']!.id]));
    });

    it('type: a family (login.* is every type starting with "login.", not logout)', async () => {
      expect(types(await all({ userId: a.id, type: 'login.*' }))).toEqual(['login.succeeded', 'login.failed']);
      expect(types(await all({ userId: a.id, type: 'account.*' }))).toEqual(['account.enabled', 'account.disabled']);
      const logins = await all({ type: 'login.*' });
      expect(logins.every((e) => e.type.startsWith('login.'))).toBe(true);
      // An exact type is exact: `logout` is not `logout_all`, `login` names nothing.
      expect(types(await all({ userId: a.id, type: 'logout' }))).toEqual(['logout']);
      expect(await all({ userId: a.id, type: 'login' })).toEqual([]);
      expect(await all({ userId: a.id, type: 'sign.*' })).toEqual([]);
    });

    it('type: several, comma-separated (exact types and families together)', async () => {
      expect(types(await all({ userId: a.id, type: 'signup,password.changed' }))).toEqual([
        'password.changed',
        'signup',
      ]);
      expect(types(await all({ userId: a.id, type: 'account.enabled,login.*,logout' }))).toEqual([
        'account.enabled',
        'logout',
        'login.succeeded',
        'login.failed',
      ]);
      // Listed twice, an event is still listed once.
      expect(types(await all({ userId: a.id, type: 'login.*,login.failed,login.failed' }))).toEqual([
        'login.succeeded',
        'login.failed',
      ]);
    });

    it('type: 20 entries are accepted', async () => {
      const twenty = ['signup', ...Array.from({ length: 19 }, (_, i) => `none_${letter(i)}.x`)].join(',');
      expect(types(await all({ userId: a.id, type: twenty }))).toEqual(['signup']);
    });

    it('type: underscores match themselves (no LIKE wildcard in an exact type)', async () => {
      expect(await all({ userId: a.id, type: 'login_failed' })).toEqual([]);
      expect(await all({ userId: a.id, type: 'lo_in.failed' })).toEqual([]);
      expect(await all({ userId: a.id, type: 'password_changed' })).toEqual([]);
    });

    it('from is inclusive, to exclusive, to the millisecond', async () => {
      const t2 = at['login.succeeded']!.createdAt;
      const fromT2 = await all({ userId: a.id, from: t2 });
      expect(types(fromT2).at(-1)).toBe('login.succeeded');
      expect(types(fromT2)).toEqual([
        'account.enabled',
        'account.disabled',
        'logout',
        'password.changed',
        'login.succeeded',
      ]);
      expect(types(await all({ userId: a.id, from: shifted(t2, 1) }))).not.toContain('login.succeeded');
      expect(types(await all({ userId: a.id, to: t2 }))).toEqual(['login.failed', 'signup']);
      expect(types(await all({ userId: a.id, to: shifted(t2, 1) }))).toEqual([
        'login.succeeded',
        'login.failed',
        'signup',
      ]);
      // A window of exactly one millisecond holds the one event.
      expect(types(await all({ userId: a.id, from: t2, to: shifted(t2, 1) }))).toEqual(['login.succeeded']);
      // [T1, T3): login.failed and login.succeeded.
      const window = await all({
        userId: a.id,
        from: at['login.failed']!.createdAt,
        to: at['password.changed']!.createdAt,
      });
      expect(types(window)).toEqual(['login.succeeded', 'login.failed']);
    });

    it('from and to finer than a millisecond keep their meaning (or are refused)', async () => {
      const t2 = at['login.succeeded']!.createdAt;
      // 0.1 ms after T2: the event at T2 is before that instant, so not "at or after" it, and "before" it.
      const after = t2.replace('Z', '1Z');
      const fromAfter = await get({ userId: a.id, from: after, limit: 100 }).set(admin.auth);
      const toAfter = await get({ userId: a.id, to: after, limit: 100 }).set(admin.auth);
      if (fromAfter.status === 400) {
        expectError(fromAfter, 400, 'VALIDATION_FAILED');
        expectError(toAfter, 400, 'VALIDATION_FAILED');
        return;
      }
      expectStatus(fromAfter, 200);
      expect(types(fromAfter.body.items)).not.toContain('login.succeeded');
      expectStatus(toAfter, 200);
      expect(types(toAfter.body.items)).toEqual(['login.succeeded', 'login.failed', 'signup']);
    });

    it("from and to without an offset are not read in the server's time zone (UTC, as a date alone, or refused)", async () => {
      const t2 = at['login.succeeded']!.createdAt;
      const naive = (iso: string) => iso.slice(0, -1); // the same digits without the Z
      const saved = process.env.TZ;
      process.env.TZ = 'America/New_York'; // a server not on UTC (Node reads TZ again when it changes)
      try {
        const res = await get({ userId: a.id, from: naive(t2), to: naive(shifted(t2, 1)), limit: 100 }).set(admin.auth);
        if (res.status === 400) {
          expectError(res, 400, 'VALIDATION_FAILED');
          return;
        }
        expectStatus(res, 200);
        expect(types(res.body.items)).toEqual(['login.succeeded']);
      } finally {
        if (saved === undefined) delete process.env.TZ;
        else process.env.TZ = saved;
      }
    });

    it('from and to in other ISO 8601 forms: an offset, no milliseconds, a date', async () => {
      const t2 = at['login.succeeded']!.createdAt;
      // The same instant written with a +02:00 offset.
      const local = shifted(t2, 2 * 3600_000).replace('Z', '+02:00');
      expect(types(await all({ userId: a.id, from: local, to: shifted(t2, 1) }))).toEqual(['login.succeeded']);
      expect(types(await all({ userId: a.id, to: local }))).toEqual(['login.failed', 'signup']);
      // Whole seconds: T2 is in the second that starts at its floor.
      const second = `${t2.slice(0, 19)}Z`;
      expect(types(await all({ userId: a.id, from: second, to: shifted(second, 1000) }))).toEqual(['login.succeeded']);
      expect(types(await all({ userId: a.id, from: '2000-01-01' }))).toHaveLength(7);
      expect(await all({ userId: a.id, to: '2000-01-01T00:00:00Z' })).toEqual([]);
      expect(
        types(await all({ userId: a.id, from: '1970-01-01T00:00:00Z', to: '9999-12-31T23:59:59.999Z' })),
      ).toHaveLength(7);
    });

    it('combines every filter with AND', async () => {
      const from = at['login.failed']!.createdAt;
      const to = at['account.enabled']!.createdAt;
      expect(types(await all({ userId: a.id, type: 'login.*,account.*,logout', from, to }))).toEqual([
        'account.disabled',
        'logout',
        'login.succeeded',
        'login.failed',
      ]);
      expect(types(await all({ userId: a.id, actorId: admin.id, type: 'account.*', from, to }))).toEqual([
        'account.disabled',
      ]);
      expect(await all({ userId: b.id, actorId: admin.id })).toEqual([]);
      expect(await all({ userId: a.id, type: 'login.*', from: at['password.changed']!.createdAt })).toEqual([]);
    });
  });

  describe('pages', () => {
    it('default 20 per page; limit 1 and 100', async () => {
      const total = await t.prisma.auditEvent.count();
      expect(total).toBeGreaterThan(20);
      const first = await page();
      expect(first.items).toHaveLength(20);
      expect(typeof first.nextCursor).toBe('string');
      const one = await page({ limit: 1 });
      expect(one.items).toHaveLength(1);
      expect(one.items[0]).toEqual(first.items[0]);
      expect((await page({ limit: 100 })).items).toHaveLength(Math.min(100, total));
    });

    it('walks every event exactly once, newest first, with nextCursor null at the end', async () => {
      const expected = (await t.prisma.auditEvent.findMany({ select: { id: true } })).map((e) => e.id);
      const pages = await walk(page, { limit: 7 });
      const items = pages.flatMap((p) => p.items);
      expect(pages.length).toBe(Math.ceil(expected.length / 7));
      pages.slice(0, -1).forEach((p) => expect(p.items).toHaveLength(7));
      expect(pages.at(-1)!.nextCursor).toBeNull();
      expect(new Set(items.map((e) => e.id)).size).toBe(items.length);
      expect(items.map((e) => e.id).sort()).toEqual([...expected].sort());
      expectNewestFirst(items);
    });

    it('shows each event once while new events are recorded between page fetches (they are newer)', async () => {
      const before = (await t.prisma.auditEvent.findMany({ select: { id: true } })).map((e) => e.id);
      const victim = await signup(t);
      const existing = [...before, ...(await all({ userId: victim.id })).map((e) => e.id)];
      const pages = await walk(page, { limit: 5 }, async () => {
        t.clock.advance(1);
        await wrongLogin(victim.username);
      });
      const ids = pages.flatMap((p) => p.items.map((e) => e.id));
      expect(new Set(ids).size).toBe(ids.length);
      expect([...ids].sort()).toEqual([...existing].sort());
      expectNewestFirst(pages.flatMap((p) => p.items));
      // They were recorded, and the next walk sees them.
      expect((await all({ userId: victim.id, type: 'login.failed' })).length).toBe(pages.length);
    });

    it('holds when many events share one instant: the id breaks the tie', async () => {
      const u = await signup(t);
      t.clock.freeze();
      try {
        t.clock.advance(1);
        for (let i = 0; i < 23; i++) await wrongLogin(u.username);
      } finally {
        t.clock.unfreeze();
      }
      const rows = await t.prisma.auditEvent.findMany({ where: { userId: u.id, type: 'login.failed' } });
      expect(rows).toHaveLength(23);
      expect(new Set(rows.map((r) => r.createdAt.getTime())).size).toBe(1);

      for (const limit of [1, 4, 22, 23]) {
        const pages = await walk(page, { userId: u.id, type: 'login.failed', limit });
        const items = pages.flatMap((p) => p.items);
        expect(pages.length).toBe(Math.ceil(23 / limit));
        expect(items.map((e) => e.id)).toEqual(rows.map((r) => r.id).toSorted((x, y) => (x < y ? 1 : -1)));
        expectNewestFirst(items);
      }
      // The same instant in a wider walk: the signup comes after all 23.
      const pages = await walk(page, { userId: u.id, limit: 5 });
      expect(pages.flatMap((p) => p.items).map((e) => e.type)).toEqual([...Array(23).fill('login.failed'), 'signup']);
    });

    it('a filter keeps applying on the following pages', async () => {
      const pages = await walk(page, { type: 'login.*', limit: 3 });
      const items = pages.flatMap((p) => p.items);
      expect(items.length).toBeGreaterThan(6);
      expect(items.every((e) => e.type.startsWith('login.'))).toBe(true);
      expect(items.length).toBe(await t.prisma.auditEvent.count({ where: { type: { startsWith: 'login.' } } }));
    });
  });

  describe('validation: 400 VALIDATION_FAILED, never a 500', () => {
    const uuid = '6f1c2b1e-4b7a-4c1e-9a43-2d3f0a5b8c7d';
    const cursorOf = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const bad: Array<[string, Record<string, string | number>]> = [
      ['userId not a uuid', { userId: 'nope' }],
      ['userId a number', { userId: '123' }],
      ['userId one character short', { userId: uuid.slice(0, -1) }],
      ['userId empty', { userId: '' }],
      ['userId with SQL', { userId: `${uuid}' OR '1'='1` }],
      ['actorId not a uuid', { actorId: 'root' }],
      ['actorId empty', { actorId: '' }],
      ['type empty', { type: '' }],
      ['type upper case', { type: 'LOGIN.FAILED' }],
      ['type with a space', { type: 'login failed' }],
      ['type with a semicolon', { type: 'login.failed;drop' }],
      ['type %', { type: '%' }],
      ['type with %', { type: 'login.%' }],
      ['type family with _', { type: 'lo_in.*' }],
      ['type family _', { type: '_.*' }],
      ['type *', { type: '*' }],
      ['type .*', { type: '.*' }],
      ['type family of a family', { type: 'login.*.*' }],
      ['type with two dots', { type: 'a.b.c' }],
      ['type with a trailing dot', { type: 'login.' }],
      ['type with an empty entry', { type: 'login.failed,,logout' }],
      ['type with a trailing comma', { type: 'login.failed,' }],
      ['type with a leading comma', { type: ',login.failed' }],
      ['type of 21 entries', { type: Array.from({ length: 21 }, (_, i) => `t_${letter(i)}.x`).join(',') }],
      ['type of 1001 characters', { type: 'a'.repeat(1001) }],
      ['from not ISO', { from: 'yesterday' }],
      ['from a number', { from: '1764633600000' }],
      ['from empty', { from: '' }],
      ['from month 13', { from: '2026-13-01T00:00:00Z' }],
      ['from 2026-02-30', { from: '2026-02-30' }],
      ['from 2026-02-30T00:00:00Z', { from: '2026-02-30T00:00:00Z' }],
      ['from 2026-02-29 (not a leap year)', { from: '2026-02-29T12:00:00Z' }],
      ['from hour 24', { from: '2026-01-01T24:00:01Z' }],
      ['from year 0', { from: '0000-01-01T00:00:00Z' }],
      ['to year 0', { to: '0000-06-01T00:00:00.000Z' }],
      ['from year +275760', { from: '+275760-09-13T00:00:00.000Z' }],
      ['to year +275760', { to: '+275760-09-13T00:00:00.000Z' }],
      ['from year -1', { from: '-000001-01-01T00:00:00.000Z' }],
      ['to year 10000', { to: '10000-01-01T00:00:00Z' }],
      ['to not ISO', { to: 'now' }],
      ['from equal to to', { from: '2026-01-01T00:00:00Z', to: '2026-01-01T00:00:00Z' }],
      ['from after to', { from: '2026-01-02T00:00:00Z', to: '2026-01-01T00:00:00Z' }],
      ['from equal to to, written differently', { from: '2026-01-01T01:00:00+01:00', to: '2026-01-01T00:00:00.000Z' }],
      ['cursor garbage', { cursor: 'not a cursor!' }],
      ['cursor base64 of an object', { cursor: cursorOf({ a: 1 }) }],
      ['cursor with a non-UUID id', { cursor: cursorOf([new Date().toISOString(), 'nope']) }],
      ['cursor with a bad date', { cursor: cursorOf(['yesterday', uuid]) }],
      ['cursor in year 0', { cursor: cursorOf(['0000-01-01T00:00:00.000Z', uuid]) }],
      ['cursor in year +275760', { cursor: cursorOf(['+275760-09-13T00:00:00.000Z', uuid]) }],
      ['cursor on 2026-02-30', { cursor: cursorOf(['2026-02-30T00:00:00.000Z', uuid]) }],
      ['cursor overlong', { cursor: 'A'.repeat(500) }],
      ['limit 0', { limit: 0 }],
      ['limit 101', { limit: 101 }],
      ['limit -1', { limit: -1 }],
      ['limit 1.5', { limit: '1.5' }],
      ['limit abc', { limit: 'abc' }],
      ['an unknown parameter', { sort: 'createdAt' }],
    ];
    it.each(bad)('%s', async (_name, query) => {
      const res = await get(query).set(admin.auth);
      expectError(res, 400, 'VALIDATION_FAILED');
    });

    it.each([
      ['userId', `userId=${uuid}&userId=${uuid}`],
      ['type', 'type=login.failed&type=logout'],
      ['from', 'from=2026-01-01T00:00:00Z&from=2026-01-02T00:00:00Z'],
      ['cursor', 'cursor=a&cursor=b'],
      ['limit', 'limit=1&limit=2'],
    ])('a repeated %s parameter', async (_name, qs) => {
      const res = await t.http.get(`/audit-events?${qs}`).set(admin.auth);
      expectError(res, 400, 'VALIDATION_FAILED');
    });

    it.each([
      ['a date of year 1', 'from=0001-01-01'],
      ['the last day', 'to=9999-12-31'],
      ['an offset (+ sent as %2B)', 'from=2026-12-01T09:30:00%2B01:00'],
      ['a negative offset', 'to=2026-12-01T09:30:00-05:00'],
      ['minutes only', 'from=2026-12-01T09:30Z'],
    ])('accepts %s', async (_name, qs) => {
      const res = await t.http.get(`/audit-events?${qs}`).set(admin.auth);
      expect(res.status).toBe(200);
    });

    it('a valid cursor of another query is just a position', async () => {
      const first = await page({ limit: 2 });
      expect(first.nextCursor).not.toBeNull();
      const next = await page({ limit: 2, cursor: first.nextCursor!, type: 'signup' });
      expect(next.items.every((e) => e.type === 'signup')).toBe(true);
    });
  });
});
