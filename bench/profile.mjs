#!/usr/bin/env node
/**
 * CPU profile of the server under one benchmark scenario's load:
 *
 *   node bench/profile.mjs <scenario> [--duration=15] [--no-build]
 *   node bench/profile.mjs --summarize <file.cpuprofile>
 *
 * scenarios: guard (the public resource with a token), guard_cold (the same with 12,000 tokens in
 * turn, more than the verified-token cache holds, as bench/run.mjs's guard_cold), resource (the
 * same without: the guard's baseline), guard_hs256, resource_hs256, login,
 * refresh, mfa_login (the second step, POST /auth/login/mfa, on a server with BCRYPT_COST=4;
 * each run of it makes --bodies accounts and their challenges first: single-use requests, so
 * the load may end before the window does), introspect (POST /oauth/introspect of ten
 * users' tokens by ten clients, Basic auth), oauth_token (POST /oauth/token, client
 * credentials of ten clients, Basic auth), federated_guard (GET /users/me with ten RS256 access
 * tokens of a provider started in this process, bench/lib/idp.mjs, each verified once and then
 * remembered, as bench/run.mjs's federated_guard), me (GET /users/me with ten Gatehouse tokens:
 * federated_guard's baseline), ws_fanout (POST /resources with ten WebSockets of the user
 * listening, each sent every resource.created, as bench/run.mjs's ws_fanout), create (the same
 * creates with no socket: ws_fanout's baseline). Runs `node --cpu-prof dist/main.js` (PostgreSQL when BENCH_DATABASE_URL is set,
 * else PGlite), prepares it as bench/run.mjs does, applies the load for --duration seconds,
 * stops the server and summarises the samples taken during the load only (top self-time
 * functions, self time per package, top inclusive time). The .cpuprofile and the summary
 * (JSON) go to bench/results/profile-* (git-ignored).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Secret, TOTP } from 'otpauth';
import {
  ADMIN_USERNAME,
  PASSWORD,
  basicAuthorization,
  createClients,
  createPublicResource,
  freshSessions,
  login,
  mapLimit,
  mintAccessTokens,
  mfaChallenge,
  signupMany,
  signupWithMfa,
} from './lib/api.mjs';
import { load } from './lib/children.mjs';
import { formatSummary, summarizeProfile } from './lib/cpuprofile.mjs';
import { Databases } from './lib/db.mjs';
import { federatedAccounts, startIdp } from './lib/idp.mjs';
import { without } from './lib/report.mjs';
import { ROOT, Server, serverEnv } from './lib/server.mjs';

const argv = process.argv.slice(2);
const option = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const outDir = join(ROOT, 'bench', 'results');
mkdirSync(outDir, { recursive: true });

if (argv[0] === '--summarize') {
  console.log(formatSummary(summarizeProfile(argv[1], { root: ROOT, top: Number(option('top') ?? 25) }), argv[1]));
  process.exit(0);
}

const scenario = argv[0];
const SCENARIOS = [
  'guard',
  'guard_cold',
  'resource',
  'guard_hs256',
  'resource_hs256',
  'login',
  'refresh',
  'mfa_login',
  'introspect',
  'oauth_token',
  'federated_guard',
  'me',
  'ws_fanout',
  'create',
];
if (!SCENARIOS.includes(scenario)) {
  console.error(`usage: node bench/profile.mjs <${SCENARIOS.join('|')}> [--duration=15] [--no-build]`);
  process.exit(2);
}
const duration = Number(option('duration') ?? 15);
const connections = 10;

if (!argv.includes('--no-build')) {
  const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`build failed:\n${build.stdout}\n${build.stderr}`);
}

const stamp = `${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}_${process.pid}`;
const tmpDir = mkdtempSync(join(os.tmpdir(), 'gatehouse-profile-'));
const dbs = new Databases({ url: process.env.BENCH_DATABASE_URL || undefined, tmpDir, stamp });
const db = await dbs.create('profile');
const profileDir = join(tmpDir, 'prof');
const hs = scenario.endsWith('_hs256');
const FEDERATED_AUDIENCE = 'gatehouse-bench';
const provider = scenario === 'federated_guard' ? await startIdp() : null;
const server = new Server(
  `profile-${scenario}`,
  serverEnv({
    DATABASE_URL: db.url,
    MIGRATE_ON_START: 'true',
    DATA_DIR: join(tmpDir, 'data'),
    ...(hs ? { JWT_SECRETS: `bench-hs256-secret-${'x'.repeat(32)}` } : {}),
    // mfa_login: the first steps are made before the load, and the second runs no bcrypt.
    ...(scenario === 'mfa_login' ? { BCRYPT_COST: '4' } : {}),
    ...(scenario === 'introspect' || scenario === 'oauth_token' ? { ADMIN_USERNAME, ADMIN_PASSWORD: PASSWORD } : {}),
    ...(provider
      ? {
          FEDERATION_ISSUERS: JSON.stringify([
            { name: 'bench-idp', issuer: provider.issuer, audience: FEDERATED_AUDIENCE },
          ]),
        }
      : {}),
  }),
  { logDir: tmpDir, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] },
);
try {
  await server.start();
  const accounts = await signupMany(server.url, 'bench_u', connections);
  const usernames = accounts.map((_, i) => `bench_u${i}`);
  const resourceId = await createPublicResource(server.url, accounts[0].accessToken);
  const base = { kind: 'autocannon', url: server.url, connections, skipS: 0 };
  // mfa_login: new accounts each time (a code works once per account and time step).
  const codeOf = (secret, ms) => TOTP.generate({ secret: Secret.fromBase32(secret), timestamp: ms });
  let made = 0;
  const mfaBodies = async (n) => {
    const names = Array.from({ length: n }, () => `bench_mfa${made++}`);
    const enrolled = await mapLimit(names, 16, (u) => signupWithMfa(server.url, u, codeOf));
    const tokens = await mapLimit(names, 16, (u) => mfaChallenge(server.url, u));
    // A code newer than the confirmation's, of the step current when the load starts (making
    // many accounts takes longer than the server's ±1 window: a code of the confirmation's
    // next step would be refused by then).
    const now = Date.now();
    return enrolled.map((a, i) => ({
      mfaToken: tokens[i],
      code: codeOf(a.secret, Math.max(a.confirmedAt + 30_000, now)),
    }));
  };
  const clients =
    scenario === 'introspect'
      ? await createClients(server.url, (await login(server.url, ADMIN_USERNAME)).accessToken, 'p-', connections, [
          'introspection',
        ])
      : scenario === 'oauth_token'
        ? await createClients(server.url, (await login(server.url, ADMIN_USERNAME)).accessToken, 'p-', connections)
        : [];
  // federated_guard: each token has made its account (jit) before any load.
  const external = provider ? await federatedAccounts(provider, server.url, connections, FEDERATED_AUDIENCE) : [];
  const job = async (seconds) => {
    switch (scenario) {
      case 'guard':
      case 'guard_hs256':
        return [
          {
            ...base,
            path: `/resources/${resourceId}`,
            duration: seconds,
            perConnectionHeaders: accounts.map((a) => ({ authorization: `Bearer ${a.accessToken}` })),
          },
        ];
      case 'guard_cold': {
        const chains = await freshSessions(server.url, usernames);
        const tokens = await mintAccessTokens(server.url, chains, 12_000);
        return [
          {
            ...base,
            path: `/resources/${resourceId}`,
            duration: seconds,
            rotatingHeaders: tokens.map((t) => ({ authorization: `Bearer ${t}` })),
          },
        ];
      }
      case 'federated_guard':
      case 'me':
        return [
          {
            ...base,
            path: '/users/me',
            duration: seconds,
            perConnectionHeaders: (provider ? external : accounts.map((a) => a.accessToken)).map((t) => ({
              authorization: `Bearer ${t}`,
            })),
          },
        ];
      case 'ws_fanout':
      case 'create':
        return [
          {
            kind: 'wsFanout',
            url: server.url,
            wsUrl: server.wsUrl,
            token: accounts[0].accessToken,
            sockets: scenario === 'ws_fanout' ? 10 : 0,
            connections,
            duration: seconds,
            skipS: 0,
          },
        ];
      case 'resource':
      case 'resource_hs256':
        return [{ ...base, path: `/resources/${resourceId}`, duration: seconds }];
      case 'login':
        return [
          {
            ...base,
            connections: 8,
            path: '/auth/login',
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            perConnectionBodies: usernames
              .slice(0, 8)
              .map((username) => JSON.stringify({ username, password: PASSWORD })),
            duration: seconds,
          },
          {
            kind: 'probe',
            url: server.url,
            path: '/.well-known/jwks.json',
            intervalMs: 20,
            duration: Math.max(1, seconds - 2),
            delayMs: 1000,
          },
        ];
      case 'refresh':
        return [
          {
            ...base,
            path: '/auth/refresh',
            method: 'POST',
            duration: seconds,
            refreshTokens: await freshSessions(server.url, usernames),
          },
        ];
      case 'mfa_login':
        return [
          {
            kind: 'bodies',
            url: server.url,
            connections,
            path: '/auth/login/mfa',
            bodies: await mfaBodies(seconds <= 3 ? 100 : Number(option('bodies') ?? 400)),
            duration: seconds,
            skipS: 0,
          },
        ];
      case 'introspect':
        return [
          {
            ...base,
            path: '/oauth/introspect',
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            perConnectionHeaders: clients.map((c) => ({ authorization: basicAuthorization(c) })),
            perConnectionBodies: accounts.map((a) => `token=${a.accessToken}`),
            duration: seconds,
          },
        ];
      case 'oauth_token':
        return [
          {
            ...base,
            path: '/oauth/token',
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            perConnectionHeaders: clients.map((c) => ({ authorization: basicAuthorization(c) })),
            body: 'grant_type=client_credentials',
            duration: seconds,
          },
        ];
      default:
        throw new Error(`no load for scenario ${scenario}`);
    }
  };
  await load(...(await job(3))); // warm-up, outside the window
  const jobs = await job(duration); // prepared (refresh: fresh sessions) before the window opens
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  const results = await load(...jobs);
  const toUs = Number(process.hrtime.bigint() / 1000n);
  await server.stop();
  const file = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'));
  const kept = join(outDir, `profile-${scenario}-${stamp}.cpuprofile`);
  spawnSync('cp', [join(profileDir, file), kept]);
  const summary = summarizeProfile(kept, { fromUs, toUs, root: ROOT, top: Number(option('top') ?? 25) });
  const loadFigures = results.map((r) =>
    'rps' in r
      ? `${r.rps.toFixed(1)} req/s, p50 ${r.latencyMs.p50?.toFixed(2)} ms, p99 ${r.latencyMs.p99?.toFixed(2)} ms`
      : `probe p50 ${r.latencyMs.p50?.toFixed(2)} ms, p99 ${r.latencyMs.p99?.toFixed(2)} ms`,
  );
  console.log(formatSummary(summary, `${scenario} (${db.kind}) under load: ${loadFigures.join('; ')}`));
  writeFileSync(
    join(outDir, `profile-${scenario}-${stamp}.json`),
    `${JSON.stringify({ scenario, database: db.kind, load: results.map((r) => without(r, 'refreshTokens')), ...summary }, null, 2)}\n`,
  );
} finally {
  await server.stop();
  await provider?.close();
  await dbs.dropAll();
  rmSync(tmpDir, { recursive: true, force: true });
}
