/**
 * Load generator, run as a child process of bench/run.mjs so that it never shares the
 * server's (or the orchestrator's) event loop. It receives { jobs } over IPC, runs them
 * at the same time (each after its own delay) and answers { results }.
 *
 * Job kinds:
 *  - autocannon: HTTP load; optional per-connection Authorization headers, per-request
 *    headers taken in turn from a list (`rotatingHeaders`), or per-connection
 *    refresh-cookie chains (each connection stores the Set-Cookie of every response and
 *    presents it on its next request: autocannon keeps no cookies by itself).
 *  - probe: one keep-alive connection sending a request every `intervalMs` (never more than
 *    one in flight), timing each with hrtime: a latency probe that does not add load.
 *  - wsFanout: `sockets` WebSockets of one user authenticate, then `connections` workers
 *    create resources as that user (POST /resources, each with a unique title, keep-alive)
 *    for `duration` s; every socket must receive each `resource.created`: creates per
 *    second, and the delivery latency (request sent → event on a socket). With `sockets: 0`,
 *    the same creates with nobody listening (the baseline).
 *  - wsConnect: `connections` workers each open a WebSocket, send `auth` with their own
 *    token and wait for `auth.ok`, then close it, in a loop: authenticated connections per
 *    second. `httpFresh`: the same workers send GET `path` with their token, each on a new
 *    connection (Connection: close), in a loop (the baseline).
 *  - bodies: `connections` keep-alive workers POST a list of pre-made JSON bodies, each once
 *    (single-use requests such as MFA challenges) or, with `cycle`, round and round.
 */
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import { WebSocket } from 'ws';
import { percentile } from './lib/stats.mjs';

async function runAutocannon(job) {
  const perConnection = job.perConnectionHeaders ?? null;
  const bodies = job.perConnectionBodies ?? null;
  const chains = job.refreshTokens ? [...job.refreshTokens] : null;
  // rotatingHeaders: the requests take the header sets of the list in turn (guard_cold: more
  // distinct tokens than the server's verified-token cache holds). Connection i of n sends sets
  // rotateFrom + i, + i + n, + i + 2n, … (modulo the list's length, which n must divide), each
  // request built once before the load (a request built again for every send, through
  // autocannon's setupRequest, cost the generator about 20 µs more CPU per request than the
  // fixed request of a baseline, on cores it shares with the server). With the connections at
  // even rates, a set comes back after about the list's length of requests, as in one global
  // turn; `rotationSpread` (the fewest requests of a connection over the most) says how even
  // they were. A caller that passes on `rotatedTo` as the next load's `rotateFrom` continues the
  // turn past every set the load sent, so that a load never starts with the sets that the one
  // before it has just put in that cache.
  const rotating = job.rotatingHeaders ?? null;
  const rotateFrom = job.rotateFrom ?? 0;
  if (rotating && rotating.length % job.connections !== 0)
    throw new Error(`rotatingHeaders: ${rotating.length} sets do not divide among ${job.connections} connections`);
  const clients = [];
  let nextClient = 0;
  const setupClient = (client) => {
    const i = nextClient++;
    clients.push(client);
    if (rotating) {
      const turn = rotating.length / job.connections;
      client.setRequests(
        Array.from({ length: turn }, (_, k) => ({
          headers: { ...job.headers, ...rotating[(rotateFrom + i + k * job.connections) % rotating.length] },
        })),
      );
    }
    if (perConnection) client.setHeaders({ ...job.headers, ...perConnection[i % perConnection.length] });
    // setHeadersAndBody replaces the headers: a connection's own ones go with its body.
    if (bodies)
      client.setHeadersAndBody(
        { ...job.headers, ...perConnection?.[i % perConnection.length] },
        Buffer.from(bodies[i % bodies.length]),
      );
    if (chains) {
      const slot = i % chains.length;
      client.setHeaders({ ...job.headers, cookie: `refresh_token=${chains[slot]}` });
      client.on('headers', (info) => {
        if (!info || info.statusCode !== 200 || !Array.isArray(info.headers)) return;
        for (let h = 0; h < info.headers.length; h += 2) {
          if (info.headers[h].toLowerCase() !== 'set-cookie') continue;
          const token = /refresh_token=([^;]*)/.exec(info.headers[h + 1])?.[1];
          if (token) {
            chains[slot] = token;
            client.setHeaders({ ...job.headers, cookie: `refresh_token=${token}` });
          }
        }
      });
    }
  };
  // Throughput and latency are counted over the measured window only: responses in the
  // first `skipS` seconds (connections opening, the pipeline filling) are left out.
  const latencies = [];
  let measuredFrom = Infinity;
  let ok = 0;
  let other = 0;
  const result = await new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: job.url + job.path,
        method: job.method ?? 'GET',
        headers: job.headers ?? {},
        body: job.body,
        connections: job.connections,
        duration: job.duration,
        pipelining: 1,
        timeout: 30,
        setupClient: perConnection || bodies || chains || rotating ? setupClient : undefined,
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    instance.once('start', () => (measuredFrom = performance.now() + (job.skipS ?? 0) * 1000));
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (performance.now() < measuredFrom) return;
      if (statusCode >= 200 && statusCode < 300) {
        ok++;
        latencies.push(responseTime);
      } else other++;
    });
  });
  const measuredS = result.duration - (job.skipS ?? 0);
  return {
    rps: ok / measuredS,
    ok,
    non2xxMeasured: other,
    total: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    durationS: result.duration,
    measuredS,
    latencyMs: {
      mean: latencies.length ? latencies.reduce((a, b) => a + b, 0) / latencies.length : null,
      p50: percentile(latencies, 50),
      p90: percentile(latencies, 90),
      p99: percentile(latencies, 99),
      max: latencies.length ? latencies.reduce((a, b) => (b > a ? b : a), -Infinity) : null,
    },
    statusCodes: result.statusCodeStats,
    refreshTokens: chains ?? undefined,
    ...(rotating ? rotation(clients, job.connections, rotateFrom, rotating.length) : {}),
  };
}

