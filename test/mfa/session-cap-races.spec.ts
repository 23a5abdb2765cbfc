import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signup } from '../support/factories.js';
import type { TestApp } from '../support/test-app.js';
import {
  STEP_MS,
  codeNow,
  enrol,
  expectStatus,
  liveSessions,
  loginMfa,
  passwordStep,
  startMfaApp,
} from './mfa-helpers.js';

const MAX_SESSIONS = 3;

/**
 * MAX_SESSIONS_PER_USER holds once concurrent logins of one user have all answered, whatever
 * the way in: a login's cap must see the sessions that logins racing it committed (on
 * PostgreSQL they run at once, each statement queuing for the user's row lock only; PGlite
 * runs one statement at a time).
 */
describe('the session cap under concurrent logins of one user', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMfaApp({ MAX_SESSIONS_PER_USER: String(MAX_SESSIONS) });
  });
  afterAll(async () => t?.close());

  it('password logins', async () => {
    const u = await signup(t);
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all(
        Array.from({ length: 8 }, () =>
          t.http.post('/auth/login').send({ username: u.username, password: u.password }),
        ),
      );
      for (const res of answers) expectStatus(res, 200);
      expect(await liveSessions(t, u.id)).toBe(MAX_SESSIONS);
    }
  });

  it('second steps with recovery codes', async () => {
    for (let round = 0; round < 3; round++) {
      const m = await enrol(t);
      const codes = m.recoveryCodes.slice(0, 6);
      const challenges = [];
      for (let i = 0; i < codes.length; i++) challenges.push(await passwordStep(t, m));
      const answers = await Promise.all(challenges.map((c, i) => loginMfa(t, c, { recoveryCode: codes[i] })));
      for (const res of answers) expectStatus(res, 200);
      expect(await liveSessions(t, m.id)).toBe(MAX_SESSIONS);
    }
  });

  it('second steps with TOTP codes of two steps', async () => {
    let bothOpened = 0;
    for (let round = 0; round < 8; round++) {
      // Three live sessions: the confirmation's and two logins of earlier steps.
      const m = await enrol(t);
      for (let i = 0; i < MAX_SESSIONS - 1; i++) {
        t.clock.advance(STEP_MS / 1000);
        expectStatus(await loginMfa(t, await passwordStep(t, m), { code: codeNow(t, m.secret) }), 200);
      }
      expect(await liveSessions(t, m.id)).toBe(MAX_SESSIONS);
      // Steps n and n+1 are both newer than the last one used: both open, when n's commits first.
      t.clock.advance(STEP_MS / 1000);
      const [a, b] = [await passwordStep(t, m), await passwordStep(t, m)];
      const answers = await Promise.all([
        loginMfa(t, a, { code: codeNow(t, m.secret) }),
        loginMfa(t, b, { code: codeNow(t, m.secret, 1) }),
      ]);
      if (answers.every((res) => res.status === 200)) bothOpened++;
      expect(await liveSessions(t, m.id)).toBe(MAX_SESSIONS);
    }
    // Otherwise the rounds proved nothing about the cap.
    expect(bothOpened).toBeGreaterThan(0);
  });
});
