import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { bearer, decodeJwt, login, protectedStatus, refresh, setCookiesOf, signup } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const sidOf = (accessToken: string) => decodeJwt(accessToken).payload.sid as string;

describe('sessions and logout', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS });
  });
  afterAll(async () => t?.close());

  describe('GET /auth/sessions', () => {
    it("lists the caller's live sessions, marking only the caller's own as current", async () => {
      const u = await signup(t);
      const phone = await t.http
        .post('/auth/login')
        .set('User-Agent', 'PhoneApp/1.0')
        .send({ username: u.username, password: u.password })
        .expect(200);
      const other = await signup(t); // someone else's sessions never show

      const res = await t.http.get('/auth/sessions').set(bearer(phone.body.accessToken)).expect(200);
      expect(res.body).toHaveLength(2);
      for (const s of res.body) {
        expect(Object.keys(s).sort()).toEqual([
          'createdAt',
          'current',
          'expiresAt',
          'id',
          'ip',
          'lastUsedAt',
          'userAgent',
        ]);
        expect(s.createdAt).toMatch(ISO);
        expect(s.lastUsedAt).toMatch(ISO);
        expect(s.expiresAt).toMatch(ISO);
        expect(Date.parse(s.expiresAt)).toBeGreaterThan(Date.parse(s.createdAt));
      }
      const current = res.body.filter((s: { current: boolean }) => s.current);
      expect(current).toHaveLength(1);
      expect(current[0].id).toBe(sidOf(phone.body.accessToken));
      expect(current[0].userAgent).toBe('PhoneApp/1.0');
      expect(res.body.map((s: { id: string }) => s.id).sort()).toEqual(
        [sidOf(u.accessToken), sidOf(phone.body.accessToken)].sort(),
      );
      expect(res.body.map((s: { id: string }) => s.id)).not.toContain(sidOf(other.accessToken));

      // Seen from the first session, the other one is current.
      const fromFirst = await t.http.get('/auth/sessions').set(u.auth).expect(200);
      expect(fromFirst.body.find((s: { current: boolean }) => s.current).id).toBe(sidOf(u.accessToken));
    });

    it('does not list revoked sessions', async () => {
      const u = await signup(t);
      const second = await login(t, u.username, u.password);
      await t.http.post('/auth/logout').set(second.auth).expect(204);
      const res = await t.http.get('/auth/sessions').set(u.auth).expect(200);
      expect(res.body.map((s: { id: string }) => s.id)).toEqual([sidOf(u.accessToken)]);
    });

    it('needs a bearer token', async () => {
      const res = await t.http.get('/auth/sessions');
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer realm=/);
    });
  });

  describe('DELETE /auth/sessions/:id', () => {
    it('answers 204 and kills that session at once: its access token gets 401 and its refresh fails', async () => {
      const u = await signup(t);
      const laptop = await login(t, u.username, u.password);
      expect(await protectedStatus(t, laptop.accessToken)).toBe(200); // verified (and cached) once
      await t.http
        .delete(`/auth/sessions/${sidOf(laptop.accessToken)}`)
        .set(u.auth)
        .expect(204);
      expect(await protectedStatus(t, laptop.accessToken)).toBe(401);
      expect((await refresh(t, laptop.refreshToken)).status).toBe(401);
      // The caller's own session is untouched.
      expect(await protectedStatus(t, u.accessToken)).toBe(200);
      await refresh(t, u.refreshToken).expect(200);
    });

    it('records session.revoked in the audit log, once, with the session that did it', async () => {
      const u = await signup(t);
      const laptop = await login(t, u.username, u.password);
      const sid = sidOf(laptop.accessToken);
      for (let i = 0; i < 2; i++) await t.http.delete(`/auth/sessions/${sid}`).set(u.auth).expect(204);
      const events = await t.prisma.auditEvent.findMany({ where: { type: 'session.revoked', sessionId: sid } });
      expect(events).toHaveLength(1);
      expect(events[0]!.userId).toBe(u.id);
      expect(events[0]!.details).toEqual({ by: sidOf(u.accessToken) });
    });

    it("answers 404 for another user's session and leaves it alone", async () => {
      const u = await signup(t);
      const victim = await signup(t);
      const res = await t.http.delete(`/auth/sessions/${sidOf(victim.accessToken)}`).set(u.auth);
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ statusCode: 404, error: 'Not Found', code: 'NOT_FOUND' });
      expect(await protectedStatus(t, victim.accessToken)).toBe(200);
      await refresh(t, victim.refreshToken).expect(200);
    });

    it.each([
      ['a non-UUID id', 'not-a-uuid'],
      ['an id that looks like SQL', encodeURIComponent("1' OR '1'='1")],
      ['an unknown UUID', randomUUID()],
    ])('answers 404 for %s', async (_label, id) => {
      const u = await signup(t);
      const res = await t.http.delete(`/auth/sessions/${id}`).set(u.auth);
      expect(res.status).toBe(404);
      expect(res.body.code).toBe('NOT_FOUND');
    });

    it('needs a bearer token', async () => {
      const u = await signup(t);
      expect((await t.http.delete(`/auth/sessions/${sidOf(u.accessToken)}`)).status).toBe(401);
      expect(await protectedStatus(t, u.accessToken)).toBe(200);
    });
  });

  describe('POST /auth/logout', () => {
    it('answers 204 with the cookie cleared, revokes the session, and is idempotent', async () => {
      const u = await signup(t);
      expect(await protectedStatus(t, u.accessToken)).toBe(200);
      const first = await t.http.post('/auth/logout').set('Cookie', `refresh_token=${u.refreshToken}`).expect(204);
      expect(first.text).toBe('');
      expect(setCookiesOf(first)).toEqual([expect.stringMatching(/^refresh_token=; Max-Age=0; Path=\/auth; HttpOnly/)]);
      expect(await protectedStatus(t, u.accessToken)).toBe(401);
      expect((await refresh(t, u.refreshToken)).status).toBe(401);

      const second = await t.http
        .post('/auth/logout')
        .set('Cookie', `refresh_token=${u.refreshToken}`)
        .set(u.auth)
        .expect(204);
      expect(setCookiesOf(second)).toEqual([expect.stringMatching(/^refresh_token=; Max-Age=0;/)]);
    });

    it('revokes the session of a bearer token alone (no cookie)', async () => {
      const u = await signup(t);
      await t.http.post('/auth/logout').set(u.auth).expect(204);
      expect(await protectedStatus(t, u.accessToken)).toBe(401);
      expect((await refresh(t, u.refreshToken)).status).toBe(401);
    });

    it('revokes the session of an expired bearer token too', async () => {
      const u = await signup(t);
      t.clock.advance(901);
      await t.http.post('/auth/logout').set(u.auth).expect(204);
      expect((await refresh(t, u.refreshToken)).status).toBe(401);
    });

    it('answers 204 with neither cookie nor token, or with garbage', async () => {
      await t.http.post('/auth/logout').expect(204);
      await t.http
        .post('/auth/logout')
        .set('Cookie', 'refresh_token=garbage')
        .set('Authorization', 'Bearer x.y.z')
        .expect(204);
    });

    it('touches only the session logged out', async () => {
      const u = await signup(t);
      const other = await login(t, u.username, u.password);
      await t.http.post('/auth/logout').set('Cookie', `refresh_token=${u.refreshToken}`).expect(204);
      expect(await protectedStatus(t, other.accessToken)).toBe(200);
      await refresh(t, other.refreshToken).expect(200);
    });
  });

  describe('POST /auth/logout-all', () => {
    it("answers 204 and revokes every session of the caller, access and refresh tokens alike, and no one else's", async () => {
      const u = await signup(t);
      const b = await login(t, u.username, u.password);
      const c = await login(t, u.username, u.password);
      const bystander = await signup(t);
      for (const s of [u, b, c]) expect(await protectedStatus(t, s.accessToken)).toBe(200);

      const res = await t.http.post('/auth/logout-all').set(b.auth).expect(204);
      expect(setCookiesOf(res)).toEqual([expect.stringMatching(/^refresh_token=; Max-Age=0;/)]);
      for (const s of [u, b, c]) {
        expect(await protectedStatus(t, s.accessToken)).toBe(401);
        expect((await refresh(t, s.refreshToken)).status).toBe(401);
      }
      expect(await protectedStatus(t, bystander.accessToken)).toBe(200);
      // A fresh login works again.
      const again = await login(t, u.username, u.password);
      expect(await protectedStatus(t, again.accessToken)).toBe(200);
    });

    it('needs a valid bearer token', async () => {
      const res = await t.http.post('/auth/logout-all');
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
      const u = await signup(t);
      await t.http.post('/auth/logout-all').set('Cookie', `refresh_token=${u.refreshToken}`).expect(401);
      expect(await protectedStatus(t, u.accessToken)).toBe(200);
    });
  });
});
