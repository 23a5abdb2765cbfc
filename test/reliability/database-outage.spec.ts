// Scenario 1 — database outage. The app runs on a PostgreSQL server of its own; under a steady
// mixed load, PostgreSQL is stopped (`pg_ctl stop -m fast`), left down for 10 s, and started
// again. While it is down, requests that need the database fail fast with the contract's 503;
// requests that do not need it keep working; afterwards the app recovers by itself, every
// acknowledged write is in the database and nothing answered with an error was half-written.
//
// Routes that work without the database: GET /.well-known/jwks.json and the OpenAPI document
// (GET /docs-json). No other route of the contract is "access-token-only": every protected
// route loads its data (GET /users/me the user, GET /auth/sessions the sessions) and
// POST /auth/logout revokes in the database, so they all answer 503 during an outage.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseEnv, killAll, sharedSecrets, startApp, type AppProcess } from './support/app.js';
import {
  bearer,
  call,
  cookie,
  isContractError,
  keepAliveAgent,
  leaksInternals,
  refreshCookieOf,
  type Outcome,
} from './support/http.js';
import { percentile, round, sleep } from './support/net.js';
import { PgCluster } from './support/postgres.js';
import { loginAccount, signupAccount, uniqueName, type Account } from './support/users.js';

type Phase = 'up' | 'stopping' | 'down' | 'starting' | 'recovering' | 'recovered';
type Op = 'signup' | 'login' | 'refresh' | 'me' | 'sessions' | 'resource' | 'password' | 'jwks' | 'docs' | 'health';
const NEEDS_DATABASE: ReadonlySet<Op> = new Set([
  'signup',
  'login',
  'refresh',
  'me',
  'sessions',
  'resource',
  'password',
  'health',
]);
const WEIGHTS: Array<[Op, number]> = [
  ['signup', 2],
  ['login', 2],
  ['refresh', 2],
  ['me', 2],
  ['sessions', 1],
  ['resource', 3],
  ['password', 1],
  ['jwks', 1],
  ['docs', 1],
  ['health', 1],
];
const WORKERS = 6;
const DOWN_MS = 10_000;
const BURST_WAVES = 12;

interface Sample {
  op: Op;
  phaseAtStart: Phase;
  phaseAtEnd: Phase;
  outcome: Outcome;
}

let cluster: PgCluster;
let app: AppProcess;

beforeAll(async () => {
  cluster = await PgCluster.create('outage');
  const url = await cluster.createDatabase('gatehouse_outage');
  app = await startApp(
    baseEnv({ DATABASE_URL: url, MIGRATE_ON_START: 'true', REFRESH_REUSE_GRACE: '120', ...sharedSecrets() }),
  );
});

afterAll(async () => {
  killAll();
  app?.cleanup();
  await cluster?.destroy();
});

