import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetentionService } from '../../src/retention/retention.service.js';
import { ROOMY_LIMITS, onPostgres } from '../support/env.js';
import { bearer, login, refresh, refreshCookieOf, signup } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

const HOUR = 3600;
const DAY = 24 * HOUR;

describe('live sessions per user are capped', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', MAX_SESSIONS_PER_USER: '3' });
  });
  afterAll(async () => t?.close());

  it('a login beyond the cap revokes the least recently used sessions, tokens included', async () => {
    const u = await signup(t);
    const sessions = [u];
    for (let i = 0; i < 4; i++) {
      t.clock.advance(1); // distinct last-use times
      sessions.push(await login(t, u.username, u.password));
    }
    const listed = await t.http.get('/auth/sessions').set(sessions[4]!.auth).expect(200);
    expect(listed.body).toHaveLength(3);
    // The two oldest are gone, refresh cookie and access token alike; the newest three live.
    for (const old of sessions.slice(0, 2)) {
      await t.http.get('/users/me').set(old.auth).expect(401);
      await refresh(t, old.refreshToken).expect(401);
    }
    for (const kept of sessions.slice(2)) await t.http.get('/users/me').set(kept.auth).expect(200);
  });

  it('using a session keeps it: the least recently *used* one goes', async () => {
    const u = await signup(t);
    const a = await login(t, u.username, u.password);
    t.clock.advance(1);
    const b = await login(t, u.username, u.password);
    t.clock.advance(1);
    // The signup session is refreshed: now the most recently used.
    const refreshed = await refresh(t, u.refreshToken).expect(200);
    t.clock.advance(1);
    await login(t, u.username, u.password);
    await t.http.get('/users/me').set(bearer(refreshed.body.accessToken)).expect(200);
    await t.http.get('/users/me').set(a.auth).expect(401);
    await t.http.get('/users/me').set(b.auth).expect(200);
  });
});

describe('the retention job', () => {
  let t: TestApp;
  const env = {
    ...ROOMY_LIMITS,
    LOGIN_RATE_LIMIT: '1000',
    SESSION_RETENTION: String(7 * DAY),
    AUDIT_RETENTION: String(30 * DAY),
  };
  beforeAll(async () => {
    t = await startApp(env);
    t.clock.freeze();
  });
  afterAll(async () => t?.close());

  const counts = async (userId: string) => ({
    sessions: await t.prisma.session.count({ where: { userId } }),
    retired: await t.prisma.retiredRefreshToken.count({ where: { session: { userId } } }),
    audit: await t.prisma.auditEvent.count({ where: { userId } }),
  });

  it('deletes ended sessions and old audit events after their retention, and keeps the rest', async () => {
    const u = await signup(t);
    const loggedOut = await login(t, u.username, u.password);
    await t.http.post('/auth/logout').set(loggedOut.auth).expect(204);
    const rotated = await refresh(t, u.refreshToken).expect(200); // one retired token on the live session
    expect(await counts(u.id)).toMatchObject({ sessions: 2, retired: 1 });
    const revocations = await t.prisma.revocation.count();
    expect(revocations).toBeGreaterThan(0);

    // Within the retention: nothing of this user goes.
    t.clock.advance(6 * DAY);
    await t.app.get(RetentionService).runOnce();
    expect(await counts(u.id)).toMatchObject({ sessions: 2, retired: 1 });
    // The revocation entries outlived their tokens (ACCESS_TOKEN_TTL): gone.
    expect(await t.prisma.revocation.count()).toBe(0);

    // Past it: the logged-out session goes; the live one (refreshed now) stays with its chain.
    await refresh(t, refreshCookieOf(rotated)!).expect(200);
    t.clock.advance(2 * DAY);
    const report = await t.app.get(RetentionService).runOnce();
    expect(report.sessions).toBeGreaterThanOrEqual(1);
    const after = await counts(u.id);
    expect(after.sessions).toBe(1);
    expect(after.retired).toBe(2);
    expect(after.audit).toBeGreaterThan(0);

    // Audit events older than AUDIT_RETENTION go; the user's live session does not.
    t.clock.advance(31 * DAY);
    await t.app.get(RetentionService).runOnce();
    expect((await counts(u.id)).audit).toBe(0);
  });

  it('deletes mailed one-time tokens expired longer ago than the retention', async () => {
    const u = await signup(t, { email: `ret-${Date.now()}@example.org` });
    const count = () => t.prisma.oneTimeToken.count({ where: { userId: u.id } });
    expect(await count()).toBe(1); // the verification link of the signup
    t.clock.advance(24 * HOUR + 6 * DAY); // expired, within the retention
    await t.app.get(RetentionService).runOnce();
    expect(await count()).toBe(1);
    t.clock.advance(2 * DAY);
    await t.app.get(RetentionService).runOnce();
    expect(await count()).toBe(0);
  });

  it('an idle-expired session goes too, once past the retention', async () => {
    const u = await signup(t);
    t.clock.advance(14 * DAY + 8 * DAY); // idle expiry (REFRESH_TOKEN_TTL 14 d) + retention
    await t.app.get(RetentionService).runOnce();
    expect((await counts(u.id)).sessions).toBe(0);
  });

  it.runIf(onPostgres)('several instances running the job at once delete each row once, without errors', async () => {
    const others = [
      await startApp(env, { databaseUrl: t.databaseUrl }),
      await startApp(env, { databaseUrl: t.databaseUrl }),
    ];
    try {
      const users = await Promise.all(Array.from({ length: 20 }, () => signup(t)));
      await Promise.all(users.map((u) => t.http.post('/auth/logout').set(u.auth).expect(204)));
      for (const app of [t, ...others]) app.clock.freeze(t.clock.nowMs() + 8 * DAY * 1000);
      const reports = await Promise.all([t, ...others].map((app) => app.app.get(RetentionService).runOnce()));
      expect(reports.reduce((n, r) => n + r.sessions, 0)).toBeGreaterThanOrEqual(20);
      expect(await t.prisma.session.count({ where: { userId: { in: users.map((u) => u.id) } } })).toBe(0);
    } finally {
      for (const app of others) await app.close();
    }
  });
});
