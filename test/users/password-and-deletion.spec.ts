import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { bearer, createResource, login, refresh, refreshCookieOf, signup } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

const NEW_PASSWORD = 'a brand new passphrase';

describe('/users/me: password change and account deletion', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000' });
  });
  afterAll(async () => t?.close());

  const loginStatus = async (username: string, password: string) =>
    (await t.http.post('/auth/login').send({ username, password })).status;

  describe('POST /users/me/password', () => {
    it('answers 403 INVALID_PASSWORD to a wrong current password and keeps the old password', async () => {
      const u = await signup(t);
      const res = await t.http
        .post('/users/me/password')
        .set(u.auth)
        .send({ currentPassword: 'not my password', newPassword: NEW_PASSWORD })
        .expect(403);
      expect(res.body).toMatchObject({ statusCode: 403, error: 'Forbidden', code: 'INVALID_PASSWORD' });
      expect(await loginStatus(u.username, u.password)).toBe(200);
      expect(await loginStatus(u.username, NEW_PASSWORD)).toBe(401);
      // The caller's session is untouched.
      await t.http.get('/users/me').set(u.auth).expect(200);
    });

    const badBodies: Array<[string, Record<string, unknown>]> = [
      ['a 7-character new password', { newPassword: 'seven77' }],
      ['a 129-character new password', { newPassword: 'p'.repeat(129) }],
      ['a missing new password', { newPassword: undefined }],
      ['a new password that is not a string', { newPassword: 12345678 }],
      ['a missing current password', { currentPassword: undefined }],
      ['an unknown property', { roles: ['admin'] }],
    ];
    it.each(badBodies)('answers 400 to %s and keeps the old password', async (_name, overrides) => {
      const u = await signup(t);
      const res = await t.http
        .post('/users/me/password')
        .set(u.auth)
        .send({ currentPassword: u.password, newPassword: NEW_PASSWORD, ...overrides })
        .expect(400);
      expect(res.body).toMatchObject({ statusCode: 400, code: 'VALIDATION_FAILED' });
      expect(await loginStatus(u.username, u.password)).toBe(200);
    });

    it('accepts new passwords of exactly 8 and exactly 128 characters', async () => {
      for (const newPassword of ['eight888', 'q'.repeat(128)]) {
        const u = await signup(t);
        await t.http
          .post('/users/me/password')
          .set(u.auth)
          .send({ currentPassword: u.password, newPassword })
          .expect(204);
        expect(await loginStatus(u.username, newPassword)).toBe(200);
        expect(await loginStatus(u.username, u.password)).toBe(401);
      }
    });

    it('answers 401 without a token', async () => {
      await t.http
        .post('/users/me/password')
        .send({ currentPassword: 'whatever1', newPassword: NEW_PASSWORD })
        .expect(401);
    });

    it('answers 204; the old password stops working and the new one logs in', async () => {
      const u = await signup(t);
      const res = await t.http
        .post('/users/me/password')
        .set(u.auth)
        .send({ currentPassword: u.password, newPassword: NEW_PASSWORD })
        .expect(204);
      expect(res.text).toBe('');

      const old = await t.http.post('/auth/login').send({ username: u.username, password: u.password }).expect(401);
      expect(old.body.code).toBe('INVALID_CREDENTIALS');
      const fresh = await login(t, u.username, NEW_PASSWORD);
      expect(fresh.id).toBe(u.id);
      await t.http.get('/users/me').set(fresh.auth).expect(200);
    });

    it("revokes every other session at once and keeps the caller's session working", async () => {
      const caller = await signup(t);
      const other1 = await login(t, caller.username, caller.password);
      const other2 = await login(t, caller.username, caller.password);
      // All three sessions work before the change.
      for (const s of [caller, other1, other2]) await t.http.get('/users/me').set(s.auth).expect(200);

      await t.http
        .post('/users/me/password')
        .set(caller.auth)
        .send({ currentPassword: caller.password, newPassword: NEW_PASSWORD })
        .expect(204);

      // Other sessions: access tokens refused right away, refresh tokens dead.
      for (const s of [other1, other2]) {
        const res = await t.http.get('/users/me').set(s.auth).expect(401);
        expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
        const r = await refresh(t, s.refreshToken);
        expect(r.status).toBe(401);
        expect(r.body.code).toMatch(/^REFRESH_TOKEN_/);
      }

      // The caller's session: its access token still works, and so does its refresh.
      await t.http.get('/users/me').set(caller.auth).expect(200);
      const r = await refresh(t, caller.refreshToken).expect(200);
      expect(refreshCookieOf(r)).toBeTruthy();
      await t.http.get('/users/me').set(bearer(r.body.accessToken)).expect(200);
      const sessions = await t.http.get('/auth/sessions').set(bearer(r.body.accessToken)).expect(200);
      expect(sessions.body).toHaveLength(1);
      expect(sessions.body[0].current).toBe(true);
    });

    it('does not touch the sessions of other users', async () => {
      const u = await signup(t);
      const bystander = await signup(t);
      await t.http
        .post('/users/me/password')
        .set(u.auth)
        .send({ currentPassword: u.password, newPassword: NEW_PASSWORD })
        .expect(204);
      await t.http.get('/users/me').set(bystander.auth).expect(200);
      await refresh(t, bystander.refreshToken).expect(200);
    });
  });

  describe('DELETE /users/me', () => {
    it('answers 403 INVALID_PASSWORD to a wrong password and deletes nothing', async () => {
      const u = await signup(t);
      const resource = await createResource(t, u.auth, { visibility: 'public' });
      const res = await t.http.delete('/users/me').set(u.auth).send({ password: 'not my password' }).expect(403);
      expect(res.body).toMatchObject({ statusCode: 403, code: 'INVALID_PASSWORD' });
      await t.http.get('/users/me').set(u.auth).expect(200);
      await t.http.get(`/resources/${resource.id}`).expect(200);
      expect(await loginStatus(u.username, u.password)).toBe(200);
    });

    it('answers 400 without a password or with unknown properties', async () => {
      const u = await signup(t);
      await t.http.delete('/users/me').set(u.auth).send({}).expect(400);
      await t.http.delete('/users/me').set(u.auth).send({ password: u.password, force: true }).expect(400);
      await t.http.get('/users/me').set(u.auth).expect(200);
    });

    it('answers 401 without a token', async () => {
      await t.http.delete('/users/me').send({ password: 'whatever1' }).expect(401);
    });

    it('answers 204 and removes the user, their sessions and their resources', async () => {
      const u = await signup(t);
      const second = await login(t, u.username, u.password);
      const pub = await createResource(t, u.auth, { visibility: 'public' });
      const priv = await createResource(t, u.auth, { visibility: 'private' });
      const bystander = await signup(t);
      const theirs = await createResource(t, bystander.auth, { visibility: 'public' });
      await t.http.get(`/resources/${pub.id}`).expect(200);

      const res = await t.http.delete('/users/me').set(u.auth).send({ password: u.password }).expect(204);
      expect(res.text).toBe('');

      // Every access token of the user is refused at once, and no refresh works.
      for (const s of [u, second]) {
        const denied = await t.http.get('/users/me').set(s.auth).expect(401);
        expect(denied.headers['www-authenticate']).toMatch(/^Bearer/);
        expect((await refresh(t, s.refreshToken)).status).toBe(401);
      }
      // The account is gone: no login.
      const failed = await t.http.post('/auth/login').send({ username: u.username, password: u.password }).expect(401);
      expect(failed.body.code).toBe('INVALID_CREDENTIALS');
      // Their resources are gone, the public one included.
      await t.http.get(`/resources/${pub.id}`).expect(404);
      await t.http.get(`/resources/${pub.id}`).set(bystander.auth).expect(404);
      expect(await t.prisma.resource.count({ where: { id: { in: [pub.id, priv.id] } } })).toBe(0);
      expect(await t.prisma.session.count({ where: { userId: u.id } })).toBe(0);
      expect(await t.prisma.user.count({ where: { id: u.id } })).toBe(0);
      // Other users keep theirs.
      await t.http.get(`/resources/${theirs.id}`).expect(200);
      await t.http.get('/users/me').set(bystander.auth).expect(200);
      // The username is free again.
      const again = await signup(t, { username: u.username });
      expect(again.id).not.toBe(u.id);
    });

    it('five deletions at once with one token: one 204, the others 401, one account.deleted event', async () => {
      const u = await signup(t);
      const answers = await Promise.all(
        Array.from({ length: 5 }, () => t.http.delete('/users/me').set(u.auth).send({ password: u.password })),
      );
      const statuses = answers.map((r) => r.status).sort((a, b) => a - b);
      expect(statuses).toEqual([204, 401, 401, 401, 401]);
      for (const r of answers.filter((a) => a.status === 401)) {
        // Refused by the guard (the session revoked) or, once past it, because the account is gone.
        expect(['INVALID_TOKEN', 'UNAUTHORIZED']).toContain(r.body.code);
      }
      expect(await t.prisma.auditEvent.count({ where: { userId: u.id, type: 'account.deleted' } })).toBe(1);
      expect(await t.prisma.user.count({ where: { id: u.id } })).toBe(0);
    });

    it('a password change racing the deletion of its account is never answered 403 INVALID_PASSWORD (the password was right)', async () => {
      for (let round = 0; round < 3; round++) {
        const u = await signup(t);
        const [deleted, changed] = await Promise.all([
          t.http.delete('/users/me').set(u.auth).send({ password: u.password }),
          t.http
            .post('/users/me/password')
            .set(u.auth)
            .send({ currentPassword: u.password, newPassword: 'another good one' }),
        ]);
        expect(deleted.status).toBe(204);
        // Changed before the deletion (204), or refused because the account is gone (401).
        expect([204, 401]).toContain(changed.status);
        expect(await t.prisma.user.count({ where: { id: u.id } })).toBe(0);
      }
    });
  });
});
