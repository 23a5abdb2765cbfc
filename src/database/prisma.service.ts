import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { isDatabaseUnavailable } from '../common/errors/database-errors.js';
import { StartupError } from '../common/errors/startup-error.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { PrismaClient } from '../generated/prisma/client.js';
import { applyMigrations, migrationState, type MigrationState } from './migrations/migrator.js';
import { engineErrorMessage } from './migrations/schema-engine.js';
import { openDatabase, withTimeout, type OpenedDatabase, type PoolUsage } from './open-database.js';

export { DatabaseTimeoutError } from './open-database.js';

/**
 * The Prisma client on the configured database: embedded PGlite (in a directory or in
 * memory) or PostgreSQL through `pg`. Pending migrations are applied at start-up on the
 * embedded database always, and on PostgreSQL when MIGRATE_ON_START=true; otherwise start-up
 * checks that PostgreSQL holds exactly this version's migrations.
 */
@Injectable()
export class PrismaService extends PrismaClient implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Database');
  private readonly database: OpenedDatabase;
  private readonly migrateOnStart: boolean;
  private readonly timeoutMs: number;

  constructor(@InjectConfig() config: AppConfig) {
    const database = openDatabase(config.database, {
      connectTimeoutMs: config.DATABASE_TIMEOUT_MS,
      dataDir: config.DATA_DIR,
    });
    super({ adapter: database.factory, transactionOptions: { maxWait: config.DATABASE_TIMEOUT_MS, timeout: 10_000 } });
    this.database = database;
    this.migrateOnStart = config.database.kind === 'pglite' || config.MIGRATE_ON_START;
    this.timeoutMs = config.DATABASE_TIMEOUT_MS;
  }

  async onModuleInit(): Promise<void> {
    if (this.migrateOnStart) {
      const applied = await applyMigrations(this.database.factory);
      if (applied.length > 0) this.logger.log(`applied migrations: ${applied.join(', ')}`);
    } else {
      await this.checkMigrations();
    }
    await this.$connect();
    this.logger.log(`connected to ${this.database.describe()}`);
  }

  /**
   * Without MIGRATE_ON_START, refuses to start on a database that lacks this version's
   * migrations (its queries would fail on missing tables) or holds a newer version's. When the
   * check itself cannot run (the database is unreachable, say), the server starts as before and
   * /health reports the database.
   */
  private async checkMigrations(): Promise<void> {
    let state: MigrationState;
    try {
      state = await withTimeout(migrationState(this.database.factory), this.timeoutMs);
    } catch (error) {
      const reason = isDatabaseUnavailable(error) ? 'it is unreachable' : engineErrorMessage(error);
      this.logger.warn(`could not check the migrations of ${this.database.describe()}: ${reason}`);
      return;
    }
    const problem = migrationProblem(state, this.database.describe());
    if (problem) throw new StartupError(problem);
  }

  ping(timeoutMs: number): Promise<void> {
    return this.database.ping(timeoutMs);
  }

  /** The PostgreSQL pool's connections right now (for the metrics); null on the embedded database. */
  poolUsage(): PoolUsage | null {
    return this.database.poolUsage?.() ?? null;
  }

  /** PostgreSQL only: the pool the adapter queries through (see OpenedDatabase.pgPool); null on PGlite. */
  pgPool(): OpenedDatabase['pgPool'] | null {
    return this.database.pgPool ?? null;
  }

  async onApplicationShutdown(): Promise<void> {
    await this.$disconnect().catch(() => undefined);
    await this.database.close();
  }
}

/** One line saying what is wrong with the database's migrations and what to do, if anything. */
export function migrationProblem({ pending, unknown }: MigrationState, where: string): string | undefined {
  if (unknown.length > 0) {
    return (
      `${where} was migrated by a newer version of Gatehouse (unknown migration${unknown.length > 1 ? 's' : ''} ` +
      `${unknown.join(', ')}): upgrade Gatehouse to a version that has ${unknown.length > 1 ? 'them' : 'it'}`
    );
  }
  if (pending.length > 0) {
    const list =
      pending.length > 3 ? `${pending.slice(0, 3).join(', ')} and ${pending.length - 3} more` : pending.join(', ');
    return (
      `${where} has ${pending.length} pending migration${pending.length > 1 ? 's' : ''} (${list}): ` +
      'apply them with `npm run db:migrate`, or start with MIGRATE_ON_START=true'
    );
  }
  return undefined;
}
