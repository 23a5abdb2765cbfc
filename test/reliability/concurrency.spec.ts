// Scenario 3 — concurrency, against one app on PostgreSQL: the same refresh token 100 times
// at once, the same username 50 times at once, 20 password changes at once from 20 sessions,
// and resources created and deleted while pagination runs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseEnv, killAll, sharedSecrets, startApp, type AppProcess } from './support/app.js';
import { bearer, call, cookie, keepAliveAgent, refreshCookieOf, type Outcome } from './support/http.js';
import { round, sleep } from './support/net.js';
import { freshSharedDatabase, queryDb } from './support/shared-db.js';
import { createResource, loginAccount, signupAccount, uniqueName } from './support/users.js';

let app: AppProcess;
let databaseUrl: string;

beforeAll(async () => {
  databaseUrl = await freshSharedDatabase('concurrency');
  app = await startApp(baseEnv({ DATABASE_URL: databaseUrl, MIGRATE_ON_START: 'true', ...sharedSecrets() }));
});

afterAll(() => {
  killAll();
  app?.cleanup();
});

const tally = (list: Outcome[]) =>
  list.reduce<Record<string, number>>((acc, o) => {
    const k = String(o.status ?? o.error);
    acc[k] = (acc[k] ?? 0) + 1;
    return acc;
  }, {});