/**
 * Where the next load's turn starts (past the furthest any connection got: none of them sends
 * again a set it has just sent), and the fewest requests of a connection over the most.
 */
function rotation(clients, connections, rotateFrom, length) {
  const made = clients.map((c) => c.reqsMade);
  const most = Math.max(...made);
  return {
    rotatedTo: (rotateFrom + most * connections) % length,
    rotationSpread: most > 0 ? Math.min(...made) / most : null,
  };
}

async function runProbe(job) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const url = new URL(job.url + job.path);
  const once = () =>
    new Promise((resolve) => {
      const start = process.hrtime.bigint();
      const req = http.get(
        { agent, hostname: url.hostname, port: url.port, path: url.pathname, headers: job.headers ?? {} },
        (res) => {
          res.resume();
          res.on('end', () =>
            resolve({ ok: res.statusCode === 200, ms: Number(process.hrtime.bigint() - start) / 1e6 }),
          );
        },
      );
      req.on('error', () => resolve({ ok: false, ms: Number(process.hrtime.bigint() - start) / 1e6 }));
    });
  const samples = [];
  let errors = 0;
  const end = Date.now() + job.duration * 1000;
  let next = performance.now();
  while (Date.now() < end) {
    const r = await once();
    if (r.ok) samples.push(r.ms);
    else errors++;
    next += job.intervalMs;
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait);
    else next = performance.now(); // fell behind (a slow response): do not burst to catch up
  }
  agent.destroy();
  return {
    count: samples.length,
    errors,
    latencyMs: {
      p50: percentile(samples, 50),
      p90: percentile(samples, 90),
      p99: percentile(samples, 99),
      max: samples.length ? samples.reduce((a, b) => (b > a ? b : a), -Infinity) : null,
    },
  };
}

const latencySummary = (samples) => ({
  p50: percentile(samples, 50),
  p90: percentile(samples, 90),
  p99: percentile(samples, 99),
  max: samples.length ? samples.reduce((a, b) => (b > a ? b : a), -Infinity) : null,
});

/** One HTTP request with a JSON body (or none); resolves with the status and the parsed body. */
function request(agent, url, { method = 'GET', headers = {}, json, raw } = {}) {
  return new Promise((resolve) => {
    const body = raw ?? (json === undefined ? undefined : Buffer.from(JSON.stringify(json)));
    const req = http.request(
      url,
      {
        agent,
        method,
        headers: body ? { ...headers, 'content-type': 'application/json', 'content-length': body.length } : headers,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', () => resolve({ status: 0, text: '' }));
      },
    );
    req.on('error', () => resolve({ status: 0, text: '' }));
    req.end(body);
  });
}

