import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, login, refresh, refreshCookieOf, setCookiesOf, signup } from '../support/factories.js';
import type { TestApp } from '../support/test-app.js';
import {
  ADMIN,
  advanceToFreshStep,
  allSessions,
  claimsOf,
  codeNow,
  enrol,
  expectError,
  expectStatus,
  loginMfa,
  outcome,
  passwordStep,
  startMfaApp,
} from './mfa-helpers.js';

/** Cookie attributes without the value and the lifetime. */
const cookieShape = (cookie: string) =>
  cookie
    .split(';')
    .slice(1)
    .map((a) => a.trim())
    .filter((a) => !/^(max-age|expires)=/i.test(a))
    .map((a) => a.toLowerCase())
    .sort();

/** Contract v2 §B tests 3 and 6: the two login steps, and what each step refuses. */
describe('two-step login', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMfaApp();
  });
  afterAll(async () => t?.close());

  it('the password step answers 403 MFA_REQUIRED with the challenge: no cookie, no token, no session row', async () => {
    const m = await enrol(t);
    const sessionsBefore = await allSessions(t, m.id);
    const res = await t.http.post('/auth/login').send({ username: m.username, password: m.password });
    expectError(res, 403, 'MFA_REQUIRED');
    expect(res.body).toEqual({
      statusCode: 403,
      error: 'Forbidden',
      message: expect.any(String),
      code: 'MFA_REQUIRED',
      mfaToken: expect.any(String),
      mfaTokenExpiresIn: 300,
      methods: ['totp', 'recovery_code'],
    });
    expect((res.body.mfaToken as string).length).toBeGreaterThanOrEqual(43); // 32 random bytes
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.headers['cache-control']).toMatch(/no-store/);
    expect(JSON.stringify(res.body)).not.toMatch(/accessToken|refresh/i);
    expect(await allSessions(t, m.id)).toBe(sessionsBefore);

    // The challenge row keeps the token's SHA-256, the client address, and 0 attempts.
    const challenges = await t.prisma.mfaChallenge.findMany({ where: { userId: m.id } });
    expect(challenges).toHaveLength(1);
    expect(challenges[0]).toMatchObject({ attempts: 0, consumedAt: null });
    expect(challenges[0]!.ip).toBeTruthy();
    expect(Math.abs(challenges[0]!.expiresAt.getTime() - t.clock.nowMs() - 300_000)).toBeLessThanOrEqual(1000);
  });

  it('/auth/login/mfa answers 200 with a cookie and an aal2 token (amr ∋ otp, auth_time), kept after refresh', async () => {
    const m = await enrol(t);
    const mfaToken = await passwordStep(t, m);
    const sessionsBefore = await allSessions(t, m.id);
    const res = await loginMfa(t, mfaToken, { code: advanceToFreshStep(t, m.secret) });
    expectStatus(res, 200);
    expect(Object.keys(res.body).sort()).toEqual(['accessToken', 'expiresIn', 'tokenType', 'user']);
    expect(res.body).toMatchObject({ tokenType: 'Bearer', expiresIn: expect.any(Number) });
    expect(res.body.user).toMatchObject({ id: m.id, username: m.username, mfaEnabled: true });
    expect(res.headers['cache-control']).toMatch(/no-store/);

    // The session opens here: one refresh cookie, with the attributes of a password login.
    const cookies = setCookiesOf(res).filter((c) => c.startsWith('refresh_token='));
    expect(cookies).toHaveLength(1);
    const plain = await signup(t);
    const v1 = await t.http.post('/auth/login').send({ username: plain.username, password: plain.password });
    expectStatus(v1, 200);
    const v1Cookie = setCookiesOf(v1).find((c) => c.startsWith('refresh_token='))!;
    expect(cookieShape(cookies[0]!)).toEqual(cookieShape(v1Cookie));
    expect(await allSessions(t, m.id)).toBe(sessionsBefore + 1);

    const claims = claimsOf(res.body.accessToken as string);
    expect(claims.amr).toContain('otp');
    expect(claims.amr).toEqual(['pwd', 'otp', 'mfa']);
    expect(claims.acr).toBe('aal2');
    expect(Math.abs((claims.auth_time as number) - t.clock.nowMs() / 1000)).toBeLessThanOrEqual(2);
    await t.http
      .get('/users/me')
      .set(bearer(res.body.accessToken as string))
      .expect(200);
    const row = await t.prisma.session.findUniqueOrThrow({ where: { id: claims.sid as string } });
    expect(row).toMatchObject({ acr: 'aal2', revokedAt: null });

    // Refresh, later: same session, same amr/acr/auth_time, new iat.
    t.clock.advance(120);
    const refreshed = await refresh(t, refreshCookieOf(res)!);
    expectStatus(refreshed, 200);
    const after = claimsOf(refreshed.body.accessToken as string);
    expect(after).toMatchObject({
      acr: 'aal2',
      amr: ['pwd', 'otp', 'mfa'],
      auth_time: claims.auth_time,
      sid: claims.sid,
    });
    expect(after.iat as number).toBeGreaterThan(claims.iat as number);
  });

  it('GET /auth/mfa records the last use of the factor', async () => {
    const m = await enrol(t);
    const mfaToken = await passwordStep(t, m);
    await loginMfa(t, mfaToken, { code: advanceToFreshStep(t, m.secret) }).expect(200);
    const res = await t.http.get('/auth/mfa').set(m.auth);
    expectStatus(res, 200);
    expect(Math.abs(Date.parse(res.body.totp.lastUsedAt as string) - t.clock.nowMs())).toBeLessThanOrEqual(2000);
  });

  it('a user without MFA logs in with 200 at once, aal1 with amr ["pwd"] (v1 unchanged)', async () => {
    const u = await signup(t);
    const res = await t.http.post('/auth/login').send({ username: u.username, password: u.password });
    expectStatus(res, 200);
    expect(refreshCookieOf(res)).toBeTruthy();
    expect(res.body.user).toMatchObject({ id: u.id, mfaEnabled: false });
    expect(res.body).not.toHaveProperty('mfaToken');
    expect(claimsOf(res.body.accessToken as string)).toMatchObject({ acr: 'aal1', amr: ['pwd'] });
    expect(claimsOf(u.accessToken).acr).toBe('aal1'); // the signup's token too
  });

  it('a wrong password for an MFA account is v1 401 INVALID_CREDENTIALS, same bytes as without MFA', async () => {
    const m = await enrol(t);
    const plain = await signup(t);
    const withMfa = await t.http.post('/auth/login').send({ username: m.username, password: 'wrong password 1' });
    const without = await t.http.post('/auth/login').send({ username: plain.username, password: 'wrong password 1' });
    expectError(withMfa, 401, 'INVALID_CREDENTIALS');
    expect(withMfa.text).toBe(without.text);
    expect(Object.keys(withMfa.headers).sort()).toEqual(Object.keys(without.headers).sort());
    expect(withMfa.body).not.toHaveProperty('mfaToken');
    expect(await t.prisma.mfaChallenge.count({ where: { userId: m.id } })).toBe(0);
  });

  it('the challenge is consumed by its success: a second use is 401 MFA_TOKEN_INVALID', async () => {
    const m = await enrol(t);
    const mfaToken = await passwordStep(t, m);
    await loginMfa(t, mfaToken, { code: advanceToFreshStep(t, m.secret) }).expect(200);
    expectError(await loginMfa(t, mfaToken, { code: advanceToFreshStep(t, m.secret) }), 401, 'MFA_TOKEN_INVALID');
    expectError(await loginMfa(t, mfaToken, { recoveryCode: m.recoveryCodes[0] }), 401, 'MFA_TOKEN_INVALID');
  });

  it('an expired challenge (+301 s) is 401 MFA_TOKEN_INVALID, one at +299 s still works', async () => {
    const m = await enrol(t);
    advanceToFreshStep(t, m.secret);
    const late = await passwordStep(t, m);
    t.clock.advance(150);
    const inTime = await passwordStep(t, m);
    t.clock.advance(151); // `late` is 301 s old, `inTime` 151 s
    expectError(await loginMfa(t, late, { code: codeNow(t, m.secret) }), 401, 'MFA_TOKEN_INVALID');
    expectError(await loginMfa(t, late, { recoveryCode: m.recoveryCodes[0] }), 401, 'MFA_TOKEN_INVALID');
    t.clock.advance(148); // `inTime` is 299 s old
    expectStatus(await loginMfa(t, inTime, { code: codeNow(t, m.secret) }), 200);
  });

  it('confusions are refused: the mfaToken as a Bearer token, an access token as the mfaToken, garbage', async () => {
    const m = await enrol(t);
    const mfaToken = await passwordStep(t, m);
    for (const path of ['/users/me', '/auth/mfa', '/auth/sessions']) {
      const res = await t.http.get(path).set(bearer(mfaToken));
      expect(res.status, `GET ${path}`).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
    const code = advanceToFreshStep(t, m.secret);
    const confusions = {
      'access token': m.accessToken,
      'refresh token': m.refreshToken,
      'mfaToken + 1 char': `${mfaToken}x`,
      'mfaToken − 1 char': mfaToken.slice(0, -1),
      'made-up token': 'x'.repeat(43),
    };
    const answers: Record<string, string> = {};
    for (const [what, token] of Object.entries(confusions)) answers[what] = outcome(await loginMfa(t, token, { code }));
    expect(answers).toEqual(Object.fromEntries(Object.keys(confusions).map((k) => [k, '401 MFA_TOKEN_INVALID'])));
    // None of that used the code or the challenge: both still work.
    expectStatus(await loginMfa(t, mfaToken, { code }), 200);
  });

  it("user A's challenge with user B's current code is 401 INVALID_MFA_CODE", async () => {
    const a = await enrol(t);
    const b = await enrol(t);
    const challenge = await passwordStep(t, a);
    const codeA = advanceToFreshStep(t, a.secret);
    const codeB = codeNow(t, b.secret);
    expect(codeB).not.toBe(codeA);
    expectError(await loginMfa(t, challenge, { code: codeB }), 401, 'INVALID_MFA_CODE');
    // B's code was not spent on A: B logs in with it.
    expectStatus(await loginMfa(t, await passwordStep(t, b), { code: codeB }), 200);
  });

  it('the body takes exactly one of code and recoveryCode (400 otherwise), and a 6-digit code', async () => {
    const m = await enrol(t);
    const mfaToken = await passwordStep(t, m);
    const code = advanceToFreshStep(t, m.secret);
    for (const body of [
      { mfaToken },
      { mfaToken, code, recoveryCode: m.recoveryCodes[0] },
      { code },
      { mfaToken, code: 123456 },
      { mfaToken, code, extra: 1 },
    ]) {
      const res = await t.http.post('/auth/login/mfa').send(body);
      expect(res.status, `body ${JSON.stringify(body)}`).toBe(400);
      expect(res.body).toMatchObject({ statusCode: 400, code: expect.any(String) });
    }
    // A recovery code in `code` is not a TOTP code.
    expectError(await loginMfa(t, mfaToken, { code: m.recoveryCodes[0] }), 401, 'INVALID_MFA_CODE');
    expectStatus(await loginMfa(t, mfaToken, { code }), 200);
  });

  it('whitespace in a 6-digit code is ignored: "123 456", a pasted code with a line break', async () => {
    const m = await enrol(t);
    const spaced = (code: string) => ` ${code.slice(0, 3)} ${code.slice(3)}\n`;
    const mfaToken = await passwordStep(t, m);
    expectStatus(await loginMfa(t, mfaToken, { code: spaced(advanceToFreshStep(t, m.secret)) }), 200);
    // No guess was counted on the way: the challenge took one attempt, the one that succeeded.
    const challenge = await t.prisma.mfaChallenge.findFirstOrThrow({ where: { userId: m.id } });
    expect(challenge.attempts).toBe(1);
    // Digits beside letters or a seventh digit are still not a code.
    const other = await passwordStep(t, m);
    const code = advanceToFreshStep(t, m.secret);
    expectError(await loginMfa(t, other, { code: `${code}7` }), 401, 'INVALID_MFA_CODE');
    expectError(await loginMfa(t, other, { code: `${code.slice(0, 3)}-${code.slice(3)}` }), 401, 'INVALID_MFA_CODE');
    expectStatus(await loginMfa(t, other, { code: `\t${code} ` }), 200);
    // Turning it off takes a spaced code too (not mistaken for a recovery code).
    const off = await t.http
      .delete('/auth/mfa')
      .set(m.auth)
      .send({ password: m.password, code: spaced(advanceToFreshStep(t, m.secret)) });
    expectStatus(off, 204);
  });

  describe('an account disabled by an admin', () => {
    it('answers 403 ACCOUNT_DISABLED at the password step (before MFA), and kills an open challenge', async () => {
      const admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
      const m = await enrol(t);
      const open = await passwordStep(t, m);
      await t.http.patch(`/users/${m.id}`).set(admin.auth).send({ disabled: true }).expect(200);
      const res = await t.http.post('/auth/login').send({ username: m.username, password: m.password });
      expectError(res, 403, 'ACCOUNT_DISABLED');
      expect(res.body).not.toHaveProperty('mfaToken');
      expectError(await loginMfa(t, open, { code: advanceToFreshStep(t, m.secret) }), 401, 'MFA_TOKEN_INVALID');
    });
  });

  it('a password change between the two steps kills the challenge', async () => {
    const m = await enrol(t);
    const open = await passwordStep(t, m);
    await t.http
      .post('/users/me/password')
      .set(m.auth)
      .send({ currentPassword: m.password, newPassword: 'a changed password 1' })
      .expect(204);
    const code = advanceToFreshStep(t, m.secret);
    expectError(await loginMfa(t, open, { code }), 401, 'MFA_TOKEN_INVALID');
    // MFA stays: the new password leads to the second step again, where the same code (not
    // spent by the dead challenge) opens the session.
    const fresh = await passwordStep(t, { username: m.username, password: 'a changed password 1' });
    expectStatus(await loginMfa(t, fresh, { code }), 200);
  });
});
