// A PostgreSQL server of its own for the reliability scenarios: initdb + pg_ctl from the
// Debian packages into a temporary directory, on a free loopback port, with trust auth and
// its Unix socket in that directory. The machine's shared server (if any) is never touched.
// As root, the binaries run as the `postgres` user (PostgreSQL refuses to run as root).
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './net.js';

const run = promisify(execFile);

function binDir(): string {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root))
    throw new Error('PostgreSQL binaries not found in /usr/lib/postgresql (apt-get install postgresql)');
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error('no pg_ctl under /usr/lib/postgresql/*/bin');
  return join(root, versions[0]!, 'bin');
}

const isRoot = process.getuid?.() === 0;

function pgUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root but there is no "postgres" user to run PostgreSQL as');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** Runs a PostgreSQL binary (as `postgres` when we are root). */
async function pgBin(name: string, args: string[], timeoutMs = 60_000): Promise<{ stdout: string; stderr: string }> {
  const bin = join(binDir(), name);
  const [cmd, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  return run(cmd, argv, {
    timeout: timeoutMs,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' },
  });
}

export class PgCluster {
  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  /** postgres://postgres@127.0.0.1:<port>/<db> */
  url(database = 'postgres'): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** initdb into a fresh temporary directory, then start. */
  static async create(label: string): Promise<PgCluster> {
    const dir = mkdtempSync(join(tmpdir(), `gatehouse-rel-pg-${label}-`));
    if (isRoot) {
      const { uid, gid } = pgUser();
      chownSync(dir, uid, gid);
    }
    const cluster = new PgCluster(dir, await freePort());
    try {
      await pgBin(
        'initdb',
        ['-D', cluster.dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync', '--no-instructions'],
        120_000,
      );
      await cluster.start();
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  async start(): Promise<void> {
    const options = [
      `-p ${this.port}`,
      '-c listen_addresses=127.0.0.1',
      `-c unix_socket_directories=${this.dir}`,
      '-c max_connections=200',
      '-c shared_buffers=32MB',
      // Durability is what the outage scenario checks; a fast shutdown checkpoints anyway.
      '-c fsync=on',
    ].join(' ');
    await pgBin(
      'pg_ctl',
      ['-D', this.dataDir, '-l', join(this.dir, 'server.log'), '-o', options, '-w', '-t', '60', 'start'],
      90_000,
    );
  }

  /** `pg_ctl stop -m fast`: connections are cut, in-flight transactions roll back. */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await pgBin('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', '-t', '60', 'stop'], 90_000);
  }

  async createDatabase(name: string): Promise<string> {
    await this.query(`CREATE DATABASE ${name}`);
    return this.url(name);
  }

  /** One statement on the given database, on a short-lived connection. */
  async query<T extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params: unknown[] = [],
    database = 'postgres',
  ): Promise<T[]> {
    const client = new pg.Client({ connectionString: this.url(database), connectionTimeoutMillis: 5_000 });
    await client.connect();
    try {
      return (await client.query<T>(sql, params)).rows;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** Stops the server (immediately) and removes its directory. */
  async destroy(): Promise<void> {
    try {
      await this.stop('immediate');
    } catch {
      // already stopped
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
