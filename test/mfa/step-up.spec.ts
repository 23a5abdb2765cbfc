import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { login, refresh, signup } from '../support/factories.js';
import type { TestApp } from '../support/test-app.js';
import {
  ADMIN,
  claimsOf,
  enrol,
  expectError,
  expectStatus,
  loginMfa,
  mfaLogin,
  passwordStep,
  startMfaApp,
} from './mfa-helpers.js';

const STEP_UP_CHALLENGE = 'Bearer error="insufficient_user_authentication", acr_values="aal2"';

/** Contract v2 §0.10 and §B test 10: ADMIN_REQUIRE_MFA puts @RequireAal2() on the admin routes. */
describe('ADMIN_REQUIRE_MFA=true', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMfaApp({ ADMIN_REQUIRE_MFA: 'true' });
  });
  afterAll(async () => t?.close());

  it('an aal1 admin gets 403 STEP_UP_REQUIRED with the RFC 9470 challenge; after TOTP, 200', async () => {
    const aal1 = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
    expect(claimsOf(aal1.accessToken).acr).toBe('aal1');
    const plain = await signup(t);
    for (const req of [
      () => t.http.get('/users').set(aal1.auth),
      () => t.http.patch(`/users/${plain.id}`).set(aal1.auth).send({ disabled: false }),
      () => t.http.delete(`/users/${plain.id}/mfa`).set(aal1.auth),
    ]) {
      const res = await req();
      expectError(res, 403, 'STEP_UP_REQUIRED');
      expect(res.headers['www-authenticate']).toBe(STEP_UP_CHALLENGE);
    }
    // Not an admin route: aal1 is enough, and so is it for enrolling.
    await t.http.get('/users/me').set(aal1.auth).expect(200);

    const admin = await enrol(t, aal1);
    expect(claimsOf(admin.accessToken).acr).toBe('aal2');
    const list = await t.http.get('/users').set(admin.auth);
    expectStatus(list, 200);
    expect(list.headers['www-authenticate']).toBeUndefined();

    // A fresh two-step login is aal2 too, and so is its refresh.
    const session = await mfaLogin(t, admin);
    await t.http.get('/users').set(session.auth).expect(200);
    const refreshed = await refresh(t, session.refreshToken).expect(200);
    await t.http
      .get('/users')
      .set({ Authorization: `Bearer ${refreshed.body.accessToken as string}` })
      .expect(200);

    // A recovery code is a second factor as well.
    const viaRecovery = await loginMfa(t, await passwordStep(t, admin), { recoveryCode: admin.recoveryCodes[0] });
    expectStatus(viaRecovery, 200);
    await t.http
      .get('/users')
      .set({ Authorization: `Bearer ${viaRecovery.body.accessToken as string}` })
      .expect(200);
  });
});

describe('ADMIN_REQUIRE_MFA unset (default false)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMfaApp();
  });
  afterAll(async () => t?.close());

  it('an aal1 admin uses the admin routes as in v1', async () => {
    const aal1 = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
    expect(claimsOf(aal1.accessToken).acr).toBe('aal1');
    await t.http.get('/users').set(aal1.auth).expect(200);
  });
});
