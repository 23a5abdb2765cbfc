/**
 * Baseline for `refresh`: the rotation statement of SessionsRepository.rotate() (one
 * conditional statement), run directly with `pg` at the same concurrency on the same
 * database: `concurrency` sessions of its own, each rotated in a loop, the new hash fed to the
 * next iteration. This is the database's ceiling for the refresh path.
 *
 * The statement is not copied here: the compiled repository (dist/) is instantiated with
 * stand-ins for what Nest injects into it on PostgreSQL, so the baseline always runs exactly
 * what the application runs: `rotate()` goes through queryPrepared
 * (src/database/prepared-statements.ts), which finds a pg pool (PrismaService.pgPool) and no
 * ambient transaction, and so runs the statement as the application's named prepared
 * statement, parsed and planned once per connection. (Until 2026-12-07 the stand-in had no
 * pool: the statement was parsed and planned on every call, which the application does not
 * do, and the baseline made about half the rotations per second; docs/performance.md.)
 */
import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { backendCpu, backendDelta } from './lib/cpu.mjs';
import { percentile } from './lib/stats.mjs';

const APP = `gatehouse-bench-rotate-${process.pid}`;
const { SessionsRepository } = await import(new URL('../dist/sessions/sessions.repository.js', import.meta.url).href);

/**
 * The repository's two injections as they are on PostgreSQL outside a transaction: the
 * transaction host (its `tx`, Prisma's $queryRaw as plain pg, serves only queryPrepared's
 * fallback, when a connection refuses the prepared statement) and PrismaService's pool.
 */
function injections(pool) {
  const txHost = {
    isTransactionActive: () => false,
    tx: { $queryRaw: async (sql) => (await pool.query(sql.text, sql.values)).rows },
  };
  return [txHost, { pgPool: () => pool }];
}

async function measure({ url, userId, concurrency, duration, warmup }) {
  const pool = new pg.Pool({ connectionString: url, max: concurrency, application_name: APP });
  const repo = new SessionsRepository(...injections(pool));
  try {
    const hashes = [];
    for (let i = 0; i < concurrency; i++) {
      const hash = randomBytes(32);
      await pool.query(
        `INSERT INTO sessions (id, user_id, token_hash, expires_at, absolute_expires_at, user_agent, ip)
         VALUES ($1, $2, $3, now() + interval '14 days', now() + interval '28 days', 'rotate-baseline', '127.0.0.1')`,
        [randomUUID(), userId, hash],
      );
      hashes.push(hash);
    }
    let counting = false;
    const stop = new AbortController(); // the loops run until the measurement is over
    const latencies = [];
    const loop = async (slot) => {
      while (!stop.signal.aborted) {
        const now = new Date();
        const next = randomBytes(32);
        const start = performance.now();
        const rotated = await repo.rotate({
          tokenHash: hashes[slot],
          newTokenHash: next,
          successorSealed: randomBytes(71), // 12-byte IV + 16-byte tag + 43-byte token, as sealSuccessor
          now,
          idleExpiresAt: new Date(now.getTime() + 14 * 86400_000),
          userAgent: null,
          ip: '127.0.0.1',
        });
        if (!rotated)
          throw new Error('rotation matched no session: the baseline lost its chain (did rotate() change?)');
        hashes[slot] = next;
        if (counting) latencies.push(performance.now() - start);
      }
    };
    const loops = Array.from({ length: concurrency }, (_, i) => loop(i));
    await new Promise((r) => setTimeout(r, warmup * 1000));
    const backends = { sql: 'application_name = $1', params: [APP] };
    const db0 = await backendCpu(url, backends);
    const own0 = process.cpuUsage();
    counting = true;
    const started = performance.now();
    await new Promise((r) => setTimeout(r, duration * 1000));
    counting = false;
    const elapsed = (performance.now() - started) / 1000;
    const own = process.cpuUsage(own0);
    const db1 = await backendCpu(url, backends);
    const n = latencies.length;
    const cpu = n
      ? { serverUsPerRequest: (own.user + own.system) / n, dbUsPerRequest: (backendDelta(db0, db1) * 1000) / n }
      : undefined;
    stop.abort();
    await Promise.all(loops);
    return {
      rps: latencies.length / elapsed,
      ok: latencies.length,
      durationS: elapsed,
      cpu,
      latencyMs: { p50: percentile(latencies, 50), p90: percentile(latencies, 90), p99: percentile(latencies, 99) },
    };
  } finally {
    await pool.end().catch(() => undefined);
  }
}

process.once('message', (message) => {
  measure(message).then(
    (result) => process.send(result, () => process.exit(0)),
    (error) => process.send({ error: String(error?.stack ?? error) }, () => process.exit(1)),
  );
});
