#!/usr/bin/env node
/**
 * `npm run bench`: Gatehouse's load benchmark. Every figure is a ratio against a baseline
 * measured in the same run on the same machine (2 cores: the load generator competes with
 * the server, so absolute numbers do not travel between machines; ratios do).
 *
 *   npm run bench                      full run (3 rounds of 10 s per scenario; ~26 min)
 *   npm run bench -- --quick           ~3 s per measurement, 1 round, tiny scale seed (CI)
 *   BENCH_DATABASE_URL=postgresql://… npm run bench    PostgreSQL (a fresh database per server)
 *
 * Options: --quick, --build / --no-build (default: build when dist/ is older than src/),
 *          --only=guard,login,…, --rounds=N, --duration=S,
 *          --enforce (exit 3 when a target is missed), --keep (keep temp dir and databases).
 * Results: printed tables and bench/results/latest.json.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Secret, TOTP } from 'otpauth';
import {
  ADMIN_USERNAME,
  CLIENT_CREDENTIALS_BODY,
  PASSWORD,
  basicAuthorization,
  clientToken,
  createClients,
  createPublicResource,
  createResources,
  createTenantWithMembers,
  freshSessions,
  get,
  login,
  mapLimit,
  mfaChallenge,
  mintAccessTokens,
  signup,
  signupMany,
  signupWithMfa,
} from './lib/api.mjs';
import { cursorsAt, seedAuditEvents } from './lib/audit.mjs';
import { load, runChild, startChild } from './lib/children.mjs';
import { backendCpu, backendDelta, cpuMs } from './lib/cpu.mjs';
import { Databases, seed, withDatabase } from './lib/db.mjs';
import { federatedAccounts, startIdp } from './lib/idp.mjs';
import { SocketHolder, openFilesLimit, serverMemoryAfterGc } from './lib/ws-revoke.mjs';
import { machineInfo } from './lib/machine.mjs';
import { markdownTable, printTables, without } from './lib/report.mjs';
import { MAIN, ROOT, Server, freePort, serverEnv } from './lib/server.mjs';
import { median, percentile, summary } from './lib/stats.mjs';

// ---------------------------------------------------------------------------------------
// Options and parameters

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const option = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];

const QUICK = flag('quick');
/** The capacity of the server's verified-token cache (src/tokens/verified-token-cache.ts). */
const VERIFIED_TOKEN_CACHE = 10_000;
const ALL = [
  'guard',
  'guard_cold',
  'guard_hs256',
  'login',
  'mfa_login',
  'oauth_token',
  'introspect',
  'refresh',
  'tenant_read',
  'ws_fanout',
  'ws_connect_auth',
  'ws_revoke',
  'federated_guard',
  'audit_events',
  'metrics_overhead',
  'logs_overhead',
  'scale',
  'memory',
  'memory_idle',
  'startup',
];
const ONLY = option('only')?.split(',') ?? ALL;
for (const key of ONLY) if (!ALL.includes(key)) fail(`--only: unknown scenario "${key}" (known: ${ALL.join(', ')})`);

const P = {
  rounds: Number(option('rounds') ?? (QUICK ? 1 : 3)),
  duration: Number(option('duration') ?? (QUICK ? 3 : 10)), // seconds per measurement
  warmup: QUICK ? 1 : 3, // seconds, per series, before the rounds
  skip: QUICK ? 0.5 : 1, // seconds left out at the start of every measurement
  loginDuration: QUICK ? 5 : 20, // bcrypt-bound: few requests per second, so longer windows
  probeIntervalMs: 20, // latency probe: one request every 20 ms (50/s), one at a time
  connections: 10, // guard and refresh
  // guard_cold: distinct access tokens in rotation, above the verified-token cache's capacity.
  coldTokens: Math.ceil(VERIFIED_TOKEN_CACHE * 1.2),
  loginConnections: 8,
  // Cost 12 as in production; the quick run uses 10 (4× cheaper) so that its short windows
  // still see a few dozen logins on a slow or busy CI machine (it checks the harness, not targets).
  bcryptCost: QUICK ? 10 : 12,
  accounts: 10,
  tokenClients: 10, // oauth_token: machine clients, one per connection (no single hot row)
  wsSockets: 10, // ws_fanout: one user's sockets (WS_MAX_CONNECTIONS_PER_USER's default)
  // audit_events: rows written in SQL (half of them about one account), and seeded accounts.
  auditEvents: QUICK ? 20_000 : 100_000,
  auditUsers: QUICK ? 200 : 1_000,
  auditDepth: 0.9, // the measured page starts nine tenths of the way down the account's login.* events
  scrapeIntervalMs: 1000, // metrics_overhead: one scrape of /metrics a second, as Prometheus would
  scale: QUICK
    ? { small: { users: 100, sessions: 1_000 }, large: { users: 1_000, sessions: 10_000 } }
    : { small: { users: 100, sessions: 1_000 }, large: { users: 100_000, sessions: 1_000_000 } },
};

// Experiments: BENCH_SERVER_ENV='{"UV_THREADPOOL_SIZE":"2"}' adds variables to every server.
const EXTRA_SERVER_ENV = process.env.BENCH_SERVER_ENV ? JSON.parse(process.env.BENCH_SERVER_ENV) : {};

const TARGETS = {
  guard: { text: 'ratio ≥ 0.90', pass: (s) => s.ratio >= 0.9 },
  // Every request verifies an ES256 signature (~60 µs against a request of ~300 µs).
  guard_cold: { text: 'ratio ≥ 0.85', pass: (s) => s.ratio >= 0.85 },
  guard_hs256: { text: 'ratio ≥ 0.95', pass: (s) => s.ratio >= 0.95 },
  login: { text: 'ratio ≥ 0.90', pass: (s) => s.ratio >= 0.9 },
  login_latency: { text: 'ratio ≤ 3 and ≤ 50 ms', pass: (s) => s.ratio <= 3 && s.value <= 50 },
  // The second step of a login alone (POST /auth/login/mfa) against a NestJS + Prisma endpoint
  // doing one TOTP check and one session INSERT: the challenge, the replay rule and the token
  // must cost little.
  mfa_login: { text: 'ratio ≥ 0.80', pass: (s) => s.ratio >= 0.8 },
  // The same against the floor, node:http + pg: what any framework and ORM cost, on top.
  mfa_login_bare: { text: 'info (no target)', pass: () => null },
  // The performance plan's target. A token costs a form parse, the client's authentication (its
  // read and SHA-256 remembered for 30 seconds on one instance) and one ES256 signature; the
  // baseline, a NestJS endpoint that only signs, with the server's own signer.
  oauth_token: { text: 'ratio ≥ 0.50', pass: (s) => s.ratio >= 0.5 },
  // The same against the floor, a node:http endpoint that only signs.
  oauth_token_bare: { text: 'info (no target)', pass: () => null },
  // RFC 7662 introspection (client authentication, remembered; the token; its session and user
  // in one statement) against an authenticated GET /users/me with the same tokens (two reads:
  // the account and its external identities).
  introspect: { text: 'ratio ≥ 0.70', pass: (s) => s.ratio >= 0.7 },
  refresh: { text: 'ratio ≥ 0.60', pass: (s) => s.ratio >= 0.6 },
  // The same page of ten resources, in a tenant (X-Tenant-Id: the membership read on every
  // request, never cached) against the caller's personal ones: tenancy must cost little.
  tenant_read: { text: 'ratio ≥ 0.90', pass: (s) => s.ratio >= 0.9 },
  // An external provider's token as a bearer token: its RS256 signature checked once, then the
  // token remembered (as Gatehouse's own tokens are), the account from the link cache.
  federated_guard: { text: 'ratio ≥ 0.85', pass: (s) => s.ratio >= 0.85 },
  // One user's 10 sockets each get every resource.created: ten frames (ten writev calls) per
  // create on top of an INSERT, its audit and the HTTP answer. Fan-out must stay a small part
  // of a write: at most a fifth of its throughput.
  ws_fanout: { text: 'ratio ≥ 0.80', pass: (s) => s.ratio >= 0.8 },
  // Opening a WebSocket and authenticating it (a handshake, one frame each way, the token
  // verified as for HTTP) against one authenticated GET on a new connection: no dearer.
  ws_connect_auth: { text: 'ratio ≥ 0.80', pass: (s) => s.ratio >= 0.8 },
  // 10,000 idle sockets on one instance: a logout closes its account's sockets (4410) within
  // 100 ms at p99. The ratio (against 100 sockets open) is information only. The quick run
  // (1,000 sockets, 50 logouts: its p99 is the slowest one) checks the harness, not the target.
  ws_revoke: QUICK
    ? { text: 'p99 ≤ 100 ms (quick: info)', pass: () => null }
    : { text: 'p99 ≤ 100 ms (ratio: info)', pass: (s) => s.value <= 100 },
  // The same sockets' cost in server memory: VmRSS after a forced GC, per socket.
  ws_idle_memory: { text: '≤ 8 KiB/socket (RSS)', pass: (s) => s.value <= 8 },
  // A deep page of the audit log (keyset pages: a range of one index, however deep) against
  // the first page of another admin list of the same size: depth must not cost.
  audit_events: { text: 'ratio ≥ 0.80', pass: (s) => s.ratio >= 0.8 },
  // Prometheus metrics (METRICS_PORT), scraped once a second: a counter and a histogram per
  // request must be nearly free. The quick run's 3-second windows are too noisy for 5 %.
  metrics_overhead: QUICK
    ? { text: 'ratio ≥ 0.95 (quick: info)', pass: () => null }
    : { text: 'ratio ≥ 0.95', pass: (s) => s.ratio >= 0.95 },
  // One JSON access line per request (LOG_LEVEL=log, LOG_REQUESTS=true) to a file: from 0.70
  // to 0.93 by CPU per request over four runs (a line of ~270 bytes against a whole, cheap,
  // authenticated GET), too wide for a target that would not flap; the details give its cost.
  logs_overhead: { text: 'info (no target)', pass: () => null },
  scale: { text: 'ratio ≥ 0.90', pass: (s) => s.ratio >= 0.9 },
  memory: { text: 'ratio ≤ 1.5', pass: (s) => s.ratio <= 1.5 },
  // Idle after start on PostgreSQL (production's start: migrations only checked) against a NestJS +
  // Prisma hello world started the same way: the ratio and the absolute value.
  memory_idle: { text: 'ratio ≤ 1.3 and ≤ 150 MiB', pass: (s) => s.ratio <= 1.3 && s.value <= 150 },
  // Spawn to the first 200 on /health (median of 5 starts); the ratio to the hello world is information.
  startup: { text: '≤ 1.0 s (ratio: info)', pass: (s) => s.value <= 1.0 },
  // The same probe on an ordinary API GET (no dot in its path, so it goes through the
  // static-asset middleware's fs.stat on the libuv thread pool): cheap API requests' p99 during
  // the login flood stays within 3× idle too. The quick run's probe (10/s for a few seconds) has
  // a p99 that is its slowest answer or two: information there.
  login_latency_api: QUICK
    ? { text: 'ratio ≤ 3 (quick: info)', pass: () => null }
    : { text: 'ratio ≤ 3', pass: (s) => s.ratio <= 3 },
};

// ---------------------------------------------------------------------------------------
// Run state

const started = Date.now();
const stamp = `${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}_${process.pid}`;
const tmpDir = mkdtempSync(join(os.tmpdir(), 'gatehouse-bench-'));
const logDir = join(tmpDir, 'logs');
mkdirSync(logDir);
const dbs = new Databases({ url: process.env.BENCH_DATABASE_URL || undefined, tmpDir, stamp });
const servers = [];
const scenarios = {};
const series = []; // absolute figures, for the second table
const problems = []; // the harness broke or requests failed: exit 1
const warnings = []; // the figures are unreliable, but nothing is broken

