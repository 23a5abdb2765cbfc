import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FORM, GRANT, basic, form, type Created } from '../clients/oauth-helpers.js';
import { enrol } from '../mfa/mfa-helpers.js';
import { ROOMY_LIMITS } from '../support/env.js';
import {
  decodeJwt,
  login,
  refresh,
  refreshCookie,
  refreshCookieOf,
  signup,
  type SignedUp,
} from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { WsClient, listen } from './ws-helpers.js';

/**
 * Revocation of real-time connections (contract v2 §F test 5, on one instance; the
 * two-instance case is in instances.spec.ts): every way a session, user or client secret
 * is signed out closes its sockets with 4410 SESSION_REVOKED within 1 s, and only those;
 * the user's other sockets hear session.revoked / session.created.
 */

const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
const GRACE = 2;
const ENV = { ...ROOMY_LIMITS, ...ADMIN, LOGIN_RATE_LIMIT: '1000', REFRESH_REUSE_GRACE: String(GRACE) };

const REVOKED = { code: 4410, reason: 'SESSION_REVOKED' };
/** The contract's bound on how long a revocation may take to close a socket. */
const WITHIN_MS = 1000;

const sidOf = (token: string) => decodeJwt(token).payload.sid as string;

describe('WebSocket revocation', () => {
  let t: TestApp;
  let url: string;
  let admin: SignedUp;
  const clients: WsClient[] = [];

  beforeAll(async () => {
    t = await startApp(ENV);
    url = await listen(t);
    admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
  });
  afterAll(async () => t?.close());
  afterEach(() => {
    t.clock.unfreeze();
    for (const c of clients.splice(0)) if (!c.closed) c.ws.terminate();
  });

  /** An authenticated socket of this test (terminated after it). */
  async function authed(token: string): Promise<WsClient> {
    const c = await WsClient.open(url);
    clients.push(c);
    await c.authenticate(token);
    return c;
  }

  /** A round trip: the socket is open and has every frame sent to it before (WsClient.probe). */
  const probe = (c: WsClient): Promise<void> => c.probe();

  /** Expects each socket to close with 4410 within 1 s of now. */
  async function expectRevoked(...sockets: WsClient[]): Promise<void> {
    const closes = await Promise.all(sockets.map((s) => s.closing(WITHIN_MS)));
    for (const close of closes) expect(close).toEqual(REVOKED);
  }

  /** Expects these sockets still open (a round trip on each). */
  async function expectOpen(...sockets: WsClient[]): Promise<void> {
    for (const s of sockets) {
      await probe(s);
      expect(s.closed).toBeNull();
    }
  }

  /** A user with two sessions: `s1` (the signup) and `s2` (a login). */
  async function twoSessions(): Promise<{ s1: SignedUp; s2: SignedUp }> {
    const s1 = await signup(t);
    const s2 = await login(t, s1.username, s1.password);
    return { s1, s2 };
  }

  it("HTTP logout (bearer) closes the session's sockets 4410; the user's other session hears session.revoked", async () => {
    const { s1, s2 } = await twoSessions();
    const w1 = await authed(s1.accessToken);
    const w1b = await authed(s1.accessToken);
    const w2 = await authed(s2.accessToken);
    await t.http.post('/auth/logout').set(s1.auth).expect(204);
    await expectRevoked(w1, w1b);
    expect((await w2.next('session.revoked')).data).toEqual({ id: sidOf(s1.accessToken) });
    await expectOpen(w2);
  });

  it("HTTP logout with the refresh cookie alone closes the session's socket 4410", async () => {
    const u = await signup(t);
    const w = await authed(u.accessToken);
    await t.http.post('/auth/logout').set('Cookie', refreshCookie(u.refreshToken)).expect(204);
    await expectRevoked(w);
  });

  it("logout-all closes every socket of the user's sessions, and not another user's", async () => {
    const { s1, s2 } = await twoSessions();
    const other = await signup(t);
    const sockets = [await authed(s1.accessToken), await authed(s1.accessToken), await authed(s2.accessToken)];
    const bystander = await authed(other.accessToken);
    await t.http.post('/auth/logout-all').set(s1.auth).expect(204);
    await expectRevoked(...sockets);
    await expectOpen(bystander);
    expect(bystander.all('session.revoked')).toEqual([]);
  });

  it("DELETE /auth/sessions/:id closes that session's socket 4410; the caller's hears session.revoked and stays", async () => {
    const { s1, s2 } = await twoSessions();
    const w1 = await authed(s1.accessToken);
    const w2 = await authed(s2.accessToken);
    await t.http
      .delete(`/auth/sessions/${sidOf(s2.accessToken)}`)
      .set(s1.auth)
      .expect(204);
    await expectRevoked(w2);
    expect((await w1.next('session.revoked')).data).toEqual({ id: sidOf(s2.accessToken) });
    await expectOpen(w1);
  });

  it("refresh-token reuse detection closes every socket of the session 4410, and not the other session's", async () => {
    const { s1, s2 } = await twoSessions();
    const rotated = await refresh(t, s1.refreshToken).expect(200);
    expect(refreshCookieOf(rotated)).not.toBe(s1.refreshToken);
    const oldToken = await authed(s1.accessToken);
    const newToken = await authed(rotated.body.accessToken as string);
    const w2 = await authed(s2.accessToken);
    t.clock.advance(GRACE + 1);
    const reuse = await refresh(t, s1.refreshToken);
    expect({ status: reuse.status, code: reuse.body.code }).toEqual({ status: 401, code: 'REFRESH_TOKEN_REUSED' });
    await expectRevoked(oldToken, newToken);
    expect((await w2.next('session.revoked')).data).toEqual({ id: sidOf(s1.accessToken) });
    await expectOpen(w2);
  });

  it('an admin disabling the user closes all their sockets 4410', async () => {
    const { s1, s2 } = await twoSessions();
    const other = await signup(t);
    const sockets = [await authed(s1.accessToken), await authed(s2.accessToken)];
    const bystander = await authed(other.accessToken);
    await t.http.patch(`/users/${s1.id}`).set(admin.auth).send({ disabled: true }).expect(200);
    await expectRevoked(...sockets);
    await expectOpen(bystander);
  });

  it("an admin ending one session (DELETE /users/:id/sessions/:sid) closes its sockets 4410; the user's other session hears session.revoked", async () => {
    const { s1, s2 } = await twoSessions();
    const w1 = await authed(s1.accessToken);
    const w2 = await authed(s2.accessToken);
    await t.http
      .delete(`/users/${s1.id}/sessions/${sidOf(s2.accessToken)}`)
      .set(admin.auth)
      .expect(204);
    await expectRevoked(w2);
    expect((await w1.next('session.revoked')).data).toEqual({ id: sidOf(s2.accessToken) });
    await expectOpen(w1);
  });

  it("an admin ending every session of a user (DELETE /users/:id/sessions) closes all their sockets 4410, nobody else's", async () => {
    const { s1, s2 } = await twoSessions();
    const other = await signup(t);
    const sockets = [await authed(s1.accessToken), await authed(s2.accessToken)];
    const bystander = await authed(other.accessToken);
    await t.http.delete(`/users/${s1.id}/sessions`).set(admin.auth).expect(204);
    await expectRevoked(...sockets);
    await expectOpen(bystander);
  });

  it('deleting the account (DELETE /users/me) closes all its sockets 4410', async () => {
    const { s1, s2 } = await twoSessions();
    const sockets = [await authed(s1.accessToken), await authed(s2.accessToken)];
    await t.http.delete('/users/me').set(s1.auth).send({ password: s1.password }).expect(204);
    await expectRevoked(...sockets);
  });

  describe('client tokens', () => {
    async function client(): Promise<Created> {
      const res = await t.http
        .post('/oauth/clients')
        .set(admin.auth)
        .send({ name: 'event listener', allowedScopes: ['events:read'] })
        .expect(201);
      return res.body as Created;
    }
    async function tokenOf(c: Created, secret: string): Promise<string> {
      const res = await t.http
        .post('/oauth/token')
        .set('Content-Type', FORM)
        .set(basic(c.client.clientId, secret))
        .send(form(GRANT));
      expect({ status: res.status, body: res.text }).toMatchObject({ status: 200 });
      return (res.body as { access_token: string }).access_token;
    }
    async function secondSecret(c: Created): Promise<{ id: string; value: string }> {
      return (await t.http.post(`/oauth/clients/${c.client.id}/secrets`).set(admin.auth).send({}).expect(201)).body as {
        id: string;
        value: string;
      };
    }

    it("revoking a secret closes its token's socket 4410, not another secret's", async () => {
      const c = await client();
      const second = await secondSecret(c);
      const w1 = await authed(await tokenOf(c, c.secret.value));
      const w2 = await authed(await tokenOf(c, second.value));
      await t.http.delete(`/oauth/clients/${c.client.id}/secrets/${c.secret.id}`).set(admin.auth).expect(204);
      await expectRevoked(w1);
      await expectOpen(w2);
    });

    it("disabling the client closes every secret's sockets 4410", async () => {
      const c = await client();
      const second = await secondSecret(c);
      const w1 = await authed(await tokenOf(c, c.secret.value));
      const w2 = await authed(await tokenOf(c, second.value));
      await t.http.patch(`/oauth/clients/${c.client.id}`).set(admin.auth).send({ disabled: true }).expect(200);
      await expectRevoked(w1, w2);
    });
  });

  it("a password change closes the other sessions' sockets 4410 and keeps the caller's, which still gets events", async () => {
    const { s1, s2 } = await twoSessions();
    const s3 = await login(t, s1.username, s1.password);
    const mine = [await authed(s1.accessToken), await authed(s1.accessToken)];
    const others = [await authed(s2.accessToken), await authed(s3.accessToken)];
    await t.http
      .post('/users/me/password')
      .set(s1.auth)
      .send({ currentPassword: s1.password, newPassword: 'a brand new passphrase' })
      .expect(204);
    await expectRevoked(...others);
    await expectOpen(...mine);
    for (const w of mine) {
      const told = w.all('session.revoked').map((f) => f.data.id as string);
      expect(new Set(told)).toEqual(new Set([sidOf(s2.accessToken), sidOf(s3.accessToken)]));
      expect(told).toHaveLength(2);
    }
    // The caller's sockets live on: events still arrive.
    const res = await t.http.post('/resources').set(s1.auth).send({ title: 'after the change' }).expect(201);
    for (const w of mine) expect((await w.next('resource.created')).data).toEqual(res.body);
  });

  it("enabling MFA closes the other sessions' sockets 4410 and keeps the caller's", async () => {
    t.clock.freeze(); // TOTP codes: no step may end in the middle
    const { s1, s2 } = await twoSessions();
    const mine = await authed(s1.accessToken);
    const other = await authed(s2.accessToken);
    await enrol(t, s1);
    await expectRevoked(other);
    expect((await mine.next('session.revoked')).data).toEqual({ id: sidOf(s2.accessToken) });
    await expectOpen(mine);
  });

  it('an admin role change closes 4401 INVALID_TOKEN (the session lives on); a refreshed token reconnects', async () => {
    const { s1, s2 } = await twoSessions();
    const sockets = [await authed(s1.accessToken), await authed(s2.accessToken)];
    await t.http
      .patch(`/users/${s1.id}`)
      .set(admin.auth)
      .send({ roles: ['user', 'admin'] })
      .expect(200);
    const closes = await Promise.all(sockets.map((s) => s.closing(WITHIN_MS)));
    for (const close of closes) expect(close).toEqual({ code: 4401, reason: 'INVALID_TOKEN' });
    const refreshed = await refresh(t, s1.refreshToken).expect(200);
    const token = refreshed.body.accessToken as string;
    expect(decodeJwt(token).payload.roles).toEqual(expect.arrayContaining(['user', 'admin']));
    const again = await authed(token);
    expect(again.all('auth.ok')[0]!.data).toMatchObject({ userId: s1.id, sessionId: sidOf(s1.accessToken) });
  });

  it("tells the user's sockets session.created when they sign in elsewhere, and nobody else", async () => {
    const u = await signup(t);
    const other = await signup(t);
    const w = await authed(u.accessToken);
    const bystander = await authed(other.accessToken);
    const res = await t.http
      .post('/auth/login')
      .set('User-Agent', 'second-device/1.0')
      .send({ username: u.username, password: u.password })
      .expect(200);
    const sid = sidOf(res.body.accessToken as string);
    const created = await w.next('session.created');
    const listed = (await t.http.get('/auth/sessions').set(u.auth).expect(200)).body as Array<Record<string, unknown>>;
    const { current, ...item } = listed.find((s) => s.id === sid)!;
    expect(current).toBe(false);
    expect(created.data).toEqual(item);
    expect(created.data).toMatchObject({ id: sid, userAgent: 'second-device/1.0' });
    await expectOpen(bystander);
    expect(bystander.all('session.created')).toEqual([]);
  });
});
