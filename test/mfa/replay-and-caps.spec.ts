import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/test-app.js';
import {
  STEP_MS,
  advanceToFreshStep,
  codeNow,
  enrol,
  expectError,
  expectStatus,
  loginMfa,
  outcome,
  passwordStep,
  startMfaApp,
  wrongCode,
} from './mfa-helpers.js';

/** The one challenge of a user. */
const challengeRow = async (t: TestApp, userId: string) => {
  const rows = await t.prisma.mfaChallenge.findMany({ where: { userId } });
  expect(rows).toHaveLength(1);
  return rows[0]!;
};

/** Contract v2 §B tests 4 and 5: a code works once (RFC 6238 §5.2); guesses are capped. */
describe('TOTP replay', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMfaApp();
  });
  afterAll(async () => t?.close());

  it('the same code in a new challenge within its step is 401 INVALID_MFA_CODE', async () => {
    const m = await enrol(t);
    const code = advanceToFreshStep(t, m.secret, 2);
    expectStatus(await loginMfa(t, await passwordStep(t, m), { code }), 200);
    const row = await t.prisma.mfaTotp.findUniqueOrThrow({ where: { userId: m.id } });
    expect(row.lastUsedStep).toBe(BigInt(Math.floor(t.clock.nowMs() / STEP_MS)));

    expectError(await loginMfa(t, await passwordStep(t, m), { code }), 401, 'INVALID_MFA_CODE');
    t.clock.advance(20); // still the same step
    expect(codeNow(t, m.secret)).toBe(code);
    const again = await passwordStep(t, m);
    expectError(await loginMfa(t, again, { code }), 401, 'INVALID_MFA_CODE');
    // The next step's code opens the same challenge (it was not spent by the replay).
    expectStatus(await loginMfa(t, again, { code: codeNow(t, m.secret, 1) }), 200);
  });

  it('a code of step n−1 after a code of step n is 401 INVALID_MFA_CODE', async () => {
    const m = await enrol(t);
    const code = advanceToFreshStep(t, m.secret, 3); // step n−1 was never used either
    expectStatus(await loginMfa(t, await passwordStep(t, m), { code }), 200);
    const challenge = await passwordStep(t, m);
    expectError(await loginMfa(t, challenge, { code: codeNow(t, m.secret, -1) }), 401, 'INVALID_MFA_CODE');
    expectStatus(await loginMfa(t, challenge, { code: codeNow(t, m.secret, 1) }), 200);
  });

  it('the code that confirmed the enrolment does not log in', async () => {
    const m = await enrol(t); // confirmed with the code of the current step; the clock stands still
    const challenge = await passwordStep(t, m);
    expectError(await loginMfa(t, challenge, { code: codeNow(t, m.secret) }), 401, 'INVALID_MFA_CODE');
  });

  it('a code spent on an authenticated route (new recovery codes) does not log in', async () => {
    const m = await enrol(t);
    const code = advanceToFreshStep(t, m.secret);
    expectStatus(await t.http.post('/auth/mfa/recovery-codes').set(m.auth).send({ code }), 200);
    expectError(await loginMfa(t, await passwordStep(t, m), { code }), 401, 'INVALID_MFA_CODE');
  });

  it('two parallel logins with one code (two challenges): exactly one 200, the other 401 INVALID_MFA_CODE', async () => {
    for (let round = 0; round < 3; round++) {
      const m = await enrol(t);
      const [a, b] = [await passwordStep(t, m), await passwordStep(t, m)];
      const code = advanceToFreshStep(t, m.secret);
      const answers = await Promise.all([loginMfa(t, a, { code }), loginMfa(t, b, { code })]);
      expect(answers.map(outcome).sort(), `round ${round}`).toEqual(['200 undefined', '401 INVALID_MFA_CODE']);
      const live = await t.prisma.session.count({ where: { userId: m.id, revokedAt: null } });
      expect(live).toBe(2); // the enrolling session and the winner's
    }
  });
});