function log(message) {
  const t = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[${t}s] ${message}\n`);
}

function fail(message) {
  console.error(message);
  process.exit(2);
}

process.on('SIGINT', () => {
  log('interrupted: stopping servers');
  cleanup().then(
    () => process.exit(130),
    (error) => {
      console.error(error);
      process.exit(130);
    },
  );
});

// ---------------------------------------------------------------------------------------
// Helpers

async function startServer(name, db, extraEnv = {}, opts = {}) {
  const server = new Server(
    name,
    serverEnv({
      DATABASE_URL: db.url,
      MIGRATE_ON_START: 'true',
      DATA_DIR: join(tmpDir, `data-${name}`),
      BCRYPT_COST: String(P.bcryptCost),
      ...extraEnv,
      ...EXTRA_SERVER_ENV,
    }),
    { logDir, ...opts },
  );
  server.db = db;
  servers.push(server);
  await server.start();
  log(`server ${name} up on ${server.url} (pid ${server.pid}, ${db.kind})`);
  return server;
}

/** Accounts, their access tokens, and a public resource on a fresh server. */
async function prepare(server, prefix = 'bench_u') {
  const accounts = await signupMany(server.url, prefix, P.accounts);
  const usernames = accounts.map((_, i) => `${prefix}${i}`);
  const resourceId = await createPublicResource(server.url, accounts[0].accessToken);
  // Sanity: both endpoints answer as the scenarios expect.
  await get(server.url, '/users/me', accounts[0].accessToken);
  await get(server.url, `/resources/${resourceId}`);
  return {
    accounts,
    usernames,
    resourceId,
    bearer: accounts.map((a) => ({ authorization: `Bearer ${a.accessToken}` })),
  };
}

function httpJob(server, path, extra = {}) {
  return {
    kind: 'autocannon',
    url: server.url,
    path,
    connections: P.connections,
    duration: P.duration,
    skipS: P.skip,
    ...extra,
  };
}

/**
 * Runs `fn` (which resolves with load results) and attaches to the first result the CPU time
 * the server process, and on PostgreSQL the backends of its database, spent per request.
 */
async function withCpu(server, fn) {
  const db = server.db;
  const where = db?.kind === 'postgres' ? { sql: 'datname = $1', params: [db.name] } : null;
  const s0 = cpuMs(server.pid);
  const d0 = where ? await backendCpu(dbs.adminUrl, where) : null;
  const results = await fn();
  const s1 = cpuMs(server.pid);
  const d1 = where ? await backendCpu(dbs.adminUrl, where) : null;
  const first = results[0];
  const n = first.total;
  if (n > 0 && s0 !== null && s1 !== null) {
    first.cpu = {
      serverUsPerRequest: ((s1 - s0) * 1000) / n,
      dbUsPerRequest: where ? (backendDelta(d0, d1) * 1000) / n : null,
      // The load process's CPU over all of its jobs: per request only when it ran one.
      clientUsPerRequest:
        results.length === 1 && typeof first.clientCpuMs === 'number' ? (first.clientCpuMs * 1000) / n : null,
    };
  }
  return results;
}

/** A measured series: a label, the unit of its figure, and the figure out of one result. */
function record(label, unit, results, figure = (r) => r.rps) {
  const values = results.map(figure);
  const entry = {
    label,
    unit,
    ...summary(values),
    p50: median(results.map((r) => r.latencyMs?.p50 ?? null)),
    p99: median(results.map((r) => r.latencyMs?.p99 ?? null)),
    serverCpuUsPerRequest: median(results.map((r) => r.cpu?.serverUsPerRequest ?? null)),
    dbCpuUsPerRequest: median(results.map((r) => r.cpu?.dbUsPerRequest ?? null)),
    clientCpuUsPerRequest: median(results.map((r) => r.cpu?.clientUsPerRequest ?? null)),
    rounds: results,
  };
  series.push(entry);
  if (!results.some((r) => 'ok' in r || 'count' in r)) return entry; // not a load (memory)
  const bad = results.reduce((n, r) => n + (r.non2xxMeasured ?? 0) + (r.errors ?? 0) + (r.timeouts ?? 0), 0);
  const good = results.reduce((n, r) => n + (r.ok ?? r.count ?? 0), 0);
  if (bad > Math.max(good, 1) * 0.01) problems.push(`${label}: ${bad} failed requests for ${good} successful ones`);
  else if (good === 0)
    warnings.push(`${label}: no request completed within the measured window (machine too slow or busy?)`);
  return entry;
}

/** Fills scenarios[key] from per-round (value, baseline) pairs; ratio = median of per-round ratios. */
function conclude(key, { unit, baselineUnit, values, baselines, ratios, details }) {
  const r = ratios ?? values.map((v, i) => (baselines[i] ? v / baselines[i] : null));
  const entry = {
    value: median(values),
    baseline: baselines ? median(baselines) : null,
    ratio: median(r),
    unit,
    baselineUnit: baselineUnit ?? unit,
    target: TARGETS[key].text,
    pass: null,
    range: { value: summary(values), baseline: baselines ? summary(baselines) : null, ratio: summary(r) },
    rounds: values.length,
    loadAverage: os.loadavg()[0],
    ...(details ? { details } : {}),
  };
  entry.pass = entry.ratio === null ? null : TARGETS[key].pass(entry);
  scenarios[key] = entry;
  const fmt = (x) => (x === null || x === undefined ? 'n/a' : Number(x).toFixed(2));
  log(
    `${key}: value ${fmt(entry.value)} ${unit}, baseline ${fmt(entry.baseline)} ${entry.baselineUnit}, ratio ${fmt(entry.ratio)} → ${entry.pass === null ? 'n/a' : entry.pass ? 'pass' : 'MISS'}`,
  );
  return entry;
}

/**
 * Rounds alternating the order (A B, B A, A B …; with more sides, forwards then backwards) so
 * that drift favours no side. Answers one list of results per side.
 */
async function alternate(rounds, ...sides) {
  const results = sides.map(() => []);
  for (let i = 0; i < rounds; i++) {
    const order = sides.map((_, k) => k);
    if (i % 2 === 1) order.reverse();
    for (const k of order) results[k].push(await sides[k](i));
  }
  return results;
}

async function guarded(key, fn) {
  if (!ONLY.includes(key)) return;
  try {
    await fn();
  } catch (error) {
    problems.push(`${key}: ${error.message}`);
    log(`${key} failed: ${error.stack ?? error}`);
    for (const s of servers) if (s.child && s.child.exitCode !== null) log(`server ${s.name} log:\n${s.logTail()}`);
  }
}

// ---------------------------------------------------------------------------------------
// Scenarios

/** guard (and guard_hs256): GET /users/me against GET /resources/:id (public, no token). */
/**
 * guard, guard_hs256, guard_cold: the same optional-auth route, `GET /resources/:id` of a
 * public resource, with a bearer token and without one, so that the ratio is the guard alone
 * (verification, revocation check, principal) and not a difference between two routes.
 * `guard` and `guard_hs256` give each connection its own token (after its first request, every
 * call is served from the verified-token cache); `guard_cold` rotates more distinct tokens
 * than that cache holds, so that every request verifies a signature.
 */
async function guardScenario(key, server, ctx, tokens = null) {
  const path = `/resources/${ctx.resourceId}`;
  const withToken = tokens
    ? { rotatingHeaders: tokens.map((t) => ({ authorization: `Bearer ${t}` })) }
    : { perConnectionHeaders: ctx.bearer };
  // guard_cold: each run goes on with the token after the last one the run before it sent (the
  // warm-up's included). Started again from the first, a run would begin with the tokens
  // still in the cache and be served from it for its first seconds.
  // Each connection takes every 10th token (bench/load.mjs): a token comes back after about
  // 12,000 requests only while the connections go at even rates. Below VERIFIED_TOKEN_CACHE /
  // tokens (the fewest requests of a connection over the most), some would be served from
  // the cache.
  let rotateFrom = 0;
  let evenest = 1;
  const scenario = async (extra = {}) => {
    // rotateFrom is read only with rotatingHeaders (bench/load.mjs).
    const results = await load(httpJob(server, path, { ...withToken, rotateFrom, ...extra }));
    if (tokens) {
      rotateFrom = results[0].rotatedTo;
      evenest = Math.min(evenest, results[0].rotationSpread ?? 1);
    }
    return results;
  };
  const baseline = (extra = {}) => load(httpJob(server, path, extra));
  log(`${key}: warm-up`);
  await scenario({ duration: P.warmup, skipS: 0 });
  await baseline({ duration: P.warmup, skipS: 0 });
  const [s, b] = await alternate(
    P.rounds,
    async () => (await withCpu(server, () => scenario()))[0],
    async () => (await withCpu(server, () => baseline()))[0],
  );
  const label = { guard: 'guard', guard_hs256: 'guard (HS256)', guard_cold: 'guard, cold cache' }[key];
  const how = tokens ? `${tokens.length.toLocaleString('en')} tokens in turn` : `${P.connections} tokens`;
  record(`${label}: GET /resources/:id (public) with a bearer token, ${how}`, 'req/s', s);
  record(`${label}: GET /resources/:id (public) without a token (baseline)`, 'req/s', b);
  conclude(key, {
    unit: 'req/s',
    values: s.map((r) => r.rps),
    baselines: b.map((r) => r.rps),
    details: tokens
      ? { distinctTokens: tokens.length, cacheCapacity: VERIFIED_TOKEN_CACHE, rotationSpread: evenest }
      : undefined,
  });
  if (tokens && evenest < VERIFIED_TOKEN_CACHE / tokens.length + 0.05)
    warnings.push(
      `${key}: the connections' request counts spread to ${evenest.toFixed(2)} (fewest over most): some tokens may have been served from the cache`,
    );
}

/** The header and claim names of a JWT (not verified: only its shape is compared). */
function jwtShape(token) {
  const [header, payload] = token
    .split('.')
    .slice(0, 2)
    .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')));
  return { header: Object.keys(header).sort().join(','), claims: Object.keys(payload).sort().join(',') };
}

/**
 * oauth_token: POST /oauth/token (client_credentials grant, client_secret_basic), tokens per
 * second, against an HTTP endpoint that only signs an ES256 JWT (bench/sign-baseline.mjs,
 * the application's AccessTokenService, its own process) as a NestJS application writes it (the target's baseline)
 * and, for information (oauth_token_bare), behind node:http alone; all three in alternating
 * rounds. P.tokenClients clients made by the start-up admin, each autocannon connection
 * authenticating as its own client (per-connection Authorization headers), so that the
 * UPDATE of last_used_at is not one hot row. The baselines get the very same requests (path,
 * form body, Basic headers) and ignore them. Every request must succeed: the failure
 * throttle (OAUTH_CLIENT_RATE_LIMIT) counts failures only.
 */
