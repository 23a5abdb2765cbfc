import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, login, refresh, refreshCookieOf, signup } from '../support/factories.js';
import type { TestApp } from '../support/test-app.js';
import {
  ISO,
  RECOVERY_CODE,
  claimsOf,
  codeNow,
  enrol,
  expectError,
  expectStatus,
  startEnrolment,
  startMfaApp,
  wrongCode,
} from './mfa-helpers.js';

/** Contract v2 §B test 2: enrolment (POST /auth/mfa/totp, then /confirm) and GET /auth/mfa. */
describe('MFA enrolment', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMfaApp();
  });
  afterAll(async () => t?.close());

  const status = (auth: { Authorization: string }) => t.http.get('/auth/mfa').set(auth);
  const confirm = (auth: { Authorization: string }, code: unknown) =>
    t.http.post('/auth/mfa/totp/confirm').set(auth).send({ code });

  it('GET /auth/mfa: 401 without a token; not enabled before, enabled with 10 codes after', async () => {
    const anonymous = await t.http.get('/auth/mfa');
    expectError(anonymous, 401, anonymous.body.code as string);
    expect(anonymous.headers['www-authenticate']).toMatch(/^Bearer/);

    const u = await signup(t);
    const before = await status(u.auth);
    expectStatus(before, 200);
    expect(before.body).toEqual({ enabled: false, totp: null, recoveryCodesRemaining: 0 });

    // A pending enrolment is not shown.
    await startEnrolment(t, u);
    expect((await status(u.auth)).body).toEqual({ enabled: false, totp: null, recoveryCodesRemaining: 0 });

    const m = await enrol(t, u);
    const after = await status(m.auth);
    expectStatus(after, 200);
    expect(Object.keys(after.body).sort()).toEqual(['enabled', 'recoveryCodesRemaining', 'totp']);
    expect(after.body).toMatchObject({ enabled: true, recoveryCodesRemaining: 10 });
    expect(Object.keys(after.body.totp).sort()).toEqual(['confirmedAt', 'lastUsedAt']);
    expect(after.body.totp.confirmedAt).toMatch(ISO);
    expect(Math.abs(Date.parse(after.body.totp.confirmedAt) - t.clock.nowMs())).toBeLessThan(5000);
    expect(after.body.totp.lastUsedAt === null || ISO.test(after.body.totp.lastUsedAt as string)).toBe(true);
  });

  it('POST /auth/mfa/totp answers 201 with the secret and a parseable otpauth URI, no-store', async () => {
    const u = await signup(t);
    const res = await t.http.post('/auth/mfa/totp').set(u.auth).send({ password: u.password });
    expectStatus(res, 201);
    expect(res.headers['cache-control']).toMatch(/no-store/);
    expect(Object.keys(res.body).sort()).toEqual([
      'algorithm',
      'digits',
      'expiresAt',
      'otpauthUri',
      'period',
      'secret',
    ]);
    expect(res.body).toMatchObject({ algorithm: 'SHA1', digits: 6, period: 30 });
    // 20 bytes of RFC 4648 base32, without padding.
    expect(res.body.secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(res.body.expiresAt).toMatch(ISO);
    expect(Date.parse(res.body.expiresAt) - t.clock.nowMs()).toBeGreaterThanOrEqual(599_000);
    expect(Date.parse(res.body.expiresAt) - t.clock.nowMs()).toBeLessThanOrEqual(601_000);

    const uri = new URL(res.body.otpauthUri);
    expect(uri.protocol).toBe('otpauth:');
    expect(uri.host).toBe('totp');
    expect(decodeURIComponent(uri.pathname)).toBe(`/Gatehouse:${u.username}`);
    expect(uri.searchParams.get('issuer')).toBe('Gatehouse');
    expect(uri.searchParams.get('secret')).toBe(res.body.secret);
    expect(uri.searchParams.get('algorithm')).toBe('SHA1');
    expect(uri.searchParams.get('digits')).toBe('6');
    expect(uri.searchParams.get('period')).toBe('30');
    // Each parameter exactly once.
    for (const key of ['issuer', 'secret', 'algorithm', 'digits', 'period'])
      expect(uri.searchParams.getAll(key)).toHaveLength(1);
  });

  it('confirm answers 10 unique recovery codes and an aal2 token for this session; the other sessions are revoked', async () => {
    const u = await signup(t);
    const other = await login(t, u.username, u.password);
    await t.http.get('/users/me').set(other.auth).expect(200);
    const sid = claimsOf(u.accessToken).sid;

    const enrolment = await startEnrolment(t, u);
    const res = await confirm(u.auth, codeNow(t, enrolment.secret as string));
    expectStatus(res, 200);
    expect(res.headers['cache-control']).toMatch(/no-store/);
    expect(res.body).toMatchObject({ tokenType: 'Bearer', expiresIn: expect.any(Number) });
    const codes = res.body.recoveryCodes as string[];
    expect(codes).toHaveLength(10);
    for (const code of codes) expect(code).toMatch(RECOVERY_CODE);
    expect(new Set(codes).size).toBe(10);

    const claims = claimsOf(res.body.accessToken as string);
    expect(claims.acr).toBe('aal2');
    expect(claims.amr).toEqual(['pwd', 'otp', 'mfa']);
    expect(claims.sid).toBe(sid);
    expect(claims.sub).toBe(u.id);
    await t.http
      .get('/users/me')
      .set(bearer(res.body.accessToken as string))
      .expect(200);

    // The other session: its access token is refused at once, and its refresh cookie too.
    const me = await t.http.get('/users/me').set(other.auth);
    expectError(me, 401, 'INVALID_TOKEN');
    expect((await refresh(t, other.refreshToken)).status).toBe(401);

    // This session stays, and is aal2 now: its refresh carries the claims.
    const refreshed = await refresh(t, refreshCookieOf(res) ?? u.refreshToken);
    expectStatus(refreshed, 200);
    const again = claimsOf(refreshed.body.accessToken as string);
    expect(again).toMatchObject({ acr: 'aal2', sid });
    expect(again.amr).toContain('otp');
    const row = await t.prisma.session.findUniqueOrThrow({ where: { id: sid as string } });
    expect(row).toMatchObject({ acr: 'aal2', revokedAt: null });
    expect(row.amr).toContain('otp');
  });

  it('mfaEnabled in /users/me flips with the confirm, not with the pending enrolment', async () => {
    const u = await signup(t);
    expect((await t.http.get('/users/me').set(u.auth).expect(200)).body.mfaEnabled).toBe(false);
    await startEnrolment(t, u);
    expect((await t.http.get('/users/me').set(u.auth).expect(200)).body.mfaEnabled).toBe(false);
    const m = await enrol(t, u);
    expect((await t.http.get('/users/me').set(m.auth).expect(200)).body.mfaEnabled).toBe(true);
  });

  it('a second enrolment of an enabled account is 409 MFA_ALREADY_ENABLED (after the password check)', async () => {
    const m = await enrol(t);
    expectError(
      await t.http.post('/auth/mfa/totp').set(m.auth).send({ password: m.password }),
      409,
      'MFA_ALREADY_ENABLED',
    );
    expectError(
      await t.http.post('/auth/mfa/totp').set(m.auth).send({ password: 'not the password' }),
      403,
      'INVALID_PASSWORD',
    );
    // The factor is unchanged: the old secret still makes codes for the next step.
    expect((await status(m.auth)).body.enabled).toBe(true);
  });

  it('enrolment with a wrong password is 403 INVALID_PASSWORD and starts nothing', async () => {
    const u = await signup(t);
    const res = await t.http.post('/auth/mfa/totp').set(u.auth).send({ password: 'not the password' });
    expectError(res, 403, 'INVALID_PASSWORD');
    expect(res.body).not.toHaveProperty('secret');
    expectError(await confirm(u.auth, '123456'), 400, 'MFA_ENROLLMENT_NOT_FOUND');
    expect(await t.prisma.mfaTotp.count({ where: { userId: u.id } })).toBe(0);
  });

  it('confirm without an enrolment is 400 MFA_ENROLLMENT_NOT_FOUND', async () => {
    const u = await signup(t);
    expectError(await confirm(u.auth, '123456'), 400, 'MFA_ENROLLMENT_NOT_FOUND');
  });

  it('confirm more than 10 minutes after the enrolment is 400 MFA_ENROLLMENT_NOT_FOUND, even with the right code', async () => {
    const u = await signup(t);
    const other = await login(t, u.username, u.password);
    const enrolment = await startEnrolment(t, u);
    t.clock.advance(601);
    // A fresh session of the same account (the first token may have expired by now).
    const fresh = await login(t, u.username, u.password);
    expectError(await confirm(fresh.auth, codeNow(t, enrolment.secret as string)), 400, 'MFA_ENROLLMENT_NOT_FOUND');
    expect((await status(fresh.auth)).body.enabled).toBe(false);
    // Nothing was revoked, and the password alone still logs in.
    expect((await refresh(t, other.refreshToken)).status).toBe(200);
    await login(t, u.username, u.password);
  });

  it('just under 10 minutes the enrolment still confirms', async () => {
    const u = await signup(t);
    const enrolment = await startEnrolment(t, u);
    t.clock.advance(590);
    const fresh = await login(t, u.username, u.password);
    expectStatus(await confirm(fresh.auth, codeNow(t, enrolment.secret as string)), 200);
  });

  it('a wrong code on confirm is 403 INVALID_MFA_CODE and enables nothing', async () => {
    const u = await signup(t);
    const other = await login(t, u.username, u.password);
    const enrolment = await startEnrolment(t, u);
    const secret = enrolment.secret as string;
    for (const code of [wrongCode(t, secret), '12345', 'abcdef']) {
      expectError(await confirm(u.auth, code), 403, 'INVALID_MFA_CODE');
    }
    expect((await status(u.auth)).body.enabled).toBe(false);
    await t.http.get('/users/me').set(other.auth).expect(200);
    await login(t, u.username, u.password);
    // The enrolment is still pending: the right code confirms it.
    expectStatus(await confirm(u.auth, codeNow(t, secret)), 200);
  });

  it('a new enrolment replaces the pending one: the first secret no longer confirms', async () => {
    const u = await signup(t);
    const first = await startEnrolment(t, u);
    const second = await startEnrolment(t, u);
    expect(second.secret).not.toBe(first.secret);
    expectError(await confirm(u.auth, codeNow(t, first.secret as string)), 403, 'INVALID_MFA_CODE');
    expectStatus(await confirm(u.auth, codeNow(t, second.secret as string)), 200);
  });
});
