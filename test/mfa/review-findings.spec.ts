import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { login, refresh, signup } from '../support/factories.js';
import type { TestApp } from '../support/test-app.js';
import {
  ADMIN,
  challengeAttempts,
  claimsOf,
  codeNow,
  advanceToFreshStep,
  enrol,
  expectError,
  expectStatus,
  liveSessions,
  loginMfa,
  mfaLogin,
  outcome,
  outcomeCounts,
  passwordStep,
  startEnrolment,
  startMfaApp,
  wrongCode,
} from './mfa-helpers.js';

/**
 * What an adversarial review of two-step sign-in found, attacking a running server. Each
 * case failed before its fix. The races need PostgreSQL's concurrency to show, but hold on
 * both databases.
 */
describe('MFA review findings', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMfaApp();
  });
  afterAll(async () => t?.close());

  it('F1: a password login racing the confirmation of an enrolment leaves no password-only session', async () => {
    const u = await signup(t);
    const { secret } = (await startEnrolment(t, u)) as { secret: string };
    const logins = Array.from({ length: 8 }, () =>
      t.http.post('/auth/login').send({ username: u.username, password: u.password }),
    );
    const confirm = t.http
      .post('/auth/mfa/totp/confirm')
      .set(u.auth)
      .send({ code: codeNow(t, secret) });
    const [confirmed, ...answers] = await Promise.all([confirm, ...logins]);
    expect(confirmed.status).toBe(200);
    for (const res of answers) expect(['200 undefined', '403 MFA_REQUIRED']).toContain(outcome(res));
    // Whatever order they ran in, only the confirming session is left.
    expect(await liveSessions(t, u.id)).toBe(1);
    for (const res of answers.filter((r) => r.status === 200)) {
      await t.http
        .get('/users/me')
        .set({ Authorization: `Bearer ${res.body.accessToken as string}` })
        .expect(401);
    }
    // And a password login after it asks for the second step.
    await passwordStep(t, u);
  });

  it('F2: an enrolment restarted while the confirmation runs is not confirmed by a code of the old secret', async () => {
    // A race: several rounds, each a confirmation against concurrent restarts.
    for (let round = 0; round < 6; round++) {
      const u = await signup(t);
      const { secret } = (await startEnrolment(t, u)) as { secret: string };
      const [confirmed, ...restarts] = await Promise.all([
        t.http
          .post('/auth/mfa/totp/confirm')
          .set(u.auth)
          .send({ code: codeNow(t, secret) }),
        ...Array.from({ length: 4 }, () => t.http.post('/auth/mfa/totp').set(u.auth).send({ password: u.password })),
      ]);
      // Confirmed: then with the secret the user saw (a login with its code works). Refused:
      // then nothing is on. Never "confirmed" with a secret the user did not see.
      const enabled = (await t.http.get('/auth/mfa').set(u.auth).expect(200)).body.enabled as boolean;
      const mfaToken = enabled ? await passwordStep(t, u) : null;
      const s1Works = mfaToken
        ? (await loginMfa(t, mfaToken, { code: advanceToFreshStep(t, secret) })).status === 200
        : null;
      expect({ confirm: outcome(confirmed), enabled, s1Works }).toEqual(
        confirmed.status === 200
          ? { confirm: '200 undefined', enabled: true, s1Works: true }
          : { confirm: '403 INVALID_MFA_CODE', enabled: false, s1Works: null },
      );
      expect(restarts.map(outcome).filter((o) => !['201 undefined', '409 MFA_ALREADY_ENABLED'].includes(o))).toEqual(
        [],
      );
    }
  });

  it('F3: an admin reset racing second steps completes without a 500, and leaves no session', async () => {
    const root = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
    for (let round = 0; round < 4; round++) {
      const u = await enrol(t);
      const tokens = await Promise.all(u.recoveryCodes.slice(0, 4).map(() => passwordStep(t, u)));
      const [reset, ...steps] = await Promise.all([
        t.http.delete(`/users/${u.id}/mfa`).set(root.auth),
        ...tokens.map((mfaToken, i) => loginMfa(t, mfaToken, { recoveryCode: u.recoveryCodes[i] })),
      ]);
      expect(reset.status).toBe(204);
      for (const s of steps) expect(s.status).not.toBe(500);
      expect(await liveSessions(t, u.id)).toBe(0);
    }
  });

  it('F4: a null code or recoveryCode is a 400 that costs the challenge no guess', async () => {
    const u = await enrol(t);
    const mfaToken = await passwordStep(t, u);
    expectError(await loginMfa(t, mfaToken, { recoveryCode: null }), 400, 'VALIDATION_FAILED');
    expectError(await loginMfa(t, mfaToken, { code: null }), 400, 'VALIDATION_FAILED');
    expectError(await loginMfa(t, mfaToken, { code: null, recoveryCode: null }), 400, 'VALIDATION_FAILED');
    const [challenge] = await t.prisma.mfaChallenge.findMany({ where: { userId: u.id, consumedAt: null } });
    expect(challenge?.attempts).toBe(0);
  });

  it('F6: a challenge opened before the account was disabled does not complete after it is enabled again', async () => {
    const u = await enrol(t);
    const root = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
    const mfaToken = await passwordStep(t, u);
    await t.http.patch(`/users/${u.id}`).set(root.auth).send({ disabled: true }).expect(200);
    await t.http.patch(`/users/${u.id}`).set(root.auth).send({ disabled: false }).expect(200);
    expectError(await loginMfa(t, mfaToken, { recoveryCode: u.recoveryCodes[0] }), 401, 'MFA_TOKEN_INVALID');
  });

  it('F7: a burst of guesses on one challenge answers MFA_TOKEN_INVALID beyond its 5, never 429', async () => {
    const u = await enrol(t);
    const mfaToken = await passwordStep(t, u);
    const answers = await Promise.all(
      Array.from({ length: 30 }, () => loginMfa(t, mfaToken, { code: wrongCode(t, u.secret) })),
    );
    expect(outcomeCounts(answers)).toEqual({ '401 INVALID_MFA_CODE': 5, '401 MFA_TOKEN_INVALID': 25 });
    // The account was charged the 5 real guesses only: the owner signs in at once.
    await mfaLogin(t, u);
  });

  it("the access token's roles are in the account's order whatever order the row holds them in", async () => {
    const u = await enrol(t);
    // Written by hand, not through the API (which always writes ["user","admin"]).
    await t.prisma.$executeRaw`UPDATE users SET roles = ARRAY['admin','user']::"Role"[] WHERE id = ${u.id}::uuid`;
    const totp = await mfaLogin(t, u);
    expect((totp.body.user as { roles: string[] }).roles).toEqual(['user', 'admin']);
    expect(claimsOf(totp.accessToken).roles).toEqual(['user', 'admin']);
    const viaCode = await loginMfa(t, await passwordStep(t, u), { recoveryCode: u.recoveryCodes[0] });
    expect(viaCode.status).toBe(200);
    expect(claimsOf(viaCode.body.accessToken as string).roles).toEqual(['user', 'admin']);
    const next = await refresh(t, totp.refreshToken).expect(200);
    expect(claimsOf(next.body.accessToken as string).roles).toEqual(['user', 'admin']);
  });

  it('turning two-step sign-in off makes the session a password session (its next token is aal1)', async () => {
    const u = await enrol(t);
    const code = advanceToFreshStep(t, u.secret);
    await t.http.delete('/auth/mfa').set(u.auth).send({ password: u.password, code }).expect(204);
    const next = await refresh(t, u.refreshToken).expect(200);
    expect(claimsOf(next.body.accessToken as string)).toMatchObject({ acr: 'aal1', amr: ['pwd'] });
  });
});

