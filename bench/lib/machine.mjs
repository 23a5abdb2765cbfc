/** What the figures were measured on. */
import { readFileSync } from 'node:fs';
import os from 'node:os';

export async function machineInfo(dbs) {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpu;
  } catch {
    // not Linux
  }
  let database;
  try {
    database = await dbs.serverVersion();
  } catch (error) {
    database = `${dbs.kind} (version unknown: ${error.message})`;
  }
  return {
    cpu: cpu.trim(),
    cores: os.availableParallelism?.() ?? os.cpus().length,
    memoryGb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    uvThreadpoolSize: Number(process.env.UV_THREADPOOL_SIZE ?? 4),
    database,
    databaseKind: dbs.kind,
  };
}