async function oauthTokenScenario(server) {
  const admin = await login(server.url, ADMIN_USERNAME);
  const clients = await createClients(server.url, admin.accessToken, 'bench-', P.tokenClients);
  const issued = await Promise.all(clients.map((c) => clientToken(server.url, c))); // sanity: every client gets a token
  const signers = [];
  try {
    for (const stack of ['nest', 'node'])
      signers.push(
        await startChild('sign-baseline.mjs', { stack, ttlSeconds: issued[0].expires_in, scope: issued[0].scope }),
      );
    const [nest, bare] = signers.map((c) => ({ url: `http://127.0.0.1:${c.answer.port}`, pid: c.pid, db: null }));
    // The baselines must sign what the server signs: same header and claim names.
    const app = jwtShape(issued[0].access_token);
    for (const baseline of [nest, bare]) {
      const own = jwtShape((await clientToken(baseline.url, clients[0])).access_token);
      if (app.header !== own.header || app.claims !== own.claims)
        warnings.push(
          `oauth_token: the baseline's token no longer has the server's shape (server: ${app.header} / ${app.claims}; baseline: ${own.header} / ${own.claims}): update bench/sign-baseline.mjs`,
        );
    }
    log(`oauth_token: ${clients.length} clients; signing baselines: NestJS on ${nest.url}, node:http on ${bare.url}`);
    const tokenJob = (target, extra = {}) =>
      httpJob(target, '/oauth/token', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: CLIENT_CREDENTIALS_BODY,
        perConnectionHeaders: clients.map((c) => ({ authorization: basicAuthorization(c) })),
        ...extra,
      });
    log('oauth_token: warm-up');
    for (const target of [server, nest, bare]) await load(tokenJob(target, { duration: P.warmup, skipS: 0 }));
    const measure = (target) => async () => (await withCpu(target, () => load(tokenJob(target))))[0];
    const [s, b, n] = await alternate(P.rounds, measure(server), measure(nest), measure(bare));
    record(`oauth_token: POST /oauth/token (client_credentials, ${clients.length} clients)`, 'tokens/s', s);
    record('oauth_token: NestJS endpoint that only signs an ES256 JWT (baseline)', 'req/s', b);
    record('oauth_token_bare: node:http endpoint that only signs an ES256 JWT (baseline)', 'req/s', n);
    const details = {
      clients: clients.length,
      connections: P.connections,
      grant: 'client_credentials',
      auth: 'Basic',
    };
    conclude('oauth_token', {
      unit: 'tokens/s',
      baselineUnit: 'req/s',
      values: s.map((r) => r.rps),
      baselines: b.map((r) => r.rps),
      details: {
        ...details,
        baseline:
          'bench/sign-baseline.mjs (stack nest): NestJS on Express + AccessTokenService.signClient, one ES256 signature per request, own process',
      },
    });
    conclude('oauth_token_bare', {
      unit: 'tokens/s',
      baselineUnit: 'req/s',
      values: s.map((r) => r.rps),
      baselines: n.map((r) => r.rps),
      details: {
        ...details,
        baseline:
          'bench/sign-baseline.mjs (stack node): node:http + AccessTokenService.signClient, one ES256 signature per request, own process',
      },
    });
  } finally {
    for (const c of signers) await c.stop();
  }
}

/**
 * tenant_read: GET /resources?limit=10 aimed at a tenant with X-Tenant-Id (the caller's
 * membership is read on every request: one primary-key statement, nothing cached) against
 * the same page of the caller's personal resources, same accounts, same connections.
 */
async function tenantReadScenario(server, ctx) {
  // Fresh sessions: the scenarios before this one may outlast the first access tokens.
  const accounts = [];
  for (const username of ctx.usernames) accounts.push({ ...(await login(server.url, username)), username });
  const [owner, ...members] = accounts;
  const tenantId = await createTenantWithMembers(server.url, owner, members, `bench-${process.pid}-${Date.now()}`);
  for (const a of accounts) {
    await createResources(server.url, a.accessToken, 10);
    await createResources(server.url, a.accessToken, 1, tenantId);
  }
  const personal = accounts.map((a) => ({ authorization: `Bearer ${a.accessToken}` }));
  const inTenant = personal.map((h) => ({ ...h, 'x-tenant-id': tenantId }));
  const path = '/resources?limit=10';
  const scenario = () => withCpu(server, () => load(httpJob(server, path, { perConnectionHeaders: inTenant })));
  const baseline = () => withCpu(server, () => load(httpJob(server, path, { perConnectionHeaders: personal })));
  log('tenant_read: warm-up');
  await load(httpJob(server, path, { perConnectionHeaders: inTenant, duration: P.warmup, skipS: 0 }));
  await load(httpJob(server, path, { perConnectionHeaders: personal, duration: P.warmup, skipS: 0 }));
  const [s, b] = await alternate(
    P.rounds,
    async () => (await scenario())[0],
    async () => (await baseline())[0],
  );
  record('tenant_read: GET /resources?limit=10 with X-Tenant-Id', 'req/s', s);
  record('tenant_read: GET /resources?limit=10, personal (baseline)', 'req/s', b);
  conclude('tenant_read', { unit: 'req/s', values: s.map((r) => r.rps), baselines: b.map((r) => r.rps) });
}

/**
 * ws_fanout: creates per second of POST /resources (P.connections keep-alive workers, one
 * user) while P.wsSockets authenticated WebSockets of that user listen, each receiving every
 * `resource.created`, against the same creates with no socket open, in alternating rounds
 * (bench/load.mjs, kind wsFanout: sockets and HTTP workers in one load process). The delivery
 * (request sent → event on a socket) is a series of its own; a measured create whose event
 * does not reach every socket within 5 s is a failure.
 */
async function wsFanoutScenario(server, ctx) {
  const { accessToken } = await login(server.url, ctx.usernames[0]); // fresh: earlier scenarios may outlast the first
  const { wsUrl } = server;
  const job = (sockets, duration = P.duration, skipS = P.skip) => ({
    kind: 'wsFanout',
    url: server.url,
    wsUrl,
    token: accessToken,
    sockets,
    connections: P.connections,
    duration,
    skipS,
  });
  log('ws_fanout: warm-up');
  await load(job(P.wsSockets, P.warmup, 0));
  await load(job(0, P.warmup, 0));
  const [s, b] = await alternate(
    P.rounds,
    async () => (await withCpu(server, () => load(job(P.wsSockets))))[0],
    async () => (await withCpu(server, () => load(job(0))))[0],
  );
  const lost = s.reduce((n, r) => n + r.delivery.missing + r.delivery.duplicates + r.delivery.stray, 0);
  if (lost > 0)
    problems.push(
      `ws_fanout: events lost, repeated or stray: ${JSON.stringify(s.map(({ delivery: { missing, duplicates, stray } }) => ({ missing, duplicates, stray })))}`,
    );
  record(`ws_fanout: POST /resources, ${P.wsSockets} sockets of the user listening`, 'creates/s', s);
  record('ws_fanout: POST /resources, no socket (baseline)', 'creates/s', b);
  record(
    `ws_fanout: resource.created delivered (${P.wsSockets} sockets; latency request → event)`,
    'events/s',
    s.map((r) => ({
      rps: r.delivery.eventsPerS,
      ok: r.delivery.delivered,
      non2xxMeasured: r.delivery.missing,
      latencyMs: r.delivery.latencyMs,
    })),
  );
  conclude('ws_fanout', {
    unit: 'creates/s',
    values: s.map((r) => r.rps),
    baselines: b.map((r) => r.rps),
    details: {
      sockets: P.wsSockets,
      connections: P.connections,
      eventsPerS: median(s.map((r) => r.delivery.eventsPerS)),
      deliveryMs: {
        p50: median(s.map((r) => r.delivery.latencyMs.p50)),
        p99: median(s.map((r) => r.delivery.latencyMs.p99)),
      },
      createMs: {
        p50: median(s.map((r) => r.latencyMs.p50)),
        p99: median(s.map((r) => r.latencyMs.p99)),
        baselineP50: median(b.map((r) => r.latencyMs.p50)),
        baselineP99: median(b.map((r) => r.latencyMs.p99)),
      },
      missingEvents: s.reduce((n, r) => n + r.delivery.missing, 0),
      // What one event to one socket costs the server: the CPU time per create above the
      // baseline's, over the sockets (steadier than the rates on a busy machine).
      serverCpuUsPerEvent: (() => {
        const withSockets = median(s.map((r) => r.cpu?.serverUsPerRequest ?? null));
        const alone = median(b.map((r) => r.cpu?.serverUsPerRequest ?? null));
        return withSockets === null || alone === null ? null : (withSockets - alone) / P.wsSockets;
      })(),
    },
  });
}

/**
 * ws_connect_auth: WebSockets opened and authenticated per second (P.connections workers, each
 * with its own account's token: open, `auth`, wait for `auth.ok`, close, again) against GET
 * /users/me with the same tokens, each request on a new connection (what a connection and one
 * authenticated answer cost over HTTP), in alternating rounds.
 */
async function wsConnectAuthScenario(server, ctx) {
  const tokens = [];
  for (const username of ctx.usernames.slice(0, P.connections))
    tokens.push((await login(server.url, username)).accessToken);
  const { wsUrl } = server;
  const wsJob = (duration = P.duration, skipS = P.skip) => ({
    kind: 'wsConnect',
    wsUrl,
    tokens,
    connections: P.connections,
    duration,
    skipS,
  });
  const httpJob_ = (duration = P.duration, skipS = P.skip) => ({
    kind: 'httpFresh',
    url: server.url,
    path: '/users/me',
    tokens,
    connections: P.connections,
    duration,
    skipS,
  });
  log('ws_connect_auth: warm-up');
  await load(wsJob(P.warmup, 0));
  await load(httpJob_(P.warmup, 0));
  const [s, b] = await alternate(
    P.rounds,
    async () => (await withCpu(server, () => load(wsJob())))[0],
    async () => (await withCpu(server, () => load(httpJob_())))[0],
  );
  for (const r of [...s, ...b])
    if (r.failures) warnings.push(`ws_connect_auth: failures ${JSON.stringify(r.failures)}`);
  record(`ws_connect_auth: open + auth + auth.ok + close (${P.connections} workers)`, 'conn/s', s);
  record('ws_connect_auth: GET /users/me on a new connection each (baseline)', 'req/s', b);
  conclude('ws_connect_auth', {
    unit: 'conn/s',
    baselineUnit: 'req/s',
    values: s.map((r) => r.rps),
    baselines: b.map((r) => r.rps),
  });
}

/**
 * federated_guard: GET /users/me with an external identity provider's access token against
 * the same call with Gatehouse's own access tokens, on a server of its own that trusts the
 * provider (FEDERATION_ISSUERS). The provider runs in this process (bench/lib/idp.mjs: RS256,
 * discovery and JWK Set on 127.0.0.1). P.connections connections, each with its own identity;
 * the sanity requests before the warm-up create their accounts (jit), so the rounds measure the
 * steady state: the key set, the verified tokens and the links are cached, and every request
 * finds its token among the verified ones and its account in the link cache.
 */
async function federatedGuardScenario() {
  const audience = 'gatehouse-bench';
  const provider = await startIdp();
  const db = await dbs.create('federated');
  const server = await startServer('federated', db, {
    FEDERATION_ISSUERS: JSON.stringify([{ name: 'bench-idp', issuer: provider.issuer, audience }]),
  });
  try {
    const ctx = await prepare(server, 'bench_fed');
    const external = await federatedAccounts(provider, server.url, P.connections, audience);
    const externalHeaders = external.map((token) => ({ authorization: `Bearer ${token}` }));
    const run = (headers, extra = {}) =>
      load(httpJob(server, '/users/me', { perConnectionHeaders: headers, ...extra }));
    log('federated_guard: warm-up');
    await run(externalHeaders, { duration: P.warmup, skipS: 0 });
    await run(ctx.bearer, { duration: P.warmup, skipS: 0 });
    const [s, b] = await alternate(
      P.rounds,
      async () => (await withCpu(server, () => run(externalHeaders)))[0],
      async () => (await withCpu(server, () => run(ctx.bearer)))[0],
    );
    record(`federated_guard: GET /users/me, external ${provider.alg} token`, 'req/s', s);
    record('federated_guard: GET /users/me, Gatehouse token (baseline)', 'req/s', b);
    if (provider.hits.jwks !== 1)
      warnings.push(`federated_guard: the provider's JWK Set was fetched ${provider.hits.jwks} times (expected once)`);
    conclude('federated_guard', {
      unit: 'req/s',
      values: s.map((r) => r.rps),
      baselines: b.map((r) => r.rps),
      details: {
        provider: `bench/lib/idp.mjs in the benchmark process, ${provider.alg}, discovery + JWK Set on 127.0.0.1`,
        identities: external.length,
        jwksFetches: provider.hits.jwks,
        discoveryFetches: provider.hits.discovery,
      },
    });
  } finally {
    await server.stop();
    await provider.close();
  }
}

