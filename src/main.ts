import './runtime-flags.js';
import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { Logger } from '@nestjs/common';
import { isDatabaseUnavailable } from './common/errors/database-errors.js';
import { ConfigError, loadConfig, type AppConfig } from './config/config.schema.js';
import { describeDatabase } from './database/describe-database.js';
import { loaderState } from './boot/loader-state.js';

async function main(): Promise<void> {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
  let app;
  let closeWebSockets: (typeof import('./app.setup.js'))['closeWebSockets'];
  try {
    // Imported only now: a configuration error is reported at once, before loading the app.
    const setup = await import('./app.setup.js');
    closeWebSockets = setup.closeWebSockets;
    const { createApp } = setup;
    app = await createApp(config);
    const server = app.getHttpServer();
    // Slow clients must not hold the server: bound the time to send headers and the request.
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    server.keepAliveTimeout = 5_000;
    // Node enforces the two timeouts above only when it checks its connections, every 30 s by
    // default: a trickling client held on for up to 40 s (headers) or 60 s (request). Read at
    // 'listening', so it must be set before listen().
    Object.assign(server, { connectionsCheckingInterval: 1_000 }); // an option of createServer, not in the typings as a property
    await app.listen(config.PORT, config.HOST);
  } catch (error) {
    // Expected failures get one clear line (no stack); anything else keeps its stack.
    const reason = startupFailure(error, config);
    if (reason === undefined) throw error;
    console.error(`Start-up failed: ${reason}`);
    process.exit(1);
  }
  const server = app.getHttpServer();
  const logger = new Logger('Gatehouse');
  // The bound port, which differs from PORT when PORT=0 asks for any free one.
  const { port } = server.address() as AddressInfo;
  logger.log(`listening on http://${config.HOST}:${port} (pid ${process.pid})`);
  // Started through dist/main.js: V8's code cache of the bundle, for the next start (src/boot/run-bundle.ts).
  const codeCache = loaderState()?.codeCache;
  void codeCache?.save().then((saved) => logger.debug(`code cache: ${codeCache.status} at start, ${saved}`));
  if (config.database.kind === 'pglite') {
    logger.warn('running on the embedded database: this set-up is for development, use PostgreSQL in production');
  }

  // Graceful shutdown: stop accepting, let in-flight requests finish (idle keep-alive
  // connections are closed at once), then close the database; exit 0. A drain that takes
  // longer than SHUTDOWN_TIMEOUT cuts the remaining connections.
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.log(`${signal} received: draining`);
    // WebSockets first (1001: reconnect elsewhere), then the HTTP drain.
    closeWebSockets(app, config);
    const force = setTimeout(() => {
      logger.warn('shutdown timeout: closing remaining connections');
      server.closeAllConnections();
    }, config.SHUTDOWN_TIMEOUT * 1000);
    force.unref();
    server.close(() => {
      app
        .close()
        .then(() => process.exit(0))
        .catch((error: unknown) => {
          logger.error(`shutdown failed: ${String(error)}`);
          process.exit(1);
        });
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

const EXPECTED_ERRORS = new Set(['MigrationError', 'StartupError', 'KeyConfigError']);

/** A one-line reason for a start-up failure that is the environment's, not the code's. */
function startupFailure(error: unknown, config: AppConfig): string | undefined {
  // By name: importing the migrator here would load the database stack before the config check.
  // (KeyConfigError: a signing key that the configuration check could not see, e.g. a damaged
  // generated key in DATA_DIR.)
  if (error instanceof Error && EXPECTED_ERRORS.has(error.name)) return error.message.replace(/\s*\n\s*/g, ' ');
  if (isDatabaseUnavailable(error)) return `${describeDatabase(config.database)} is unreachable (check DATABASE_URL)`;
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code === 'EADDRINUSE') return `${config.HOST}:${config.PORT} is already in use (check PORT)`;
  if (code === 'EACCES') return `no permission to listen on ${config.HOST}:${config.PORT} (check PORT)`;
  return undefined;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
