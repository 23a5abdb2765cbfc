/**
 * CPU time actually consumed, read from /proc (Linux): by the server process (its event loop,
 * the libuv thread pool, GC threads: every thread) and by the PostgreSQL backends serving a
 * database. Divided by the requests served, it is the cost per request, which, unlike
 * requests per second, hardly depends on how busy the rest of the machine is.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import pg from 'pg';

const TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** utime + stime of a process in milliseconds, or null when it is gone (or not Linux). */
export function cpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS;
  } catch {
    return null;
  }
}

/** pid → CPU ms of the backends connected to database `name` (other than the asking one). */
export async function backendCpu(url, where) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(
      `SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND ${where.sql}`,
      where.params,
    );
    return new Map(rows.map((r) => [r.pid, cpuMs(r.pid)]).filter(([, ms]) => ms !== null));
  } finally {
    await client.end();
  }
}

/** CPU used between two backendCpu() snapshots (backends that appeared count from zero). */
export function backendDelta(before, after) {
  let ms = 0;
  for (const [pid, end] of after) ms += end - (before.get(pid) ?? 0);
  return ms;
}