/** Median milliseconds of `n` GET `path` one after another (single requests, no load). */
async function sequentialMs(base, path, headers, n) {
  const ms = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = await fetch(base + path, { headers });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`GET ${path} → ${res.status}`);
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

/**
 * audit_events: the admin's GET /audit-events?userId=<account>&type=login.*&limit=20 on a page
 * deep in the trail (its cursor P.auditDepth of the way down the account's login.* events),
 * against GET /users?limit=20 (another admin list, the same page size and token), on a server
 * of its own whose database holds P.auditEvents audit rows written in SQL (bench/lib/audit.mjs:
 * half of them about one real account, six in ten of the login.* family). The first, the deep
 * and the last page are also timed as single requests beforehand (details).
 */
async function auditEventsScenario() {
  const db = await dbs.create('audit');
  const env = { ADMIN_USERNAME, ADMIN_PASSWORD: PASSWORD };
  const server = await startServer('audit', db, env); // migrates
  try {
    const target = await signup(server.url, 'bench_audit_target');
    // PGlite: one process at a time owns its directory, so the seed runs with the server stopped.
    if (db.kind === 'pglite') await server.stop();
    log(
      `audit_events: seeding ${P.auditEvents.toLocaleString('en')} audit events and ${P.auditUsers.toLocaleString('en')} accounts`,
    );
    const { seeded, total, cursors } = await withDatabase(db, async (exec) => {
      const done = await seedAuditEvents(exec, { events: P.auditEvents, users: P.auditUsers, targetId: target.userId });
      const at = await cursorsAt(exec, {
        userId: target.userId,
        family: 'login',
        limit: 20,
        depths: [P.auditDepth, 1],
      });
      return { seeded: done, ...at };
    });
    log(
      `audit_events: seeded in ${seeded.seconds.toFixed(1)} s; ${total.toLocaleString('en')} login.* events about the account`,
    );
    // The same process environment again (its pepper checks the admin's password).
    if (db.kind === 'pglite') await server.start();
    const admin = await login(server.url, ADMIN_USERNAME);
    const headers = { authorization: `Bearer ${admin.accessToken}` };
    const first = `/audit-events?userId=${target.userId}&type=login.*&limit=20`;
    const deep = `${first}&cursor=${cursors[P.auditDepth].cursor}`;
    const last = `${first}&cursor=${cursors[1].cursor}`;
    const list = '/users?limit=20';
    // Sanity: the deep page is a full page of the account's login.* events, the list a full page.
    const page = await get(server.url, deep, admin.accessToken);
    if (page.items.length !== 20 || page.items.some((e) => e.userId !== target.userId || !e.type.startsWith('login.')))
      throw new Error(`the deep page is not 20 login.* events of the account: ${JSON.stringify(page).slice(0, 300)}`);
    if ((await get(server.url, list, admin.accessToken)).items.length !== 20) throw new Error(`${list}: not 20 users`);
    const single = {};
    for (const [name, path] of [
      ['firstPage', first],
      ['deepPage', deep],
      ['lastPage', last],
      ['usersPage', list],
    ])
      single[name] = await sequentialMs(server.url, path, headers, QUICK ? 5 : 20);
    const job = (path, extra = {}) => httpJob(server, path, { headers, ...extra });
    log('audit_events: warm-up');
    await load(job(deep, { duration: P.warmup, skipS: 0 }));
    await load(job(list, { duration: P.warmup, skipS: 0 }));
    const [s, b] = await alternate(
      P.rounds,
      async () => (await withCpu(server, () => load(job(deep))))[0],
      async () => (await withCpu(server, () => load(job(list))))[0],
    );
    const depth = `${Math.round(P.auditDepth * 100)} %`;
    record(`audit_events: GET /audit-events?userId&type=login.*&limit=20, page at ${depth} depth`, 'req/s', s);
    record('audit_events: GET /users?limit=20 (baseline)', 'req/s', b);
    conclude('audit_events', {
      unit: 'req/s',
      values: s.map((r) => r.rps),
      baselines: b.map((r) => r.rps),
      details: {
        auditEvents: P.auditEvents,
        seedSeconds: seeded.seconds,
        matchingEvents: total,
        pageStartsAfter: cursors[P.auditDepth].skip,
        lastPageStartsAfter: cursors[1].skip,
        singleRequestMedianMs: single,
      },
    });
  } finally {
    await server.stop();
  }
}

/** GET /metrics once: its size and time; throws unless 200 with the HTTP request counter. */
async function scrape(url) {
  const t0 = performance.now();
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (res.status !== 200 || !text.includes('gatehouse_http_requests_total'))
    throw new Error(`GET ${url} → ${res.status}: ${text.slice(0, 200)}`);
  return { text, bytes: Buffer.byteLength(text), ms: performance.now() - t0 };
}

/** The plain server metrics_overhead and logs_overhead both compare with (started once). */
function plainServer(overhead) {
  overhead.plain ??= (async () => {
    const db = await dbs.create('plain');
    const server = await startServer('plain', db, {}, { directLog: true });
    return { server, ctx: await prepare(server, 'bench_plain') };
  })();
  return overhead.plain;
}

/**
 * The guard row's request (GET /users/me, P.connections connections, each its own token) on
 * `subject` and on the plain server, in alternating rounds; `around` wraps each of the
 * subject's loads (the scrapes). Returns the subject's warm-up and both sides' rounds.
 */
async function guardPair(key, subject, plain, around = (fn) => fn()) {
  const job = (side, extra = {}) =>
    httpJob(side.server, '/users/me', { perConnectionHeaders: side.ctx.bearer, ...extra });
  log(`${key}: warm-up`);
  const [warm] = await around(() => load(job(subject, { duration: P.warmup, skipS: 0 })));
  await load(job(plain, { duration: P.warmup, skipS: 0 }));
  const [s, b] = await alternate(
    P.rounds,
    async () => (await around(() => withCpu(subject.server, () => load(job(subject)))))[0],
    async () => (await withCpu(plain.server, () => load(job(plain))))[0],
  );
  return { warm, s, b };
}

/** CPU µs per request of each side (medians), and their difference: steadier than the rates. */
function cpuDetails(s, b) {
  const withIt = median(s.map((r) => r.cpu?.serverUsPerRequest ?? null));
  const without_ = median(b.map((r) => r.cpu?.serverUsPerRequest ?? null));
  return {
    serverCpuUsPerRequest: withIt,
    baselineServerCpuUsPerRequest: without_,
    extraCpuUsPerRequest: withIt === null || without_ === null ? null : withIt - without_,
  };
}

/**
 * metrics_overhead: the guard request on a server with METRICS_PORT (Prometheus metrics on a
 * port of their own) against the same on a plain server, while the benchmark scrapes /metrics
 * once a second (P.scrapeIntervalMs) during the metrics server's measurements, as Prometheus
 * would. Both servers log to a file directly (LOG_LEVEL=warn).
 */
async function metricsOverheadScenario(overhead) {
  const port = await freePort();
  const db = await dbs.create('metrics');
  // Both servers start at once (start-up is most of a quick run's time here).
  const [plain, server] = await Promise.all([
    plainServer(overhead),
    startServer('metrics', db, { METRICS_PORT: String(port) }, { directLog: true }),
  ]);
  try {
    const ctx = await prepare(server, 'bench_metrics');
    const url = `http://127.0.0.1:${port}/metrics`;
    await scrape(url); // sanity: the endpoint answers with the request counter
    const scrapes = { ok: 0, failed: 0, bytes: 0, ms: [] };
    const around = async (fn) => {
      const timer = setInterval(() => {
        scrape(url).then(
          (r) => {
            scrapes.ok += 1;
            scrapes.bytes = r.bytes;
            scrapes.ms.push(r.ms);
          },
          () => {
            scrapes.failed += 1;
          },
        );
      }, P.scrapeIntervalMs);
      try {
        return await fn();
      } finally {
        clearInterval(timer);
      }
    };
    const { warm, s, b } = await guardPair('metrics_overhead', { server, ctx }, plain, around);
    // The counter must have seen every request of the load (and the sanity requests).
    const counted = [...(await scrape(url)).text.matchAll(/^gatehouse_http_requests_total\{[^}]*\} (\S+)$/gm)].reduce(
      (n, m) => n + Number(m[1]),
      0,
    );
    const served = [warm, ...s].reduce((n, r) => n + r.total, 0);
    if (counted < served)
      warnings.push(`metrics_overhead: gatehouse_http_requests_total says ${counted}, the load sent ${served}`);
    if (scrapes.ok === 0) problems.push('metrics_overhead: no scrape of /metrics succeeded during the load');
    else if (scrapes.failed > 0) warnings.push(`metrics_overhead: ${scrapes.failed} scrapes failed (${scrapes.ok} ok)`);
    record('metrics_overhead: GET /users/me, METRICS_PORT set, /metrics scraped every second', 'req/s', s);
    record('metrics_overhead: GET /users/me, no metrics (baseline)', 'req/s', b);
    conclude('metrics_overhead', {
      unit: 'req/s',
      values: s.map((r) => r.rps),
      baselines: b.map((r) => r.rps),
      details: {
        scrapes: scrapes.ok,
        failedScrapes: scrapes.failed,
        scrapeBytes: scrapes.bytes,
        scrapeMs: { p50: percentile(scrapes.ms, 50), max: percentile(scrapes.ms, 100) },
        requestsCounted: counted,
        requestsSent: served,
        ...cpuDetails(s, b),
      },
    });
  } finally {
    await server.stop();
  }
}

/**
 * logs_overhead: the guard request on a server that writes one JSON access line per request
 * (LOG_LEVEL=log, LOG_FORMAT=json, LOG_REQUESTS=true) to a file of its own, against the plain
 * server (LOG_LEVEL=warn: no line per request).
 */
async function logsOverheadScenario(overhead) {
  const db = await dbs.create('logs');
  const [plain, server] = await Promise.all([
    plainServer(overhead),
    startServer('logs', db, { LOG_LEVEL: 'log', LOG_FORMAT: 'json', LOG_REQUESTS: 'true' }, { directLog: true }),
  ]);
  try {
    const ctx = await prepare(server, 'bench_logs');
    // Sanity: the request just made left a JSON access line.
    const line = server
      .logTail(5)
      .split('\n')
      .findLast((l) => l.includes('/users/me'));
    let access;
    try {
      access = JSON.parse(line ?? '');
    } catch {
      access = null;
    }
    if (access?.path !== '/users/me' || access.status !== 200)
      throw new Error(`no JSON access line for GET /users/me in the log: ${line ?? server.logTail(3)}`);
    const bytes0 = server.logBytes();
    const { warm, s, b } = await guardPair('logs_overhead', { server, ctx }, plain);
    const served = [warm, ...s].reduce((n, r) => n + r.total, 0);
    record('logs_overhead: GET /users/me, an access line per request (JSON, to a file)', 'req/s', s);
    record('logs_overhead: GET /users/me, LOG_LEVEL=warn (baseline)', 'req/s', b);
    conclude('logs_overhead', {
      unit: 'req/s',
      values: s.map((r) => r.rps),
      baselines: b.map((r) => r.rps),
      details: {
        logBytesPerRequest: served > 0 ? (server.logBytes() - bytes0) / served : null,
        ...cpuDetails(s, b),
      },
    });
  } finally {
    await server.stop();
  }
}