describe('MFA review findings: a burst on one challenge against an account budget one above it', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMfaApp({ MFA_MAX_ATTEMPTS: '5', MFA_RATE_LIMIT: '6' });
  });
  afterAll(async () => t?.close());

  it('F8: only the guesses the challenge admits take a place in the account budget (never 429 for a spent challenge)', async () => {
    const u = await enrol(t);
    const mfaToken = await passwordStep(t, u);
    // Counted account first, every guess in flight held a place in the account's budget until
    // its challenge refused it, and enough of them at once drew a 429 for a spent challenge.
    const answers = await Promise.all(
      Array.from({ length: 100 }, () => loginMfa(t, mfaToken, { code: wrongCode(t, u.secret) })),
    );
    expect(outcomeCounts(answers)).toEqual({ '401 INVALID_MFA_CODE': 5, '401 MFA_TOKEN_INVALID': 95 });
    // 5 of the account's 6 free wrong codes are spent: one more is judged, the next refused
    // before its challenge counts it.
    const next = await passwordStep(t, u);
    expectError(await loginMfa(t, next, { code: wrongCode(t, u.secret) }), 401, 'INVALID_MFA_CODE');
    expectError(await loginMfa(t, next, { code: wrongCode(t, u.secret) }), 429, 'TOO_MANY_ATTEMPTS');
    expect(await challengeAttempts(t, u.id)).toEqual([5, 1]);
  });

  it('F10: a burst that uses up the account budget leaves its live challenge answering 429, never MFA_TOKEN_INVALID', async () => {
    const u = await enrol(t);
    const first = await passwordStep(t, u);
    for (let i = 0; i < 5; i++) {
      expectError(await loginMfa(t, first, { code: wrongCode(t, u.secret) }), 401, 'INVALID_MFA_CODE');
    }
    // One wrong code left in the account's budget; the challenge has five places.
    const fresh = await passwordStep(t, u);
    const answers = await Promise.all(
      Array.from({ length: 100 }, () => loginMfa(t, fresh, { code: wrongCode(t, u.secret) })),
    );
    expect(outcomeCounts(answers)).toEqual({ '401 INVALID_MFA_CODE': 1, '429 TOO_MANY_ATTEMPTS': 99 });
    expect(await challengeAttempts(t, u.id)).toEqual([5, 1]);
    const code = advanceToFreshStep(t, u.secret, 2); // past the back-off, a step no code used
    expectStatus(await loginMfa(t, fresh, { code }), 200);
  });
});

