import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { crc32 } from 'node:zlib';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { decodeCodeCache, encodeCodeCache, SAVE_DELAY_MS } from '../src/boot/run-bundle.js';
import { onPostgres } from './support/env.js';
import { buildServerInto } from './support/private-build.js';
import { freshDatabase } from './support/test-app.js';

/**
 * The compiled server started as a real process (`node main.js`), as production runs it:
 * configuration from the environment, the embedded database on disk, restarts, bad
 * configuration, and graceful shutdown on SIGTERM.
 *
 * The sources are compiled with tsconfig.build.json (what `npm run build` does) into a private
 * directory inside the project, so that this file neither races other people's `dist/` nor
 * tests a stale build. Each server runs in an empty temporary working directory with
 * DATA_DIR pointing at another, so nothing is written to ./data.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BUILD_DIR = join(ROOT, 'node_modules', '.cache', `gatehouse-startup-test-${process.pid}`);
const MAIN = join(BUILD_DIR, 'main.js');
const BUNDLE = join(BUILD_DIR, 'server.cjs');
const DB_CLI = join(BUILD_DIR, 'cli', 'db.js');
const STARTUP_DEADLINE_MS = 150_000; // the first start applies the migrations with the WebAssembly engine
const STACK_FRAME = /^\s+at .+/m;

// Servers start slowly on a busy machine (the first start on an empty directory migrates).
vi.setConfig({ testTimeout: 240_000 });

const temps: string[] = [];
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `gatehouse-${prefix}-`));
  temps.push(dir);
  return dir;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Server {
  child: ChildProcess;
  /** The bound port, known once the server logged "listening" (0 before). */
  port: number;
  url: string;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();

/**
 * Spawns `node main.js` with exactly this environment (plus PATH), in its own empty cwd.
 * PORT=0 by default: the OS picks a free port and the server logs it (no race for a port
 * picked beforehand with other processes on this machine).
 */
