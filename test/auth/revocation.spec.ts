import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { bearer, decodeJwt, login, refresh, refreshCookieOf, signup, type SignedUp } from '../support/factories.js';
import { es256KeyPair } from '../support/jwt.js';
import { persistentDatabase, startApp, type TestApp } from '../support/test-app.js';

const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
// One signing key for both apps of the restart test.
const ENV = { ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', ...ADMIN, JWT_KEYS: es256KeyPair().pem };
const rolesOf = (token: string) => [...(decodeJwt(token).payload.roles as string[])].sort();

describe('a role change takes effect on the next request', () => {
  let t: TestApp;
  let root: SignedUp;
  beforeAll(async () => {
    t = await startApp(ENV);
    root = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
  });
  afterAll(async () => t?.close());

  async function promoted(): Promise<SignedUp> {
    const u = await signup(t);
    await t.http
      .patch(`/users/${u.id}`)
      .set(root.auth)
      .send({ roles: ['user', 'admin'] })
      .expect(200);
    const fresh = await login(t, u.username, u.password);
    expect(rolesOf(fresh.accessToken)).toEqual(['admin', 'user']);
    return fresh;
  }

  it('a demoted admin cannot use the token from before the demotion to take the system over', async () => {
    const b = await promoted();
    await t.http.get('/users').set(b.auth).expect(200);
    await t.http
      .patch(`/users/${b.id}`)
      .set(root.auth)
      .send({ roles: ['user'] })
      .expect(200);

    // Every admin action of the attack, with B's old token: refused as a revoked token.
    for (const res of [
      await t.http.get('/users').set(b.auth),
      await t.http.get('/resources?scope=all').set(b.auth),
      await t.http
        .patch(`/users/${b.id}`)
        .set(b.auth)
        .send({ roles: ['user', 'admin'] }),
      await t.http.patch(`/users/${root.id}`).set(b.auth).send({ disabled: true }),
    ]) {
      expect(res.status).toBe(401);
      expect(res.body.code).toBe('INVALID_TOKEN');
    }
    const rootRow = await t.prisma.user.findUniqueOrThrow({ where: { id: root.id } });
    expect(rootRow.disabled).toBe(false);
    expect((await t.prisma.user.findUniqueOrThrow({ where: { id: b.id } })).roles).toEqual(['user']);

    // B's session lives on: the refresh gives a token with the roles now in the database.
    const refreshed = await refresh(t, b.refreshToken).expect(200);
    expect(rolesOf(refreshed.body.accessToken)).toEqual(['user']);
    await t.http.get('/users').set(bearer(refreshed.body.accessToken)).expect(403);
    await t.http.get('/users/me').set(bearer(refreshed.body.accessToken)).expect(200);
    expect(refreshCookieOf(refreshed)).toBeDefined();
  });

  it('a promotion also retires the old tokens, and the refresh brings the new role at once', async () => {
    const u = await signup(t);
    await t.http
      .patch(`/users/${u.id}`)
      .set(root.auth)
      .send({ roles: ['user', 'admin'] })
      .expect(200);
    await t.http.get('/users/me').set(u.auth).expect(401);
    // In the same second as the change: the token is signed once it would not be born revoked.
    const refreshed = await refresh(t, u.refreshToken).expect(200);
    expect(rolesOf(refreshed.body.accessToken)).toEqual(['admin', 'user']);
    await t.http.get('/users').set(bearer(refreshed.body.accessToken)).expect(200);
  });

  it('a PATCH that leaves the roles as they are revokes nothing', async () => {
    const u = await signup(t);
    await t.http
      .patch(`/users/${u.id}`)
      .set(root.auth)
      .send({ roles: ['user'] })
      .expect(200);
    await t.http.get('/users/me').set(u.auth).expect(200);
  });

  it('no login or refresh racing a demotion yields a working admin token', async () => {
    for (let round = 0; round < 4; round++) {
      const b = await promoted();
      const refreshCookies = [b.refreshToken];
      for (let i = 0; i < 5; i++) refreshCookies.push((await login(t, b.username, b.password)).refreshToken);
      const issued: string[] = [];
      let demoted = false;
      const racers = [
        // Logins and refreshes keep going until shortly after the demotion answered.
        ...Array.from({ length: 4 }, async () => {
          while (!demoted) {
            const res = await t.http.post('/auth/login').send({ username: b.username, password: b.password });
            if (res.status === 200) issued.push(res.body.accessToken as string);
          }
        }),
        ...refreshCookies.map(async (first) => {
          let cookie = first;
          while (!demoted) {
            const res = await refresh(t, cookie);
            if (res.status !== 200) return;
            issued.push(res.body.accessToken as string);
            cookie = refreshCookieOf(res)!;
          }
        }),
      ];
      await new Promise((r) => setTimeout(r, 50 + round * 100));
      await t.http
        .patch(`/users/${b.id}`)
        .set(root.auth)
        .send({ roles: ['user'] })
        .expect(200);
      await new Promise((r) => setTimeout(r, 200));
      demoted = true;
      await Promise.all(racers);
      const stale = [];
      for (const token of issued.filter((tk) => rolesOf(tk).includes('admin'))) {
        const status = (await t.http.get('/users').set(bearer(token))).status;
        if (status !== 401) stale.push({ status, iat: decodeJwt(token).payload.iat });
      }
      expect(stale).toEqual([]);
    }
  });

  it('a login right after a role change gets a working token', async () => {
    const b = await promoted();
    await t.http
      .patch(`/users/${b.id}`)
      .set(root.auth)
      .send({ roles: ['user'] })
      .expect(200);
    const again = await login(t, b.username, b.password);
    await t.http.get('/users/me').set(again.auth).expect(200);
    expect(rolesOf(again.accessToken)).toEqual(['user']);
  });
});

describe('revocation survives a restart without Redis', () => {
  it('logout, disable and password change stay revoked after a restart; untouched tokens still work', async () => {
    const db = await persistentDatabase();
    try {
      const first = await startApp(ENV, { databaseUrl: db.url });
      let tokens: {
        loggedOut: SignedUp;
        disabled: SignedUp;
        otherSession: SignedUp;
        changer: SignedUp;
        control: SignedUp;
      };
      try {
        const admin = await login(first, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
        const loggedOut = await signup(first);
        await first.http.post('/auth/logout').set(loggedOut.auth).expect(204);
        const disabled = await signup(first);
        await first.http.patch(`/users/${disabled.id}`).set(admin.auth).send({ disabled: true }).expect(200);
        const changer = await signup(first);
        const otherSession = await login(first, changer.username, changer.password);
        await first.http
          .post('/users/me/password')
          .set(changer.auth)
          .send({ currentPassword: changer.password, newPassword: 'a brand new password' })
          .expect(204);
        const control = await signup(first);
        tokens = { loggedOut, disabled, otherSession, changer, control };
        for (const revoked of [loggedOut, disabled, otherSession]) {
          await first.http.get('/users/me').set(revoked.auth).expect(401);
        }
      } finally {
        await first.close();
      }

      const second = await startApp(ENV, { databaseUrl: db.url });
      try {
        // The keys survived the restart (a token nobody revoked still works) ...
        await second.http.get('/users/me').set(tokens.control.auth).expect(200);
        await second.http.get('/users/me').set(tokens.changer.auth).expect(200);
        // ... and so did every revocation.
        for (const revoked of [tokens.loggedOut, tokens.disabled, tokens.otherSession]) {
          const res = await second.http.get('/users/me').set(revoked.auth);
          expect(res.status).toBe(401);
          expect(res.body.code).toBe('INVALID_TOKEN');
        }
        await second.http.post('/resources').set(tokens.disabled.auth).send({ title: 'still here?' }).expect(401);
      } finally {
        await second.close();
      }
    } finally {
      await db.drop();
    }
  }, 180_000);
});
