import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refresh, refreshCookieOf, signup } from '../support/factories.js';
import type { TestApp } from '../support/test-app.js';
import {
  RECOVERY_CODE,
  advanceToFreshStep,
  claimsOf,
  enrol,
  expectError,
  expectStatus,
  loginMfa,
  outcome,
  passwordStep,
  startMfaApp,
  wrongCode,
  type MfaUser,
} from './mfa-helpers.js';

/** How a person might copy a code by hand: a space for the hyphen, lower case, o for 0, I or l for 1. */
function sloppy(code: string): string {
  let ones = 0;
  return code
    .replace('-', ' ')
    .toLowerCase()
    .replace(/0/g, 'o')
    .replace(/1/g, () => (ones++ % 2 ? 'l' : 'I'));
}

/** Contract v2 §B test 7: recovery codes. */
describe('recovery codes', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMfaApp();
  });
  afterAll(async () => t?.close());

  const remaining = async (m: MfaUser) => {
    const res = await t.http.get('/auth/mfa').set(m.auth);
    expectStatus(res, 200);
    return res.body.recoveryCodesRemaining as number;
  };
  const regenerate = (m: MfaUser, code: unknown) => t.http.post('/auth/mfa/recovery-codes').set(m.auth).send({ code });

  it('a code works once, typed in lower case without the hyphen; amr ∋ lookup_secret; the count drops', async () => {
    const m = await enrol(t);
    const [code] = m.recoveryCodes as [string];
    const res = await loginMfa(t, await passwordStep(t, m), { recoveryCode: code.replace('-', '').toLowerCase() });
    expectStatus(res, 200);
    expect(res.body).toMatchObject({ tokenType: 'Bearer', recoveryCodesRemaining: 9, user: { id: m.id } });
    expect(refreshCookieOf(res)).toBeTruthy();
    const claims = claimsOf(res.body.accessToken as string);
    expect(claims).toMatchObject({ acr: 'aal2', amr: ['pwd', 'lookup_secret', 'mfa'] });
    expect(claims.amr).not.toContain('otp');
    expect(await remaining(m)).toBe(9);

    // The second use, in any spelling, is refused.
    for (const spelling of [code, code.toLowerCase(), code.replace('-', '')]) {
      expectError(await loginMfa(t, await passwordStep(t, m), { recoveryCode: spelling }), 401, 'INVALID_MFA_CODE');
    }
    expect(await remaining(m)).toBe(9);

    // The session keeps its claims through a refresh.
    const refreshed = await refresh(t, refreshCookieOf(res)!);
    expectStatus(refreshed, 200);
    expect(claimsOf(refreshed.body.accessToken as string)).toMatchObject({
      acr: 'aal2',
      amr: ['pwd', 'lookup_secret', 'mfa'],
    });
  });

  it('hand-copied codes count: spaces, lower case, O for 0, I and L for 1', async () => {
    let m = await enrol(t);
    // A code with a 0 or a 1 in it (nearly always among ten; otherwise ask for a new set).
    let codes = m.recoveryCodes;
    for (let i = 0; i < 5 && !codes.some((c) => /[01]/.test(c)); i++) {
      const res = await regenerate(m, advanceToFreshStep(t, m.secret));
      expectStatus(res, 200);
      codes = res.body.recoveryCodes as string[];
    }
    m = { ...m, recoveryCodes: codes };
    const code = codes.find((c) => /[01]/.test(c))!;
    const typed = sloppy(code);
    expect(typed).not.toBe(code);
    expect(typed).toMatch(/[oIl]/);
    const res = await loginMfa(t, await passwordStep(t, m), { recoveryCode: ` ${typed} ` });
    expectStatus(res, 200);
    expect(res.body.recoveryCodesRemaining).toBe(9);
    // It was that very code that got used.
    expectError(await loginMfa(t, await passwordStep(t, m), { recoveryCode: code }), 401, 'INVALID_MFA_CODE');
  });

  it('each code of the set works, once, and the count goes down to 0', async () => {
    const m = await enrol(t);
    for (const [i, code] of m.recoveryCodes.entries()) {
      const res = await loginMfa(t, await passwordStep(t, m), { recoveryCode: code });
      expectStatus(res, 200);
      expect(res.body.recoveryCodesRemaining).toBe(9 - i);
    }
    expect(await remaining(m)).toBe(0);
    // TOTP still works with no recovery code left; its answer has no recoveryCodesRemaining.
    const res = await loginMfa(t, await passwordStep(t, m), { code: advanceToFreshStep(t, m.secret) });
    expectStatus(res, 200);
    expect(res.body).not.toHaveProperty('recoveryCodesRemaining');
  });

  it('another account’s recovery code is refused', async () => {
    const a = await enrol(t);
    const b = await enrol(t);
    expectError(
      await loginMfa(t, await passwordStep(t, a), { recoveryCode: b.recoveryCodes[0] }),
      401,
      'INVALID_MFA_CODE',
    );
    expectStatus(await loginMfa(t, await passwordStep(t, b), { recoveryCode: b.recoveryCodes[0] }), 200);
  });

  it('regeneration (POST /auth/mfa/recovery-codes {code}) answers a new set and kills the old one', async () => {
    const m = await enrol(t);
    await loginMfa(t, await passwordStep(t, m), { recoveryCode: m.recoveryCodes[0] }).expect(200);
    expect(await remaining(m)).toBe(9);

    const res = await regenerate(m, advanceToFreshStep(t, m.secret));
    expectStatus(res, 200);
    expect(res.headers['cache-control']).toMatch(/no-store/);
    expect(Object.keys(res.body)).toEqual(['recoveryCodes']);
    const fresh = res.body.recoveryCodes as string[];
    expect(fresh).toHaveLength(10);
    for (const c of fresh) expect(c).toMatch(RECOVERY_CODE);
    expect(new Set(fresh).size).toBe(10);
    expect(fresh.filter((c) => m.recoveryCodes.includes(c))).toEqual([]);
    expect(await remaining(m)).toBe(10);

    for (const old of m.recoveryCodes.slice(1, 4)) {
      expectError(await loginMfa(t, await passwordStep(t, m), { recoveryCode: old }), 401, 'INVALID_MFA_CODE');
    }
    const ok = await loginMfa(t, await passwordStep(t, m), { recoveryCode: fresh[0] });
    expectStatus(ok, 200);
    expect(ok.body.recoveryCodesRemaining).toBe(9);
  });

  it('regeneration refuses a wrong code, a recovery code (403 INVALID_MFA_CODE) and an account without MFA (409)', async () => {
    const m = await enrol(t);
    advanceToFreshStep(t, m.secret);
    for (const code of [wrongCode(t, m.secret), m.recoveryCodes[0], '']) {
      const res = await regenerate(m, code);
      expect(res.status, `code ${JSON.stringify(code)}`).not.toBe(200);
      if (code !== '') expectError(res, 403, 'INVALID_MFA_CODE');
    }
    expect(await remaining(m)).toBe(10);
    // The old set still works.
    expectStatus(await loginMfa(t, await passwordStep(t, m), { recoveryCode: m.recoveryCodes[0] }), 200);

    const plain = await signup(t);
    const res = await t.http.post('/auth/mfa/recovery-codes').set(plain.auth).send({ code: '123456' });
    expectError(res, 409, 'MFA_NOT_ENABLED');
    expect((await t.http.post('/auth/mfa/recovery-codes').send({ code: '123456' })).status).toBe(401);
  });

  it('one recovery code in two parallel challenges: exactly one 200', async () => {
    for (let round = 0; round < 3; round++) {
      const m = await enrol(t);
      const [a, b] = [await passwordStep(t, m), await passwordStep(t, m)];
      const code = m.recoveryCodes[round]!;
      const answers = await Promise.all([
        loginMfa(t, a, { recoveryCode: code }),
        loginMfa(t, b, { recoveryCode: code.toLowerCase() }),
      ]);
      expect(answers.map(outcome).sort(), `round ${round}`).toEqual(['200 undefined', '401 INVALID_MFA_CODE']);
      expect(await remaining(m)).toBe(9);
    }
  });
});