/** login + login_latency: POST /auth/login (8 connections) against raw bcrypt; JWKS p99 under it. */
async function loginScenario(server, ctx) {
  const loginJob = (duration, skipS) => ({
    kind: 'autocannon',
    url: server.url,
    path: '/auth/login',
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    perConnectionBodies: ctx.usernames
      .slice(0, P.loginConnections)
      .map((username) => JSON.stringify({ username, password: PASSWORD })),
    connections: P.loginConnections,
    duration,
    skipS,
  });
  const probeJob = (duration, delayMs) => ({
    kind: 'probe',
    url: server.url,
    path: '/.well-known/jwks.json',
    intervalMs: P.probeIntervalMs,
    duration,
    delayMs,
  });
  // A sparser second probe (10/s) on GET /resources/:id, for information.
  const apiProbeJob = (duration, delayMs) => ({
    kind: 'probe',
    url: server.url,
    path: `/resources/${ctx.resourceId}`,
    intervalMs: 100,
    duration,
    delayMs,
  });
  const probeS = Math.max(1, P.loginDuration - 2 * Math.max(1, P.skip * 2));
  const probeDelay = Math.max(1, P.skip * 2) * 1000;
  log('login: warm-up');
  await load(loginJob(P.warmup + 1, 0), probeJob(P.warmup, 500));
  await runChild('bcrypt-baseline.mjs', {
    cost: P.bcryptCost,
    inFlight: P.loginConnections,
    duration: P.warmup,
    warmup: 0,
  });

  const logins = [];
  const underLoad = [];
  const bcryptRounds = [];
  const idle = [];
  const apiUnderLoad = [];
  const apiIdle = [];
  for (let i = 0; i < P.rounds; i++) {
    const steps = [
      async () => {
        const [l, p, a] = await withCpu(server, () =>
          load(loginJob(P.loginDuration, P.skip * 2), probeJob(probeS, probeDelay), apiProbeJob(probeS, probeDelay)),
        );
        logins.push(l);
        underLoad.push(p);
        apiUnderLoad.push(a);
      },
      async () =>
        bcryptRounds.push(
          await runChild('bcrypt-baseline.mjs', {
            cost: P.bcryptCost,
            inFlight: P.loginConnections,
            duration: P.loginDuration - P.skip * 2,
            warmup: P.skip * 2,
          }),
        ),
      async () => {
        const [p, a] = await load(probeJob(probeS, 0), apiProbeJob(probeS, 0));
        idle.push(p);
        apiIdle.push(a);
      },
    ];
    if (i % 2 === 1) steps.reverse();
    for (const step of steps) await step();
    log(
      `login: round ${i + 1}/${P.rounds}: ${logins.at(-1).rps.toFixed(2)} logins/s vs ${bcryptRounds.at(-1).rps.toFixed(2)} compares/s; JWKS p99 ${underLoad.at(-1).latencyMs.p99?.toFixed(2)} ms under load, ${idle.at(-1).latencyMs.p99?.toFixed(2)} ms idle`,
    );
  }
  record(`login: POST /auth/login (${P.loginConnections} connections, cost ${P.bcryptCost})`, 'logins/s', logins);
  record(`login: raw bcrypt.compare (${P.loginConnections} in flight, baseline)`, 'compares/s', bcryptRounds);
  record('login_latency: JWKS p99 under login load', 'ms', underLoad, (r) => r.latencyMs.p99);
  record('login_latency: JWKS p99 idle (baseline)', 'ms', idle, (r) => r.latencyMs.p99);
  record('login_latency_api: GET /resources/:id p99 under login load', 'ms', apiUnderLoad, (r) => r.latencyMs.p99);
  record('login_latency_api: GET /resources/:id p99 idle (baseline)', 'ms', apiIdle, (r) => r.latencyMs.p99);
  conclude('login', {
    unit: 'logins/s',
    baselineUnit: 'compares/s',
    values: logins.map((r) => r.rps),
    baselines: bcryptRounds.map((r) => r.rps),
  });
  conclude('login_latency', {
    unit: 'ms (p99)',
    values: underLoad.map((r) => r.latencyMs.p99),
    baselines: idle.map((r) => r.latencyMs.p99),
    details: {
      p50UnderLoad: median(underLoad.map((r) => r.latencyMs.p50)),
      p50Idle: median(idle.map((r) => r.latencyMs.p50)),
    },
  });
  conclude('login_latency_api', {
    unit: 'ms (p99)',
    values: apiUnderLoad.map((r) => r.latencyMs.p99),
    baselines: apiIdle.map((r) => r.latencyMs.p99),
    details: {
      path: 'GET /resources/:id (public)',
      p50UnderLoad: median(apiUnderLoad.map((r) => r.latencyMs.p50)),
      p50Idle: median(apiIdle.map((r) => r.latencyMs.p50)),
    },
  });
}

/** A refresh load: every connection rotates its own session chain, from fresh sessions. */
async function refreshRun(server, ctx, duration = P.duration, skipS = P.skip) {
  const tokens = await freshSessions(server.url, ctx.usernames.slice(0, P.connections));
  const [r] = await withCpu(server, () =>
    load(httpJob(server, '/auth/refresh', { method: 'POST', refreshTokens: tokens, duration, skipS })),
  );
  return r;
}

async function refreshScenario(server, ctx, db) {
  const postgres = db.kind === 'postgres';
  const baseline = (duration, warmup) =>
    runChild('rotate-baseline.mjs', {
      url: db.url,
      userId: ctx.accounts[0].userId,
      concurrency: P.connections,
      duration,
      warmup,
    });
  log('refresh: warm-up');
  await refreshRun(server, ctx, P.warmup, 0);
  if (postgres) await baseline(P.warmup, 0);
  let s;
  let b = [];
  if (postgres) {
    [s, b] = await alternate(
      P.rounds,
      () => refreshRun(server, ctx),
      () => baseline(P.duration - P.skip, P.skip),
    );
  } else {
    s = [];
    for (let i = 0; i < P.rounds; i++) s.push(await refreshRun(server, ctx));
  }
  record(`refresh: POST /auth/refresh (${P.connections} chains)`, 'req/s', s);
  if (postgres) record(`refresh: rotation statement with pg (${P.connections} in flight, baseline)`, 'rotations/s', b);
  conclude('refresh', {
    unit: 'req/s',
    baselineUnit: 'rotations/s',
    values: s.map((r) => r.rps),
    baselines: postgres ? b.map((r) => r.rps) : null,
    ratios: postgres ? undefined : s.map(() => null),
    details: postgres
      ? undefined
      : { baseline: 'n/a on PGlite: the embedded database lives inside the server process' },
  });
}

/** scale: refresh and guard with many sessions and users against the same with 1,000 sessions. */
async function scaleScenario() {
  const small = await dbs.create('scale_small');
  const large = await dbs.create('scale_large');
  const pair = {};
  const ctx = {};
  const plan = [
    { name: 'small', db: small, size: P.scale.small },
    { name: 'large', db: large, size: P.scale.large },
  ];
  if (small.kind === 'pglite') {
    // One process at a time owns a PGlite directory: let a server migrate one, stop it, copy
    // it for the other, seed both offline, then start the two servers.
    await (await startServer('scale-migrate', small)).stop();
    cpSync(small.dir, large.dir, { recursive: true });
  } else {
    for (const { name, db } of plan) pair[name] = await startServer(`scale-${name}`, db); // migrates
  }
  for (const { name, db, size } of plan) {
    log(
      `scale: seeding ${name}: ${size.users.toLocaleString('en')} users, ${size.sessions.toLocaleString('en')} sessions`,
    );
    const seconds = await withDatabase(db, (exec) => seed(exec, size));
    log(`scale: seeded ${name} in ${seconds.toFixed(1)} s`);
  }
  for (const { name, db } of plan) {
    pair[name] ??= await startServer(`scale-${name}`, db);
    ctx[name] = await prepare(pair[name]);
  }
  const guardJob = (name, extra = {}) =>
    httpJob(pair[name], '/users/me', { perConnectionHeaders: ctx[name].bearer, ...extra });
  log('scale: warm-up');
  for (const name of ['large', 'small']) {
    await load(guardJob(name, { duration: P.warmup, skipS: 0 }));
    await refreshRun(pair[name], ctx[name], P.warmup, 0);
  }
  const guardRun = async (name) => (await withCpu(pair[name], () => load(guardJob(name))))[0];
  const [gl, gs] = await alternate(
    P.rounds,
    () => guardRun('large'),
    () => guardRun('small'),
  );
  const [rl, rs] = await alternate(
    P.rounds,
    () => refreshRun(pair.large, ctx.large),
    () => refreshRun(pair.small, ctx.small),
  );
  const { large: L, small: S } = P.scale;
  record(
    `scale: GET /users/me, ${L.sessions.toLocaleString('en')} sessions / ${L.users.toLocaleString('en')} users`,
    'req/s',
    gl,
  );
  record(`scale: GET /users/me, ${S.sessions.toLocaleString('en')} sessions (baseline)`, 'req/s', gs);
  record(`scale: POST /auth/refresh, ${L.sessions.toLocaleString('en')} sessions`, 'req/s', rl);
  record(`scale: POST /auth/refresh, ${S.sessions.toLocaleString('en')} sessions (baseline)`, 'req/s', rs);
  const part = (l, s) => {
    const ratios = l.map((r, i) => r.rps / s[i].rps);
    return {
      value: median(l.map((r) => r.rps)),
      baseline: median(s.map((r) => r.rps)),
      ratio: median(ratios),
      range: { ratio: summary(ratios) },
    };
  };
  const parts = { refresh: part(rl, rs), guard: part(gl, gs) };
  const worst = parts.refresh.ratio <= parts.guard.ratio ? 'refresh' : 'guard';
  const entry = conclude('scale', {
    unit: 'req/s',
    values: (worst === 'refresh' ? rl : gl).map((r) => r.rps),
    baselines: (worst === 'refresh' ? rs : gs).map((r) => r.rps),
    details: { reported: `${worst} (the lower of the two ratios)`, seeded: P.scale, parts },
  });
  entry.pass = TARGETS.scale.pass(parts.refresh) && TARGETS.scale.pass(parts.guard);
  for (const name of ['small', 'large']) await pair[name].stop();
}

// ---------------------------------------------------------------------------------------
// ws_revoke and ws_idle_memory

/**
 * The crowd: `accounts` × `perAccount` idle authenticated sockets (the default per-user cap,
 * so no WS_MAX_CONNECTIONS_PER_USER override), `measured` logouts per round, and the
 * baseline's accounts (10 × 10 = 100 sockets). The quick run: 1,000 sockets, 50 logouts.
 */
const WS_REVOKE = {
  accounts: QUICK ? 100 : 1_000,
  perAccount: 10,
  measured: QUICK ? 50 : 200,
  baselineAccounts: 10,
  holderSockets: 2_500, // at most this many sockets per holder process
  batch: 200, // handshakes in flight per holder while opening
  pauseMs: 20, // between two measured logouts
};

/**
 * One ws_revoke measurement on `server`: holder processes (bench/ws-revoke.mjs) open
 * `perAccount` authenticated sockets for each of `accounts` ({ username, token }, tokens
 * updated in place), then `count` logouts, one at a time, of the `measured` accounts (in
 * turn; POST /auth/logout and /auth/logout-all alternately), each timed in the holder from the
 * request to its account's last socket closed with 4410; the account signs in and opens its
 * sockets again before the next, so the count of open sockets stays the same. With
 * `memory`, the server's VmRSS and heap after a forced GC before the sockets open and once
 * they are open and idle.
 */
