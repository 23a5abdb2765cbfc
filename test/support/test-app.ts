import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { NestExpressApplication } from '@nestjs/platform-express';
import pg from 'pg';
import type { DestinationStream } from 'pino';
import request from 'supertest';
import { AppModule } from '../../src/app.module.js';
import { configureApp } from '../../src/app.setup.js';
import { Clock } from '../../src/common/clock.js';
import { parseConfig, type AppConfig } from '../../src/config/config.schema.js';
import { applyMigrations } from '../../src/database/migrations/migrator.js';
import { PrismaService } from '../../src/database/prisma.service.js';
import { createAppLogger } from '../../src/logging/app-logger.js';
import { FakeClock } from './fake-clock.js';

export interface TestApp {
  app: NestExpressApplication;
  http: ReturnType<typeof request>;
  clock: FakeClock;
  config: AppConfig;
  prisma: PrismaService;
  databaseUrl: string;
  close(): Promise<void>;
}

export const ALLOWED_ORIGIN = 'http://app.example.test';

/**
 * A fresh application on a fresh database: in-memory PGlite by default, or a new database
 * on the PostgreSQL server of TEST_DATABASE_URL (dropped again by close()).
 */
export async function startApp(
  env: Record<string, string> = {},
  opts: {
    databaseUrl?: string;
    /** extra test-only modules, e.g. a controller that throws */
    imports?: Type[];
    /** where the app's log lines go instead of stdout (when LOG_LEVEL is not silent) */
    logDestination?: DestinationStream;
  } = {},
): Promise<TestApp> {
  const database = opts.databaseUrl ? { url: opts.databaseUrl, drop: async () => {} } : await freshDatabase();
  const parsed = parseConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    BCRYPT_COST: '4',
    CORS_ORIGINS: ALLOWED_ORIGIN,
    DATABASE_URL: database.url,
    MIGRATE_ON_START: 'true',
    PASSWORD_PEPPER: 'test-pepper-0123456789-0123456789-0123',
    // Mail without SMTP_URL goes to a folder of this test process, not to ./data/outbox.
    MAIL_OUTBOX_DIR: testOutbox(),
    ...env,
  });
  const config = await fromTemplate(parsed, opts.databaseUrl === undefined);
  const clock = new FakeClock();
  const moduleRef = await Test.createTestingModule({ imports: [AppModule.forRoot(config), ...(opts.imports ?? [])] })
    .overrideProvider(Clock)
    .useValue(clock)
    .compile();
  const logger = createAppLogger(config, { destination: opts.logDestination });
  const app = moduleRef.createNestApplication<NestExpressApplication>({
    bodyParser: false,
    logger: config.LOG_LEVEL === 'silent' ? false : logger,
  });
  configureApp(app, config, logger);
  try {
    await app.init();
  } catch (error) {
    // A start-up that fails (on purpose in some tests) must not leave the database open.
    await app.close().catch(() => undefined);
    await database.drop();
    throw error;
  }
  return {
    app,
    http: request(app.getHttpServer()),
    clock,
    config,
    prisma: app.get(PrismaService),
    databaseUrl: database.url,
    close: async () => {
      await app.close();
      await database.drop();
    },
  };
}

let template: Promise<Blob> | undefined;

/**
 * The config, with its in-memory database (if it has one) started from a dump of one with every
 * migration applied (`template` of DatabaseTarget) when `useTemplate`. The dump is made once per
 * test process, by the migrator the server runs at start-up, and spares each later app the three
 * to six seconds of creating a cluster. A failed attempt is not kept: the next app tries again.
 */
async function fromTemplate(config: AppConfig, useTemplate: boolean): Promise<AppConfig> {
  if (!useTemplate || config.database.kind !== 'pglite' || config.database.dataDir !== undefined) return config;
  template ??= migratedDump().catch((error: unknown) => {
    template = undefined;
    throw error;
  });
  return Object.freeze({ ...config, database: Object.freeze({ ...config.database, template: await template }) });
}

async function migratedDump(): Promise<Blob> {
  const [{ PGlite }, { PrismaPGlite }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('pglite-prisma-adapter'),
  ]);
  const db = new PGlite();
  try {
    await applyMigrations(new PrismaPGlite(db));
    // Written out first: a dump of a directory with unflushed changes loads as after a crash
    // (recovery at every load, sequences moved on, unlogged tables emptied).
    await db.exec('CHECKPOINT');
    return await db.dumpDataDir('none');
  } finally {
    await db.close().catch(() => undefined); // an error of the above matters more
  }
}

let outbox: string | undefined;
/** One outbox folder per test process (created on first use, removed by the OS's tmp cleanup). */
function testOutbox(): string {
  outbox ??= mkdtempSync(join(tmpdir(), 'gatehouse-outbox-'));
  return outbox;
}

/**
 * A database that outlives one app (restart tests): a new PostgreSQL database with
 * TEST_DATABASE_URL, else an embedded PGlite directory (one app at a time).
 */
export async function persistentDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  if (process.env.TEST_DATABASE_URL) return freshDatabase();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-restart-'));
  return { url: `file:${dir}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
}

/** In-memory PGlite, or a new database on TEST_DATABASE_URL's server. */
export async function freshDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const server = process.env.TEST_DATABASE_URL;
  if (!server) return { url: 'memory://', drop: async () => {} };
  const name = `gatehouse_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(server);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: server });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
