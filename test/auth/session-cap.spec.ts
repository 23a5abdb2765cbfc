import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { SessionsRepository } from '../../src/sessions/sessions.repository.js';
import { SessionsService } from '../../src/sessions/sessions.service.js';
import { onPostgres } from '../support/env.js';
import { login, signup, type SignedUp } from '../support/factories.js';
import type { TestApp } from '../support/test-app.js';
import { enrol, liveSessions, loginMfa, mfaLogin, passwordStep, startMfaApp } from '../mfa/mfa-helpers.js';

const MAX_SESSIONS = 3;
const CLIENT = { ip: '203.0.113.7', userAgent: 'session-cap-test', requestId: null };

/**
 * The cap on live sessions per user (MAX_SESSIONS_PER_USER) at login: the statement that
 * opens a session tells whether the cap has anything to revoke, and the cap's own statement
 * (SessionsRepository.revokeBeyond) runs only when it may. What concurrent logins leave is in
 * test/mfa/session-cap-races.spec.ts.
 */
describe('the cap on live sessions per user, at login', () => {
  let t: TestApp;
  let repo: SessionsRepository;
  beforeAll(async () => {
    t = await startMfaApp({ MAX_SESSIONS_PER_USER: String(MAX_SESSIONS) });
    repo = t.app.get(SessionsRepository);
  });
  afterAll(async () => t?.close());
  afterEach(() => vi.restoreAllMocks());

  const revokedForTheCap = (userId: string) =>
    t.prisma.session.findMany({ where: { userId, revokedReason: 'session_limit' }, select: { id: true } });

  it('password logins: below the cap no statement of the cap runs; past it, the least recently used session goes', async () => {
    const u = await signup(t); // the sign-up's session: 1
    const first = await t.prisma.session.findFirstOrThrow({ where: { userId: u.id } });
    const cap = vi.spyOn(repo, 'revokeBeyond');
    for (let i = 1; i < MAX_SESSIONS; i++) {
      t.clock.advance(1_000);
      await login(t, u.username, u.password);
    }
    expect(await liveSessions(t, u.id)).toBe(MAX_SESSIONS);
    expect(cap).not.toHaveBeenCalled();

    t.clock.advance(1_000);
    const last = await login(t, u.username, u.password);
    expect(cap).toHaveBeenCalledTimes(1);
    expect(await liveSessions(t, u.id)).toBe(MAX_SESSIONS);
    expect(await revokedForTheCap(u.id)).toEqual([{ id: first.id }]);
    await t.http.get('/users/me').set(last.auth).expect(200);
    // The revoked session's token is refused at once.
    await t.http.get('/users/me').set(u.auth).expect(401);
  });

  it('only live sessions count: a revoked or an expired one leaves room', async () => {
    const u = await signup(t);
    for (let i = 1; i < MAX_SESSIONS; i++) await login(t, u.username, u.password);
    const [a, b] = await t.prisma.session.findMany({ where: { userId: u.id }, orderBy: { createdAt: 'asc' } });
    const now = t.clock.now();
    await t.prisma.session.update({ where: { id: a!.id }, data: { revokedAt: now, revokedReason: 'logout' } });
    await t.prisma.session.update({ where: { id: b!.id }, data: { expiresAt: new Date(now.getTime() - 1) } });
    const cap = vi.spyOn(repo, 'revokeBeyond');
    await login(t, u.username, u.password);
    await login(t, u.username, u.password);
    expect(cap).not.toHaveBeenCalled();
    const unexpired = await t.prisma.session.count({
      where: { userId: u.id, revokedAt: null, expiresAt: { gt: t.clock.now() } },
    });
    expect(unexpired).toBe(MAX_SESSIONS);
    expect(await revokedForTheCap(u.id)).toEqual([]);
  });

  it("every way in moves the user's session_seq on: sign-up, password login, second step with a TOTP or a recovery code", async () => {
    // A login racing one of them tells from it that a session was opened (see withinCapSql);
    // the external sign-in's is in test/federation/exchange.spec.ts.
    const seq = async (id: string) => (await t.prisma.user.findUniqueOrThrow({ where: { id } })).sessionSeq;
    const u = await signup(t);
    expect(await seq(u.id)).toBe(1);
    await login(t, u.username, u.password);
    expect(await seq(u.id)).toBe(2);
    const m = await enrol(t);
    const before = await seq(m.id);
    await mfaLogin(t, m);
    expect(await seq(m.id)).toBe(before + 1);
    const res = await loginMfa(t, await passwordStep(t, m), { recoveryCode: m.recoveryCodes[0] });
    expect(res.status).toBe(200);
    expect(await seq(m.id)).toBe(before + 2);
  });

  it('second steps: below the cap no statement of the cap runs; past it, it does', async () => {
    const u = await enrol(t); // the confirmation's session: 1
    const cap = vi.spyOn(repo, 'revokeBeyond');
    for (let i = 1; i < MAX_SESSIONS; i++) await mfaLogin(t, u);
    expect(cap).not.toHaveBeenCalled();
    await mfaLogin(t, u);
    expect(cap).toHaveBeenCalledTimes(1);
    expect(await liveSessions(t, u.id)).toBe(MAX_SESSIONS);
    expect(await revokedForTheCap(u.id)).toHaveLength(1);
  });

  /**
   * Another transaction opens a session of the user after the statement's snapshot was taken
   * and before it locks the user's row (it waits for that transaction): the statement cannot
   * have counted that session, so it must leave the cap to its own statement, although what
   * it counted leaves room. (PGlite runs one statement at a time: PostgreSQL only.)
   */
  describe.runIf(onPostgres)('a session opened between the statement’s snapshot and its lock', () => {
    let other: pg.Client;
    beforeAll(async () => {
      other = new pg.Client({ connectionString: t.databaseUrl });
      await other.connect();
    });
    afterAll(async () => other?.end());

    async function openWithPasswordCheck(u: SignedUp) {
      const { passwordHash } = await t.prisma.user.findUniqueOrThrow({ where: { id: u.id } });
      const { session } = t.app.get(SessionsService).prepareOpen(u.id, CLIENT, { amr: ['pwd'], acr: 'aal1' });
      return repo.createIfCredentialsCurrent(session, passwordHash!, true, MAX_SESSIONS);
    }

    /** Until the statement that opens the session waits for the other transaction (its row lock). */
    async function untilWaitingForALock() {
      for (let i = 0; i < 1_000; i++) {
        const { rows } = await other.query<{ n: string }>(
          `SELECT count(*) AS n FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'transactionid'`,
        );
        if (Number(rows[0]!.n) > 0) return;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error('the statement never waited for the lock');
    }

    it('with nothing between, live sessions that leave room for the new one: within the cap', async () => {
      const u = await signup(t);
      await login(t, u.username, u.password); // two live sessions, the new one the third
      expect(await openWithPasswordCheck(u)).toMatchObject({ withinCap: true });
    });

    it('with a session committed between: not within the cap, although the sessions it saw leave room', async () => {
      // One live session: had the statement taken its snapshot after the other transaction
      // committed, it would see two, and three with its own are within the cap.
      const u = await signup(t);
      await other.query('BEGIN');
      try {
        // What every statement that opens a session does: the row's session_seq moves on.
        await other.query(`UPDATE users SET session_seq = (session_seq + 1) % 2147483647 WHERE id = $1`, [u.id]);
        const opening = openWithPasswordCheck(u);
        await untilWaitingForALock();
        await other.query(
          `INSERT INTO sessions (id, user_id, token_hash, expires_at, absolute_expires_at) VALUES ($1, $2, $3, $4, $4)`,
          [randomUUID(), u.id, randomBytes(32), new Date(t.clock.nowMs() + 86_400_000)],
        );
        await other.query('COMMIT');
        // The statement saw one live session; the other transaction's came after its snapshot.
        expect(await opening).toMatchObject({ withinCap: false });
      } finally {
        await other.query('ROLLBACK').catch(() => undefined);
      }
      expect(await liveSessions(t, u.id)).toBe(3);
    });
  });
});