async function wsRevokeRun(server, accounts, measured, count, { memory = false } = {}) {
  const C = WS_REVOKE;
  const { wsUrl } = server;
  const perHolder = Math.max(1, Math.floor(C.holderSockets / C.perAccount));
  const shares = [];
  for (let i = 0; i < accounts.length; i += perHolder) shares.push(accounts.slice(i, i + perHolder));
  const holders = shares.map(() => new SocketHolder());
  try {
    const gcMemory = async () => {
      const usage = await serverMemoryAfterGc(server.logFile);
      return { ...usage, vmRssKb: server.memory().rssKb };
    };
    const before = memory ? await gcMemory() : null;
    const opened = await Promise.all(
      holders.map((h, i) =>
        h.call('open', {
          url: server.url,
          wsUrl,
          accounts: shares[i],
          perAccount: C.perAccount,
          batch: C.batch,
        }),
      ),
    );
    const sockets = opened.reduce((n, o) => n + o.sockets, 0);
    await new Promise((r) => setTimeout(r, 1000)); // idle: the last auth.ok frames and their garbage behind
    const open = memory ? await gcMemory() : null;
    // The measured accounts, by holder (one holder at a time: one logout at a time overall).
    const samples = [];
    const failures = [];
    const where = new Map(accounts.map((a, i) => [a, [Math.floor(i / perHolder), i % perHolder]]));
    const local = holders.map(() => []);
    for (const a of measured) local[where.get(a)[0]].push(where.get(a)[1]);
    let left = count;
    for (let h = 0; h < holders.length; h++) {
      if (local[h].length === 0) continue;
      const rest = local.slice(h).reduce((n, l) => n + l.length, 0);
      const mine = Math.round((left * local[h].length) / rest);
      left -= mine;
      const r = await holders[h].call('revoke', {
        accounts: local[h],
        count: mine,
        modes: ['logout', 'logout-all'],
        password: PASSWORD,
        pauseMs: C.pauseMs,
      });
      samples.push(...r.samples);
      failures.push(...r.failures);
    }
    const tokens = new Map();
    for (const h of holders) for (const t of (await h.shutdown()).tokens) tokens.set(t.username, t.token);
    for (const a of accounts) a.token = tokens.get(a.username) ?? a.token;
    const ms = (pick, mode) => samples.filter((s) => !mode || s.mode === mode).map(pick);
    const summaryOf = (values) => ({
      p50: percentile(values, 50),
      p90: percentile(values, 90),
      p99: percentile(values, 99),
      max: values.length ? Math.max(...values) : null,
    });
    const result = {
      sockets,
      openS: Math.max(...opened.map((o) => o.ms)) / 1000,
      openFiles: opened[0]?.openFiles,
      ok: samples.length,
      non2xxMeasured: failures.length,
      latencyMs: summaryOf(ms((s) => s.lastMs)),
      firstCloseMs: summaryOf(ms((s) => s.firstMs)),
      responseMs: summaryOf(ms((s) => s.responseMs)),
      byMode: {
        logout: summaryOf(ms((s) => s.lastMs, 'logout')),
        logoutAll: summaryOf(ms((s) => s.lastMs, 'logout-all')),
      },
      ...(failures.length ? { failures: failures.slice(0, 5) } : {}),
    };
    if (memory) {
      result.memory = {
        before,
        open,
        rssKibPerSocket: (open.vmRssKb - before.vmRssKb) / sockets,
        heapKibPerSocket: (open.heapUsed - before.heapUsed) / 1024 / sockets,
        externalKibPerSocket: (open.external - before.external) / 1024 / sockets,
      };
    }
    return result;
  } finally {
    await Promise.all(holders.map((h) => h.kill()));
  }
}

/**
 * ws_revoke: the time from a logout (POST /auth/logout or /auth/logout-all, alternately) to
 * the close (4410) of that account's last socket, p99, with WS_REVOKE.accounts × 10 idle
 * authenticated sockets open on one server, against the same with only 100 open (the
 * ratio is information; the target is the absolute p99). ws_idle_memory: the server's
 * VmRSS with those sockets open, after a forced GC, minus before they opened, per socket.
 * A server of its own: BCRYPT_COST=4 (a thousand sign-ups and the re-logins are setup, not the
 * measure), WS_MAX_PENDING_PER_IP high (every socket comes from 127.0.0.1, hundreds
 * handshaking at once), and the inspector on loopback for the forced GC.
 */
async function wsRevokeScenario() {
  const C = WS_REVOKE;
  const db = await dbs.create('ws_revoke');
  const server = await startServer('ws-revoke', db, {
    BCRYPT_COST: '4',
    WS_MAX_PENDING_PER_IP: '10000',
    NODE_OPTIONS: '--inspect=127.0.0.1:0',
  });
  const sockets = C.accounts * C.perAccount;
  // A descriptor per socket (and the holders' share of them each): refused accepts would
  // show as failed handshakes, so say why up front.
  const serverFiles = openFilesLimit(server.pid);
  if (serverFiles.soft < sockets + 1_000)
    warnings.push(`ws_revoke: the server may open ${serverFiles.soft} files, fewer than ${sockets} sockets need`);
  const signupAll = async (prefix, n) => {
    const out = [];
    for (let i = 0; i < n; i += 50) {
      const names = Array.from({ length: Math.min(50, n - i) }, (_, k) => `${prefix}${i + k}`);
      out.push(
        ...(await Promise.all(
          names.map(async (username) => ({ username, token: (await signup(server.url, username)).accessToken })),
        )),
      );
    }
    return out;
  };
  log(`ws_revoke: signing up ${(C.accounts + C.baselineAccounts).toLocaleString('en')} accounts`);
  const crowd = await signupAll('wsr_', C.accounts);
  const few = await signupAll('wsr_base_', C.baselineAccounts);
  // The measured accounts, spread over the crowd (and so over the holders).
  const measured = Array.from({ length: C.measured }, (_, i) => crowd[Math.floor((i * C.accounts) / C.measured)]);
  log(`ws_revoke: warm-up (${C.baselineAccounts * C.perAccount} sockets)`);
  await wsRevokeRun(server, few, few, QUICK ? 10 : 20);
  const [s, b] = await alternate(
    P.rounds,
    async (i) => {
      const r = await wsRevokeRun(server, crowd, measured, C.measured, { memory: true });
      log(
        `ws_revoke: round ${i + 1}: ${r.sockets} sockets (opened in ${r.openS.toFixed(1)} s): p99 ${r.latencyMs.p99?.toFixed(2)} ms; RSS ${r.memory.rssKibPerSocket.toFixed(2)} KiB/socket, heap ${r.memory.heapKibPerSocket.toFixed(2)} KiB/socket`,
      );
      return r;
    },
    async () => wsRevokeRun(server, few, few, C.measured),
  );
  await server.stop();
  for (const r of [...s, ...b]) if (r.failures) warnings.push(`ws_revoke: failures ${JSON.stringify(r.failures)}`);
  const n = sockets.toLocaleString('en');
  record(
    `ws_revoke: logout → the account's last socket closed (4410), ${n} sockets open`,
    'ms (p99)',
    s,
    (r) => r.latencyMs.p99,
  );
  record(
    `ws_revoke: the same, ${C.baselineAccounts * C.perAccount} sockets open (baseline)`,
    'ms (p99)',
    b,
    (r) => r.latencyMs.p99,
  );
  record(
    `ws_idle_memory: server VmRSS per idle authenticated socket (${n})`,
    'KiB',
    s.map((r) => ({ value: r.memory.rssKibPerSocket })),
    (r) => r.value,
  );
  record(
    `ws_idle_memory: server heap per idle authenticated socket (${n})`,
    'KiB',
    s.map((r) => ({ value: r.memory.heapKibPerSocket })),
    (r) => r.value,
  );
  const med = (runs, pick) => median(runs.map(pick));
  conclude('ws_revoke', {
    unit: 'ms (p99)',
    values: s.map((r) => r.latencyMs.p99),
    baselines: b.map((r) => r.latencyMs.p99),
    details: {
      sockets,
      accounts: C.accounts,
      socketsPerAccount: C.perAccount,
      logoutsPerRound: C.measured,
      baselineSockets: C.baselineAccounts * C.perAccount,
      lastCloseMs: {
        p50: med(s, (r) => r.latencyMs.p50),
        p99: med(s, (r) => r.latencyMs.p99),
        max: med(s, (r) => r.latencyMs.max),
      },
      firstCloseMs: { p50: med(s, (r) => r.firstCloseMs.p50), p99: med(s, (r) => r.firstCloseMs.p99) },
      responseMs: { p50: med(s, (r) => r.responseMs.p50), p99: med(s, (r) => r.responseMs.p99) },
      logoutP99Ms: med(s, (r) => r.byMode.logout.p99),
      logoutAllP99Ms: med(s, (r) => r.byMode.logoutAll.p99),
      baselineLastCloseMs: { p50: med(b, (r) => r.latencyMs.p50), p99: med(b, (r) => r.latencyMs.p99) },
      openS: med(s, (r) => r.openS),
      openFiles: { server: serverFiles, holder: s[0]?.openFiles },
      rssKibPerSocket: med(s, (r) => r.memory.rssKibPerSocket),
    },
  });
  // The first round's figure only: freed pages are not all given back between rounds, so the
  // later rounds reuse memory the first one took and show less (6.0-6.1 against 7.2 KiB in
  // one run); the first round is the only one measured on a server that never held the crowd's sockets
  // (the warm-up before it opens a hundred).
  const mem = conclude('ws_idle_memory', {
    unit: 'KiB/socket',
    values: [s[0].memory.rssKibPerSocket],
    ratios: [null],
    details: {
      sockets,
      heapKibPerSocket: s[0].memory.heapKibPerSocket,
      externalKibPerSocket: s[0].memory.externalKibPerSocket,
      medianRssKibPerSocketOverRounds: med(s, (r) => r.memory.rssKibPerSocket),
      perRound: s.map((r) => ({
        rssKib: r.memory.rssKibPerSocket,
        heapKib: r.memory.heapKibPerSocket,
        vmRssMb: { before: r.memory.before.vmRssKb / 1024, open: r.memory.open.vmRssKb / 1024 },
        heapMb: { before: r.memory.before.heapUsed / 2 ** 20, open: r.memory.open.heapUsed / 2 ** 20 },
      })),
    },
  });
  mem.pass = TARGETS.ws_idle_memory.pass(mem);
  log(`ws_idle_memory: ${mem.value.toFixed(2)} KiB/socket → ${mem.pass ? 'pass' : 'MISS'}`);
}

// ---------------------------------------------------------------------------------------
// Scenarios: mfa_login (the second step alone) and introspect

/** TOTP as src/mfa/totp.ts: 30-second steps from T0 = 0. */
const TOTP_PERIOD_MS = 30_000;
const totpStep = (ms) => Math.floor(ms / TOTP_PERIOD_MS);
const totpCodeOfStep = (secret, step) =>
  TOTP.generate({
    secret: Secret.fromBase32(secret),
    algorithm: 'SHA1',
    digits: 6,
    period: 30,
    timestamp: step * TOTP_PERIOD_MS,
  });

