/**
 * A holder of idle WebSockets for the ws_revoke benchmark, run as a child process of
 * bench/run.mjs (several of them: the sockets stay off the server's and the orchestrator's
 * event loops, and no single process holds more than a few thousand). It answers commands
 * over IPC, `{ id, cmd, ... }` → `{ id, result }` or `{ id, error }`:
 *
 *  - open { url, wsUrl, accounts: [{ username, token }], perAccount, batch }: opens and
 *    authenticates `perAccount` sockets for every account, `batch` handshakes at a time.
 *  - revoke { accounts: [local index], count, modes, password, pauseMs }: `count` times, one
 *    at a time, for the next account of the list (round robin) and the next mode of `modes`
 *    ('logout': POST /auth/logout, 'logout-all': POST /auth/logout-all, with the account's
 *    bearer token): the time from sending the request to the close (4410) of that account's
 *    last socket, all on this process's clock (hrtime). Then, untimed, the account signs in
 *    again and opens its sockets again, so that the number of open sockets stays the same
 *    for the next measurement.
 *  - shutdown: closes every socket and answers the accounts' current tokens (a revoked one
 *    was replaced by a fresh sign-in), then exits.
 */
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { openFilesLimit } from './lib/ws-revoke.mjs';

/** The close code of a revoked session (contract v2 §F). */
const SESSION_REVOKED = 4410;
/** A close later than this after the logout is counted as missing. */
const CLOSE_DEADLINE_MS = 5_000;

const now = () => Number(process.hrtime.bigint()) / 1e6;

let url;
let wsUrl;
let perAccount;
let batch;
/** [{ username, token, sockets: [{ ws, closed: Promise<{ code, at }> }] }] */
let accounts = [];
// One keep-alive connection for the logouts and sign-ins: no TCP handshake in the timing.
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function request(method, path, { token, json } = {}) {
  return new Promise((resolve) => {
    const body = json === undefined ? undefined : Buffer.from(JSON.stringify(json));
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body) Object.assign(headers, { 'content-type': 'application/json', 'content-length': body.length });
    const req = http.request(url + path, { agent, method, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8'), at: now() }));
      res.on('error', () => resolve({ status: 0, text: '', at: now() }));
    });
    req.on('error', (e) => resolve({ status: 0, text: e.message, at: now() }));
    req.end(body);
  });
}

/** One authenticated socket: resolves once `auth.ok` came; `closed` resolves with the close code and time. */
function openAuthenticated(token) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
    let authed = false;
    let onClose;
    const closed = new Promise((r) => (onClose = r));
    ws.on('open', () => ws.send(JSON.stringify({ event: 'auth', data: { token } })));
    ws.on('message', (data) => {
      if (authed) return; // idle: events (session.created …) are not looked at
      const frame = JSON.parse(Buffer.from(data).toString('utf8'));
      if (frame.event === 'auth.ok') {
        authed = true;
        resolve({ ws, closed });
      }
    });
    ws.on('close', (code, reason) => {
      onClose({ code, at: now() });
      if (!authed) reject(new Error(`closed ${code} ${reason.toString()} before auth.ok`));
    });
    ws.on('error', (e) => {
      if (!authed) reject(e);
    });
  });
}

async function openFor(account) {
  account.sockets = await Promise.all(Array.from({ length: perAccount }, () => openAuthenticated(account.token)));
}

/** Runs `fn` over `items`, `limit` at a time. */
async function pool(items, limit, fn) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const commands = {
  async open(msg) {
    ({ url, wsUrl, perAccount, batch } = msg);
    accounts = msg.accounts.map((a) => ({ ...a, sockets: [] }));
    const started = now();
    // `batch` sockets in flight at a time (an account's sockets open together).
    await pool(accounts, Math.max(1, Math.floor(batch / perAccount)), openFor);
    // (Node raises its soft limit to the hard one at start-up.)
    return { sockets: accounts.length * perAccount, ms: now() - started, openFiles: openFilesLimit() };
  },

  async revoke({ accounts: indices, count, modes, password, pauseMs }) {
    const samples = [];
    const failures = [];
    for (let j = 0; j < count; j++) {
      const account = accounts[indices[j % indices.length]];
      const mode = modes[j % modes.length];
      await sleep(pauseMs); // the previous account's close handshakes and re-open are over
      const t0 = now();
      const res = await request('POST', `/auth/${mode}`, { token: account.token });
      const closes = await Promise.all(
        account.sockets.map((s) => Promise.race([s.closed, sleep(CLOSE_DEADLINE_MS).then(() => null)])),
      );
      const missing = closes.filter((c) => c === null).length;
      const wrong = closes.filter((c) => c !== null && c.code !== SESSION_REVOKED).map((c) => c.code);
      if (res.status !== 204 || missing || wrong.length) {
        failures.push({ mode, status: res.status, body: res.text.slice(0, 200), missing, codes: wrong });
      } else {
        const at = closes.map((c) => c.at - t0);
        samples.push({
          mode,
          lastMs: Math.max(...at),
          firstMs: Math.min(...at),
          responseMs: res.at - t0,
        });
      }
      // Untimed: signed in again, the same number of sockets open again.
      for (const s of account.sockets) if (s.ws.readyState === WebSocket.OPEN) s.ws.terminate();
      const login = await request('POST', '/auth/login', { json: { username: account.username, password } });
      if (login.status !== 200) throw new Error(`login ${account.username} → ${login.status}: ${login.text}`);
      account.token = JSON.parse(login.text).accessToken;
      await openFor(account);
    }
    return { samples, failures };
  },

  async shutdown() {
    const all = accounts.flatMap((a) => a.sockets);
    for (const s of all) s.ws.close(1000);
    await Promise.race([Promise.all(all.map((s) => s.closed)), sleep(10_000)]);
    for (const s of all) s.ws.terminate();
    agent.destroy();
    return { tokens: accounts.map(({ username, token }) => ({ username, token })) };
  },
};

process.on('message', (msg) => {
  Promise.resolve()
    .then(() => commands[msg.cmd](msg))
    .then(
      (result) =>
        process.send({ id: msg.id, result }, () => {
          if (msg.cmd === 'shutdown') process.exit(0);
        }),
      (error) => process.send({ id: msg.id, error: String(error?.stack ?? error) }),
    );
});
process.on('disconnect', () => process.exit(0)); // the orchestrator is gone
