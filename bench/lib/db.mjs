/**
 * The benchmark's databases: a fresh PostgreSQL database per server on the server named by
 * BENCH_DATABASE_URL, or a fresh embedded PGlite directory under a temporary folder.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

export class Databases {
  /** @param {{ url?: string, tmpDir: string, stamp: string }} opts */
  constructor(opts) {
    this.adminUrl = opts.url;
    this.tmpDir = opts.tmpDir;
    this.stamp = opts.stamp;
    this.created = [];
  }

  get kind() {
    return this.adminUrl ? 'postgres' : 'pglite';
  }

  /** A new empty database; returns { name, url (DATABASE_URL for the server), kind }. */
  async create(label) {
    if (this.kind === 'pglite') {
      const dir = join(this.tmpDir, `pglite-${label}`);
      mkdirSync(dir, { recursive: true });
      return { label, kind: 'pglite', dir, url: `file:${dir}` };
    }
    const name = `gatehouse_bench_${this.stamp}_${label}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
    await this.admin((c) => c.query(`CREATE DATABASE "${name}"`));
    this.created.push(name);
    const url = new URL(this.adminUrl);
    url.pathname = `/${name}`;
    return { label, kind: 'postgres', name, url: url.toString() };
  }

  async admin(fn) {
    const client = new pg.Client({ connectionString: this.adminUrl });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  }

  async dropAll() {
    if (this.kind !== 'postgres') return;
    for (const name of this.created.splice(0)) {
      await this.admin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).catch((e) => {
        console.warn(`could not drop ${name}: ${e.message}`);
      });
    }
  }

  async serverVersion() {
    if (this.kind === 'pglite') {
      const { PGlite } = await import('@electric-sql/pglite');
      const db = new PGlite();
      const { rows } = await db.query('SELECT version() AS v');
      await db.close();
      return `PGlite (${rows[0].v.split(',')[0]})`;
    }
    return this.admin(async (c) => (await c.query('SELECT version() AS v')).rows[0].v.split(',')[0]);
  }
}

/**
 * Runs `fn(exec)` on a database: PostgreSQL through `pg` (the server may be running),
 * PGlite by opening its directory (the server owning it must be stopped).
 */
export async function withDatabase(db, fn) {
  if (db.kind === 'postgres') {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      return await fn(async (sql, params) => (await client.query(sql, params)).rows);
    } finally {
      await client.end();
    }
  }
  const { PGlite } = await import('@electric-sql/pglite');
  const lite = new PGlite(db.dir);
  try {
    return await fn(async (sql, params) =>
      params ? (await lite.query(sql, params)).rows : ((await lite.exec(sql)).at(-1)?.rows ?? []),
    );
  } finally {
    await lite.close();
  }
}

/**
 * Bulk seeding in SQL (INSERT … SELECT generate_series): `users` accounts with valid rows and
 * a dummy password hash (nobody logs in as them), `sessions` live sessions spread over them,
 * each with random 32-byte token hashes, already rotated once (so the previous-hash index is
 * as full as in a running system). Then VACUUM ANALYZE, as autovacuum would eventually do.
 */
export async function seed(exec, { users, sessions }) {
  const started = Date.now();
  // Bulk load as PostgreSQL's documentation advises ("Populating a Database"): the secondary
  // indexes and the foreign key of `sessions` are dropped, the rows inserted, then the very
  // same definitions (read from the catalog) are rebuilt in one pass each.
  const indexes = await exec(`
    SELECT indexname AS name, indexdef AS def FROM pg_indexes
    WHERE schemaname = current_schema() AND tablename = 'sessions'
      AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'sessions'::regclass)`);
  const foreignKeys = await exec(`
    SELECT conname AS name, pg_get_constraintdef(oid) AS def FROM pg_constraint
    WHERE conrelid = 'sessions'::regclass AND contype = 'f'`);
  await exec("SET maintenance_work_mem = '256MB'");
  for (const fk of foreignKeys) await exec(`ALTER TABLE sessions DROP CONSTRAINT "${fk.name}"`);
  for (const ix of indexes) await exec(`DROP INDEX "${ix.name}"`);
  await exec(`
    INSERT INTO users (id, username, username_key, password_hash, updated_at)
    SELECT md5('seed-user-' || g)::uuid, 'seed_' || g, 'seed_' || g,
           '$2b$12$' || repeat('.', 53), now()
    FROM generate_series(1, ${Number(users)}) AS g`);
  await exec(`
    INSERT INTO sessions (id, user_id, token_hash, previous_token_hash, rotated_at, created_at, last_used_at,
                          expires_at, absolute_expires_at, user_agent, ip)
    SELECT gen_random_uuid(),
           md5('seed-user-' || (1 + g % ${Number(users)}))::uuid,
           sha256(convert_to('seed-session-' || g || '-' || random(), 'UTF8')),
           sha256(convert_to('seed-previous-' || g || '-' || random(), 'UTF8')),
           now() - interval '1 hour', now() - interval '2 days', now() - interval '1 hour',
           now() + interval '14 days', now() + interval '28 days', 'seed', '127.0.0.1'
    FROM generate_series(1, ${Number(sessions)}) AS g`);
  for (const ix of indexes) await exec(ix.def);
  for (const fk of foreignKeys) await exec(`ALTER TABLE sessions ADD CONSTRAINT "${fk.name}" ${fk.def}`);
  await exec('VACUUM ANALYZE users');
  await exec('VACUUM ANALYZE sessions');
  return (Date.now() - started) / 1000;
}
