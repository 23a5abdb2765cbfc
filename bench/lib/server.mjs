/** Starting and stopping Gatehouse (`node dist/main.js`) as a separate process. */
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, openSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const ROOT = new URL('../..', import.meta.url).pathname;
export const MAIN = join(ROOT, 'dist', 'main.js');

/** A port nobody listens on right now (the kernel's choice). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** The environment every benchmark server gets: nothing inherited that could change its behaviour. */
export function serverEnv(extra) {
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  return {
    ...env,
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    BCRYPT_COST: '12',
    // High limits: the benchmark must measure the work, not the throttles.
    SIGNUP_RATE_LIMIT: '100000',
    REFRESH_RATE_LIMIT: '1000000',
    LOGIN_RATE_LIMIT: '10000',
    // Production refuses to start without its keys and pepper: fresh ones for this run.
    PASSWORD_PEPPER: randomBytes(32).toString('base64url'),
    MFA_ENCRYPTION_KEYS: randomBytes(32).toString('hex'),
    ...(extra.JWT_SECRETS
      ? {}
      : {
          JWT_KEYS: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
            format: 'pem',
            type: 'pkcs8',
          }),
        }),
    ...extra,
  };
}

export class Server {
  /**
   * @param {string} name   label (log file name)
   * @param {object} env    full environment (see serverEnv)
   * @param {object} opts   { logDir, nodeArgs: [], directLog }
   *   directLog: the server writes its stdout and stderr straight to its log file (a file
   *   descriptor of its own), not through a pipe to this process: what logging costs the server
   *   alone, with nothing in this process reading (logs_overhead).
   */
  constructor(name, env, opts) {
    this.name = name;
    this.env = env;
    this.logDir = opts.logDir;
    this.nodeArgs = opts.nodeArgs ?? [];
    this.directLog = opts.directLog ?? false;
    this.child = null;
    this.port = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The WebSocket endpoint. */
  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  get pid() {
    return this.child?.pid;
  }

  async start() {
    this.port = await freePort();
    this.logFile = join(this.logDir, `${this.name}.log`);
    if (this.directLog) {
      const fd = openSync(this.logFile, 'a');
      try {
        this.child = spawn(process.execPath, [...this.nodeArgs, MAIN], {
          cwd: ROOT,
          env: { ...this.env, PORT: String(this.port) },
          stdio: ['ignore', fd, fd],
        });
      } finally {
        closeSync(fd); // the child has its own copy
      }
    } else {
      const log = createWriteStream(this.logFile, { flags: 'a' });
      this.child = spawn(process.execPath, [...this.nodeArgs, MAIN], {
        cwd: ROOT,
        env: { ...this.env, PORT: String(this.port) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      this.child.stdout.pipe(log);
      this.child.stderr.pipe(log);
    }
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      const { exitCode: code, signalCode: signal } = this.child;
      if (code !== null || signal !== null) {
        throw new Error(
          `server ${this.name} exited during start-up (${JSON.stringify({ code, signal })}):\n${this.logTail()}`,
        );
      }
      try {
        const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.status === 200) return this;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    await this.stop();
    throw new Error(`server ${this.name} did not become healthy within 120 s:\n${this.logTail()}`);
  }

  /** Resident set size in kB, from /proc/<pid>/status (VmRSS), and the peak (VmHWM). */
  memory() {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
  }

  async stop() {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    await this.exited;
    clearTimeout(timer);
  }

  /** Bytes in the log file so far. */
  logBytes() {
    try {
      return statSync(this.logFile).size;
    } catch {
      return 0;
    }
  }

  logTail(lines = 30) {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}
