import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditService } from '../../src/audit/audit.service.js';
import { MfaRepository } from '../../src/mfa/mfa.repository.js';
import { TOTP_AUTH } from '../../src/mfa/mfa.service.js';
import { SessionsService } from '../../src/sessions/sessions.service.js';
import type { TestApp } from '../support/test-app.js';
import { enrol, liveSessions, mfaLogin, passwordStep, startMfaApp, userRowXmax, type MfaUser } from './mfa-helpers.js';

const MAX_SESSIONS = 3;
const CLIENT = { ip: '203.0.113.9', userAgent: 'second-step-test', requestId: null };

/**
 * The statement of a login's second step with a TOTP code (MfaRepository.completeTotpLogin),
 * called directly: whatever stops it, nothing is written (the code stays usable, the challenge
 * open); when it succeeds, all of it is. The HTTP behaviour is in login.spec.ts and
 * replay-and-caps.spec.ts.
 */
describe('the second step as one statement', () => {
  let t: TestApp;
  let repo: MfaRepository;
  let sessions: SessionsService;
  let audit: AuditService;
  beforeAll(async () => {
    t = await startMfaApp({ MAX_SESSIONS_PER_USER: String(MAX_SESSIONS) });
    repo = t.app.get(MfaRepository);
    sessions = t.app.get(SessionsService);
    audit = t.app.get(AuditService);
  });
  afterAll(async () => t?.close());

  /** An enrolled user with an open challenge, and what the statement is given for step `last + ahead`. */
  async function setUp(u?: MfaUser, ahead = 1) {
    const user = u ?? (await enrol(t));
    await passwordStep(t, user);
    const challenge = await t.prisma.mfaChallenge.findFirstOrThrow({
      where: { userId: user.id, consumedAt: null },
      orderBy: { createdAt: 'desc' },
    });
    const totp = await t.prisma.mfaTotp.findUniqueOrThrow({ where: { userId: user.id } });
    return {
      user,
      challenge,
      totp,
      args: (over: Partial<Parameters<MfaRepository['completeTotpLogin']>[0]> = {}) => {
        const session = sessions.prepareOpen(user.id, CLIENT, { amr: [...TOTP_AUTH.amr], acr: TOTP_AUTH.acr });
        return {
          tokenHash: Buffer.from(challenge.tokenHash),
          userId: user.id,
          passwordHash: challenge.passwordHash,
          confirmedAt: totp.confirmedAt!,
          step: Number(totp.lastUsedStep) + ahead,
          now: t.clock.now(),
          countGuess: null as { maxAttempts: number } | null,
          session,
          audit: audit.row('login.mfa_succeeded', { userId: user.id, sessionId: session.id }, CLIENT, {
            method: 'totp',
          }),
          keep: MAX_SESSIONS,
          ...over,
        };
      },
    };
  }

  /** Nothing of a stopped statement is left: the step, the challenge, the session, the audit row. */
  async function expectNothingWritten(s: Awaited<ReturnType<typeof setUp>>, a: { session: { id: string } }) {
    const totp = await t.prisma.mfaTotp.findUniqueOrThrow({ where: { userId: s.user.id } });
    expect(totp.lastUsedStep).toBe(s.totp.lastUsedStep);
    const challenge = await t.prisma.mfaChallenge.findUniqueOrThrow({ where: { id: s.challenge.id } });
    expect(challenge.consumedAt).toEqual(s.challenge.consumedAt);
    expect(await t.prisma.session.count({ where: { id: a.session.id } })).toBe(0);
    expect(await t.prisma.auditEvent.count({ where: { sessionId: a.session.id } })).toBe(0);
  }

  it('opens the session: step used, challenge consumed, session and audit row written', async () => {
    const s = await setUp();
    const email = `${s.user.username}@example.com`;
    await t.prisma.user.update({
      where: { id: s.user.id },
      data: { email, emailKey: email.toLowerCase(), displayName: 'Second Step', emailVerifiedAt: t.clock.now() },
    });
    const a = s.args();
    const done = await repo.completeTotpLogin(a);
    // The account as the statement locked it: what the answer's `user` is made of.
    const account = await t.prisma.user.findUniqueOrThrow({ where: { id: s.user.id } });
    expect(done).toEqual({
      kind: 'opened',
      user: {
        id: s.user.id,
        roles: ['user'],
        username: account.username,
        email: account.email,
        emailVerifiedAt: account.emailVerifiedAt,
        displayName: account.displayName,
        kind: 'person',
        mfaEnabled: true,
        createdAt: account.createdAt,
      },
      // No other live session: the cap on sessions per user has nothing to revoke.
      withinCap: true,
    });
    const totp = await t.prisma.mfaTotp.findUniqueOrThrow({ where: { userId: s.user.id } });
    expect(totp.lastUsedStep).toBe(BigInt(a.step!));
    const challenge = await t.prisma.mfaChallenge.findUniqueOrThrow({ where: { id: s.challenge.id } });
    expect(challenge.consumedAt).not.toBeNull();
    const row = await t.prisma.session.findUniqueOrThrow({ where: { id: a.session.id } });
    expect(row).toMatchObject({ userId: s.user.id, amr: ['pwd', 'otp', 'mfa'], acr: 'aal2', ip: CLIENT.ip });
    expect(Buffer.from(row.tokenHash)).toEqual(a.session.session.tokenHash);
    const event = await t.prisma.auditEvent.findUniqueOrThrow({ where: { id: a.audit.id } });
    expect(event).toMatchObject({
      type: 'login.mfa_succeeded',
      userId: s.user.id,
      sessionId: a.session.id,
      details: { method: 'totp' },
    });
  });

  it('a challenge consumed meanwhile: challenge_gone, nothing written', async () => {
    const s = await setUp();
    await t.prisma.mfaChallenge.update({ where: { id: s.challenge.id }, data: { consumedAt: t.clock.now() } });
    s.challenge.consumedAt = (
      await t.prisma.mfaChallenge.findUniqueOrThrow({ where: { id: s.challenge.id } })
    ).consumedAt;
    const a = s.args();
    expect(await repo.completeTotpLogin(a)).toEqual({ kind: 'challenge_gone' });
    await expectNothingWritten(s, a);
  });

  it('a password changed or an account disabled since the first step: challenge_gone, nothing written', async () => {
    const s = await setUp();
    const a = s.args({ passwordHash: `${s.challenge.passwordHash}x` });
    expect(await repo.completeTotpLogin(a)).toEqual({ kind: 'challenge_gone' });
    await expectNothingWritten(s, a);

    await t.prisma.user.update({ where: { id: s.user.id }, data: { disabled: true } });
    const b = s.args();
    expect(await repo.completeTotpLogin(b)).toEqual({ kind: 'challenge_gone' });
    await expectNothingWritten(s, b);
  });

  it('a step not newer than the last one used: step_used; a factor enrolled again since it was read: factor_changed; nothing written', async () => {
    const s = await setUp(undefined, 0);
    const a = s.args();
    expect(await repo.completeTotpLogin(a)).toMatchObject({ kind: 'step_used' });
    await expectNothingWritten(s, a);

    // Disabled and enrolled again: a new confirmation time (and a new secret).
    for (const countGuess of [null, { maxAttempts: 5 }]) {
      const b = s.args({
        step: Number(s.totp.lastUsedStep) + 1,
        confirmedAt: new Date(s.totp.confirmedAt!.getTime() - 1),
        countGuess,
      });
      expect(await repo.completeTotpLogin(b)).toEqual({ kind: 'factor_changed' });
      await expectNothingWritten(s, b);
      expect((await t.prisma.mfaChallenge.findUniqueOrThrow({ where: { id: s.challenge.id } })).attempts).toBe(
        s.challenge.attempts,
      );
    }
  });

  describe('counting the guess in the same statement (countGuess)', () => {
    const attemptsOf = async (id: string) =>
      (await t.prisma.mfaChallenge.findUniqueOrThrow({ where: { id } })).attempts;

    it('opens the session and counts the guess; without countGuess nothing more is counted', async () => {
      const s = await setUp();
      const a = s.args({ countGuess: { maxAttempts: 5 } });
      expect(await repo.completeTotpLogin(a)).toMatchObject({ kind: 'opened' });
      expect(await attemptsOf(s.challenge.id)).toBe(s.challenge.attempts + 1);
      expect(await t.prisma.session.count({ where: { id: a.session.id } })).toBe(1);

      const u = await setUp();
      expect(await repo.completeTotpLogin(u.args())).toMatchObject({ kind: 'opened' });
      expect(await attemptsOf(u.challenge.id)).toBe(u.challenge.attempts);
    });

    it('a used step is counted, and nothing else written; the last guess then finds none left', async () => {
      const s = await setUp(undefined, 0);
      await t.prisma.mfaChallenge.update({ where: { id: s.challenge.id }, data: { attempts: 2 } });
      s.challenge.attempts = 2;
      const a = s.args({ countGuess: { maxAttempts: 3 } });
      expect(await repo.completeTotpLogin(a)).toMatchObject({ kind: 'step_used' });
      expect(await attemptsOf(s.challenge.id)).toBe(3);
      await expectNothingWritten(s, a);

      // Three counted of three: a right code finds no guess left, and is not counted.
      const b = s.args({ step: Number(s.totp.lastUsedStep) + 1, countGuess: { maxAttempts: 3 } });
      expect(await repo.completeTotpLogin(b)).toEqual({ kind: 'no_guess_left' });
      expect(await attemptsOf(s.challenge.id)).toBe(3);
      await expectNothingWritten(s, b);
      // Already counted before (the usual path): the same code completes.
      expect(await repo.completeTotpLogin({ ...b, countGuess: null })).toMatchObject({ kind: 'opened' });
    });

    it('a code that matched no step (step null) is only counted', async () => {
      const s = await setUp();
      const a = s.args({ step: null, countGuess: { maxAttempts: 5 } });
      expect(await repo.completeTotpLogin(a)).toEqual({ kind: 'step_used', challengeId: s.challenge.id });
      expect(await attemptsOf(s.challenge.id)).toBe(s.challenge.attempts + 1);
      await expectNothingWritten(s, a);
    });

    it('a challenge without a guess left is neither locked nor written, whatever the code', async () => {
      const s = await setUp();
      await t.prisma.mfaChallenge.update({ where: { id: s.challenge.id }, data: { attempts: 5 } });
      const before = await userRowXmax(t, s.user.id);
      for (const step of [null, Number(s.totp.lastUsedStep) + 1]) {
        const a = s.args({ step, countGuess: { maxAttempts: 5 } });
        expect(await repo.completeTotpLogin(a)).toEqual({ kind: 'no_guess_left' });
        await expectNothingWritten(s, a);
      }
      // A row lock (FOR SHARE) would have stamped the user row's xmax.
      expect(await userRowXmax(t, s.user.id)).toBe(before);
    });

    it('a consumed or expired challenge is gone, not out of guesses', async () => {
      const s = await setUp();
      await t.prisma.mfaChallenge.update({ where: { id: s.challenge.id }, data: { consumedAt: t.clock.now() } });
      s.challenge.consumedAt = (
        await t.prisma.mfaChallenge.findUniqueOrThrow({ where: { id: s.challenge.id } })
      ).consumedAt;
      const a = s.args({ countGuess: { maxAttempts: 5 } });
      expect(await repo.completeTotpLogin(a)).toEqual({ kind: 'challenge_gone' });
      await expectNothingWritten(s, a);

      const e = await setUp();
      const b = e.args({ countGuess: { maxAttempts: 5 }, now: new Date(e.challenge.expiresAt.getTime() + 1) });
      expect(await repo.completeTotpLogin(b)).toEqual({ kind: 'challenge_gone' });
      await expectNothingWritten(e, b);
      expect(await attemptsOf(e.challenge.id)).toBe(e.challenge.attempts);
    });

    it('of concurrent guesses counted with the completion, at most the places left get through', async () => {
      for (let round = 0; round < 3; round++) {
        const s = await setUp(undefined, 0);
        await t.prisma.mfaChallenge.update({ where: { id: s.challenge.id }, data: { attempts: 3 } });
        // Four used steps and one right one, at once, with two places left.
        const used = Array.from({ length: 4 }, () => s.args({ countGuess: { maxAttempts: 5 } }));
        const right = s.args({ step: Number(s.totp.lastUsedStep) + 1, countGuess: { maxAttempts: 5 } });
        const done = await Promise.all([...used, right].map((a) => repo.completeTotpLogin(a)));
        // Every guess that got through was counted, and no more than the two places left did
        // (fewer when the right one consumed the challenge before a second one came).
        const through = done.filter((d) => d.kind === 'step_used' || d.kind === 'opened').length;
        expect(through).toBeGreaterThanOrEqual(1);
        expect(through).toBeLessThanOrEqual(2);
        expect(await attemptsOf(s.challenge.id)).toBe(3 + through);
        expect(done.filter((d) => d.kind === 'opened').length).toBeLessThanOrEqual(1);
      }
    });
  });

  it('a secret re-encrypted under a newer key since it was read is the same factor: the step is used', async () => {
    // A concurrent second step re-seals a secret under an older key after its success
    // (MFA_ENCRYPTION_KEYS rotation): this one's code, checked against the old sealing, still counts.
    const s = await setUp();
    await t.prisma.mfaTotp.update({
      where: { userId: s.user.id },
      data: { secretEnc: new Uint8Array(s.totp.secretEnc.length), secretKeyId: 'resealed' },
    });
    const a = s.args();
    expect(await repo.completeTotpLogin(a)).toMatchObject({ kind: 'opened', user: { id: s.user.id, roles: ['user'] } });
    const totp = await t.prisma.mfaTotp.findUniqueOrThrow({ where: { userId: s.user.id } });
    expect(totp.lastUsedStep).toBe(BigInt(a.step!));
  });

  it('a second step over HTTP keeps MAX_SESSIONS_PER_USER live sessions, the new one included', async () => {
    const u = await enrol(t); // the confirmation's session: 1
    const older = await t.prisma.session.findMany({ where: { userId: u.id, revokedAt: null } });
    for (let i = 0; i < MAX_SESSIONS - 1; i++) {
      t.clock.advance(1);
      await mfaLogin(t, u);
    }
    expect(await liveSessions(t, u.id)).toBe(MAX_SESSIONS);
    t.clock.advance(1);
    const last = await mfaLogin(t, u);
    expect(await liveSessions(t, u.id)).toBe(MAX_SESSIONS);
    // The least recently used one went: the confirmation's; the new one is live.
    const revoked = await t.prisma.session.findMany({ where: { userId: u.id, revokedReason: 'session_limit' } });
    expect(revoked.map((r) => r.id)).toEqual(older.map((o) => o.id));
    await t.http.get('/users/me').set(last.auth).expect(200);
  });

  it('two second steps on one challenge with codes of two steps: one opens, the other writes nothing', async () => {
    for (let round = 0; round < 5; round++) {
      const s = await setUp();
      const [a, b] = [s.args(), s.args({ step: Number(s.totp.lastUsedStep) + 2 })];
      const done = await Promise.all([repo.completeTotpLogin(a), repo.completeTotpLogin(b)]);
      const kinds = done.map((d) => d.kind).sort();
      expect(kinds).toEqual(['challenge_gone', 'opened']);
      const winner = done[0]!.kind === 'opened' ? a : b;
      // The loser's step was not spent: the step recorded is the winner's.
      const totp = await t.prisma.mfaTotp.findUniqueOrThrow({ where: { userId: s.user.id } });
      expect(totp.lastUsedStep).toBe(BigInt(winner.step!));
      expect(await t.prisma.session.count({ where: { id: { in: [a.session.id, b.session.id] } } })).toBe(1);
    }
  });
});
