import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MailerService } from '../../src/mail/mailer.service.js';
import { login, refresh, signup, uniqueEmail, type SignedUp } from '../support/factories.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import type { TestApp } from '../support/test-app.js';
import {
  ADMIN,
  advanceToFreshStep,
  codeNow,
  enrol,
  expectError,
  expectStatus,
  mfaLogin,
  passwordStep,
  startMfaApp,
  wrongCode,
  type MfaUser,
} from './mfa-helpers.js';

/** Contract v2 §B test 8: turning MFA off (the user, with password and code; an admin, as the fallback). */
describe('disabling MFA', () => {
  let smtp: TestSmtp;
  let t: TestApp;
  beforeAll(async () => {
    smtp = await startSmtp('accept');
    t = await startMfaApp({ SMTP_URL: smtp.url });
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  /** An enrolled account with an email address. */
  const enrolWithEmail = async () => {
    const email = uniqueEmail('mfa');
    return { ...(await enrol(t, await signup(t, { email }))), email };
  };
  /** Mails to `to` other than the sign-up's verification mail, once the queue is idle. */
  const notices = async (to: string) => {
    await t.app.get(MailerService).whenIdle();
    return smtp.mailsTo(to).filter((m) => !(m.parsed.subject ?? '').includes('confirm your email address'));
  };
  const disable = (m: { auth: { Authorization: string } }, password: unknown, code: unknown) =>
    t.http.delete('/auth/mfa').set(m.auth).send({ password, code });
  const mfaStatus = async (auth: { Authorization: string }) => {
    const res = await t.http.get('/auth/mfa').set(auth);
    expectStatus(res, 200);
    return res.body as { enabled: boolean; totp: unknown; recoveryCodesRemaining: number };
  };
  /** Expects the session's access token and refresh cookie to be dead. */
  const expectRevoked = async (s: SignedUp, what: string) => {
    expect((await t.http.get('/users/me').set(s.auth)).status, `${what}: access token`).toBe(401);
    expect((await refresh(t, s.refreshToken)).status, `${what}: refresh cookie`).toBe(401);
  };

  describe('DELETE /auth/mfa {password, code}', () => {
    it('needs the password (403 INVALID_PASSWORD) and a code (403 INVALID_MFA_CODE); then 204', async () => {
      const m = await enrolWithEmail();
      const other = await mfaLogin(t, m);
      const code = advanceToFreshStep(t, m.secret);

      expectError(await disable(m, 'not the password', code), 403, 'INVALID_PASSWORD');
      expectError(await disable(m, m.password, wrongCode(t, m.secret)), 403, 'INVALID_MFA_CODE');
      expectError(await disable(m, m.password, 'AAAAA-AAAAA'), 403, 'INVALID_MFA_CODE');
      expect((await mfaStatus(m.auth)).enabled).toBe(true);
      await t.http.get('/users/me').set(other.auth).expect(200);

      const res = await disable(m, m.password, code);
      expectStatus(res, 204);
      expect(res.text).toBe('');
      expect(await mfaStatus(m.auth)).toEqual({ enabled: false, totp: null, recoveryCodesRemaining: 0 });
      expect((await t.http.get('/users/me').set(m.auth).expect(200)).body.mfaEnabled).toBe(false);
      // The other sessions are revoked; this one stays.
      await expectRevoked(other, 'other session');
      // The password alone logs in again; no factor or code is left behind.
      const res2 = await t.http.post('/auth/login').send({ username: m.username, password: m.password });
      expectStatus(res2, 200);
      expect(res2.body.user.mfaEnabled).toBe(false);
      expect(await t.prisma.mfaTotp.count({ where: { userId: m.id } })).toBe(0);
      expect(await t.prisma.mfaRecoveryCode.count({ where: { userId: m.id, usedAt: null } })).toBe(0);
      // A notice was mailed.
      expect((await notices(m.email)).length).toBeGreaterThanOrEqual(1);
    });

    it('takes a recovery code instead of a TOTP code', async () => {
      const m = await enrol(t);
      expectStatus(await disable(m, m.password, m.recoveryCodes[3]!.toLowerCase()), 204);
      expect((await mfaStatus(m.auth)).enabled).toBe(false);
    });

    it('a spent TOTP code does not disable', async () => {
      const m = await enrol(t); // its confirm spent the code of the current step (the clock stands still)
      const res = await disable(m, m.password, codeNow(t, m.secret));
      expectError(res, 403, 'INVALID_MFA_CODE');
      expect((await mfaStatus(m.auth)).enabled).toBe(true);
    });

    it('answers 409 MFA_NOT_ENABLED without MFA, and MFA can be enrolled again after a disable', async () => {
      const u = await signup(t);
      expectError(await disable(u, u.password, '123456'), 409, 'MFA_NOT_ENABLED');
      const m = await enrol(t, u);
      expectStatus(await disable(m, m.password, advanceToFreshStep(t, m.secret)), 204);
      expectError(await disable(m, m.password, advanceToFreshStep(t, m.secret)), 409, 'MFA_NOT_ENABLED');
      advanceToFreshStep(t, m.secret);
      const again = await enrol(t, m);
      expect(again.secret).not.toBe(m.secret);
      await passwordStep(t, again);
    });
  });

  describe('DELETE /users/:id/mfa (admin)', () => {
    let root: SignedUp;
    beforeAll(async () => {
      root = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
    });
    /** A fresh admin token (the clock moves a lot in this file). */
    const rootAuth = async () => (root = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD)).auth;
    const reset = async (auth: { Authorization: string }, id: string) => t.http.delete(`/users/${id}/mfa`).set(auth);

    it('answers 204, turns MFA off and revokes all the target’s sessions; mailed and audited with the actor', async () => {
      const target: MfaUser & { email: string } = await enrolWithEmail();
      const second = await mfaLogin(t, target);
      const auth = await rootAuth();
      const res = await reset(auth, target.id);
      expectStatus(res, 204);
      await expectRevoked(target, 'enrolling session');
      await expectRevoked(second, 'second session');

      const fresh = await t.http.post('/auth/login').send({ username: target.username, password: target.password });
      expectStatus(fresh, 200);
      expect(fresh.body.user.mfaEnabled).toBe(false);
      const status = await t.http
        .get('/auth/mfa')
        .set({ Authorization: `Bearer ${fresh.body.accessToken as string}` })
        .expect(200);
      expect(status.body).toEqual({ enabled: false, totp: null, recoveryCodesRemaining: 0 });

      const audit = await t.prisma.auditEvent.findMany({ where: { type: 'mfa.reset_by_admin' } });
      const mine = audit.filter((e) => e.userId === target.id || JSON.stringify(e.details).includes(target.id));
      expect(mine).toHaveLength(1);
      expect(JSON.stringify(mine[0])).toContain(root.id);
      expect((await notices(target.email)).length).toBeGreaterThanOrEqual(1);
      // The admin's own session is untouched.
      await t.http.get('/users').set(auth).expect(200);
    });

    it('an admin targeting themselves gets 403 CANNOT_TARGET_SELF', async () => {
      const u = await signup(t);
      await t.http
        .patch(`/users/${u.id}`)
        .set(await rootAuth())
        .send({ roles: ['user', 'admin'] })
        .expect(200);
      const admin = await enrol(t, await login(t, u.username, u.password));
      const res = await reset(admin.auth, admin.id);
      expectError(res, 403, 'CANNOT_TARGET_SELF');
      expect((await t.http.get('/auth/mfa').set(admin.auth).expect(200)).body.enabled).toBe(true);
    });

    it('a non-admin gets 403 and changes nothing', async () => {
      const target = await enrol(t);
      const attacker = await enrol(t);
      const res = await reset(attacker.auth, target.id);
      expectError(res, 403, 'INSUFFICIENT_ROLE');
      expect((await t.http.get('/auth/mfa').set(target.auth).expect(200)).body.enabled).toBe(true);
      await passwordStep(t, target);
      expect((await t.http.delete(`/users/${target.id}/mfa`)).status).toBe(401);
    });

    it('404 USER_NOT_FOUND for an unknown id (and, as on the other :id routes, a non-uuid one); 409 MFA_NOT_ENABLED without MFA', async () => {
      const auth = await rootAuth();
      expectError(await reset(auth, randomUUID()), 404, 'USER_NOT_FOUND');
      const plain = await signup(t);
      expectError(await reset(auth, plain.id), 409, 'MFA_NOT_ENABLED');
      for (const id of ['not-a-uuid', '123']) expect((await reset(auth, id)).status, `id ${id}`).toBe(404);
    });
  });
});