function spawnServer(env: Record<string, string>, opts: { port?: number; cwd?: string } = {}): Server {
  const port = opts.port ?? 0;
  const child = spawn(process.execPath, [MAIN], {
    cwd: opts.cwd ?? tempDir('cwd'),
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'log', BCRYPT_COST: '4', PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  return { child, port, url: `http://127.0.0.1:${port}`, output: () => out, exited };
}

/** Waits until this very process logs that it listens, and learns its port from the log. */
async function listening(server: Server, deadlineMs: number): Promise<void> {
  const started = performance.now();
  let exit: { code: number | null } | undefined;
  void server.exited.then((e) => (exit = e));
  const line = new RegExp(`listening on http://[^\\s]+:(\\d+) \\(pid ${server.child.pid}\\)`);
  while (performance.now() - started < deadlineMs) {
    const m = line.exec(server.output());
    if (m) {
      server.port = Number(m[1]);
      server.url = `http://127.0.0.1:${server.port}`;
      return;
    }
    if (exit) throw new Error(`server exited (${exit.code}) before listening:\n${server.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  server.child.kill('SIGKILL');
  throw new Error(`server did not listen within ${deadlineMs} ms:\n${server.output()}`);
}

/** Starts a server and waits for it to listen and answer 200 on /health. */
async function startServer(env: Record<string, string>, opts: { cwd?: string } = {}): Promise<Server> {
  const server = spawnServer(env, { cwd: opts.cwd });
  await listening(server, STARTUP_DEADLINE_MS);
  const res = await fetch(`${server.url}/health`);
  if (res.status !== 200) throw new Error(`/health answered ${res.status} after start:\n${server.output()}`);
  return server;
}

/** SIGTERM, then the exit status and how long the exit took. */
async function stop(server: Server): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
  const t0 = performance.now();
  server.child.kill('SIGTERM');
  const result = await server.exited;
  return { ...result, ms: performance.now() - t0 };
}

/** Runs the server to its exit (for configurations that must stop start-up). */
async function runToExit(
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<{ code: number | null; output: string }> {
  const server = spawnServer(env);
  const timer = setTimeout(() => server.child.kill('SIGKILL'), timeoutMs);
  const { code } = await server.exited;
  clearTimeout(timer);
  return { code, output: server.output() };
}

/** `node cli/db.js <args>` (what `npm run db:migrate` runs) with exactly this environment (plus PATH). */
function runDbCli(
  args: string[],
  env: Record<string, string>,
  opts: { cwd?: string } = {},
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [DB_CLI, ...args],
      { cwd: opts.cwd ?? tempDir('cwd'), env: { PATH: process.env.PATH ?? '', ...env }, timeout: 180_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, output: `${stdout}${stderr}` });
      },
    );
  });
}

async function post(
  server: Server,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

beforeAll(() => {
  buildServerInto(BUILD_DIR, 300_000);
}, 300_000);

afterAll(async () => {
  for (const child of running) child.kill('SIGKILL');
  rmSync(BUILD_DIR, { recursive: true, force: true });
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

describe('a server on the embedded database in DATABASE_URL=file:<dir>', () => {
  // One server's life, in order: first start, shutdown with a request in flight, restart.
  const dataDir = tempDir('data');
  const dbDir = join(dataDir, 'db');
  const cwd = tempDir('cwd');
  const env = { DATABASE_URL: `file:${dbDir}`, DATA_DIR: dataDir };
  const alice = { username: 'alice_persist', password: 'alice password 1' };
  const bob = { username: 'bob_inflight', password: 'bob password 123' };
  let server: Server;
  let aliceToken = '';

  afterAll(() => {
    if (server?.child.exitCode === null) server.child.kill('SIGKILL');
  });

  it('starts on an empty directory and serves /health 200, writing only to DATA_DIR and the database directory', async () => {
    server = await startServer(env, { cwd });
    const res = await fetch(`${server.url}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
    expect(existsSync(join(dbDir, 'PG_VERSION'))).toBe(true);
    expect(readdirSync(cwd)).toEqual([]);
    expect(server.output()).toMatch(/embedded database.*development/i);

    const signup = await post(server, '/auth/signup', alice);
    expect(signup.status).toBe(201);
    aliceToken = ((await signup.json()) as { accessToken: string }).accessToken;
  });

  it('on SIGTERM finishes the request in flight with its 2xx, refuses new connections, and exits 0 promptly', async () => {
    // A slow request: a signup hashing at BCRYPT_COST=13 takes well over the moment we wait.
    await stop(server);
    // SHUTDOWN_TIMEOUT well above the request's duration, even on a busy machine.
    server = await startServer({ ...env, BCRYPT_COST: '13', SHUTDOWN_TIMEOUT: '60' }, { cwd });
    const inFlight = post(server, '/auth/signup', bob).then((res) => ({ res, at: performance.now() }));
    await new Promise((r) => setTimeout(r, 150));
    const signalAt = performance.now();
    const stopped = stop(server);

    const { res, at } = await inFlight;
    expect(res.status).toBe(201);
    expect(at).toBeGreaterThan(signalAt); // it really was in flight when the signal came
    const body = (await res.json()) as { user: { username: string } };
    expect(body.user.username).toBe(bob.username);

    await expect(fetch(`${server.url}/health`)).rejects.toThrow('fetch failed');
    const { code, signal } = await stopped;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(performance.now() - at).toBeLessThan(5_000); // exits soon after the last response
    expect(server.output()).toMatch(/SIGTERM/);
    expect(server.output()).not.toMatch(STACK_FRAME);
  });

  it('keeps users, sessions keys and data across a restart, and exits 0 promptly when idle', async () => {
    server = await startServer(env, { cwd });
    for (const user of [alice, bob]) {
      const login = await post(server, '/auth/login', user);
      expect(login.status).toBe(200);
    }
    // The generated signing key was kept in DATA_DIR: a token from before the restart still verifies.
    const me = await fetch(`${server.url}/users/me`, { headers: { authorization: `Bearer ${aliceToken}` } });
    expect(me.status).toBe(200);
    expect(((await me.json()) as { username: string }).username).toBe(alice.username);
    // The same username cannot be taken again: the data really is the old data.
    expect((await post(server, '/auth/signup', alice)).status).toBe(409);
    expect(readdirSync(cwd)).toEqual([]);

    const { code, ms } = await stop(server);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5_000);
    expect(server.output()).not.toMatch(/shutdown timeout/);
  });

  it("starts and serves without loading Node's fetch implementation, which it only needs for an external issuer's keys", async () => {
    // scripts/bundle-server.mjs: node-postgres's Cloudflare probe constructed a Response at
    // load time, and on Node 20 that loaded undici (35-50 ms of every start; from Node 21 on,
    // pg skips the probe by itself). A module loaded first (NODE_OPTIONS=--import, which worker
    // threads load too) reports, as the main thread exits, whether undici was loaded.
    const hook = join(tempDir('hook'), 'report-undici.mjs');
    writeFileSync(
      hook,
      [
        "import { isMainThread } from 'node:worker_threads';",
        'if (isMainThread)',
        "  process.on('exit', () => process.stderr.write(`undici loaded: ${process.moduleLoadList.some((m) => m.includes('undici'))}\\n`));",
        '',
      ].join('\n'),
    );
    server = await startServer({ ...env, NODE_OPTIONS: `--import=${pathToFileURL(hook).href}` }, { cwd });
    expect((await post(server, '/auth/login', alice)).status).toBe(200);
    expect((await stop(server)).code).toBe(0);
    // The line is the last the process writes: its pipe may be read just after the exit.
    await vi.waitFor(() => expect(server.output()).toMatch(/^undici loaded: /m));
    expect(server.output().match(/^undici loaded: .*$/gm)).toEqual(['undici loaded: false']);
  });

  it("writes V8's code cache of the bundle once it serves, uses it at the next start, and never gives V8 one that is damaged or made for another bundle", async () => {
    // src/boot/run-bundle.ts. A module loaded first reports, as the main thread exits, what the
    // start did with the cache (the loader's state, under its registered symbol).
    const hook = join(tempDir('hook'), 'report-code-cache.mjs');
    writeFileSync(
      hook,
      [
        "import { isMainThread } from 'node:worker_threads';",
        'if (isMainThread)',
        "  process.on('exit', () => process.stderr.write(`code cache: ${globalThis[Symbol.for('gatehouse.loader')]?.codeCache.status}\\n`));",
        '',
      ].join('\n'),
    );
    const cacheFile = `${BUNDLE}.cache`;
    const sourceCrc = crc32(readFileSync(BUNDLE));
    const usable = () => decodeCodeCache(readFileSync(cacheFile), sourceCrc) instanceof Buffer;
    /** One start that serves a login, stopped once `until` (given when it listened) holds; what the start did with the cache. */
    const startStop = async (until: (listenedAt: number) => void, nodeOptions = ''): Promise<string[]> => {
      server = await startServer(
        { ...env, LOG_LEVEL: 'debug', NODE_OPTIONS: `--import=${pathToFileURL(hook).href} ${nodeOptions}`.trim() },
        { cwd },
      );
      const listenedAt = performance.now();
      expect((await post(server, '/auth/login', alice)).status).toBe(200);
      await vi.waitFor(() => until(listenedAt), { timeout: 30_000, interval: 100 });
      expect((await stop(server)).code).toBe(0);
      await vi.waitFor(() => expect(server.output()).toMatch(/^code cache: /m));
      return server.output().match(/^code cache: .*$/gm) ?? [];
    };

    rmSync(cacheFile, { force: true });
    // With LOG_LEVEL=debug the server says what it did (main.ts), once the cache is written.
    const logged = () => expect(server.output()).toMatch(/code cache: absent at start, written/);
    expect(await startStop(logged)).toEqual(['code cache: absent']);
    expect(usable()).toBe(true);
    const written = readFileSync(cacheFile);
    // What the start compiled is in it, not only the bundle's top level (about 0.3 MB).
    expect(written.length).toBeGreaterThan(2_000_000);

    // The next start uses it, and leaves the file as it was.
    const pastSaveDelay = (listenedAt: number) =>
      expect(performance.now() - listenedAt).toBeGreaterThan(SAVE_DELAY_MS + 1_500);
    expect(await startStop(pastSaveDelay)).toEqual(['code cache: used']);
    expect(readFileSync(cacheFile).equals(written)).toBe(true);

    // One byte changed in V8's part, a cache made for a bundle with other contents, a file that is
    // not a cache: none is given to V8; the server starts, serves, and writes a usable one.
    const flipped = Buffer.from(written);
    const middle = flipped.length >> 1;
    flipped[middle] = flipped[middle]! ^ 0xff;
    const otherBundle = encodeCodeCache((sourceCrc ^ 1) >>> 0, written.subarray(16));
    for (const [status, bytes] of [
      ['damaged', flipped],
      ['stale', otherBundle],
      ['damaged', Buffer.from('not a cache')],
    ] as const) {
      writeFileSync(cacheFile, bytes);
      expect(await startStop(() => expect(usable()).toBe(true))).toEqual([`code cache: ${status}`]);
    }

    // A cache V8 refuses (made with other V8 flags) is replaced too.
    expect(
      await startStop(() => expect(readFileSync(cacheFile).equals(written)).toBe(false), '--max-old-space-size=1000'),
    ).toEqual(['code cache: rejected']);
    expect(usable()).toBe(true);
    // Every write went through a temporary file of its own, renamed: none is left.
    expect(readdirSync(BUILD_DIR).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });
});

describe('a server with nothing configured but DATA_DIR', () => {
  it('keeps its embedded database under DATA_DIR/pglite and says it is for development', async () => {
    const dataDir = tempDir('data');
    const server = await startServer({ DATA_DIR: dataDir });
    try {
      expect(existsSync(join(dataDir, 'pglite', 'PG_VERSION'))).toBe(true);
      expect(readdirSync(join(dataDir, 'secrets')).length).toBeGreaterThan(0);
      expect(server.output()).toMatch(/WARN.*embedded database.*development/i);
      expect(server.output()).toContain(`listening on http://0.0.0.0:${server.port}`);
    } finally {
      expect((await stop(server)).code).toBe(0);
    }
  });
});

describe.runIf(onPostgres)('a server on PostgreSQL (TEST_DATABASE_URL)', () => {
  it('migrates at start with MIGRATE_ON_START=true, serves, and keeps data across a restart, with no warning from Node', async () => {
    const database = await freshDatabase();
    const dataDir = tempDir('data');
    const env = { DATABASE_URL: database.url, MIGRATE_ON_START: 'true', DATA_DIR: dataDir };
    try {
      let server = await startServer(env);
      expect((await post(server, '/auth/signup', { username: 'pg_persist', password: 'pg password 12' })).status).toBe(
        201,
      );
      expect((await stop(server)).code).toBe(0);
      server = await startServer(env);
      expect((await post(server, '/auth/login', { username: 'pg_persist', password: 'pg password 12' })).status).toBe(
        200,
      );
      expect(server.output()).not.toMatch(/embedded database/i);
      expect((await stop(server)).code).toBe(0);
      // Node's own warnings (a deprecated use of a dependency, such as queueing a statement on a
      // pg client that is still busy) are printed to stderr as `(node:<pid>) …Warning: …`.
      expect(server.output()).not.toMatch(/\(node:\d+\) \w*Warning/);
    } finally {
      await database.drop();
    }
  });
});

describe('start-up that must fail', () => {
  it.each([
    ['ACCESS_TOKEN_TTL', { ACCESS_TOKEN_TTL: 'abc' }],
    ['PORT', { PORT: 'eighty' }],
    ['DATABASE_URL', { DATABASE_URL: 'mysql://root@localhost/db' }],
    ['COOKIE_SECURE', { COOKIE_SECURE: 'perhaps' }],
  ])('exits non-zero naming %s, without a stack trace, for an invalid value', async (name, env) => {
    const dataDir = tempDir('data');
    const { code, output } = await runToExit({ DATA_DIR: dataDir, ...env });
    expect(code).toBe(1);
    expect(output).toMatch(new RegExp(`^\\s*- ${name}: `, 'm'));
    expect(output).not.toMatch(STACK_FRAME);
    expect(readdirSync(dataDir)).toEqual([]); // stopped before touching anything
  });

  it('exits non-zero with one line naming PASSWORD_PEPPER, JWT_KEYS and `npm run keys` for NODE_ENV=production without them', async () => {
    const dataDir = tempDir('data');
    const { code, output } = await runToExit({ NODE_ENV: 'production', DATA_DIR: dataDir });
    expect(code).toBe(1);
    expect(output).toMatch(
      /^\s*- environment: NODE_ENV=production requires PASSWORD_PEPPER and JWT_KEYS \(or JWT_SECRETS\), .*`npm run keys`$/m,
    );
    expect(output).not.toMatch(STACK_FRAME);
    expect(readdirSync(dataDir)).toEqual([]); // nothing generated for this instance alone
  });

  it('reports every invalid variable at once', async () => {
    const { code, output } = await runToExit({ ACCESS_TOKEN_TTL: 'abc', BCRYPT_COST: '99', TRUST_PROXY: 'maybe' });
    expect(code).toBe(1);
    for (const name of ['ACCESS_TOKEN_TTL', 'BCRYPT_COST', 'TRUST_PROXY']) expect(output).toContain(name);
    expect(output).not.toMatch(STACK_FRAME);
  });

  it.each([
    ['JWT_KEYS', { JWT_KEYS: '-----BEGIN PRIVATE KEY-----\\nbm90IGEga2V5\\n-----END PRIVATE KEY-----' }],
    ['JWT_KEYS', { JWT_KEYS: '{"kty":"EC","crv":"P-256","d":"c2VjcmV0","x":' }],
    ['JWT_SECRETS', { JWT_SECRETS: 'too-short-secret' }],
  ])('exits non-zero with one line naming %s, without a stack trace, for a key it cannot read', async (name, env) => {
    const dataDir = tempDir('data');
    const { code, output } = await runToExit({ DATA_DIR: dataDir, ...env });
    expect(code).toBe(1);
    expect(output).toMatch(/^Invalid configuration:$/m);
    expect(output).toMatch(new RegExp(`^\\s*- ${name}: .+$`, 'm'));
    expect(output.trim().split('\n')).toHaveLength(2); // the heading and that one line
    expect(output).not.toMatch(STACK_FRAME);
    for (const secretPart of ['bm90IGEga2V5', 'c2VjcmV0', 'too-short-secret']) expect(output).not.toContain(secretPart);
    expect(readdirSync(dataDir)).toEqual([]); // stopped before touching anything
  });

  it('exits non-zero with one clear line when PostgreSQL is unreachable and migrations must run', async () => {
    const port = await freePort();
    const { code, output } = await runToExit({
      DATABASE_URL: `postgresql://gatehouse:s3cret-pw@127.0.0.1:${port}/gatehouse`,
      MIGRATE_ON_START: 'true',
      DATA_DIR: tempDir('data'),
    });
    expect(code).toBe(1);
    expect(output).toMatch(/Start-up failed: .*(unreachable|migrations)/);
    expect(output).not.toContain('s3cret-pw');
    expect(output).not.toMatch(STACK_FRAME);
  });

  it('exits non-zero with one clear line naming REDIS_URL when Redis is unreachable', async () => {
    const port = await freePort();
    const { code, output } = await runToExit({
      REDIS_URL: `redis://:s3cret-pw@127.0.0.1:${port}`,
      DATA_DIR: tempDir('data'),
    });
    expect(code).toBe(1);
    expect(output).toMatch(
      new RegExp(`Start-up failed: Redis at 127\\.0\\.0\\.1:${port} is unreachable \\(check REDIS_URL\\)`),
    );
    expect(output).not.toContain('s3cret-pw');
    expect(output).not.toMatch(STACK_FRAME);
  });

  it("exits non-zero with one clear line when bcrypt's worker file is missing from the build", async () => {
    const worker = join(BUILD_DIR, 'bcrypt-worker.mjs');
    renameSync(worker, `${worker}.away`);
    try {
      const { code, output } = await runToExit({ DATA_DIR: tempDir('data') });
      expect(code).toBe(1);
      expect(output).toMatch(/^Start-up failed: bcrypt's worker file is missing: .*bcrypt-worker\.mjs/m);
      expect(output).not.toMatch(STACK_FRAME);
    } finally {
      renameSync(`${worker}.away`, worker);
    }
  });

  it("keeps Prisma's query compiler beside the bundle, not in it, and fails the start with one clear line without it", async () => {
    // scripts/bundle-server.mjs: the compiler's bytes are a file of their own, compiled when the
    // first query needs them (at start-up), not 4.5 MB of base64 in the bundle's source.
    const [name] = readdirSync(BUILD_DIR).filter((f) => /^query_compiler_.+\.wasm$/.test(f));
    expect(name).toBeDefined();
    const compiler = join(BUILD_DIR, name!);
    const bytes = readFileSync(compiler);
    expect(WebAssembly.validate(bytes)).toBe(true);
    // Prisma's module holds the same bytes as base64; none of that text is in the bundle.
    const base64 = readFileSync(
      createRequire(import.meta.url).resolve(`@prisma/client/runtime/${name!.replace(/\.wasm$/, '.wasm-base64.mjs')}`),
      'latin1',
    );
    expect(base64).toContain(bytes.subarray(0, 3072).toString('base64'));
    expect(readFileSync(BUNDLE, 'latin1')).not.toContain(bytes.subarray(0, 3072).toString('base64'));
    renameSync(compiler, `${compiler}.away`);
    try {
      const { code, output } = await runToExit({ DATA_DIR: tempDir('data') });
      expect(code).toBe(1);
      expect(output).toMatch(/^Start-up failed: Prisma's query compiler file is missing: .*query_compiler_.+\.wasm /m);
      expect(output).not.toMatch(STACK_FRAME);
    } finally {
      renameSync(`${compiler}.away`, compiler);
    }
  });

  it('exits non-zero with one clear line when the port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '0.0.0.0', resolve));
    const { port } = blocker.address() as AddressInfo;
    try {
      const server = spawnServer(
        // No migrations to run (PostgreSQL, MIGRATE_ON_START=false): it gets to listen() quickly.
        {
          DATABASE_URL: `postgresql://u@127.0.0.1:${await freePort()}/x`,
          MIGRATE_ON_START: 'false',
          DATA_DIR: tempDir('data'),
        },
        { port },
      );
      const timer = setTimeout(() => server.child.kill('SIGKILL'), 60_000);
      const { code } = await server.exited;
      clearTimeout(timer);
      expect(code).toBe(1);
      expect(server.output()).toMatch(new RegExp(`Start-up failed: .*:${port} is already in use`));
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });
});

describe('a server whose PostgreSQL is unreachable but needs no migration', () => {
  it('starts degraded (MIGRATE_ON_START=false): /health answers 503 within 2 s', async () => {
    const server = spawnServer({
      DATABASE_URL: `postgresql://u@127.0.0.1:${await freePort()}/x`,
      MIGRATE_ON_START: 'false',
      DATA_DIR: tempDir('data'),
    });
    try {
      await listening(server, 120_000);
      const t0 = performance.now();
      const res = await fetch(`${server.url}/health`);
      expect(performance.now() - t0).toBeLessThan(2000);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ statusCode: 503, code: 'DATABASE_UNAVAILABLE' });
      // Prisma quotes the code around a failed query, reading the file a stack frame names: the
      // bundle's frames name its URL (src/boot/run-bundle.ts), which it does not read, rather
      // than its path, whose minified lines it pasted into the warning (36,000 characters).
      await vi.waitFor(() => expect(server.output()).toMatch(/cannot read the stored password costs/));
      const longest = Math.max(
        ...server
          .output()
          .split('\n')
          .map((line) => line.length),
      );
      expect(longest).toBeLessThan(1_000);
    } finally {
      expect((await stop(server)).code).toBe(0);
    }
  });
});

describe('the database CLI (node cli/db.js migrate) reads DATABASE_URL as the server does', () => {
  it('migrates DATABASE_URL=file:///abs/path (percent-encoded) into the directory the server then uses', async () => {
    const dataDir = tempDir('data');
    const dbDir = join(tempDir('db'), 'my db'); // a space: %20 in the URL
    const url = pathToFileURL(dbDir).href;
    expect(url).toMatch(/^file:\/\/\/.*\/my%20db$/);
    const cwd = tempDir('cwd');
    const env = { DATABASE_URL: url, DATA_DIR: dataDir };

    const migrate = await runDbCli(['migrate'], env, { cwd });
    expect(migrate).toMatchObject({ code: 0 });
    expect(migrate.output).toContain(`applied to the embedded database (PGlite) in ${dbDir}:`);
    expect(existsSync(join(dbDir, 'PG_VERSION'))).toBe(true);
    expect(readdirSync(cwd)).toEqual([]); // no "file:" or "%20" directory beside it

    // The server opens the same directory: nothing left to apply.
    const server = await startServer(env, { cwd });
    try {
      expect(server.output()).toContain(`connected to the embedded database (PGlite) in ${dbDir}`);
      expect(server.output()).not.toMatch(/applied migrations/);
      expect(
        (await post(server, '/auth/signup', { username: 'cli_file_url', password: 'cli password 12' })).status,
      ).toBe(201);
    } finally {
      expect((await stop(server)).code).toBe(0);
    }
    const again = await runDbCli(['migrate'], env, { cwd });
    expect(again).toEqual({ code: 0, output: `the embedded database (PGlite) in ${dbDir} is up to date\n` });
    expect(readdirSync(cwd)).toEqual([]);
  });

  it("refuses an invalid environment with the server's one-line messages, without a stack trace", async () => {
    const { code, output } = await runDbCli(['migrate'], {
      DATABASE_URL: 'mysql://root@localhost/db',
      DATA_DIR: tempDir('data'),
    });
    expect(code).toBe(1);
    expect(output).toMatch(/^\s*- DATABASE_URL: /m);
    expect(output).not.toMatch(STACK_FRAME);
  });
});

describe.runIf(onPostgres)('a server on PostgreSQL without MIGRATE_ON_START (TEST_DATABASE_URL)', () => {
  async function sql(url: string, text: string): Promise<void> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  }

  it('refuses an empty database in one line naming `npm run db:migrate` and MIGRATE_ON_START, without a stack trace', async () => {
    const database = await freshDatabase();
    try {
      const { code, output } = await runToExit({
        DATABASE_URL: database.url,
        MIGRATE_ON_START: 'false',
        DATA_DIR: tempDir('data'),
      });
      expect(code).toBe(1);
      const line = /^Start-up failed: (.*)$/m.exec(output)?.[1];
      expect(line).toMatch(/^PostgreSQL at [^ ]+ has \d+ pending migrations \(\d{14}_init, .*\): /);
      expect(line).toContain('`npm run db:migrate`');
      expect(line).toContain('MIGRATE_ON_START=true');
      expect(output).not.toMatch(STACK_FRAME);
      expect(output).not.toMatch(/P2021|TableDoesNotExist|does not exist/);
      expect(output).not.toMatch(/listening on/);
    } finally {
      await database.drop();
    }
  });

  it('refuses a database migrated by a newer version (an unknown migration recorded) in one line', async () => {
    const database = await freshDatabase();
    try {
      expect((await runDbCli(['migrate'], { DATABASE_URL: database.url })).code).toBe(0);
      await sql(
        database.url,
        `INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, finished_at, applied_steps_count)
         VALUES ('00000000-0000-4000-8000-000000000001', 'abc', '29990101000000_from_the_future', now(), now(), 1)`,
      );
      const { code, output } = await runToExit({
        DATABASE_URL: database.url,
        MIGRATE_ON_START: 'false',
        DATA_DIR: tempDir('data'),
      });
      expect(code).toBe(1);
      expect(output).toMatch(
        /^Start-up failed: PostgreSQL at [^ ]+ was migrated by a newer version of Gatehouse \(unknown migration 29990101000000_from_the_future\): upgrade/m,
      );
      expect(output).not.toMatch(STACK_FRAME);
      expect(output).not.toMatch(/listening on/);
    } finally {
      await database.drop();
    }
  });

  it('starts on a database migrated with `db.js migrate`, and serves', async () => {
    const database = await freshDatabase();
    try {
      const migrate = await runDbCli(['migrate'], { DATABASE_URL: database.url });
      expect(migrate.code).toBe(0);
      expect(migrate.output).toMatch(/^applied to PostgreSQL at [^ ]+:\n {2}\d{14}_init\n/);
      const server = await startServer({
        DATABASE_URL: database.url,
        MIGRATE_ON_START: 'false',
        DATA_DIR: tempDir('data'),
      });
      try {
        expect(server.output()).not.toMatch(/applied migrations|pending migrations?/);
        expect(
          (await post(server, '/auth/signup', { username: 'pg_premigrated', password: 'pg password 12' })).status,
        ).toBe(201);
      } finally {
        expect((await stop(server)).code).toBe(0);
      }
    } finally {
      await database.drop();
    }
  });
});
