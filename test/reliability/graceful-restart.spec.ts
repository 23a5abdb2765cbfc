// Scenario 2 — graceful restart. SIGTERM under load: requests in flight complete, new ones
// are refused cleanly (connection refused, or 503), nothing hangs, the process exits 0 within
// SHUTDOWN_TIMEOUT even with a client that never finishes its request, and a new process on
// the same database takes over with every acknowledged write in place.
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseEnv, killAll, sharedSecrets, startApp, type AppProcess } from './support/app.js';
import { bearer, call, freshConnections, keepAliveAgent, type Outcome } from './support/http.js';
import { round, sleep } from './support/net.js';
import { trickle } from './support/raw.js';
import { freshSharedDatabase } from './support/shared-db.js';
import { signupAccount, uniqueName, type Account } from './support/users.js';

const SHUTDOWN_TIMEOUT_S = 5;
const WORKERS = 8;

let databaseUrl: string;
let env: Record<string, string>;
const apps: AppProcess[] = [];

beforeAll(async () => {
  databaseUrl = await freshSharedDatabase('restart');
  env = baseEnv({
    DATABASE_URL: databaseUrl,
    MIGRATE_ON_START: 'true',
    SHUTDOWN_TIMEOUT: String(SHUTDOWN_TIMEOUT_S),
    ...sharedSecrets(),
  });
});

afterAll(() => {
  killAll();
  for (const a of apps) a.cleanup();
});

interface Sample {
  op: string;
  /** ms relative to the SIGTERM (negative: before). */
  startedRel: number;
  endedRel: number;
  outcome: Outcome;
  /** The username or resource title written, to check afterwards. */
  key?: string;
}