describe('guess caps', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMfaApp();
  });
  afterAll(async () => t?.close());

  it('after 5 wrong codes the right one gets 401 MFA_TOKEN_INVALID; the code itself stays good', async () => {
    const m = await enrol(t);
    const challenge = await passwordStep(t, m);
    const code = advanceToFreshStep(t, m.secret);
    const bad = wrongCode(t, m.secret);
    for (let i = 0; i < 5; i++) {
      expectError(await loginMfa(t, challenge, { code: bad }), 401, 'INVALID_MFA_CODE');
    }
    expect((await challengeRow(t, m.id)).attempts).toBe(5);
    expectError(await loginMfa(t, challenge, { code }), 401, 'MFA_TOKEN_INVALID');
    expectError(await loginMfa(t, challenge, { recoveryCode: m.recoveryCodes[0] }), 401, 'MFA_TOKEN_INVALID');
    // Back to the password: a new challenge takes the same (unspent) code.
    expectStatus(await loginMfa(t, await passwordStep(t, m), { code }), 200);
  });

  it('wrong recovery codes and malformed codes count as guesses too', async () => {
    const m = await enrol(t);
    const challenge = await passwordStep(t, m);
    const code = advanceToFreshStep(t, m.secret);
    for (const proof of [
      { recoveryCode: 'AAAAA-AAAAA' },
      { code: '12345' },
      { code: 'abcdef' },
      { recoveryCode: 'AAAAA-AAAAB' },
      { code: wrongCode(t, m.secret) },
    ]) {
      expectError(await loginMfa(t, challenge, proof), 401, 'INVALID_MFA_CODE');
    }
    expectError(await loginMfa(t, challenge, { code }), 401, 'MFA_TOKEN_INVALID');
  });

  it('20 parallel wrong guesses on one challenge count at most 5', async () => {
    const m = await enrol(t);
    const challenge = await passwordStep(t, m);
    const code = advanceToFreshStep(t, m.secret);
    const bad = wrongCode(t, m.secret);
    const answers = await Promise.all(Array.from({ length: 20 }, () => loginMfa(t, challenge, { code: bad })));
    const outcomes = answers.map(outcome);
    // 429 is a right answer too: guesses in flight hold the account's budget (MFA_RATE_LIMIT,
    // 10) until the challenge's own count gives the surplus back, so a burst of 20 may find
    // it full for a moment. The refused guesses are not counted anywhere (checked below).
    for (const o of outcomes) {
      expect(['401 INVALID_MFA_CODE', '401 MFA_TOKEN_INVALID', '429 TOO_MANY_ATTEMPTS']).toContain(o);
    }
    const judged = outcomes.filter((o) => o === '401 INVALID_MFA_CODE').length;
    expect(judged).toBeGreaterThanOrEqual(1);
    expect(judged).toBeLessThanOrEqual(5);
    expect((await challengeRow(t, m.id)).attempts).toBeLessThanOrEqual(5);
    // The budget is spent: even the right code is refused now.
    expectError(await loginMfa(t, challenge, { code }), 401, 'MFA_TOKEN_INVALID');
    expect((await challengeRow(t, m.id)).attempts).toBeLessThanOrEqual(5);
    // The account was charged only for the judged guesses: a new challenge takes the code.
    expectStatus(await loginMfa(t, await passwordStep(t, m), { code }), 200);
  });

  it('the per-account throttle across challenges: 429 TOO_MANY_ATTEMPTS with Retry-After, then success after the wait', async () => {
    const m = await enrol(t);
    const code = advanceToFreshStep(t, m.secret);
    const bad = wrongCode(t, m.secret);
    // Two challenges' worth of failures: 10 (MFA_RATE_LIMIT).
    for (let c = 0; c < 2; c++) {
      const challenge = await passwordStep(t, m);
      for (let i = 0; i < 5; i++) {
        expectError(await loginMfa(t, challenge, { code: bad }), 401, 'INVALID_MFA_CODE');
      }
      // The first exhausted challenge is dead, not throttled (10 > 5).
      if (c === 0) expectError(await loginMfa(t, challenge, { code }), 401, 'MFA_TOKEN_INVALID');
    }
    const third = await passwordStep(t, m);
    const blocked = await loginMfa(t, third, { code });
    expectError(blocked, 429, 'TOO_MANY_ATTEMPTS');
    expect(blocked.body.error).toBe('Too Many Requests');
    expect(blocked.headers['retry-after']).toMatch(/^\d+$/);
    const wait = Number(blocked.headers['retry-after']);
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(wait).toBeLessThanOrEqual(900);
    expect(blocked.headers['set-cookie']).toBeUndefined();
    // Nothing ran: the third challenge was not charged, and a recovery code is throttled alike.
    const attempts = await t.prisma.mfaChallenge.findMany({ where: { userId: m.id }, select: { attempts: true } });
    expect(attempts.map((a) => a.attempts).sort((x, y) => x - y)).toEqual([0, 5, 5]);
    expectError(await loginMfa(t, third, { recoveryCode: m.recoveryCodes[0] }), 429, 'TOO_MANY_ATTEMPTS');

    t.clock.advance(wait);
    const challenge = wait < 290 ? third : await passwordStep(t, m);
    expectStatus(await loginMfa(t, challenge, { code: codeNow(t, m.secret) }), 200);
    // Success reset the throttle: a wrong code is judged again, not refused with 429.
    expectError(await loginMfa(t, await passwordStep(t, m), { code: wrongCode(t, m.secret) }), 401, 'INVALID_MFA_CODE');
  });

  it('the throttle of one account does not touch another', async () => {
    const victim = await enrol(t);
    const bystander = await enrol(t);
    advanceToFreshStep(t, victim.secret);
    const bad = wrongCode(t, victim.secret);
    for (let c = 0; c < 2; c++) {
      const challenge = await passwordStep(t, victim);
      for (let i = 0; i < 5; i++) await loginMfa(t, challenge, { code: bad }).expect(401);
    }
    expectError(
      await loginMfa(t, await passwordStep(t, victim), { code: codeNow(t, victim.secret) }),
      429,
      'TOO_MANY_ATTEMPTS',
    );
    expectStatus(await loginMfa(t, await passwordStep(t, bystander), { code: codeNow(t, bystander.secret) }), 200);
  });
});
