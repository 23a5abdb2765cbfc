import type { PGlite } from '@electric-sql/pglite';
import { Logger } from '@nestjs/common';
import { PrismaPg } from '@prisma/adapter-pg';
import type { SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import pg from 'pg';
import type { DatabaseTarget } from '../config/config.schema.js';
import { ensurePrivateDir } from '../config/private-dir.js';
import { describeDatabase } from './describe-database.js';

export { describeDatabase };

export interface OpenDatabaseOptions {
  /** How long connecting to PostgreSQL may take before it fails (an unreachable server must not hang). */
  connectTimeoutMs: number;
  /** DATA_DIR: made private as well when the embedded database's directory lies inside it. */
  dataDir?: string;
}

/** One database, opened the same way by the server (PrismaService) and the CLI (db.js). */
export interface OpenedDatabase {
  readonly target: DatabaseTarget;
  /** Driver adapter factory for the Prisma client and the migrator. */
  readonly factory: SqlMigrationAwareDriverAdapterFactory;
  /** describeDatabase(target). */
  describe(): string;
  /** Checks that the database answers, failing within `timeoutMs`. */
  ping(timeoutMs: number): Promise<void>;
  /** Closes the pool or the embedded database (idempotent). */
  close(): Promise<void>;
  /** PostgreSQL only: the pool's connections right now (the metrics read it); absent on PGlite. */
  poolUsage?(): PoolUsage;
  /**
   * PostgreSQL only: the pool under the Prisma adapter, for the few hot statements that run
   * as prepared statements without Prisma (SessionsRepository.rotate); absent on PGlite.
   */
  readonly pgPool?: pg.Pool;
}

/** A PostgreSQL pool's connections: open ones (busy or idle), idle ones, and requests waiting for one. */
export interface PoolUsage {
  total: number;
  idle: number;
  waiting: number;
}

/**
 * Opens the configured database: embedded PGlite (in a directory, made private, or in memory)
 * or a PostgreSQL pool. Nothing connects yet for PostgreSQL: an unreachable server shows on first use.
 */
export function openDatabase(target: DatabaseTarget, options: OpenDatabaseOptions): OpenedDatabase {
  const describe = () => describeDatabase(target);
  if (target.kind === 'pglite') {
    if (target.dataDir) ensurePrivateDir(target.dataDir, options.dataDir);
    // PGlite and its adapter are loaded only here: a server on PostgreSQL never holds their
    // code (a few MB of heap and some start-up time). Loading starts at once; the factory
    // waits for it on its first connection.
    const opened = openPglite(target.dataDir, target.template);
    opened.catch(() => undefined); // reported by the first connect() or ping()
    return {
      target,
      factory: {
        provider: 'postgres',
        // What PrismaPGlite calls itself (isPglite() and the migrator read it before connecting).
        adapterName: PGLITE_ADAPTER_NAME,
        connect: async () => (await opened).factory.connect(),
        connectToShadowDb: async () => (await opened).factory.connectToShadowDb(),
      },
      describe,
      ping: async (timeoutMs) => {
        await withTimeout(
          opened.then(({ db }) => db.query('SELECT 1')),
          timeoutMs,
        );
      },
      close: async () => {
        // A database that failed to open has nothing to close.
        const db = await opened.then(
          (it) => it.db,
          () => undefined,
        );
        if (db !== undefined && !db.closed) await db.close();
      },
    };
  }
  // pg-pool (3.14) runs `onConnect` on each new connection and waits for its promise before
  // handing the connection out; a connection it fails on is closed, and the request that waited
  // for it fails. (@types/pg declares the hook as returning void, hence the type here.) Bounded
  // like connecting: a server that accepts the connection and then never answers must not keep
  // a place of the pool.
  const poolConfig: Omit<pg.PoolConfig, 'onConnect'> & { onConnect: (client: pg.ClientBase) => Promise<void> } = {
    connectionString: target.url,
    max: 10,
    // Fail fast while the server is unreachable instead of queueing requests behind it.
    connectionTimeoutMillis: options.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    onConnect: (client) => prepareConnection(client as NewConnection, options.connectTimeoutMs),
  };
  const pool = new pg.Pool(poolConfig as pg.PoolConfig);
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', (err) => new Logger('Database').warn(`idle connection lost: ${err.message}`));
  // Nor may a client that is checked out (held by a transaction between two statements)
  // when the server ends its connection (a restart, `pg_terminate_backend`): the pool only
  // listens for errors on idle clients, and an 'error' event nobody listens to ends the
  // process. The statement in flight fails (503); the pool drops the broken client when it
  // is released (it is no longer queryable).
  pool.on('connect', (client) => {
    client.on('error', (err) => new Logger('Database').warn(`connection lost: ${err.message}`));
  });
  let closed: Promise<void> | undefined;
  return {
    target,
    // An external pool: the adapters (and the migrator's) leave it open; close() ends it.
    factory: new PrismaPg(pool),
    describe,
    ping: async (timeoutMs) => {
      await withTimeout(pool.query('SELECT 1'), timeoutMs);
    },
    close: () => (closed ??= pool.end().catch(() => undefined)),
    poolUsage: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    pgPool: pool,
  };
}

/** The name pglite-prisma-adapter gives its adapters. */
export const PGLITE_ADAPTER_NAME = 'pglite-prisma-adapter';

async function openPglite(
  dataDir: string | undefined,
  template: Blob | undefined,
): Promise<{ db: PGlite; factory: SqlMigrationAwareDriverAdapterFactory }> {
  const [{ PGlite }, { PrismaPGlite }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('pglite-prisma-adapter'),
  ]);
  // A template is for an in-memory database only (DatabaseTarget).
  const db =
    dataDir === undefined && template !== undefined ? new PGlite({ loadDataDir: template }) : new PGlite(dataDir);
  return { db, factory: new PrismaPGlite(db) };
}

export class DatabaseTimeoutError extends Error {
  readonly code = 'P1001';
  constructor(ms: number) {
    super(`database timeout after ${ms} ms`);
  }
}

export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DatabaseTimeoutError(ms)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A new pg client, as far as prepareConnection uses it (`connection.stream`: pg's socket). */
export type NewConnection = Pick<pg.ClientBase, 'query'> & { connection?: { stream?: { destroy(): void } } };

/**
 * Every connection speaks UTC, whatever the database's or the server's TimeZone: Prisma's
 * adapter writes a Date's UTC digits without an offset and reads timestamps back as UTC, so in
 * another zone it would store shifted instants, and the statements that read through the pool
 * directly (prepared-statements.ts) would show them shifted. A connection that cannot be set so
 * (an error, or no answer within `timeoutMs`) is refused as a connection failure (SQLSTATE class
 * 08, connection_exception): its request is answered 503 DATABASE_UNAVAILABLE, like one that
 * could not connect, and never uses it.
 */
export async function prepareConnection(client: NewConnection, timeoutMs: number): Promise<void> {
  try {
    await withTimeout(client.query('SET TIME ZONE UTC'), timeoutMs);
  } catch (error) {
    // Closed at once, as pg-pool closes a connection that took too long to open: the pool's
    // client.end() after a failed hook closes gently when no statement is in flight (an error
    // answered), and waits for the server's close, holding the request until then; a server
    // that answers an error and then goes silent would hold it for good.
    client.connection?.stream?.destroy();
    const reason = error instanceof Error ? error.message : String(error);
    throw Object.assign(new Error(`could not set the connection's time zone to UTC: ${reason}`, { cause: error }), {
      code: '08000',
    });
  }
}
