import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { MfaRepository } from '../../src/mfa/mfa.repository.js';
import { LoginThrottleService } from '../../src/throttle/login-throttle.service.js';
import type { TestApp } from '../support/test-app.js';
import {
  advanceToFreshStep,
  challengeAttempts,
  enrol,
  expectError,
  expectStatus,
  loginMfa,
  outcome,
  outcomeCounts,
  passwordStep,
  startMfaApp,
  userRowXmax,
  wrongCode,
  type MfaUser,
} from './mfa-helpers.js';

/**
 * The instance that opened a login challenge keeps it (MfaService's held challenges): a right
 * TOTP code is checked before any statement, then counted and the login completed in one. The
 * answers must be those of the usual path (count, then check), for every code and every state
 * of the challenge and the account; and where a code cannot succeed (no guess left, the
 * account waiting), a right code and a wrong one must cost the same work, so that the time of
 * the answer does not tell them apart.
 */
describe('the second step on the instance that opened the challenge', () => {
  let t: TestApp;
  let repo: MfaRepository;
  beforeAll(async () => {
    t = await startMfaApp({ MFA_MAX_ATTEMPTS: '3', MFA_RATE_LIMIT: '4' });
    repo = t.app.get(MfaRepository);
  });
  afterEach(() => vi.restoreAllMocks());
  afterAll(async () => t?.close());

  /** Spies on the two statements of the second step: the usual path's count, and the completion. */
  const statements = () => ({
    count: vi.spyOn(repo, 'countAttempt'),
    complete: vi.spyOn(repo, 'completeTotpLogin'),
  });

  /** The account has all of its four wrong codes (MFA_RATE_LIMIT) free: four are judged, the fifth waits. */
  async function expectWholeBudget(u: MfaUser) {
    const next = await passwordStep(t, u);
    for (let i = 0; i < 3; i++) {
      expectError(await loginMfa(t, next, { code: wrongCode(t, u.secret) }), 401, 'INVALID_MFA_CODE');
    }
    const last = await passwordStep(t, u);
    expectError(await loginMfa(t, last, { code: wrongCode(t, u.secret) }), 401, 'INVALID_MFA_CODE');
    expectError(await loginMfa(t, last, { code: wrongCode(t, u.secret) }), 429, 'TOO_MANY_ATTEMPTS');
  }

  it('a right code: one statement, the guess counted on the challenge, the challenge consumed', async () => {
    const u = await enrol(t);
    const mfaToken = await passwordStep(t, u);
    const code = advanceToFreshStep(t, u.secret);
    const s = statements();
    expectStatus(await loginMfa(t, mfaToken, { code }), 200);
    expect(s.count).not.toHaveBeenCalled();
    expect(s.complete).toHaveBeenCalledTimes(1);
    expect(await challengeAttempts(t, u.id)).toEqual([1]);
    // Used once: the same token again is a consumed challenge, answered as by the usual path.
    expectError(await loginMfa(t, mfaToken, { code: advanceToFreshStep(t, u.secret) }), 401, 'MFA_TOKEN_INVALID');
  });

  it('a wrong code goes through the same statement, counted on the challenge and the account; a right one then completes', async () => {
    const u = await enrol(t);
    const mfaToken = await passwordStep(t, u);
    const s = statements();
    expectError(await loginMfa(t, mfaToken, { code: wrongCode(t, u.secret) }), 401, 'INVALID_MFA_CODE');
    expect(s.count).not.toHaveBeenCalled();
    expect(s.complete).toHaveBeenCalledTimes(1);
    expect(await challengeAttempts(t, u.id)).toEqual([1]);
    expectStatus(await loginMfa(t, mfaToken, { code: advanceToFreshStep(t, u.secret) }), 200);
    expect(s.count).not.toHaveBeenCalled();
    expect(await challengeAttempts(t, u.id)).toEqual([2]);
    // The wrong code was counted against the account too, and the success cleared it.
    await expectWholeBudget(u);
  });

  it('a challenge with every guess counted: a right code and a wrong one get the same answer after the same work, and neither is counted', async () => {
    const u = await enrol(t);
    const mfaToken = await passwordStep(t, u);
    // Spent by another instance: no code has reached this one yet.
    await t.prisma.mfaChallenge.updateMany({ where: { userId: u.id }, data: { attempts: 3 } });
    const right = advanceToFreshStep(t, u.secret);
    const before = await userRowXmax(t, u.id);
    const probe = async (code: string, path: 'held' | 'usual') => {
      const s = statements();
      const answer = outcome(await loginMfa(t, mfaToken, { code }));
      // The same statements for either code: on the held path, the completion (which finds no
      // guess left) and then the usual path's count, which answers.
      expect(s.count).toHaveBeenCalledTimes(1);
      expect(s.complete).toHaveBeenCalledTimes(path === 'held' ? 1 : 0);
      vi.restoreAllMocks();
      return answer;
    };
    const answers = [];
    // Three codes (MFA_MAX_ATTEMPTS) take the held path, right or wrong; the ones after them
    // the usual path, right or wrong.
    for (const code of [wrongCode(t, u.secret), right, wrongCode(t, u.secret)]) answers.push(await probe(code, 'held'));
    for (const code of [right, wrongCode(t, u.secret)]) answers.push(await probe(code, 'usual'));
    expect(answers).toEqual(Array(5).fill('401 MFA_TOKEN_INVALID'));
    // No row lock taken for either (a lock stamps the user row's xmax and commits a write).
    expect(await userRowXmax(t, u.id)).toBe(before);
    expect(await challengeAttempts(t, u.id)).toEqual([3]);
    // Nothing was counted against the account.
    await expectWholeBudget(u);
  });

  it('while the account waits out its wrong codes, a right code is refused as a wrong one: 429 before any check or statement', async () => {
    const u = await enrol(t);
    // The clock moves first: the account's wait is counted in the frozen clock's time.
    const right = advanceToFreshStep(t, u.secret);
    // Four wrong codes over two challenges: the account's budget (MFA_RATE_LIMIT=4) is spent.
    for (const n of [3, 1]) {
      const spent = await passwordStep(t, u);
      for (let i = 0; i < n; i++) {
        expectError(await loginMfa(t, spent, { code: wrongCode(t, u.secret) }), 401, 'INVALID_MFA_CODE');
      }
    }
    const mfaToken = await passwordStep(t, u);
    const s = statements();
    const admit = vi.spyOn(t.app.get(LoginThrottleService), 'admitSecondFactor');
    const answers = [
      await loginMfa(t, mfaToken, { code: wrongCode(t, u.secret) }),
      await loginMfa(t, mfaToken, { code: right }),
    ];
    for (const res of answers) expectError(res, 429, 'TOO_MANY_ATTEMPTS');
    expect(answers[1]!.headers['retry-after']).toBeTruthy();
    expect(admit).toHaveBeenCalledTimes(2);
    expect(s.count).not.toHaveBeenCalled();
    expect(s.complete).not.toHaveBeenCalled();
    expect((await challengeAttempts(t, u.id)).at(-1)).toBe(0);
  });

  it('simultaneous codes over several challenges get no more checks than the account has places left', async () => {
    const u = await enrol(t);
    const right = advanceToFreshStep(t, u.secret);
    // Three wrong codes: one place left of the account's four (MFA_RATE_LIMIT).
    const spent = await passwordStep(t, u);
    for (let i = 0; i < 3; i++) {
      expectError(await loginMfa(t, spent, { code: wrongCode(t, u.secret) }), 401, 'INVALID_MFA_CODE');
    }
    // Six challenges; five wrong codes and the right one at once, each on its own challenge,
    // with slow statements: every code reaches the server before any statement ends.
    const tokens = [];
    for (let i = 0; i < 6; i++) tokens.push(await passwordStep(t, u));
    const complete = repo.completeTotpLogin.bind(repo);
    vi.spyOn(repo, 'completeTotpLogin').mockImplementation(async (p) => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      return complete(p);
    });
    const codes = [...Array.from({ length: 5 }, () => wrongCode(t, u.secret)), right];
    const answers = await Promise.all(tokens.map((mfaToken, i) => loginMfa(t, mfaToken, { code: codes[i] })));
    // One code checked, whichever came first: the right one opens the session only if it was
    // that one (counted before it is checked, like a wrong one); the others are 429.
    const counts = outcomeCounts(answers);
    expect((counts['401 INVALID_MFA_CODE'] ?? 0) + (counts['200 undefined'] ?? 0)).toBe(1);
    expect(counts['429 TOO_MANY_ATTEMPTS']).toBe(5);
  });

  it('a right code after the challenge expired: 401 MFA_TOKEN_INVALID by the usual path, no session', async () => {
    const u = await enrol(t);
    const mfaToken = await passwordStep(t, u);
    t.clock.advance(301); // MFA_CHALLENGE_TTL (300 s) and a second
    const code = advanceToFreshStep(t, u.secret);
    const before = await t.prisma.session.count({ where: { userId: u.id } });
    const s = statements();
    expectError(await loginMfa(t, mfaToken, { code }), 401, 'MFA_TOKEN_INVALID');
    expect(s.count).toHaveBeenCalledTimes(1);
    expect(s.complete).not.toHaveBeenCalled();
    expect(await t.prisma.session.count({ where: { userId: u.id } })).toBe(before);
  });

  it('a password changed since the first step: a right code opens nothing (401 MFA_TOKEN_INVALID)', async () => {
    const u = await enrol(t);
    const mfaToken = await passwordStep(t, u);
    // A change the challenge's row does not see (a new hash written directly: the password
    // change route would also delete the challenge).
    await t.prisma.user.update({
      where: { id: u.id },
      data: { passwordHash: '$2b$04$changedchangedchangedchangedchangedchangedchangedcha' },
    });
    const before = await t.prisma.session.count({ where: { userId: u.id } });
    expectError(await loginMfa(t, mfaToken, { code: advanceToFreshStep(t, u.secret) }), 401, 'MFA_TOKEN_INVALID');
    expect(await t.prisma.session.count({ where: { userId: u.id } })).toBe(before);
  });

  it('a used step is a wrong code, counted on the challenge and the account', async () => {
    const u = await enrol(t);
    const first = await passwordStep(t, u);
    const code = advanceToFreshStep(t, u.secret);
    expectStatus(await loginMfa(t, first, { code }), 200);
    const mfaToken = await passwordStep(t, u);
    const s = statements();
    expectError(await loginMfa(t, mfaToken, { code }), 401, 'INVALID_MFA_CODE');
    expect(s.count).not.toHaveBeenCalled();
    expect(await challengeAttempts(t, u.id)).toEqual([1, 1]);
    // The account's budget counted it: three more wrong codes (4 in all) and the next waits.
    const other = await passwordStep(t, u);
    for (let i = 0; i < 3; i++) {
      expectError(await loginMfa(t, other, { code: wrongCode(t, u.secret) }), 401, 'INVALID_MFA_CODE');
    }
    const last = await passwordStep(t, u);
    expectError(await loginMfa(t, last, { code: wrongCode(t, u.secret) }), 429, 'TOO_MANY_ATTEMPTS');
  });
});
