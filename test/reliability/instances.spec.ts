// Scenario 4 — several instances: two app processes share PostgreSQL and Redis (same
// JWT_KEYS and PASSWORD_PEPPER). A session opened on one refreshes on the other; a logout on
// one is felt on the other within 1 s; the per-account login throttle counts the attempts
// made on both; one instance killed with SIGKILL mid-load leaves the other serving and no
// session corrupted.
import { createConnection } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseEnv, killAll, sharedSecrets, startApp, type AppProcess } from './support/app.js';
import { bearer, call, cookie, keepAliveAgent, refreshCookieOf, type Outcome } from './support/http.js';
import { round, sleep } from './support/net.js';
import { freshSharedDatabase } from './support/shared-db.js';
import { loginAccount, signupAccount, type Account } from './support/users.js';

const REDIS_URL = process.env.RELIABILITY_REDIS_URL ?? 'redis://127.0.0.1:6379';

let a: AppProcess;
let b: AppProcess;

async function redisAnswers(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port || 6379) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2_000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

beforeAll(async () => {
  if (!(await redisAnswers(REDIS_URL)))
    throw new Error(`Redis does not answer at ${REDIS_URL} (set RELIABILITY_REDIS_URL)`);
  const databaseUrl = await freshSharedDatabase('instances');
  const secrets = sharedSecrets();
  // Grace long enough that a refresh cut by the SIGKILL can be retried on the other instance.
  const env = baseEnv({
    DATABASE_URL: databaseUrl,
    MIGRATE_ON_START: 'true',
    REDIS_URL,
    LOGIN_RATE_LIMIT: '3',
    REFRESH_REUSE_GRACE: '60',
    ...secrets,
  });
  // The first one migrates; the second starts on the migrated database.
  a = await startApp(env);
  b = await startApp(env);
});

afterAll(() => {
  killAll();
  a?.cleanup();
  b?.cleanup();
});

