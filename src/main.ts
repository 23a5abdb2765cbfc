import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createApp } from './app.setup.js';
import { ConfigError, parseConfig } from './config/config.schema.js';

async function main(): Promise<void> {
  let config;
  try {
    config = parseConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
  const app = await createApp(config);
  const server = app.getHttpServer();
  // Slow clients must not hold the server: bound the time to send headers and the request.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  await app.listen(config.PORT, config.HOST);
  const logger = new Logger('Gatehouse');
  logger.log(`listening on http://${config.HOST}:${config.PORT} (pid ${process.pid})`);
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

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