/** Opens a WebSocket and authenticates it: resolves with the socket once `auth.ok` came (rejects otherwise). */
function openAuthenticated(wsUrl, token, onMessage) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
    let authed = false;
    ws.on('open', () => ws.send(JSON.stringify({ event: 'auth', data: { token } })));
    ws.on('message', (data) => {
      const frame = JSON.parse((Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)).toString('utf8'));
      if (!authed && frame.event === 'auth.ok') {
        authed = true;
        resolve(ws);
        return;
      }
      onMessage?.(frame);
    });
    ws.on('close', (code, reason) => {
      if (!authed) reject(new Error(`closed ${code} ${reason.toString()} before auth.ok`));
    });
    ws.on('error', (e) => {
      if (!authed) reject(e);
    });
  });
}

async function runWsFanout(job) {
  const sent = new Map(); // title → { at, measured, delivered }
  const deliveries = [];
  let stray = 0;
  const sockets = await Promise.all(
    Array.from({ length: job.sockets }, () =>
      openAuthenticated(job.wsUrl, job.token, (frame) => {
        if (frame.event !== 'resource.created') return;
        const s = sent.get(frame.data?.title);
        if (!s) {
          stray++;
          return;
        }
        s.delivered += 1;
        if (s.measured) deliveries.push(performance.now() - s.at);
      }),
    ),
  );
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.connections });
  const url = `${job.url}/resources`;
  const headers = { authorization: `Bearer ${job.token}` };
  const latencies = [];
  let ok = 0;
  let other = 0;
  let total = 0;
  let seq = 0;
  const start = performance.now();
  const measuredFrom = start + (job.skipS ?? 0) * 1000;
  const end = start + job.duration * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      const title = `fanout ${process.pid} ${seq++}`;
      const at = performance.now();
      const entry = { at, measured: at >= measuredFrom, delivered: 0, created: false };
      sent.set(title, entry);
      const res = await request(agent, url, { method: 'POST', headers, json: { title } });
      entry.created = res.status === 201;
      total++;
      if (performance.now() < measuredFrom) continue;
      if (res.status === 201) {
        ok++;
        latencies.push(performance.now() - at);
      } else other++;
    }
  };
  await Promise.all(Array.from({ length: job.connections }, worker));
  const durationS = (performance.now() - start) / 1000;
  const measuredS = durationS - (job.skipS ?? 0);
  // The last events: every measured create must reach every socket (a generous wait).
  const measured = [...sent.values()].filter((s) => s.measured && s.created);
  const expected = measured.length * job.sockets;
  const got = () => measured.reduce((n, s) => n + Math.min(s.delivered, job.sockets), 0);
  const waitUntil = performance.now() + 5_000;
  while (job.sockets > 0 && got() < expected && performance.now() < waitUntil) await sleep(20);
  const delivered = got();
  for (const ws of sockets) ws.close();
  agent.destroy();
  return {
    rps: ok / measuredS,
    ok,
    non2xxMeasured: other,
    total,
    errors: 0,
    timeouts: 0,
    durationS,
    measuredS,
    latencyMs: latencySummary(latencies),
    delivery: {
      sockets: job.sockets,
      expected,
      delivered,
      missing: expected - delivered,
      // More than once to one socket, or an event of a create not made here.
      duplicates: measured.reduce((n, s) => n + Math.max(0, s.delivered - job.sockets), 0),
      stray,
      eventsPerS: deliveries.length / measuredS,
      latencyMs: latencySummary(deliveries),
    },
  };
}

