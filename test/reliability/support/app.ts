// The compiled server as a real process (`node main.js`), one per call, on a free port
// (PORT=0: the OS picks, the server logs it), with exactly the environment given.
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { call } from './http.js';
import { sleep } from './net.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Absolute path of the compiled main.js (globalSetup). */
    mainJs: string;
    /** A PostgreSQL server shared by the scenarios that do not stop it (globalSetup). */
    sharedPgUrl: string;
  }
}

export interface AppProcess {
  child: ChildProcess;
  pid: number;
  port: number;
  url: string;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /** True once the process has exited. */
  readonly dead: boolean;
  /** Resident set size in KiB (from /proc), or undefined once gone. */
  rssKiB(): number | undefined;
  /** SIGTERM and wait for the exit: code, and milliseconds from the signal to the exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
  kill(): void;
  cleanup(): void;
}

const running = new Set<AppProcess>();

/** Every app process this test file started and has not seen exit: for afterAll. */
export function killAll(): void {
  for (const app of running) app.kill();
}

export function mainJs(): string {
  return inject('mainJs');
}

/** A fresh P-256 private key in PEM (JWT_KEYS) and a 48-character pepper: shared by instances. */
export function sharedSecrets(): { JWT_KEYS: string; PASSWORD_PEPPER: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    JWT_KEYS: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    PASSWORD_PEPPER: randomBytes(36).toString('base64url'),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

/** Baseline environment: loopback, cheap bcrypt, no rate limits in the way of load, plain http. */
export function baseEnv(extra: Record<string, string>): Record<string, string> {
  return {
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'log', // the "listening on" line (and the port) is logged at this level
    BCRYPT_COST: '4',
    COOKIE_SECURE: 'false',
    SIGNUP_RATE_LIMIT: '100000',
    REFRESH_RATE_LIMIT: '1000000',
    LOGIN_RATE_LIMIT: '10000',
    SHUTDOWN_TIMEOUT: '5',
    ...extra,
  };
}

/** Spawns the server and waits until it listens and /health answers 200. */
export async function startApp(env: Record<string, string>, opts: { deadlineMs?: number } = {}): Promise<AppProcess> {
  const work = mkdtempSync(join(tmpdir(), 'gatehouse-rel-app-'));
  const child = spawn(process.execPath, [mainJs()], {
    cwd: work,
    env: { PATH: process.env.PATH ?? '', DATA_DIR: join(work, 'data'), ...env, LOG_LEVEL: env.LOG_LEVEL ?? 'log' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  let dead = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on('exit', (code, signal) => {
      dead = true;
      running.delete(app);
      resolve({ code, signal, at: performance.now() });
    }),
  );
  const app: AppProcess = {
    child,
    pid: child.pid!,
    port: 0,
    url: '',
    output: () => out,
    exited,
    get dead() {
      return dead;
    },
    rssKiB: () => {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        return m ? Number(m[1]) : undefined;
      } catch {
        return undefined;
      }
    },
    stop: async () => {
      const t0 = performance.now();
      child.kill('SIGTERM');
      const r = await exited;
      return { code: r.code, signal: r.signal, ms: r.at - t0 };
    },
    kill: () => {
      if (!dead) child.kill('SIGKILL');
    },
    cleanup: () => rmSync(work, { recursive: true, force: true }),
  };
  running.add(app);

  const deadline = performance.now() + (opts.deadlineMs ?? 90_000);
  const line = new RegExp(`listening on http://[^\\s]+:(\\d+) \\(pid ${child.pid}\\)`);
  while (app.port === 0) {
    const m = line.exec(out);
    if (m) {
      app.port = Number(m[1]);
      app.url = `http://127.0.0.1:${app.port}`;
      break;
    }
    if (dead) {
      app.cleanup();
      throw new Error(`server exited before listening:\n${out}`);
    }
    if (performance.now() > deadline) {
      app.kill();
      app.cleanup();
      throw new Error(`server did not listen in time:\n${out}`);
    }
    await sleep(50);
  }
  while (true) {
    const health = await call(app.url, 'GET', '/health', { timeoutMs: 5_000 });
    if (health.status === 200) break;
    if (performance.now() > deadline) {
      app.kill();
      app.cleanup();
      throw new Error(`/health never answered 200 (last: ${health.status ?? health.error}):\n${out}`);
    }
    await sleep(100);
  }
  return app;
}
