import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetentionService } from '../../src/retention/retention.service.js';
import { signup } from '../support/factories.js';
import type { TestApp } from '../support/test-app.js';
import { enrol, loginMfa, passwordStep, startEnrolment, startMfaApp, codeNow, expectError } from './mfa-helpers.js';

/** Expired login challenges and unconfirmed enrolments are useless: the retention job deletes them. */
describe('retention of MFA rows', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMfaApp();
  });
  afterAll(async () => t?.close());

  it('deletes expired login challenges and expired pending enrolments, and nothing live', async () => {
    const u = await enrol(t);
    await passwordStep(t, u); // expires
    const pending = await signup(t);
    await startEnrolment(t, pending); // expires unconfirmed
    const lateChallengeUser = await enrol(t);
    const rows = async () => ({
      challenges: await t.prisma.mfaChallenge.count(),
      totp: await t.prisma.mfaTotp.count(),
    });
    expect(await rows()).toEqual({ challenges: 1, totp: 3 });

    t.clock.advance(11 * 60); // past the 5-minute challenge and the 10-minute enrolment
    const live = await passwordStep(t, lateChallengeUser);
    const report = await t.app.get(RetentionService).runOnce();
    expect(report).toMatchObject({ mfaChallenges: 1, mfaEnrolments: 1 });
    expect(await rows()).toEqual({ challenges: 1, totp: 2 });
    // The confirmed factors and the live challenge still work.
    const res = await loginMfa(t, live, { code: codeNow(t, lateChallengeUser.secret) });
    expect(res.status).toBe(200);
    // The pending enrolment is gone: confirming it now finds nothing.
    expectError(
      await t.http.post('/auth/mfa/totp/confirm').set(pending.auth).send({ code: '123456' }),
      400,
      'MFA_ENROLLMENT_NOT_FOUND',
    );
  });
});