/**
 * mfa_login: the second step of a login alone, POST /auth/login/mfa (a challenge's mfaToken
 * and a TOTP code), completed logins per second, against bench/mfa-baseline.mjs (its own
 * process: one TOTP check with otpauth and one INSERT into sessions) as a NestJS application
 * writes it (Nest on Express, the project's Prisma client: the target's baseline) and, for
 * information (mfa_login_bare), behind node:http with pg; all three in alternating rounds.
 *
 * On a server of its own with BCRYPT_COST=4: the first steps (password logins, bcrypt) are
 * made before each measurement and not measured, and the second step runs no bcrypt (the
 * password hash verified in the first step travels with the challenge). Each request is
 * single use: a challenge completes once, and a code works once per account (its time step
 * must be newer than the last one used). So every measurement gets a list of pre-made bodies,
 * each account at most once (load kind `bodies`), with a code of the current or the next time
 * step: the server's ±1 window accepts it for at least 30 s, and each account can sign in
 * again once a newer step is current. More accounts are made whenever too few can sign in.
 * The list's length follows the rate seen so far (×1.6 the duration): the window ends at the
 * duration, or at the last answer when the list runs out first.
 *
 * The baselines enforce no replay rule (the validation is the cost, not its uniqueness): each
 * is sent, round and round, one body per account made for the baselines ({ a 43-character
 * token of that account, the current code }: the server's body's shape and size). Those
 * accounts are never signed in by the scenario: the baselines insert tens of thousands of
 * live sessions a round, and in an account the scenario signs in, its logins would revoke
 * them down to MAX_SESSIONS_PER_USER (hundreds of sessions each, and their revocations),
 * work that the baselines make and no real user's login has.
 */
async function mfaLoginScenario() {
  const db = await dbs.create('mfa');
  const server = await startServer('mfa', db, { BCRYPT_COST: '4' });
  const baselines = [];
  try {
    const postgres = db.kind === 'postgres';
    const pool = []; // { username, userId, secret, lastStep }: the accounts the scenario signs in
    const codeAt = (secret, ms) => totpCodeOfStep(secret, totpStep(ms));
    const enrol = (prefix, from, n) =>
      mapLimit(
        Array.from({ length: n }, (_, i) => `${prefix}${from + i}`),
        16,
        (username) => signupWithMfa(server.url, username, codeAt),
      );
    const grow = async (n) => {
      const from = pool.length;
      log(`mfa_login: ${n} more accounts with two-step sign-in (${from + n} in all)`);
      for (const a of await enrol('bench_mfa', from, n)) pool.push({ ...a, lastStep: totpStep(a.confirmedAt) });
    };
    /** `n` accounts that can sign in now, each with a first step done; answers [{ account, mfaToken }]. */
    const challenges = async (n) => {
      const step = totpStep(Date.now());
      const usable = pool.filter((a) => a.lastStep <= step).slice(0, n);
      if (usable.length < n) {
        const from = pool.length;
        await grow(n - usable.length);
        usable.push(...pool.slice(from));
      }
      const tokens = await mapLimit(usable, 16, (a) => mfaChallenge(server.url, a.username));
      return usable.map((account, i) => ({ account, mfaToken: tokens[i] }));
    };
    /** Sends the list once; the accounts whose bodies went out move their last step on. */
    const stepTwo = async (list, extra = {}) => {
      const now = totpStep(Date.now());
      const steps = list.map(({ account }) => Math.max(account.lastStep + 1, now));
      const bodies = list.map(({ account, mfaToken }, i) => ({
        mfaToken,
        code: totpCodeOfStep(account.secret, steps[i]),
      }));
      const [r] = await withCpu(server, () =>
        load(httpJob(server, '/auth/login/mfa', { kind: 'bodies', bodies, ...extra })),
      );
      for (let i = 0; i < r.sent; i++) list[i].account.lastStep = steps[i];
      return r;
    };

    await grow(QUICK ? 200 : 400);
    // One real second step: the size of its answer (the baseline answers as many bytes).
    const [probe] = await challenges(1);
    const probeStep = Math.max(probe.account.lastStep + 1, totpStep(Date.now()));
    const res = await fetch(`${server.url}/auth/login/mfa`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ mfaToken: probe.mfaToken, code: totpCodeOfStep(probe.account.secret, probeStep) }),
    });
    const responseBytes = Buffer.byteLength(await res.text());
    if (res.status !== 200) throw new Error(`POST /auth/login/mfa → ${res.status}`);
    probe.account.lastStep = probeStep;

    let targets = null; // [NestJS, node:http]
    /** The baselines' accounts, never signed in by the scenario (see above): { userId, secret, baseToken }. */
    let known = [];
    if (postgres) {
      const n = QUICK ? 200 : 400;
      log(`mfa_login: ${n} accounts with two-step sign-in for the baselines`);
      known = (await enrol('bench_mfa_base', 0, n)).map((a) => ({
        ...a,
        baseToken: randomBytes(32).toString('base64url'),
      }));
      for (const stack of ['nest', 'node'])
        baselines.push(
          await startChild('mfa-baseline.mjs', {
            stack,
            url: db.url,
            accounts: known.map((a) => ({ token: a.baseToken, userId: a.userId, secret: a.secret })),
            window: 1, // MFA_TOTP_WINDOW's default, which this server runs with
            responseBytes,
            connections: P.connections,
          }),
        );
      targets = baselines.map((c) => ({ url: `http://127.0.0.1:${c.answer.port}`, pid: c.pid, db }));
      log(
        `mfa_login: baselines (one TOTP check, one INSERT): NestJS on ${targets[0].url}, node:http on ${targets[1].url}`,
      );
    }
    const baselineRun = (target, extra = {}) => {
      const now = totpStep(Date.now());
      const bodies = known.map((a) => ({ mfaToken: a.baseToken, code: totpCodeOfStep(a.secret, now) }));
      return withCpu(target, () =>
        load(httpJob(target, '/auth/login/mfa', { kind: 'bodies', cycle: true, bodies, ...extra })),
      );
    };

    log('mfa_login: warm-up');
    const warm = await stepTwo(await challenges(QUICK ? 150 : 300), { duration: P.warmup + 5, skipS: 0 });
    for (const target of targets ?? []) await baselineRun(target, { duration: P.warmup, skipS: 0 });
    let rate = Math.max(warm.rps, 50);
    const sizes = [];
    const scenarioRun = async () => {
      const n = Math.min(20_000, Math.ceil(rate * P.duration * 1.6));
      sizes.push(n);
      const r = await stepTwo(await challenges(n));
      rate = Math.max(rate, r.rps);
      return r;
    };
    let s;
    let b = [];
    let n = [];
    if (targets) {
      const measure = (target) => async () => (await baselineRun(target))[0];
      [s, b, n] = await alternate(P.rounds, scenarioRun, measure(targets[0]), measure(targets[1]));
    } else {
      s = [];
      for (let i = 0; i < P.rounds; i++) s.push(await scenarioRun());
    }
    record(`mfa_login: POST /auth/login/mfa (second step, ${P.connections} connections)`, 'logins/s', s);
    if (targets) {
      record('mfa_login: one TOTP check + one session INSERT (NestJS + Prisma, baseline)', 'req/s', b);
      record('mfa_login_bare: one TOTP check + one session INSERT (node:http + pg, baseline)', 'req/s', n);
    }
    const details = {
      accounts: pool.length,
      bodiesPerRound: sizes,
      roundsEndedByTheList: s.filter((r) => r.exhausted).length,
      measuredS: s.map((r) => r.measuredS),
      responseBytes,
      bcryptCost: 4,
    };
    const check = 'otpauth TOTP.validate (SHA-1, 6 digits, 30 s, window 1)';
    conclude('mfa_login', {
      unit: 'logins/s',
      baselineUnit: 'req/s',
      values: s.map((r) => r.rps),
      baselines: targets ? b.map((r) => r.rps) : null,
      ratios: targets ? undefined : s.map(() => null),
      details: {
        ...details,
        baseline: targets
          ? `bench/mfa-baseline.mjs (stack nest): NestJS on Express, ${check}, one session.create with the project's Prisma client; own process`
          : 'n/a on PGlite: the embedded database lives inside the server process',
      },
    });
    if (targets)
      conclude('mfa_login_bare', {
        unit: 'logins/s',
        baselineUnit: 'req/s',
        values: s.map((r) => r.rps),
        baselines: n.map((r) => r.rps),
        details: {
          ...details,
          baseline: `bench/mfa-baseline.mjs (stack node): node:http, ${check}, one INSERT with pg; own process`,
        },
      });
  } finally {
    for (const c of baselines) await c.stop();
    await server.stop();
  }
}

/**
 * introspect: POST /oauth/introspect (RFC 7662) of a person's access token by a machine
 * client (Basic auth, form body token=<access token>), against GET /users/me with the same
 * tokens, 10 connections each. P.connections clients allowed the `introspection` scope (one
 * per connection, so the secret rows are not one hot row) and P.connections accounts with a
 * fresh session each: connection i introspects account i's token as client i.
 */
async function introspectScenario(server, ctx) {
  const admin = await login(server.url, ADMIN_USERNAME);
  const clients = await createClients(server.url, admin.accessToken, 'introspector-', P.connections, ['introspection']);
  // Fresh sessions: the scenarios before this one may outlast the first access tokens.
  const users = await Promise.all(ctx.usernames.slice(0, P.connections).map((u) => login(server.url, u)));
  const form = users.map((u) => `token=${encodeURIComponent(u.accessToken)}`);
  const sanity = await fetch(`${server.url}/oauth/introspect`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuthorization(clients[0]) },
    body: form[0],
  });
  const answer = await sanity.json();
  if (sanity.status !== 200 || answer.active !== true || answer.username !== ctx.usernames[0])
    throw new Error(`POST /oauth/introspect → ${sanity.status} ${JSON.stringify(answer).slice(0, 200)}`);
  const introspect = (extra = {}) =>
    httpJob(server, '/oauth/introspect', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      perConnectionHeaders: clients.map((c) => ({ authorization: basicAuthorization(c) })),
      perConnectionBodies: form,
      ...extra,
    });
  const me = (extra = {}) =>
    httpJob(server, '/users/me', {
      perConnectionHeaders: users.map((u) => ({ authorization: `Bearer ${u.accessToken}` })),
      ...extra,
    });
  log('introspect: warm-up');
  await load(introspect({ duration: P.warmup, skipS: 0 }));
  await load(me({ duration: P.warmup, skipS: 0 }));
  const [s, b] = await alternate(
    P.rounds,
    async () => (await withCpu(server, () => load(introspect())))[0],
    async () => (await withCpu(server, () => load(me())))[0],
  );
  record(`introspect: POST /oauth/introspect (${clients.length} clients, ${users.length} user tokens)`, 'req/s', s);
  record('introspect: GET /users/me with the same tokens (baseline)', 'req/s', b);
  conclude('introspect', {
    unit: 'req/s',
    values: s.map((r) => r.rps),
    baselines: b.map((r) => r.rps),
    details: {
      clients: clients.length,
      tokens: users.length,
      connections: P.connections,
      auth: 'Basic',
      cpu: cpuDetails(s, b),
    },
  });
}

// ---------------------------------------------------------------------------------------
// Idle memory and start-up time (memory_idle, startup)

/** The hello world both rows compare with: Nest + Prisma, one GET /health running `SELECT 1`. */
const IDLE_BASELINE = join(ROOT, 'bench', 'idle-baseline.mjs');
const IDLE = {
  memoryStarts: QUICK ? 1 : 3,
  startupStarts: QUICK ? 2 : 5,
  idleMs: QUICK ? 1500 : 3000, // after the first 200, before VmRSS is read
};

/** V8's code cache of the bundle, which a start of dist/main.js uses when it is there (src/boot/run-bundle.ts). */
const CODE_CACHE = join(ROOT, 'dist', 'server.cjs.cache');

/**
 * Spawns `node <script>` and polls GET /health every 5 ms: the time from the spawn to the first
 * 200 (the process loading, connecting and listening), then, after IDLE.idleMs without a request,
 * its VmRSS. The process is stopped (SIGTERM) before this resolves.
 */