describe('concurrency', () => {
  it('100 parallel refreshes with one token: no 5xx, the session lives on, one successor for all', async () => {
    const user = await signupAccount(app.url, 'cref');
    const agent = keepAliveAgent(100);
    const results = await Promise.all(
      Array.from({ length: 100 }, () =>
        call(app.url, 'POST', '/auth/refresh', { headers: cookie(user.refresh), agent, timeoutMs: 20_000 }),
      ),
    );
    agent.destroy();
    const ok = results.filter((r) => r.status === 200);
    const successors = new Set(ok.map((r) => refreshCookieOf(r)));
    const sids = new Set(
      ok.map(
        (r) =>
          JSON.parse(
            Buffer.from((r.json as { accessToken: string }).accessToken.split('.')[1]!, 'base64url').toString(),
          ).sid,
      ),
    );
    const successor = [...successors][0]!;
    const next = await call(app.url, 'POST', '/auth/refresh', { headers: cookie(successor) });
    const access = (next.json as { accessToken: string } | undefined)?.accessToken ?? '';
    const sessions = await call(app.url, 'GET', '/auth/sessions', { headers: bearer(access) });
    const rows = await queryDb<{ n: number }>(
      databaseUrl,
      'SELECT count(*)::int AS n FROM sessions WHERE user_id = $1 AND revoked_at IS NULL',
      [user.id],
    );
    console.log(
      `[concurrency/refresh] ${JSON.stringify({ requests: 100, outcomes: tally(results), distinct_successors: successors.size, distinct_sessions: sids.size, longest_ms: round(Math.max(...results.map((r) => r.ms))), successor_refresh: next.status, live_sessions_in_db: rows[0]?.n })}`,
    );
    expect(results.filter((r) => r.error || (r.status ?? 0) >= 500)).toEqual([]);
    // Concurrent tabs must not log the user out: every one of them is served, with one successor.
    expect(tally(results)).toEqual({ 200: 100 });
    expect(successors.size).toBe(1);
    expect(sids.size).toBe(1);
    expect(next.status).toBe(200);
    expect(sessions.status).toBe(200);
    expect((sessions.json as unknown[]).length).toBe(1);
    expect(rows[0]?.n).toBe(1);
  });

  it('50 parallel signups with one username (in mixed case): exactly one 201, the rest 409', async () => {
    const base = uniqueName('race');
    const variants = Array.from({ length: 50 }, (_, i) =>
      i % 3 === 0 ? base.toUpperCase() : i % 3 === 1 ? base : base[0]!.toUpperCase() + base.slice(1),
    );
    const agent = keepAliveAgent(50);
    const results = await Promise.all(
      variants.map((username, i) =>
        call(app.url, 'POST', '/auth/signup', {
          json: { username, password: `race password ${i}` },
          agent,
          timeoutMs: 20_000,
        }),
      ),
    );
    agent.destroy();
    const rows = await queryDb<{ n: number }>(
      databaseUrl,
      'SELECT count(*)::int AS n FROM users WHERE username_key = $1',
      [base.toLowerCase()],
    );
    const codes = new Set(results.filter((r) => r.status === 409).map((r) => (r.json as { code: string }).code));
    console.log(
      `[concurrency/signup] ${JSON.stringify({ requests: 50, outcomes: tally(results), codes: [...codes], users_in_db: rows[0]?.n, longest_ms: round(Math.max(...results.map((r) => r.ms))) })}`,
    );
    expect(tally(results)).toEqual({ 201: 1, 409: 49 });
    expect([...codes]).toEqual(['USERNAME_TAKEN']);
    expect(rows[0]?.n).toBe(1);
  });

  it('20 parallel password changes from 20 sessions: one password wins, no loser session survives', async () => {
    const owner = await signupAccount(app.url, 'cpw');
    const sessions = [];
    for (let i = 0; i < 20; i++) sessions.push(await loginAccount(app.url, owner.username, owner.password));
    const agent = keepAliveAgent(20);
    const results = await Promise.all(
      sessions.map((s, i) =>
        call(app.url, 'POST', '/users/me/password', {
          json: { currentPassword: owner.password, newPassword: `winner candidate ${i}` },
          headers: bearer(s.access),
          agent,
          timeoutMs: 20_000,
        }),
      ),
    );
    agent.destroy();
    const winners = results.map((r, i) => (r.status === 204 ? i : -1)).filter((i) => i >= 0);
    // Which passwords log in now (sequentially: the logins must not race each other).
    const working: number[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await call(app.url, 'POST', '/auth/login', {
        json: { username: owner.username, password: `winner candidate ${i}` },
      });
      if (r.status === 200) working.push(i);
    }
    const oldPassword = await call(app.url, 'POST', '/auth/login', {
      json: { username: owner.username, password: owner.password },
    });
    const survivors: string[] = [];
    for (let i = 0; i < 20; i++) {
      if (i === winners[0]) continue;
      const [me, refreshed] = await Promise.all([
        call(app.url, 'GET', '/auth/sessions', { headers: bearer(sessions[i]!.access) }),
        call(app.url, 'POST', '/auth/refresh', { headers: cookie(sessions[i]!.refresh) }),
      ]);
      if (me.status !== 401 || refreshed.status !== 401)
        survivors.push(`session ${i}: access ${me.status}, refresh ${refreshed.status}`);
    }
    const winner = winners[0] === undefined ? undefined : sessions[winners[0]];
    const winnerMe = winner
      ? await call(app.url, 'GET', '/auth/sessions', { headers: bearer(winner.access) })
      : undefined;
    console.log(
      `[concurrency/password] ${JSON.stringify({ requests: 20, outcomes: tally(results), winners: winners.length, passwords_that_work: working.length, old_password: oldPassword.status, loser_sessions_alive: survivors.length, winner_session: winnerMe?.status })}`,
    );
    expect(results.filter((r) => r.error || (r.status ?? 0) >= 500)).toEqual([]);
    expect(winners.length).toBe(1);
    expect(results.every((r) => r.status === 204 || r.status === 403 || r.status === 401)).toBe(true);
    expect(working).toEqual(winners);
    expect(oldPassword.status).toBe(401);
    expect(survivors).toEqual([]);
    expect(winnerMe?.status).toBe(200);
  });

  it('creates and deletes resources while pagination runs: no stable item skipped or repeated', async () => {
    const user = await signupAccount(app.url, 'cpage');
    const agent = keepAliveAgent(16);
    const stable = new Set<string>();
    for (let i = 0; i < 60; i++) stable.add(await createResource(app.url, user, `stable ${i}`, agent));
    const deadline = performance.now() + 6_000;
    const outcomes: Outcome[] = [];
    let created = 0;
    let deleted = 0;
    const anomalies: string[] = [];
    let traversals = 0;
    const writer = async (w: number) => {
      const mine: string[] = [];
      let n = 0;
      while (performance.now() < deadline) {
        n += 1;
        if (mine.length > 0 && n % 2 === 0) {
          const id = mine.splice(Math.floor(Math.random() * mine.length), 1)[0]!;
          const r = await call(app.url, 'DELETE', `/resources/${id}`, { headers: bearer(user.access), agent });
          outcomes.push(r);
          if (r.status === 204) deleted += 1;
        } else {
          const r = await call(app.url, 'POST', '/resources', {
            json: { title: `volatile ${w}-${n}` },
            headers: bearer(user.access),
            agent,
          });
          outcomes.push(r);
          if (r.status === 201) {
            created += 1;
            mine.push((r.json as { id: string }).id);
          }
        }
      }
    };
    const reader = async () => {
      while (performance.now() < deadline) {
        const limit = 1 + Math.floor(Math.random() * 15);
        const seen = new Map<string, number>();
        let cursor: string | null = null;
        let pages = 0;
        do {
          const r: Outcome = await call(
            app.url,
            'GET',
            `/resources?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
            { headers: bearer(user.access), agent },
          );
          outcomes.push(r);
          if (r.status !== 200) {
            anomalies.push(`page status ${r.status ?? r.error}`);
            break;
          }
          const body = r.json as { items: Array<{ id: string }>; nextCursor: string | null };
          for (const item of body.items) seen.set(item.id, (seen.get(item.id) ?? 0) + 1);
          cursor = body.nextCursor;
          pages += 1;
        } while (cursor && pages < 500);
        traversals += 1;
        for (const [id, count] of seen) if (count > 1) anomalies.push(`duplicate ${id} (limit ${limit})`);
        for (const id of stable) if (!seen.has(id)) anomalies.push(`skipped stable ${id} (limit ${limit})`);
      }
    };
    await Promise.all([writer(0), writer(1), writer(2), writer(3), reader(), reader(), reader()]);
    agent.destroy();
    console.log(
      `[concurrency/pagination] ${JSON.stringify({ requests: outcomes.length, '5xx': outcomes.filter((o) => (o.status ?? 0) >= 500).length, traversals, created, deleted, anomalies: anomalies.length, longest_ms: round(Math.max(...outcomes.map((o) => o.ms))) })}`,
    );
    expect(
      outcomes
        .filter((o) => o.error || (o.status ?? 0) >= 500)
        .map((o) => `${o.status ?? o.error} ${o.text.slice(0, 100)}`),
    ).toEqual([]);
    expect(traversals).toBeGreaterThan(5);
    expect(created).toBeGreaterThan(20);
    expect(deleted).toBeGreaterThan(5);
    expect(anomalies.slice(0, 10)).toEqual([]);
    await sleep(0);
  });
});
