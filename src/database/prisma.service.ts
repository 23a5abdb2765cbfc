import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import type { SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import pg from 'pg';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { ensurePrivateDir } from '../config/private-dir.js';
import { PrismaClient } from '../generated/prisma/client.js';
import { applyMigrations } from './migrations/migrator.js';

interface Connection {
  adapter: SqlMigrationAwareDriverAdapterFactory;
  /** Checks that the database answers, failing within `timeoutMs`. */
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
  migrateOnStart: boolean;
  describe: string;
}

/**
 * The Prisma client on the configured database: embedded PGlite (in a directory or in
 * memory) or PostgreSQL through `pg`. Pending migrations are applied at start-up on the
 * embedded database always, and on PostgreSQL when MIGRATE_ON_START=true.
 */
@Injectable()
export class PrismaService extends PrismaClient implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Database');
  private readonly connection: Connection;

  constructor(@InjectConfig() config: AppConfig) {
    const connection = openConnection(config);
    super({ adapter: connection.adapter, transactionOptions: { maxWait: config.DATABASE_TIMEOUT_MS, timeout: 10_000 } });
    this.connection = connection;
  }

  get kind(): 'pglite' | 'postgres' {
    return this.connection.describe.startsWith('PostgreSQL') ? 'postgres' : 'pglite';
  }

  async onModuleInit(): Promise<void> {
    if (this.connection.migrateOnStart) {
      const applied = await applyMigrations(this.connection.adapter);
      if (applied.length > 0) this.logger.log(`applied migrations: ${applied.join(', ')}`);
    }
    await this.$connect();
    this.logger.log(`connected to ${this.connection.describe}`);
  }

  ping(timeoutMs: number): Promise<void> {
    return this.connection.ping(timeoutMs);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.$disconnect().catch(() => undefined);
    await this.connection.close();
  }
}

function openConnection(config: AppConfig): Connection {
  const target = config.database;
  if (target.kind === 'pglite') {
    if (target.dataDir) ensurePrivateDir(target.dataDir, config.DATA_DIR);
    const db = new PGlite(target.dataDir);
    return {
      adapter: new PrismaPGlite(db),
      ping: async (timeoutMs) => {
        await withTimeout(db.query('SELECT 1'), timeoutMs);
      },
      close: async () => {
        if (!db.closed) await db.close();
      },
      migrateOnStart: true,
      describe: target.dataDir ? `embedded PGlite in ${target.dataDir}` : 'in-memory PGlite',
    };
  }
  const pool = new pg.Pool({
    connectionString: target.url,
    max: 10,
    // Fail fast while the server is unreachable instead of queueing requests behind it.
    connectionTimeoutMillis: config.DATABASE_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
  });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', (err) => new Logger('Database').warn(`idle connection lost: ${err.message}`));
  const url = new URL(target.url);
  return {
    adapter: new PrismaPg(pool),
    ping: async (timeoutMs) => {
      await withTimeout(pool.query('SELECT 1'), timeoutMs);
    },
    close: async () => {
      await pool.end().catch(() => undefined);
    },
    migrateOnStart: config.MIGRATE_ON_START,
    describe: `PostgreSQL at ${url.hostname}:${url.port || 5432}${url.pathname}`,
  };
}

export class DatabaseTimeoutError extends Error {
  readonly code = 'P1001';
  constructor(ms: number) {
    super(`database timeout after ${ms} ms`);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DatabaseTimeoutError(ms)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
