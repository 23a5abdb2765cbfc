/**
 * The orchestrator's side of ws_revoke: socket holders (bench/ws-revoke.mjs, one child
 * process each, driven by numbered commands over IPC) and the server's memory after a forced
 * garbage collection, read over the inspector protocol (the server runs with
 * NODE_OPTIONS=--inspect=127.0.0.1:0; its "Debugger listening on" line is in its log), as
 * test/reliability/websocket-scale.spec.ts does.
 */
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';

const SCRIPT = fileURLToPath(new URL('../ws-revoke.mjs', import.meta.url));

/** The open-files limit (RLIMIT_NOFILE) of a process: every socket is a descriptor on both ends. */
export function openFilesLimit(pid = 'self') {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const [soft, hard] = line?.match(/\d+|unlimited/g) ?? [];
  return { soft: soft === 'unlimited' ? Infinity : Number(soft), hard: hard === 'unlimited' ? Infinity : Number(hard) };
}

export class SocketHolder {
  constructor() {
    this.child = fork(SCRIPT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.nextId = 1;
    this.pending = new Map();
    this.exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.on('message', ({ id, result, error }) => {
      const p = this.pending.get(id);
      if (!p) return;
      this.pending.delete(id);
      if (error) p.reject(new Error(`ws-revoke.mjs: ${error}`));
      else p.resolve(result);
    });
    this.child.once('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`ws-revoke.mjs exited (${code ?? signal})`));
      this.pending.clear();
    });
  }

  get pid() {
    return this.child.pid;
  }

  /** Sends a command; resolves with its answer (rejects after `timeoutMs`). */
  call(cmd, args = {}, timeoutMs = 300_000) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`ws-revoke.mjs: ${cmd} did not answer within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.child.send({ id, cmd, ...args });
    });
  }

  /** Closes its sockets, answers the accounts' current tokens; the child exits. */
  async shutdown() {
    try {
      return await this.call('shutdown', {}, 30_000);
    } finally {
      await this.kill();
    }
  }

  /** Ends the child now (on an error path; after shutdown() it has exited already). */
  async kill() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * process.memoryUsage() of the server after two full garbage collections (and a short pause
 * between them, for the sweeper threads and the freed pages): rss, heapUsed, external and
 * arrayBuffers in bytes.
 */
export async function serverMemoryAfterGc(logFile) {
  const m = /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[\w-]+)/.exec(readFileSync(logFile, 'utf8'));
  if (!m) throw new Error('the server runs without --inspect: no "Debugger listening on" line in its log');
  const ws = new WebSocket(m[1], { perMessageDeflate: false });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let nextId = 1;
  const pending = new Map();
  ws.on('message', (data) => {
    const msg = JSON.parse(Buffer.from(data).toString('utf8'));
    if (msg.id !== undefined) pending.get(msg.id)?.(msg);
  });
  const send = (method, params = {}) =>
    new Promise((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  try {
    await send('HeapProfiler.collectGarbage');
    await sleep(500);
    await send('HeapProfiler.collectGarbage');
    await sleep(500);
    const r = await send('Runtime.evaluate', {
      expression: 'JSON.stringify(process.memoryUsage())',
      returnByValue: true,
    });
    const value = r.result?.result?.value;
    if (typeof value !== 'string') throw new Error(`inspector: no memory figures: ${JSON.stringify(r).slice(0, 300)}`);
    return JSON.parse(value);
  } finally {
    ws.close();
  }
}
