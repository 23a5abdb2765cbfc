// Database CLI:
//   node dist/cli/db.js migrate        apply pending migrations to DATABASE_URL
//   node dist/cli/db.js create <name>  write the next migration from prisma/schema.prisma
// The environment is read exactly as the server reads it (loadConfig: the same variables, the same
// validation, the same database target), and the database is opened as the server opens it.
import { relative } from 'node:path';
import { ConfigError, loadConfig } from '../config/config.schema.js';
import { applyMigrations, createMigration, MigrationError } from '../database/migrations/migrator.js';
import { openDatabase } from '../database/open-database.js';

const USAGE = 'usage: db.js migrate | db.js create <name>';

/** Connecting may take longer here than a request may wait in the server. */
const CLI_CONNECT_TIMEOUT_MS = 10_000;

async function main([command, ...args]: string[]): Promise<void> {
  if (command === 'migrate' && args.length === 0) {
    const config = loadConfig();
    const database = openDatabase(config.database, {
      connectTimeoutMs: Math.max(config.DATABASE_TIMEOUT_MS, CLI_CONNECT_TIMEOUT_MS),
      dataDir: config.DATA_DIR,
    });
    try {
      const applied = await applyMigrations(database.factory);
      if (applied.length === 0) console.log(`${database.describe()} is up to date`);
      else console.log(`applied to ${database.describe()}:\n${applied.map((name) => `  ${name}`).join('\n')}`);
    } finally {
      await database.close();
    }
  } else if (command === 'create' && args.length === 1) {
    const dir = await createMigration(args[0]!);
    console.log(dir ? `created ${relative(process.cwd(), dir)}/migration.sql` : 'no schema changes: nothing to create');
  } else {
    throw new MigrationError(USAGE);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  // Expected failures are told in their own words, without a stack.
  if (error instanceof ConfigError) console.error(error.message);
  else if (error instanceof MigrationError) console.error(`error: ${error.message}`);
  else console.error(error);
  process.exitCode = 1;
});
