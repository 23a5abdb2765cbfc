import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { login, refresh, refreshCookieOf, signup } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };

/**
 * A login verifies the password (bcrypt, tens of milliseconds) and only then opens the
 * session. A password change or a disable that lands in between must not leave a session
 * that escapes it: every session the racing logins got must be dead afterwards.
 */
describe('logins racing a password change or a disable', () => {
  let t: TestApp;
  beforeAll(async () => {
    // A real bcrypt cost, so that each login spends long enough between its check and its
    // insert for the change to land there.
    t = await startApp({ ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '10000', BCRYPT_COST: '8', ...ADMIN });
  });
  afterAll(async () => t?.close());

  /**
   * Fires `count` logins with this password, one every `everyMs`, and starts `change`
   * after the first ten: logins are then in flight on both sides of it, some reading the
   * account before the change commits and opening their session after it.
   */
  async function race(username: string, password: string, change: () => Promise<unknown>, count = 60, everyMs = 5) {
    const logins: Array<Promise<{ status: number; accessToken?: string; refreshToken?: string }>> = [];
    let changed: Promise<unknown> = Promise.resolve();
    for (let i = 0; i < count; i++) {
      if (i === 10) changed = change();
      logins.push(
        t.http
          .post('/auth/login')
          .send({ username, password })
          .then((res) => ({
            status: res.status,
            accessToken: res.body.accessToken,
            refreshToken: refreshCookieOf(res),
          })),
      );
      await new Promise((r) => setTimeout(r, everyMs));
    }
    await changed;
    return Promise.all(logins);
  }

  it('no session opened with the old password survives the change', async () => {
    for (let round = 0; round < 5; round++) {
      const owner = await signup(t);
      const results = await race(owner.username, owner.password, () =>
        t.http
          .post('/users/me/password')
          .set(owner.auth)
          .send({ currentPassword: owner.password, newPassword: `the new password ${round}` })
          .expect(204),
      );
      expect(results.every((r) => [200, 401].includes(r.status))).toBe(true);
      for (const r of results.filter((x) => x.status === 200)) {
        expect((await t.http.get('/users/me').set('Authorization', `Bearer ${r.accessToken}`)).status).toBe(401);
        expect((await refresh(t, r.refreshToken!)).status).toBe(401);
      }
      // Only the owner's own session is left.
      const live = await t.prisma.session.count({ where: { userId: owner.id, revokedAt: null } });
      expect(live).toBe(1);
    }
  });

  it('no session opened before a disable survives it', async () => {
    const admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
    for (let round = 0; round < 3; round++) {
      const owner = await signup(t);
      const results = await race(owner.username, owner.password, () =>
        t.http.patch(`/users/${owner.id}`).set(admin.auth).send({ disabled: true }).expect(200),
      );
      expect(results.every((r) => [200, 401, 403].includes(r.status))).toBe(true);
      for (const r of results.filter((x) => x.status === 200)) {
        expect(
          (await t.http.post('/resources').set('Authorization', `Bearer ${r.accessToken}`).send({ title: 'x' })).status,
        ).toBe(401);
        expect((await refresh(t, r.refreshToken!)).status).toBe(401);
      }
      expect(await t.prisma.session.count({ where: { userId: owner.id, revokedAt: null } })).toBe(0);
    }
  });
});