async function runWsConnect(job) {
  const latencies = [];
  let ok = 0;
  let failed = 0;
  let total = 0;
  const failures = new Map();
  const start = performance.now();
  const measuredFrom = start + (job.skipS ?? 0) * 1000;
  const end = start + job.duration * 1000;
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const once = async (token) => {
    if (job.kind === 'httpFresh') {
      const res = await request(agent, job.url + job.path, { headers: { authorization: `Bearer ${token}` } });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      return;
    }
    const ws = await openAuthenticated(job.wsUrl, token);
    ws.close(1000);
  };
  const worker = async (i) => {
    const token = job.tokens[i % job.tokens.length];
    while (performance.now() < end) {
      const at = performance.now();
      try {
        await once(token);
        total++;
        if (at < measuredFrom) continue;
        ok++;
        latencies.push(performance.now() - at);
      } catch (error) {
        total++;
        if (at < measuredFrom) continue;
        failed++;
        const key = String(error?.message ?? error).slice(0, 80);
        failures.set(key, (failures.get(key) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: job.connections }, (_, i) => worker(i)));
  const durationS = (performance.now() - start) / 1000;
  const measuredS = durationS - (job.skipS ?? 0);
  agent.destroy();
  return {
    rps: ok / measuredS,
    ok,
    non2xxMeasured: failed,
    total,
    errors: 0,
    timeouts: 0,
    durationS,
    measuredS,
    latencyMs: latencySummary(latencies),
    ...(failures.size ? { failures: Object.fromEntries(failures) } : {}),
  };
}

/**
 * `bodies`: `connections` keep-alive workers POST pre-made JSON bodies to `path`, taking the
 * next one from the list each time: every body once, until the list or `duration` runs out
 * (single-use requests: MFA challenges), or round and round with `cycle`. The rate is the
 * measured responses over the measured window, which ends at the last measured response when
 * the list runs out first; `sent` says how many bodies went out (the rest are unused).
 */
async function runBodies(job) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.connections });
  const url = job.url + job.path;
  const headers = job.headers ?? {};
  const bodies = job.bodies.map((b) => Buffer.from(typeof b === 'string' ? b : JSON.stringify(b)));
  const latencies = [];
  const failures = new Map();
  let next = 0;
  let ok = 0;
  let other = 0;
  let total = 0;
  const start = performance.now();
  const measuredFrom = start + (job.skipS ?? 0) * 1000;
  const end = start + job.duration * 1000;
  let lastMeasured = measuredFrom;
  const worker = async () => {
    while (performance.now() < end && (job.cycle || next < bodies.length)) {
      const raw = bodies[next++ % bodies.length];
      const at = performance.now();
      const res = await request(agent, url, { method: 'POST', headers, raw });
      total++;
      if (at < measuredFrom) continue;
      lastMeasured = performance.now();
      if (res.status >= 200 && res.status < 300) {
        ok++;
        latencies.push(lastMeasured - at);
      } else {
        other++;
        const key = `${res.status} ${res.text.slice(0, 80)}`;
        failures.set(key, (failures.get(key) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: job.connections }, worker));
  const durationS = (performance.now() - start) / 1000;
  const measuredS = (lastMeasured - measuredFrom) / 1000;
  agent.destroy();
  return {
    rps: measuredS > 0 ? ok / measuredS : 0,
    ok,
    non2xxMeasured: other,
    total,
    sent: job.cycle ? next : Math.min(next, bodies.length),
    exhausted: !job.cycle && next >= bodies.length,
    errors: 0,
    timeouts: 0,
    durationS,
    measuredS,
    latencyMs: latencySummary(latencies),
    ...(failures.size ? { failures: Object.fromEntries(failures) } : {}),
  };
}

async function runJob(job) {
  if (job.delayMs) await sleep(job.delayMs);
  if (job.kind === 'probe') return runProbe(job);
  if (job.kind === 'wsFanout') return runWsFanout(job);
  if (job.kind === 'wsConnect' || job.kind === 'httpFresh') return runWsConnect(job);
  if (job.kind === 'bodies') return runBodies(job);
  return runAutocannon(job);
}

process.once('message', ({ jobs }) => {
  // The load generator's own CPU time while the jobs ran (every thread of this process): on a
  // machine whose cores the server, the database and the generator share, what the generator
  // spends per request is taken from the server too.
  const cpu0 = process.cpuUsage();
  Promise.all(jobs.map(runJob)).then(
    (results) => {
      const { user, system } = process.cpuUsage(cpu0);
      process.send({ results, clientCpuMs: (user + system) / 1000 }, () => process.exit(0));
    },
    (error) => process.send({ error: String(error?.stack ?? error) }, () => process.exit(1)),
  );
});