describe('graceful restart', () => {
  it('drains in-flight requests, refuses new ones cleanly, exits 0 in time; the next process loses nothing', async () => {
    const a = await startApp(env);
    apps.push(a);
    const users: Account[] = [];
    for (let i = 0; i < WORKERS; i++) users.push(await signupAccount(a.url, 'rst'));

    let sigtermAt = Number.POSITIVE_INFINITY;
    const rel = (t: number) => (sigtermAt === Number.POSITIVE_INFINITY ? t - 1e12 : t - sigtermAt);
    const samples: Sample[] = [];
    const ackedSignups: Array<{ username: string; password: string }> = [];
    const ackedResources: Array<{ id: string; owner: Account }> = [];
    let stopLoad = false;
    const worker = async (w: number) => {
      const user = users[w]!;
      let n = 0;
      while (!stopLoad) {
        n += 1;
        const kind = n % 3;
        let op: string;
        let outcome: Outcome;
        let key: string | undefined;
        if (kind === 0) {
          op = 'signup';
          const username = uniqueName(`r${w}`);
          key = username;
          outcome = await call(a.url, 'POST', '/auth/signup', {
            json: { username, password: 'restart password' },
            timeoutMs: 15_000,
          });
          if (outcome.status === 201) ackedSignups.push({ username, password: 'restart password' });
        } else if (kind === 1) {
          op = 'resource';
          key = `r-${w}-${n}-${randomBytes(3).toString('hex')}`;
          outcome = await call(a.url, 'POST', '/resources', {
            json: { title: key },
            headers: bearer(user.access),
            timeoutMs: 15_000,
          });
          if (outcome.status === 201) ackedResources.push({ id: (outcome.json as { id: string }).id, owner: user });
        } else {
          op = 'me';
          outcome = await call(a.url, 'GET', '/users/me', { headers: bearer(user.access), timeoutMs: 15_000 });
        }
        samples.push({ op, startedRel: rel(outcome.startedAt), endedRel: rel(outcome.endedAt), outcome, key });
        await sleep(15);
      }
    };
    const load = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    await sleep(2_000);

    // In flight at the signal: a POST whose body is half-sent; the rest follows 1 s later.
    const owner = users[0]!;
    const body = JSON.stringify({ title: 'sent across the shutdown' });
    const half = Math.floor(body.length / 2);
    const slow = connect({ host: '127.0.0.1', port: a.port });
    let slowResponse = '';
    const slowDone = new Promise<void>((resolve) => {
      slow.on('data', (c: Buffer) => (slowResponse += c.toString()));
      slow.on('close', () => resolve());
      slow.on('error', () => resolve());
    });
    slow.write(
      `POST /resources HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${owner.access}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, half)}`,
    );
    // An idle keep-alive connection: closed by the server at once.
    const idleAgent = keepAliveAgent(1);
    const idleWarm = await call(a.url, 'GET', '/.well-known/jwks.json', { agent: idleAgent });
    const idleSocket = Object.values(idleAgent.freeSockets).flat()[0];
    let idleClosedAt: number | undefined;
    idleSocket?.on('close', () => (idleClosedAt = performance.now()));
    // A client that never finishes its headers: it must not hold the shutdown past SHUTDOWN_TIMEOUT.
    const stuck = trickle(a.port, `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${'z'.repeat(500)}`, 200, 30_000);
    await sleep(300);

    sigtermAt = performance.now();
    const stopping = a.stop();
    await sleep(1_000);
    slow.write(body.slice(half));
    await sleep(2_000);
    stopLoad = true;
    await load;
    const exit = await stopping;
    await slowDone;
    const stuckEnd = await stuck.ended;
    idleAgent.destroy();

    // The next process on the same database.
    const b = await startApp(env);
    apps.push(b);
    const missingSignups: string[] = [];
    for (const s of ackedSignups) {
      const r = await call(b.url, 'POST', '/auth/login', { json: s, agent: freshConnections });
      if (r.status !== 200) missingSignups.push(`${s.username}: ${r.status}`);
    }
    const missingResources: string[] = [];
    for (const r of ackedResources) {
      const res = await call(b.url, 'GET', `/resources/${r.id}`, { headers: bearer(r.owner.access) });
      if (res.status !== 200) missingResources.push(`${r.id}: ${res.status}`);
    }
    const slowStatus = Number(/^HTTP\/1\.1 (\d{3})/.exec(slowResponse)?.[1] ?? 0);
    const slowId = /"id":"([0-9a-f-]{36})"/.exec(slowResponse)?.[1];
    const slowOnB = slowId
      ? await call(b.url, 'GET', `/resources/${slowId}`, { headers: bearer(owner.access) })
      : undefined;
    await b.stop();

    // A request reset without an answer must not have been carried out either.
    const resets = samples.filter((s) => s.outcome.error === 'ECONNRESET');
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    const processedResets: string[] = [];
    for (const s of resets) {
      if (s.op === 'signup' && (await db.query('SELECT 1 FROM users WHERE username = $1', [s.key])).rowCount)
        processedResets.push(`signup ${s.key}`);
      if (s.op === 'resource' && (await db.query('SELECT 1 FROM resources WHERE title = $1', [s.key])).rowCount)
        processedResets.push(`resource ${s.key}`);
    }
    await db.end();

    const after = samples.filter((s) => s.startedRel >= 0);
    const inFlight = samples.filter((s) => s.startedRel < 0 && s.endedRel >= 0);
    const errors = (list: Sample[]) =>
      list.reduce<Record<string, number>>((acc, s) => {
        const k = String(s.outcome.status ?? s.outcome.error);
        acc[k] = (acc[k] ?? 0) + 1;
        return acc;
      }, {});
    const summary = {
      requests: samples.length,
      in_flight_at_sigterm: inFlight.length,
      in_flight_outcomes: errors(inFlight),
      reset_unanswered: `${resets.length} (sent at ${resets.map((s) => `${s.startedRel >= 0 ? '+' : ''}${round(s.startedRel)}`).join(', ')} ms from the signal; ${processedResets.length} carried out)`,
      after_sigterm: after.length,
      after_sigterm_outcomes: errors(after),
      '5xx': samples.filter((s) => (s.outcome.status ?? 0) >= 500).length,
      longest_ms: round(Math.max(...samples.map((s) => s.outcome.ms))),
      half_sent_request: `${slowStatus}`,
      idle_keepalive_closed_ms: idleClosedAt === undefined ? 'never' : round(idleClosedAt - sigtermAt),
      stuck_client_cut_ms: `${stuckEnd.how} ${round(stuckEnd.ms)}`,
      exit: `${exit.code ?? exit.signal} in ${round(exit.ms)} ms`,
      acked_signups_checked: ackedSignups.length,
      acked_resources_checked: ackedResources.length + (slowId ? 1 : 0),
      lost: missingSignups.length + missingResources.length,
    };
    console.log(`[restart] ${JSON.stringify(summary)}`);

    const show = (list: Sample[]) =>
      list
        .slice(0, 5)
        .map(
          (s) =>
            `${s.op} @${round(s.startedRel)}ms: ${s.outcome.status ?? s.outcome.error} ${s.outcome.text.slice(0, 120)}`,
        );
    expect(idleWarm.status).toBe(200);
    // Requests in flight at the signal completed normally (or with a clean 503); none was cut.
    // The only exception: a connection opened in the moments around the signal whose request
    // the server had not begun to read (still in the kernel's accept queue when the listener
    // closed, or accepted but unparsed, hence idle, when idle connections were closed) is
    // reset. Such a request was never carried out (checked below), like a refused one.
    const edge = (s: Sample) => s.outcome.error === 'ECONNRESET' && Math.abs(s.startedRel) < 250;
    expect(
      show(
        inFlight.filter(
          (s) => !edge(s) && (s.outcome.error || ((s.outcome.status ?? 0) >= 500 && s.outcome.status !== 503)),
        ),
      ),
    ).toEqual([]);
    expect(processedResets).toEqual([]);
    expect(slowStatus).toBe(201);
    expect(slowOnB?.status).toBe(200);
    // New requests after the signal: connection refused or 503, never a hang, a reset or a 500.
    expect(after.length).toBeGreaterThan(10);
    expect(
      show(
        after.filter(
          (s) =>
            !(
              s.outcome.error === 'ECONNREFUSED' ||
              edge(s) ||
              s.outcome.status === 503 ||
              (s.outcome.status ?? 0) < 500
            ),
        ),
      ),
    ).toEqual([]);
    expect(show(samples.filter((s) => s.outcome.ms > 10_000))).toEqual([]);
    // Exit 0 within SHUTDOWN_TIMEOUT (the drain deadline: the stuck client is cut then) + 1 s
    // to close the database pool.
    expect(exit.code).toBe(0);
    expect(exit.ms).toBeLessThan(SHUTDOWN_TIMEOUT_S * 1000 + 1_000);
    expect(idleClosedAt).toBeDefined();
    expect(idleClosedAt! - sigtermAt).toBeLessThan(1_000);
    expect(stuckEnd.how).not.toBe('timeout');
    // Nothing acknowledged is lost across the restart.
    expect(ackedSignups.length).toBeGreaterThan(5);
    expect(ackedResources.length).toBeGreaterThan(5);
    expect(missingSignups).toEqual([]);
    expect(missingResources).toEqual([]);
  });
});
