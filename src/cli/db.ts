// Database CLI:
//   node dist/cli/db.js migrate        apply pending migrations to DATABASE_URL
//   node dist/cli/db.js create <name>  write the next migration from prisma/schema.prisma
// DATABASE_URL is read as the server does: unset → PGlite in $DATA_DIR/pglite (default ./data),
// file:<dir> → PGlite persisted in <dir>, memory:// → in-memory PGlite, postgres(ql):// → PostgreSQL.
import { relative } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import type { SqlDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import { ensurePrivateDir } from '../config/private-dir.js';
import { applyMigrations, createMigration, MigrationError } from '../database/migrations/migrator.js';

const USAGE = 'usage: db.js migrate | db.js create <name>';

interface Target {
  factory: SqlDriverAdapterFactory;
  describe: string;
  close(): Promise<void>;
}

async function main([command, ...args]: string[]): Promise<void> {
  if (command === 'migrate' && args.length === 0) {
    const target = openTarget(process.env);
    try {
      const applied = await applyMigrations(target.factory);
      if (applied.length === 0) console.log(`${target.describe} is up to date`);
      else console.log(`applied to ${target.describe}:\n${applied.map((name) => `  ${name}`).join('\n')}`);
    } finally {
      await target.close();
    }
  } else if (command === 'create' && args.length === 1) {
    const dir = await createMigration(args[0]!);
    console.log(dir ? `created ${relative(process.cwd(), dir)}/migration.sql` : 'no schema changes: nothing to create');
  } else {
    throw new MigrationError(USAGE);
  }
}

function openTarget(env: NodeJS.ProcessEnv): Target {
  const url = env.DATABASE_URL?.trim() || undefined;
  const defaultDir = `${env.DATA_DIR || './data'}/pglite`;
  if (url === undefined || url.startsWith('file:')) return openPglite(url?.slice('file:'.length) || defaultDir);
  if (url.startsWith('memory://')) return openPglite(undefined);
  if (/^postgres(ql)?:\/\//.test(url)) {
    const { hostname, port, pathname } = new URL(url);
    return {
      // A time limit on connecting, so an unreachable server fails instead of hanging.
      factory: new PrismaPg({ connectionString: url, connectionTimeoutMillis: 10_000 }),
      describe: `PostgreSQL at ${hostname}:${port || 5432}${pathname}`,
      close: async () => undefined, // the migrator disposes the pools it opened
    };
  }
  throw new MigrationError('DATABASE_URL must start with file:, memory://, postgres:// or postgresql://');
}

function openPglite(dataDir: string | undefined): Target {
  if (dataDir) ensurePrivateDir(dataDir);
  const db = new PGlite(dataDir);
  return {
    factory: new PrismaPGlite(db),
    describe: dataDir ? `PGlite in ${dataDir}` : 'in-memory PGlite',
    close: () => db.close(),
  };
}

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(error instanceof MigrationError ? `error: ${error.message}` : error);
  process.exitCode = 1;
});