describe('several instances on one PostgreSQL and one Redis', () => {
  it('a session opened on A refreshes on B; a logout on A is refused on B within 1 s', async () => {
    const user = await signupAccount(a.url, 'multi');
    const onA = await loginAccount(a.url, user.username, user.password);
    const refreshed = await call(b.url, 'POST', '/auth/refresh', { headers: cookie(onA.refresh) });
    expect(refreshed.status).toBe(200);
    const access = (refreshed.json as { accessToken: string }).accessToken;
    const successor = refreshCookieOf(refreshed)!;
    // Both the access token from A and the one from B work on both.
    for (const base of [a.url, b.url]) {
      expect((await call(base, 'GET', '/auth/sessions', { headers: bearer(onA.access) })).status).toBe(200);
      expect((await call(base, 'GET', '/auth/sessions', { headers: bearer(access) })).status).toBe(200);
    }
    // Logout on A (the refresh cookie and the bearer): B refuses the access token within 1 s.
    const logout = await call(a.url, 'POST', '/auth/logout', { headers: { ...cookie(successor), ...bearer(access) } });
    expect(logout.status).toBe(204);
    const loggedOutAt = performance.now();
    let refusedAfter: number | undefined;
    while (performance.now() - loggedOutAt < 3_000) {
      const r = await call(b.url, 'GET', '/auth/sessions', { headers: bearer(access) });
      if (r.status === 401) {
        refusedAfter = performance.now() - loggedOutAt;
        break;
      }
      await sleep(20);
    }
    const refreshOnB = await call(b.url, 'POST', '/auth/refresh', { headers: cookie(successor) });
    console.log(
      `[instances/revocation] ${JSON.stringify({ refresh_a_to_b: refreshed.status, logout_a: logout.status, refused_on_b_after_ms: refusedAfter === undefined ? 'never' : round(refusedAfter), refresh_on_b_after_logout: refreshOnB.status })}`,
    );
    expect(refusedAfter).toBeDefined();
    expect(refusedAfter!).toBeLessThan(1_000);
    expect(refreshOnB.status).toBe(401);
  });

  it('counts login failures on both instances against one account (LOGIN_RATE_LIMIT=3)', async () => {
    const user = await signupAccount(a.url, 'thr');
    const attempts: Outcome[] = [];
    for (const base of [a.url, b.url, a.url]) {
      attempts.push(
        await call(base, 'POST', '/auth/login', { json: { username: user.username, password: 'wrong password!' } }),
      );
    }
    const fourthOnB = await call(b.url, 'POST', '/auth/login', {
      json: { username: user.username, password: user.password },
    });
    const fourthOnA = await call(a.url, 'POST', '/auth/login', {
      json: { username: user.username, password: user.password },
    });
    const retryAfter = Number(fourthOnB.headers['retry-after'] ?? 0);
    // Never locked out for good: after Retry-After the right password gets in.
    await sleep(retryAfter * 1000 + 200);
    const later = await call(b.url, 'POST', '/auth/login', {
      json: { username: user.username, password: user.password },
    });
    console.log(
      `[instances/throttle] ${JSON.stringify({ failures: attempts.map((r) => r.status), fourth_on_b: fourthOnB.status, fourth_on_a: fourthOnA.status, retry_after_s: retryAfter, after_wait: later.status })}`,
    );
    expect(attempts.map((r) => r.status)).toEqual([401, 401, 401]);
    expect(fourthOnB.status).toBe(429);
    expect((fourthOnB.json as { code: string }).code).toBe('TOO_MANY_ATTEMPTS');
    expect(fourthOnA.status).toBe(429);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(later.status).toBe(200);
  });

  it('one instance killed with SIGKILL mid-load: the other keeps serving, no session corrupted', async () => {
    const SESSIONS = 12;
    const users: Array<Account & { home: 'a' | 'b' }> = [];
    for (let i = 0; i < SESSIONS; i++)
      users.push({ ...(await signupAccount(i % 2 ? a.url : b.url, 'kill')), home: i % 2 ? 'a' : 'b' });
    const agentA = keepAliveAgent(8);
    const agentB = keepAliveAgent(8);
    const samples: Array<{ on: 'a' | 'b'; killed: boolean; outcome: Outcome }> = [];
    let killed = false;
    let stop = false;
    const acked: Array<{ id: string; owner: Account }> = [];
    const worker = async (u: Account & { home: 'a' | 'b' }, w: number) => {
      let n = 0;
      while (!stop) {
        n += 1;
        // Sessions living on A move to B once A is gone (as a load balancer would send them).
        const on: 'a' | 'b' = u.home === 'a' && !killed ? 'a' : 'b';
        const base = on === 'a' ? a.url : b.url;
        const agent = on === 'a' ? agentA : agentB;
        const wasKilled = killed;
        let outcome: Outcome;
        if (n % 3 === 0) {
          outcome = await call(base, 'POST', '/auth/refresh', { headers: cookie(u.refresh), agent, timeoutMs: 10_000 });
          const next = refreshCookieOf(outcome);
          if (outcome.status === 200 && next) {
            u.refresh = next;
            u.access = (outcome.json as { accessToken: string }).accessToken;
          }
        } else if (n % 3 === 1) {
          outcome = await call(base, 'POST', '/resources', {
            json: { title: `kill ${w}-${n}` },
            headers: bearer(u.access),
            agent,
            timeoutMs: 10_000,
          });
          if (outcome.status === 201) acked.push({ id: (outcome.json as { id: string }).id, owner: u });
        } else {
          outcome = await call(base, 'GET', '/users/me', { headers: bearer(u.access), agent, timeoutMs: 10_000 });
        }
        samples.push({ on, killed: wasKilled, outcome });
        await sleep(10);
      }
    };
    const load = Promise.all(users.map((u, w) => worker(u, w)));
    await sleep(2_500);
    a.kill();
    await a.exited;
    killed = true;
    await sleep(3_000);
    stop = true;
    await load;
    agentA.destroy();
    agentB.destroy();

    // Every session, whatever happened to its last request on A, still works on B.
    const corrupted: string[] = [];
    for (const u of users) {
      const r = await call(b.url, 'POST', '/auth/refresh', { headers: cookie(u.refresh) });
      const access = (r.json as { accessToken?: string } | undefined)?.accessToken;
      const me = access ? await call(b.url, 'GET', '/users/me', { headers: bearer(access) }) : undefined;
      if (r.status !== 200 || me?.status !== 200)
        corrupted.push(`${u.username} (${u.home}): refresh ${r.status}, me ${me?.status}`);
    }
    const missing: string[] = [];
    for (const r of acked) {
      const res = await call(b.url, 'GET', `/resources/${r.id}`, { headers: bearer(r.owner.access) });
      if (res.status !== 200) missing.push(`${r.id}: ${res.status}`);
    }
    const onB = samples.filter((s) => s.on === 'b');
    const onA = samples.filter((s) => s.on === 'a');
    const summary = {
      requests: samples.length,
      on_a: onA.length,
      a_failures_at_kill: onA.filter((s) => s.outcome.error).length,
      on_b: onB.length,
      b_after_kill: onB.filter((s) => s.killed).length,
      '5xx': samples.filter((s) => (s.outcome.status ?? 0) >= 500).length,
      b_errors: onB.filter((s) => s.outcome.error || (s.outcome.status ?? 0) >= 500).length,
      longest_ms_b: round(Math.max(...onB.map((s) => s.outcome.ms))),
      sessions_checked: users.length,
      corrupted: corrupted.length,
      acked_resources_checked: acked.length,
      lost: missing.length,
    };
    console.log(`[instances/sigkill] ${JSON.stringify(summary)}`);
    const show = (list: typeof samples) =>
      list
        .slice(0, 5)
        .map(
          (s) =>
            `${s.on}${s.killed ? ' (after kill)' : ''}: ${s.outcome.status ?? s.outcome.error} ${s.outcome.text.slice(0, 100)}`,
        );
    expect(show(samples.filter((s) => (s.outcome.status ?? 0) >= 500))).toEqual([]);
    expect(show(onB.filter((s) => s.outcome.error))).toEqual([]);
    expect(onB.filter((s) => s.killed).length).toBeGreaterThan(50);
    // The only failures on A are transport errors from the kill itself.
    expect(
      show(
        onA.filter(
          (s) =>
            s.outcome.error && !['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'socket hang up'].includes(s.outcome.error),
        ),
      ),
    ).toEqual([]);
    expect(corrupted).toEqual([]);
    expect(missing).toEqual([]);
    expect((await call(b.url, 'GET', '/health')).status).toBe(200);
    expect(b.dead).toBe(false);
  });
});
