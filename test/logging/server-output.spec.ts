import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { onPostgres } from '../support/env.js';
import { buildServerInto } from '../support/private-build.js';

/**
 * The compiled server (`node main.js`, built as `npm run build` does into a private
 * directory) writes JSON lines on stdout with NODE_ENV=production (LOG_FORMAT's default
 * there), and pretty text otherwise: start-up, an access line, a request that fails, the
 * shutdown. Each server runs on a PostgreSQL address where nobody listens, with
 * MIGRATE_ON_START=false: it starts at once (degraded) and its requests answer 503.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUILD_DIR = join(ROOT, 'node_modules', '.cache', `gatehouse-logging-test-${process.pid}`);
const PASSWORD = 'password-sent-to-the-server';
const QUERY_TOKEN = `query-token-${randomBytes(6).toString('hex')}`;

vi.setConfig({ testTimeout: 120_000 });

const temps: string[] = [];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Run {
  stdout: string;
  stderr: string;
  code: number | null;
  requestId: string;
}

/**
 * Starts the server with this environment, waits for its "listening on" line, sends a
 * login (with a token in the query string) and a /health, then SIGTERM; answers its output.
 */
async function run(env: Record<string, string>): Promise<Run> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-logging-data-'));
  temps.push(dataDir);
  const child = spawn(process.execPath, [join(BUILD_DIR, 'main.js')], {
    cwd: dataDir,
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'log',
      DATA_DIR: dataDir,
      DATABASE_URL: `postgresql://gatehouse@127.0.0.1:${await freePort()}/gatehouse`,
      MIGRATE_ON_START: 'false',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  // 'close', not 'exit': the output is complete only once both pipes are closed.
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  try {
    const listening = new RegExp(`listening on http://127\\.0\\.0\\.1:(\\d+) \\(pid ${child.pid}\\)`);
    let port: number | undefined;
    for (const started = Date.now(); port === undefined;) {
      const m = listening.exec(stdout);
      if (m) port = Number(m[1]);
      else if (child.exitCode !== null || Date.now() - started > 90_000) {
        throw new Error(`the server did not listen:\n${stdout}\n${stderr}`);
      } else await new Promise((r) => setTimeout(r, 25));
    }
    const login = await fetch(`http://127.0.0.1:${port}/auth/login?token=${QUERY_TOKEN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'someone', password: PASSWORD }),
    });
    expect(login.status).toBe(503);
    const requestId = login.headers.get('x-request-id')!;
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(503);
    child.kill('SIGTERM');
    const code = await exited; // before reading the output: it is complete only now
    return { stdout, stderr, code, requestId };
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

// Once per `npm test`: in its PGlite pass (the servers it starts use no database, so the
// PostgreSQL pass would repeat the same build and runs for nothing).
describe.runIf(!onPostgres)("the compiled server's log output", () => {
  let json: Run;
  let pretty: Run;

  beforeAll(async () => {
    buildServerInto(BUILD_DIR, 300_000);
    [json, pretty] = await Promise.all([
      run({
        NODE_ENV: 'production',
        PASSWORD_PEPPER: randomBytes(32).toString('base64url'),
        JWT_SECRETS: randomBytes(32).toString('base64url'),
      }),
      run({}),
    ]);
  }, 300_000);

  afterAll(() => {
    rmSync(BUILD_DIR, { recursive: true, force: true });
    for (const dir of temps) rmSync(dir, { recursive: true, force: true });
  });

  describe('node main.js with NODE_ENV=production (LOG_FORMAT defaults to json)', () => {
    it('writes only JSON lines on stdout, from start-up to exit', () => {
      expect(json.code).toBe(0);
      expect(json.stderr).toBe('');
      const lines = json.stdout.trim().split('\n');
      expect(lines.length).toBeGreaterThan(5);
      for (const line of lines) {
        const entry = JSON.parse(line) as Record<string, unknown>;
        expect(Object.keys(entry)).toEqual(expect.arrayContaining(['level', 'time', 'pid', 'hostname', 'msg']));
      }
    });

    it('has the listening line, the access line of the failed request, its error and the shutdown', () => {
      const entries = json.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(entries).toContainEqual(
        expect.objectContaining({
          level: 'info',
          context: 'Gatehouse',
          msg: expect.stringMatching(/^listening on http:\/\/127\.0\.0\.1:\d+ \(pid \d+\)$/),
        }),
      );
      expect(entries).toContainEqual(
        expect.objectContaining({
          level: 'warn',
          context: 'Errors',
          reqId: json.requestId,
          msg: expect.stringMatching(/^database unavailable: /),
        }),
      );
      expect(entries).toContainEqual(
        expect.objectContaining({
          level: 'error',
          context: 'HTTP',
          reqId: json.requestId,
          method: 'POST',
          path: '/auth/login',
          route: '/auth/login',
          status: 503,
          ip: '127.0.0.1',
        }),
      );
      expect(entries).toContainEqual(expect.objectContaining({ context: 'HTTP', path: '/health', status: 503 }));
      expect(entries).toContainEqual(
        expect.objectContaining({ context: 'Gatehouse', msg: 'SIGTERM received: draining' }),
      );
    });

    it("never writes the request's password or the token of its query string", () => {
      expect(json.stdout).not.toContain(PASSWORD);
      expect(json.stdout).not.toContain(QUERY_TOKEN);
    });
  });

  describe('node main.js in development (LOG_FORMAT defaults to pretty)', () => {
    it('writes one line of uncoloured text per entry: time, level, (context), message', () => {
      expect(pretty.code).toBe(0);
      const lines = pretty.stdout.trim().split('\n');
      for (const line of lines) {
        expect(line).toMatch(/^\[\d{2}:\d{2}:\d{2}\.\d{3}\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL): /);
        expect(() => JSON.parse(line) as unknown).toThrow(SyntaxError);
      }
      expect(pretty.stdout).not.toContain('\u001b['); // no colour codes
      expect(pretty.stdout).toMatch(
        /^\[[\d:.]+\] INFO: \(Gatehouse\) listening on http:\/\/127\.0\.0\.1:\d+ \(pid \d+\)$/m,
      );
      expect(pretty.stdout).toMatch(/^\[[\d:.]+\] WARN: \(Errors\) database unavailable: /m);
      expect(pretty.stdout).toMatch(
        new RegExp(
          `^\\[[\\d:.]+\\] ERROR: \\(HTTP\\) POST /auth/login 503 [\\d.]+ ms \\{"reqId":"${pretty.requestId}",`,
          'm',
        ),
      );
      expect(pretty.stdout).toMatch(/INFO: \(Gatehouse\) SIGTERM received: draining$/m);
    });

    it("never writes the request's password or the token of its query string", () => {
      expect(pretty.stdout + pretty.stderr).not.toContain(PASSWORD);
      expect(pretty.stdout + pretty.stderr).not.toContain(QUERY_TOKEN);
    });
  });
});
