/**
 * Load generator, run as a child process of bench/run.mjs so that it never shares the
 * server's (or the orchestrator's) event loop. It receives { jobs } over IPC, runs them
 * at the same time (each after its own delay) and answers { results }.
 *
 * Job kinds:
 *  - autocannon: HTTP load; optional per-connection Authorization headers, or per-connection
 *    refresh-cookie chains (each connection stores the Set-Cookie of every response and
 *    presents it on its next request: autocannon keeps no cookies by itself).
 *  - probe: one keep-alive connection sending a request every `intervalMs` (never more than
 *    one in flight), timing each with hrtime: a latency probe that does not add load.
 */
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import { percentile } from './lib/stats.mjs';

async function runAutocannon(job) {
  const perConnection = job.perConnectionHeaders ?? null;
  const bodies = job.perConnectionBodies ?? null;
  const chains = job.refreshTokens ? [...job.refreshTokens] : null;
  let nextClient = 0;
  const setupClient = (client) => {
    const i = nextClient++;
    if (perConnection) client.setHeaders({ ...job.headers, ...perConnection[i % perConnection.length] });
    if (bodies) client.setHeadersAndBody(job.headers ?? {}, Buffer.from(bodies[i % bodies.length]));
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
        setupClient: perConnection || bodies || chains ? setupClient : undefined,
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

async function runJob(job) {
  if (job.delayMs) await sleep(job.delayMs);
  if (job.kind === 'probe') return runProbe(job);
  return runAutocannon(job);
}

process.once('message', ({ jobs }) => {
  Promise.all(jobs.map(runJob)).then(
    (results) => process.send({ results }, () => process.exit(0)),
    (error) => process.send({ error: String(error?.stack ?? error) }, () => process.exit(1)),
  );
});
