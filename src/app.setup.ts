import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import express, { type NextFunction, type Request, type Response } from 'express';
import helmet from 'helmet';
import { AppModule } from './app.module.js';
import { answerClientErrors } from './common/http/client-errors.js';
import { requestId } from './common/http/request-id.middleware.js';
import type { AppConfig } from './config/config.schema.js';
import { createAppLogger, type AppLogger } from './logging/app-logger.js';
import { requestLogging } from './logging/request-logging.js';
import { instrumentApp } from './metrics/metrics.module.js';
import { RealtimeAdapter } from './realtime/realtime.adapter.js';
import { RealtimeGateway } from './realtime/realtime.gateway.js';

/** Builds the application (not listening): used by main.ts, the tests and the benchmarks. */
export async function createApp(config: AppConfig): Promise<NestExpressApplication> {
  // Every `new Logger(context)` writes through this one (pino: JSON lines or pretty text).
  const logger = createAppLogger(config);
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    bodyParser: false, // JsonBodyMiddleware parses, with the contract's limits
    logger: config.LOG_LEVEL === 'silent' ? false : logger,
    abortOnError: false,
  });
  configureApp(app, config, logger);
  return app;
}

/** The first step of a shutdown: every WebSocket gets 1001 (reconnect), before the HTTP drain. */
export function closeWebSockets(app: NestExpressApplication, config: AppConfig): void {
  if (config.WS_ENABLED) app.get(RealtimeGateway).goingAway();
}

/** The browser client, built by `npm run build` (web/ → dist/web); the same path from src/ and dist/. */
const WEB_ROOT = fileURLToPath(new URL('../dist/web', import.meta.url));
const WEB_ASSET = /^\/$|\.(html|js|css|map|png|svg|ico|webmanifest)$/;
/** Paths that are pages of the client (no file extension), and the file each one serves. */
const WEB_PAGES = new Map([
  ['/verify-email', '/index.html'],
  ['/reset-password', '/index.html'],
  ['/accept-invitation', '/index.html'],
  ['/federated-signin', '/index.html'],
  // The operators' console (docs/admin-console.md): its own page; the API still checks every call.
  ['/admin', '/admin.html'],
]);

/** `logger`: the one the application was created with (createAppLogger), for the request lines. */
export function configureApp(app: NestExpressApplication, config: AppConfig, logger: AppLogger): void {
  app.set('trust proxy', config.TRUST_PROXY);
  // Real-time events (contract v2 §F) on the HTTP server's port, at WS_PATH.
  if (config.WS_ENABLED) app.useWebSocketAdapter(new RealtimeAdapter(app, config));
  app.disable('x-powered-by');
  app.set('etag', false);
  // Requests Node's parser refuses get the contract's error body too.
  answerClientErrors(app.getHttpServer());
  // Prometheus metrics (METRICS_PORT): their middleware comes first, so that every answer is
  // counted, the static files', the 404s' and the body parser's included.
  if (config.METRICS_PORT !== undefined) {
    instrumentApp(app, config.WS_ENABLED ? () => app.get(RealtimeGateway).size : undefined);
  }
  app.use(requestId);
  // The request id on every line logged while the request is handled, and its access line.
  const logRequests = requestLogging(logger, config);
  if (logRequests !== undefined) app.use(logRequests);
  app.use(
    helmet({
      // Upgrading to https would break the browser client on a plain-http development host.
      contentSecurityPolicy: { directives: { upgradeInsecureRequests: config.COOKIE_SECURE ? [] : null } },
    }),
  );
  // No cookie-parser here: only the refresh cookie's routes read a cookie, and parse it themselves
  // (auth.controller.ts), so no other request pays for parsing the Cookie header.
  // Revalidated on every load (file names are not content-hashed): a deploy is seen at once.
  if (existsSync(WEB_ROOT)) {
    const serveWeb = express.static(WEB_ROOT, {
      index: 'index.html',
      setHeaders: (res) => res.setHeader('Cache-Control', 'no-cache'),
    });
    // Only the client's own files go to the file system: an API request (no file
    // extension) never costs a stat() of a file that cannot exist.
    app.use((req: Request, res: Response, next: NextFunction) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') return next();
      // The pages that mail links open (APP_URL defaults to this server), and the hand-off page
      // of an external sign-in: the client's page, which reads the token from the URL fragment.
      const page = WEB_PAGES.get(req.path);
      if (page !== undefined) {
        req.url = page;
        return serveWeb(req, res, next);
      }
      return WEB_ASSET.test(req.path) ? serveWeb(req, res, next) : next();
    });
  }
  const allowed = new Set(config.CORS_ORIGINS);
  app.enableCors({
    origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
    credentials: true,
    exposedHeaders: ['X-Request-Id', 'Retry-After', 'WWW-Authenticate'],
    maxAge: 600,
  });
  // Built on the first request for /docs or /docs-json, not at start-up: scanning every route and
  // DTO takes a good part of a start and its result would sit in memory unasked.
  const openApiDocument = () =>
    SwaggerModule.createDocument(
      app,
      new DocumentBuilder()
        .setTitle('Gatehouse')
        .setDescription(
          'Username/password authentication: JWT access tokens, rotating refresh cookies, guarded resources.',
        )
        .setVersion('1')
        .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' }, 'bearer')
        .addCookieAuth('refresh_token', { type: 'apiKey', in: 'cookie', name: 'refresh_token' }, 'refreshCookie')
        // Machine clients at the OAuth form endpoints (client_secret_basic).
        .addBasicAuth({ type: 'http', scheme: 'basic' }, 'clientBasic')
        .build(),
    );
  SwaggerModule.setup('docs', app, openApiDocument, { jsonDocumentUrl: 'docs-json', raw: ['json'] });
  new Logger('Gatehouse').debug(`CORS origins: ${[...allowed].join(', ') || '(none)'}`);
}