async function timedStart(name, script, env, { withoutCodeCache = false } = {}) {
  // The start after a build: no code cache of the bundle yet (src/boot/run-bundle.ts); it
  // writes one a second after it serves, which the next start uses.
  if (withoutCodeCache) rmSync(CODE_CACHE, { force: true });
  const codeCache = existsSync(CODE_CACHE);
  const port = await freePort();
  const logFile = join(logDir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const t0 = performance.now();
  let child;
  try {
    child = spawn(process.execPath, [script], {
      cwd: ROOT,
      env: { ...env, PORT: String(port) },
      stdio: ['ignore', fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    let ms = null;
    while (ms === null) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${name} exited during start-up:\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
      }
      if (performance.now() - t0 > 60_000) throw new Error(`${name} did not answer /health within 60 s`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.status === 200) ms = performance.now() - t0;
      } catch {
        // not listening yet
      }
      if (ms === null) await sleep(5);
    }
    await sleep(IDLE.idleMs);
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const rssMb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)[1]) / 1024;
    return { ms, rssMb, codeCache };
  } finally {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * memory_idle and startup, from the same starts: Gatehouse as production starts it (an already
 * migrated database, MIGRATE_ON_START unset: the migrations are only checked) and the hello
 * world (bench/idle-baseline.mjs) on the same database, alternately.
 */
let idleStarts;
function idleRuns() {
  idleStarts ??= (async () => {
    const db = await dbs.create('idle');
    await (await startServer('idle-migrate', db)).stop(); // migrates (MIGRATE_ON_START=true)
    const gatehouseEnv = serverEnv({ DATABASE_URL: db.url, DATA_DIR: join(tmpDir, 'data-idle'), ...EXTRA_SERVER_ENV });
    const baselineEnv = { ...serverEnv({}), DATABASE_URL: db.url };
    const starts = Math.max(
      ONLY.includes('memory_idle') ? IDLE.memoryStarts : 0,
      ONLY.includes('startup') ? IDLE.startupStarts : 0,
    );
    // With startup, also the start after a build, without the code cache: first in the first
    // round, so that every start that counts for the rows finds the cache it wrote.
    const cold = ONLY.includes('startup') ? IDLE.startupStarts : 0;
    log(
      `memory_idle/startup: ${starts} starts of each (${cold} without the code cache), ${IDLE.idleMs} ms idle before VmRSS`,
    );
    const [withoutCache, gatehouse, baseline] = await alternate(
      starts,
      (i) =>
        i < cold
          ? timedStart(`idle-gatehouse-nocache-${i}`, MAIN, gatehouseEnv, { withoutCodeCache: true })
          : Promise.resolve(null),
      (i) => timedStart(`idle-gatehouse-${i}`, MAIN, gatehouseEnv),
      (i) => timedStart(`idle-baseline-${i}`, IDLE_BASELINE, baselineEnv),
    );
    return { gatehouse, baseline, withoutCache: withoutCache.filter((r) => r !== null) };
  })();
  return idleStarts;
}

async function memoryIdleScenario() {
  const { gatehouse, baseline } = await idleRuns();
  const g = gatehouse.slice(0, IDLE.memoryStarts);
  const b = baseline.slice(0, IDLE.memoryStarts);
  record(`memory_idle: Gatehouse VmRSS ${IDLE.idleMs / 1000} s idle after start`, 'MiB', g, (r) => r.rssMb);
  record('memory_idle: NestJS + Prisma hello world, the same (baseline)', 'MiB', b, (r) => r.rssMb);
  conclude('memory_idle', {
    unit: 'MiB',
    values: g.map((r) => r.rssMb),
    baselines: b.map((r) => r.rssMb),
    details: { starts: g.length, idleMs: IDLE.idleMs, migrateOnStart: false },
  });
}

async function startupScenario() {
  const { gatehouse, baseline, withoutCache } = await idleRuns();
  const g = gatehouse.slice(0, IDLE.startupStarts);
  const b = baseline.slice(0, IDLE.startupStarts);
  record('startup: Gatehouse, spawn to the first 200 on /health', 'ms', g, (r) => r.ms);
  record('startup: NestJS + Prisma hello world, the same (baseline)', 'ms', b, (r) => r.ms);
  record('startup: Gatehouse without its code cache (the first start after a build)', 'ms', withoutCache, (r) => r.ms);
  conclude('startup', {
    unit: 's',
    values: g.map((r) => r.ms / 1000),
    baselines: b.map((r) => r.ms / 1000),
    details: {
      starts: g.length,
      migrateOnStart: false,
      withoutCodeCacheMedianMs: Math.round(median(withoutCache.map((r) => r.ms))),
      // Each start of the row should have found the cache an earlier start wrote.
      startsWithCodeCache: g.filter((r) => r.codeCache).length,
    },
  });
}

// ---------------------------------------------------------------------------------------
// Main

/** True when dist/main.js is missing or older than a file of src/ or prisma/. */
function distIsStale() {
  let built;
  try {
    built = statSync(join(ROOT, 'dist', 'main.js')).mtimeMs;
  } catch {
    return true;
  }
  const newer = (dir) =>
    readdirSync(dir, { withFileTypes: true }).some((e) => {
      const path = join(dir, e.name);
      if (e.isDirectory()) return e.name !== 'generated' && newer(path);
      return statSync(path).mtimeMs > built;
    });
  return newer(join(ROOT, 'src')) || newer(join(ROOT, 'prisma'));
}

async function cleanup() {
  for (const s of servers) await s.stop().catch(() => undefined);
  if (!flag('keep')) {
    await dbs.dropAll();
    rmSync(tmpDir, { recursive: true, force: true });
  } else log(`kept ${tmpDir}${dbs.created.length ? ` and databases ${dbs.created.join(', ')}` : ''}`);
}

async function runBenchmarks() {
  if (flag('build') || (!flag('no-build') && distIsStale())) {
    log('building (npm run build): dist/ is older than src/ (--no-build to skip, --build to force)');
    const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, encoding: 'utf8' });
    if (build.status !== 0) fail(`build failed:\n${build.stdout}\n${build.stderr}`);
  }
  const machine = await machineInfo(dbs);
  const loadAtStart = os.loadavg()[0];
  log(
    `${machine.cpu} ×${machine.cores}, Node ${machine.node}, ${machine.database}${QUICK ? ', quick run' : ''}; load average ${loadAtStart.toFixed(1)}`,
  );
  if (loadAtStart > machine.cores)
    warnings.push(`the machine was busy: load average ${loadAtStart.toFixed(1)} at start on ${machine.cores} cores`);
  if (loadAtStart > machine.cores)
    log(
      `warning: the machine is busy (load average ${loadAtStart.toFixed(1)} on ${machine.cores} cores): figures will be noisy`,
    );

  const mainDb = await dbs.create('main');
  // The admin creates the oauth_token scenario's machine clients (POST /oauth/clients).
  const main = await startServer('main', mainDb, { ADMIN_USERNAME, ADMIN_PASSWORD: PASSWORD });
  const startupMemory = main.memory();
  const ctx = await prepare(main);

  await guarded('guard', () => guardScenario('guard', main, ctx));
  await guarded('guard_cold', async () => {
    // More tokens than the cache holds, taken in turn: each is evicted (oldest first) before
    // its next use, so no request is served from the cache.
    log(`guard_cold: minting ${P.coldTokens.toLocaleString('en')} access tokens (refresh chains)`);
    const chains = await freshSessions(main.url, ctx.usernames.slice(0, P.connections));
    const tokens = await mintAccessTokens(main.url, chains, P.coldTokens);
    if (new Set(tokens).size !== tokens.length) throw new Error('guard_cold: minted tokens are not distinct');
    await guardScenario('guard_cold', main, ctx, tokens);
  });
  await guarded('guard_hs256', async () => {
    const db = await dbs.create('hs256');
    const hs = await startServer('hs256', db, { JWT_SECRETS: `bench-hs256-secret-${'x'.repeat(32)}` });
    const hsCtx = await prepare(hs);
    await guardScenario('guard_hs256', hs, hsCtx);
    await hs.stop();
  });
  await guarded('login', () => loginScenario(main, ctx));
  await guarded('mfa_login', mfaLoginScenario);
  await guarded('oauth_token', () => oauthTokenScenario(main));
  await guarded('introspect', () => introspectScenario(main, ctx));
  await guarded('refresh', () => refreshScenario(main, ctx, mainDb));
  await guarded('tenant_read', () => tenantReadScenario(main, ctx));
  await guarded('ws_fanout', () => wsFanoutScenario(main, ctx));
  await guarded('ws_connect_auth', () => wsConnectAuthScenario(main, ctx));
  await guarded('ws_revoke', wsRevokeScenario); // ws_idle_memory comes with it
  await guarded('federated_guard', federatedGuardScenario);
  await guarded('audit_events', auditEventsScenario);
  const overhead = {}; // the plain server both overhead rows compare with
  await guarded('metrics_overhead', () => metricsOverheadScenario(overhead));
  await guarded('logs_overhead', () => logsOverheadScenario(overhead));
  if (overhead.plain) await overhead.plain.then((p) => p.server.stop()).catch(() => undefined);
  await guarded('memory_idle', memoryIdleScenario);
  await guarded('startup', startupScenario);
  await guarded('scale', scaleScenario);
  await guarded('memory', async () => {
    const end = main.memory();
    const mb = (kb) => kb / 1024;
    record('memory: main server VmRSS after the run', 'MB', [{ value: mb(end.rssKb) }], (r) => r.value);
    record(
      'memory: main server VmRSS after start-up (baseline)',
      'MB',
      [{ value: mb(startupMemory.rssKb) }],
      (r) => r.value,
    );
    conclude('memory', {
      unit: 'MB',
      values: [mb(end.rssKb)],
      baselines: [mb(startupMemory.rssKb)],
      details: {
        peakMb: mb(end.hwmKb),
        scenariosServed: ONLY.filter((k) => ['guard', 'login', 'oauth_token', 'refresh'].includes(k)),
      },
    });
  });

  const durationS = (Date.now() - started) / 1000;
  const report = {
    machine,
    run: {
      mode: QUICK ? 'quick' : 'full',
      startedAt: new Date(started).toISOString(),
      durationS,
      parameters: P,
      extraServerEnv: EXTRA_SERVER_ENV,
      loadAverage: { atStart: loadAtStart, atEnd: os.loadavg()[0] },
      only: ONLY,
      problems,
      warnings,
    },
    scenarios,
    series: series.map(({ rounds, ...rest }) => ({
      ...rest,
      rounds: rounds.map((r) => without(r, 'refreshTokens', 'statusCodes')),
    })),
  };
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  const json = `${JSON.stringify(report, null, 2)}\n`;
  writeFileSync(join(ROOT, 'bench', 'results', 'latest.json'), json);
  // Kept beside it (git-ignored too), so that a later quick run does not erase a full one.
  writeFileSync(join(ROOT, 'bench', 'results', `run-${stamp}-${report.run.mode}-${dbs.kind}.json`), json);
  // The table of the README's Performance section, ready to paste.
  writeFileSync(join(ROOT, 'bench', 'results', 'latest.md'), markdownTable(report));
  printTables(report);
  console.log(
    `\nwritten: bench/results/latest.json, latest.md and run-${stamp}-${report.run.mode}-${dbs.kind}.json (${durationS.toFixed(0)} s)`,
  );
  if (warnings.length) console.log(`\nwarnings:\n  - ${warnings.join('\n  - ')}`);
  if (problems.length) console.log(`\nproblems:\n  - ${problems.join('\n  - ')}`);
  await cleanup();
  if (problems.length) process.exit(1);
  if (flag('enforce') && Object.values(scenarios).some((s) => s.pass === false)) process.exit(3);
}

runBenchmarks().catch(async (error) => {
  console.error(error);
  for (const s of servers) console.error(`--- ${s.name} log ---\n${s.logTail()}`);
  await cleanup().catch(() => undefined);
  process.exit(1);
});