describe('database outage', () => {
  it('answers 503 fast while PostgreSQL is down, recovers by itself, loses no acknowledged write', async () => {
    const agent = keepAliveAgent(WORKERS * 2);
    let phase: Phase = 'up';
    const samples: Sample[] = [];
    const acked = { signups: [] as string[], resources: [] as string[], passwords: 0 };
    const failed = { signups: [] as string[], resourceTitles: [] as string[] };
    const passwordUsers: Array<Account & { current: string; lost?: string[]; diverged?: boolean }> = [];
    const users: Account[] = [];
    for (let w = 0; w < WORKERS; w++) {
      users.push(await signupAccount(app.url, 'out', agent));
      const p = await signupAccount(app.url, 'pwd', agent);
      passwordUsers.push({ ...p, current: p.password, lost: [] });
    }

    const pick = (): Op => {
      const total = WEIGHTS.reduce((s, [, w]) => s + w, 0);
      let r = Math.random() * total;
      for (const [op, w] of WEIGHTS) if ((r -= w) < 0) return op;
      return 'health';
    };

    let stopLoad = false;
    const worker = async (w: number): Promise<void> => {
      const user = users[w]!;
      const pu = passwordUsers[w]!;
      let n = 0;
      while (!stopLoad) {
        n += 1;
        const op = pick();
        const phaseAtStart = phase;
        let outcome: Outcome;
        switch (op) {
          case 'signup': {
            const username = uniqueName(`s${w}`);
            outcome = await call(app.url, 'POST', '/auth/signup', {
              json: { username, password: 'outage password' },
              agent,
            });
            if (outcome.status === 201) acked.signups.push(username);
            else failed.signups.push(username);
            break;
          }
          case 'login':
            outcome = await call(app.url, 'POST', '/auth/login', {
              json: { username: user.username, password: user.password },
              agent,
            });
            break;
          case 'refresh': {
            outcome = await call(app.url, 'POST', '/auth/refresh', { headers: cookie(user.refresh), agent });
            const next = refreshCookieOf(outcome);
            if (outcome.status === 200 && next) {
              user.refresh = next;
              user.access = (outcome.json as { accessToken: string }).accessToken;
            }
            break;
          }
          case 'me':
            outcome = await call(app.url, 'GET', '/users/me', { headers: bearer(user.access), agent });
            break;
          case 'sessions':
            outcome = await call(app.url, 'GET', '/auth/sessions', { headers: bearer(user.access), agent });
            break;
          case 'resource': {
            const title = `res-${w}-${n}-${Date.now()}`;
            outcome = await call(app.url, 'POST', '/resources', {
              json: { title },
              headers: bearer(user.access),
              agent,
            });
            if (outcome.status === 201) acked.resources.push((outcome.json as { id: string }).id);
            else failed.resourceTitles.push(title);
            break;
          }
          case 'password': {
            if (pu.diverged) continue;
            const next = `new password ${w}-${n}`;
            outcome = await call(app.url, 'POST', '/users/me/password', {
              json: { currentPassword: pu.current, newPassword: next },
              headers: bearer(pu.access),
              agent,
            });
            if (outcome.status === 204) {
              pu.current = next;
              pu.lost = [];
              acked.passwords += 1;
            } else if (outcome.status === 403) {
              pu.diverged = true; // an earlier change answered with an error did happen
            } else {
              pu.lost!.push(next);
            }
            break;
          }
          case 'jwks':
            outcome = await call(app.url, 'GET', '/.well-known/jwks.json', { agent });
            break;
          case 'docs':
            outcome = await call(app.url, 'GET', '/docs-json', { agent });
            break;
          case 'health':
            outcome = await call(app.url, 'GET', '/health', { agent });
            break;
        }
        samples.push({ op, phaseAtStart, phaseAtEnd: phase, outcome });
        await sleep(10);
      }
    };

    // A burst around the moment PostgreSQL stops: multi-statement writes (signup: user, session,
    // audit; password change: hash, session revocation, audit) caught half-way must not leave
    // half a write behind an error answer.
    const burstUsers: Array<Account & { other: Account; next: string; outcome?: Outcome }> = [];
    for (let i = 0; i < BURST_WAVES * 2; i++) {
      const a = await signupAccount(app.url, 'bpw', agent);
      const other = await loginAccount(app.url, a.username, a.password, agent);
      burstUsers.push({ ...a, other, next: `burst password ${i}` });
    }
    const burstSignups: Array<{ username: string; outcome?: Outcome }> = [];
    const burst = async (): Promise<void> => {
      const pending: Promise<unknown>[] = [];
      for (let wave = 0; wave < BURST_WAVES; wave++) {
        for (let i = 0; i < 4; i++) {
          const entry: { username: string; outcome?: Outcome } = { username: uniqueName('burst') };
          burstSignups.push(entry);
          pending.push(
            call(app.url, 'POST', '/auth/signup', {
              json: { username: entry.username, password: 'burst password' },
            }).then((o) => (entry.outcome = o)),
          );
        }
        for (const u of burstUsers.slice(wave * 2, wave * 2 + 2)) {
          pending.push(
            call(app.url, 'POST', '/users/me/password', {
              json: { currentPassword: u.password, newPassword: u.next },
              headers: bearer(u.access),
            }).then((o) => (u.outcome = o)),
          );
        }
        await sleep(50);
      }
      await Promise.all(pending);
    };

    const t0 = performance.now();
    const load = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    await sleep(3_000);

    const bursting = burst();
    await sleep(BURST_WAVES * 25); // PostgreSQL stops half-way through the burst
    phase = 'stopping';
    const stopStarted = performance.now();
    await cluster.stop('fast');
    await bursting;
    phase = 'down';
    const downAt = performance.now();
    // /health while down, on a connection of its own.
    const healthDown = await call(app.url, 'GET', '/health', { timeoutMs: 5_000 });
    await sleep(DOWN_MS - (performance.now() - downAt));

    phase = 'starting';
    const startBegan = performance.now();
    await cluster.start();
    const upAt = performance.now();
    phase = 'recovering';

    // Recovery: from PostgreSQL accepting connections to /health 200 and a database read 200.
    const probe = users[0]!;
    let recoveredAt: number | undefined;
    while (performance.now() - upAt < 15_000) {
      const [h, me] = await Promise.all([
        call(app.url, 'GET', '/health', { timeoutMs: 3_000 }),
        call(app.url, 'GET', '/users/me', { headers: bearer(probe.access), timeoutMs: 3_000 }),
      ]);
      if (h.status === 200 && me.status === 200) {
        recoveredAt = performance.now();
        break;
      }
      await sleep(100);
    }
    phase = 'recovered';
    await sleep(3_000);
    stopLoad = true;
    await load;
    agent.destroy();

    // --- The database after the outage -------------------------------------------------
    const db = 'gatehouse_outage';
    const userRows = await cluster.query<{ username: string }>('SELECT username FROM users', [], db);
    const usernames = new Set(userRows.map((r) => r.username));
    const resourceRows = await cluster.query<{ id: string; title: string }>(
      'SELECT id::text AS id, title FROM resources',
      [],
      db,
    );
    const resourceIds = new Set(resourceRows.map((r) => r.id));
    const titles = new Set(resourceRows.map((r) => r.title));
    const lostSignups = acked.signups.filter((u) => !usernames.has(u));
    const lostResources = acked.resources.filter((id) => !resourceIds.has(id));
    const halfSignups = failed.signups.filter((u) => usernames.has(u));
    const halfResources = failed.resourceTitles.filter((t) => titles.has(t));
    // Every password user logs in with the last acknowledged password (not an unacknowledged one).
    const passwordProblems: string[] = [];
    for (const pu of passwordUsers) {
      const res = await call(app.url, 'POST', '/auth/login', { json: { username: pu.username, password: pu.current } });
      if (res.status !== 200) {
        let applied = 'none';
        for (const candidate of pu.lost ?? []) {
          const r = await call(app.url, 'POST', '/auth/login', {
            json: { username: pu.username, password: candidate },
          });
          if (r.status === 200) applied = candidate;
        }
        passwordProblems.push(
          `${pu.username}: acknowledged password refused (${res.status}); unacknowledged one in force: ${applied}`,
        );
      }
    }

    // The burst: a signup answered with an error left no user; a password change answered with
    // an error left the old password (and the other session) in force; an acknowledged one
    // revoked the other session.
    const burstAcked = burstSignups.filter((b) => b.outcome?.status === 201);
    const burstErrored = burstSignups.filter((b) => b.outcome?.status !== 201);
    const lostBurst = burstAcked.filter((b) => !usernames.has(b.username)).map((b) => b.username);
    const halfBurst = burstErrored
      .filter((b) => usernames.has(b.username))
      .map((b) => `${b.username}: ${b.outcome?.status ?? b.outcome?.error}`);
    const burstPasswordProblems: string[] = [];
    for (const u of burstUsers) {
      const changed = u.outcome?.status === 204;
      const expected = changed ? u.next : u.password;
      const stale = changed ? u.password : u.next;
      const [ok, refused, other] = await Promise.all([
        call(app.url, 'POST', '/auth/login', { json: { username: u.username, password: expected } }),
        call(app.url, 'POST', '/auth/login', { json: { username: u.username, password: stale } }),
        call(app.url, 'POST', '/auth/refresh', { headers: cookie(u.other.refresh) }),
      ]);
      const otherAlive = other.status === 200;
      if (ok.status !== 200 || refused.status !== 401 || otherAlive === changed) {
        burstPasswordProblems.push(
          `${u.username}: change answered ${u.outcome?.status ?? u.outcome?.error}; expected password ${ok.status}, other one ${refused.status}, other session refresh ${other.status}`,
        );
      }
    }

    // --- Figures ---------------------------------------------------------------------------
    const is5xx = (s: Sample) => (s.outcome.status ?? 0) >= 500;
    const windowSamples = samples.filter((s) => s.phaseAtEnd !== 'up' && s.phaseAtStart !== 'recovered');
    const down = samples.filter((s) => s.phaseAtStart === 'down' && s.phaseAtEnd === 'down');
    const downDb = down.filter((s) => NEEDS_DATABASE.has(s.op));
    const downFree = down.filter((s) => !NEEDS_DATABASE.has(s.op));
    const longestOutage = Math.max(0, ...windowSamples.map((s) => s.outcome.ms));
    const longestDown = Math.max(0, ...down.map((s) => s.outcome.ms));
    const summary = {
      requests: samples.length,
      during_down: down.length,
      '5xx': samples.filter(is5xx).length,
      '503': samples.filter((s) => s.outcome.status === 503).length,
      '500': samples.filter((s) => s.outcome.status === 500).length,
      transport_errors: samples.filter((s) => s.outcome.error).length,
      longest_ms_outage: round(longestOutage),
      longest_ms_down: round(longestDown),
      p99_ms_down_db: round(
        percentile(
          downDb.map((s) => s.outcome.ms),
          99,
        ),
      ),
      pg_stop_ms: round(downAt - stopStarted),
      pg_start_ms: round(upAt - startBegan),
      health_down: `${healthDown.status ?? healthDown.error} in ${round(healthDown.ms)} ms`,
      recovery_ms_after_pg_up: recoveredAt === undefined ? 'never' : round(recoveredAt - upAt),
      acked_signups: acked.signups.length,
      acked_resources: acked.resources.length,
      acked_password_changes: acked.passwords,
      lost_acked: lostSignups.length + lostResources.length,
      errored_signups: failed.signups.length,
      half_written_signups: halfSignups.length,
      errored_resources: failed.resourceTitles.length,
      half_written_resources: halfResources.length,
      password_problems: passwordProblems.length,
      burst_signups: `${burstAcked.length} acked / ${burstErrored.length} errored`,
      burst_password_changes: `${burstUsers.filter((u) => u.outcome?.status === 204).length} acked / ${burstUsers.filter((u) => u.outcome?.status !== 204).length} errored`,
      burst_half_written: halfBurst.length + burstPasswordProblems.length,
      total_s: round((performance.now() - t0) / 1000, 1),
    };
    console.log(`[outage] ${JSON.stringify(summary)}`);
    if (process.env.RELIABILITY_DEBUG) {
      console.log(
        burstSignups
          .map(
            (b) =>
              `${b.outcome?.status ?? b.outcome?.error} ${round((b.outcome?.startedAt ?? 0) - stopStarted)} ${round(b.outcome?.ms ?? 0)}`,
          )
          .join('\n'),
      );
      console.log(
        app
          .output()
          .split('\n')
          .filter((l) => /unavailable/.test(l))
          .slice(0, 8)
          .join('\n'),
      );
    }

    // --- Assertions --------------------------------------------------------------------------
    const bad = (list: Sample[]) =>
      list
        .slice(0, 5)
        .map(
          (s) =>
            `${s.op} ${s.phaseAtStart}->${s.phaseAtEnd}: ${s.outcome.status ?? s.outcome.error} ${round(s.outcome.ms)}ms ${s.outcome.text.slice(0, 200)}`,
        );
    // Never a 500 (or any 5xx but 503), never a transport failure or a hang, never a leak.
    expect(bad(samples.filter((s) => is5xx(s) && s.outcome.status !== 503))).toEqual([]);
    expect(bad(samples.filter((s) => s.outcome.error))).toEqual([]);
    expect(
      bad(
        samples.filter(
          (s) => s.outcome.status === 503 && (!isContractError(s.outcome, 503) || leaksInternals(s.outcome.text)),
        ),
      ),
    ).toEqual([]);
    // Everything answered within 2 s while PostgreSQL was down (and during its stop and start).
    expect(bad(windowSamples.filter((s) => s.outcome.ms > 2_000))).toEqual([]);
    // While down: every database request is the contract's 503 DATABASE_UNAVAILABLE ...
    expect(downDb.length).toBeGreaterThan(50);
    expect(
      bad(
        downDb.filter(
          (s) => s.outcome.status !== 503 || (s.outcome.json as { code?: string }).code !== 'DATABASE_UNAVAILABLE',
        ),
      ),
    ).toEqual([]);
    // ... a failed refresh during an outage does not clear the cookie (the session is not over) ...
    expect(bad(downDb.filter((s) => s.op === 'refresh' && s.outcome.headers['set-cookie'] !== undefined))).toEqual([]);
    // ... and the routes that need no database keep working.
    expect(downFree.length).toBeGreaterThan(5);
    expect(bad(downFree.filter((s) => s.outcome.status !== 200))).toEqual([]);
    expect(healthDown.status).toBe(503);
    expect(isContractError(healthDown, 503)).toBe(true);
    expect(healthDown.ms).toBeLessThan(2_000);
    // Recovery within 5 s of PostgreSQL accepting connections, without a restart.
    expect(recoveredAt).toBeDefined();
    expect(recoveredAt! - upAt).toBeLessThan(5_000);
    expect(app.dead).toBe(false);
    // Once recovered, no more 503.
    expect(bad(samples.filter((s) => s.phaseAtStart === 'recovered' && s.outcome.status === 503))).toEqual([]);
    // Writes: nothing acknowledged is lost; nothing answered with an error was half-written.
    expect(acked.signups.length + acked.resources.length).toBeGreaterThan(50);
    expect(lostSignups).toEqual([]);
    expect(lostResources).toEqual([]);
    expect(halfSignups).toEqual([]);
    expect(halfResources).toEqual([]);
    expect(passwordProblems).toEqual([]);
    expect(lostBurst).toEqual([]);
    expect(halfBurst).toEqual([]);
    expect(burstPasswordProblems).toEqual([]);
    expect(
      bad(
        burstSignups
          .map((b) => ({
            op: 'signup' as Op,
            phaseAtStart: 'stopping' as Phase,
            phaseAtEnd: 'down' as Phase,
            outcome: b.outcome!,
          }))
          .filter((s) => s.outcome.error || (s.outcome.status! >= 500 && s.outcome.status !== 503)),
      ),
    ).toEqual([]);
  });
});