describe('MFA review findings: a throttled account, one guess per challenge', () => {
  let t: TestApp;
  beforeAll(async () => {
    // One place per challenge: a guess that held it for a moment turned every guess arriving
    // meanwhile away, as if the challenge were spent.
    t = await startMfaApp({ MFA_MAX_ATTEMPTS: '1', MFA_RATE_LIMIT: '1' });
  });
  afterAll(async () => t?.close());

  it('F9: a burst on a live challenge of a throttled account is answered 429, never MFA_TOKEN_INVALID, and leaves the challenge whole', async () => {
    const u = await enrol(t);
    const first = await passwordStep(t, u);
    expectError(await loginMfa(t, first, { code: wrongCode(t, u.secret) }), 401, 'INVALID_MFA_CODE');
    const fresh = await passwordStep(t, u);
    const answers = await Promise.all(
      Array.from({ length: 100 }, () => loginMfa(t, fresh, { code: wrongCode(t, u.secret) })),
    );
    expect(outcomeCounts(answers)).toEqual({ '429 TOO_MANY_ATTEMPTS': 100 });
    expect(await challengeAttempts(t, u.id)).toEqual([1, 0]);
    // The challenge that was throttled, not spent, takes the right code once the wait is over.
    const wait = Number(answers[0]!.headers['retry-after']);
    const before = t.clock.nowMs();
    const code = advanceToFreshStep(t, u.secret); // a step not used by the enrolment
    expect(t.clock.nowMs() - before).toBeGreaterThanOrEqual(wait * 1000);
    expectStatus(await loginMfa(t, fresh, { code }), 200);
  });
});

describe('MFA review findings: ADMIN_REQUIRE_MFA covers every admin power', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMfaApp({ ADMIN_REQUIRE_MFA: 'true' });
  });
  afterAll(async () => t?.close());

  it("F5: an aal1 admin neither lists every resource nor reads or changes another user's private one", async () => {
    const owner = await signup(t);
    const created = await t.http
      .post('/resources')
      .set(owner.auth)
      .send({ title: 'private notes', visibility: 'private' })
      .expect(201);
    const id = created.body.id as string;
    const root = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
    expectError(await t.http.get('/resources?scope=all').set(root.auth), 403, 'STEP_UP_REQUIRED');
    expectError(await t.http.get(`/resources/${id}`).set(root.auth), 404, 'RESOURCE_NOT_FOUND');
    expectError(
      await t.http.patch(`/resources/${id}`).set(root.auth).send({ title: 'changed' }),
      404,
      'RESOURCE_NOT_FOUND',
    );
    expectError(await t.http.delete(`/resources/${id}`).set(root.auth), 404, 'RESOURCE_NOT_FOUND');
    // The same admin at aal2 has them.
    const admin = await enrol(t, root);
    await t.http.get('/resources?scope=all').set(admin.auth).expect(200);
    await t.http.get(`/resources/${id}`).set(admin.auth).expect(200);
  });
});
