/**
 * The smallest NestJS application with Gatehouse's stack underneath, for the baselines that
 * measure "an endpoint doing only X" as a NestJS team would write it: Nest on Express (its
 * default JSON and form body parsers), and, given a database, the project's generated Prisma
 * client (dist/generated/prisma) on @prisma/adapter-pg, injected as a provider. Where the
 * server spares itself work, so does the baseline: named prepared statements, no ETag, no
 * X-Powered-By.
 *
 * Plain JavaScript: Nest's decorators are applied as functions, in the order TypeScript
 * applies them. Needs `npm run build` (the generated client is compiled to dist/ with the rest).
 */
import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { Body, Controller, Get, HttpCode, Inject, Injectable, Module, Post, Req, Res } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { PrismaPg } from '@prisma/adapter-pg';

const PRISMA = 'PRISMA';

/**
 * The generated client as an application injects it: connected at start, closed at shutdown.
 * Its statements are named prepared statements (the adapter's `statementNameGenerator`, one
 * name per SQL text), parsed and planned once per connection, as Gatehouse runs its hot
 * statements (src/database/prepared-statements.ts): a baseline must not do database work the
 * server does not do.
 */
async function prismaProvider(url, max) {
  const { PrismaClient } = await import(new URL('../../dist/generated/prisma/client.js', import.meta.url).href);
  const statementNameGenerator = (query) =>
    `bench_${createHash('sha256').update(query.sql).digest('hex').slice(0, 32)}`;
  class PrismaService extends PrismaClient {
    constructor() {
      super({ adapter: new PrismaPg({ connectionString: url, ...(max ? { max } : {}) }, { statementNameGenerator }) });
    }

    async onModuleInit() {
      await this.$connect();
    }

    async onApplicationShutdown() {
      await this.$disconnect();
    }
  }
  Injectable()(PrismaService);
  return { provide: PRISMA, useClass: PrismaService };
}

/** Applies a method decorator as TypeScript does. */
function decorate(target, name, ...decorators) {
  for (const d of decorators.toReversed()) d(target, name, Object.getOwnPropertyDescriptor(target, name));
}

/**
 * A Nest application with one route. `handle({ body, req, res, prisma })` answers the object
 * Nest serialises (200 for a POST, as `@HttpCode(200)` says; throw an HttpException for
 * anything else); it may set headers on `res` (`@Res({ passthrough: true })`).
 *
 *   method 'GET' | 'POST', path '/health' | '/oauth/token' …, databaseUrl (optional),
 *   poolSize (optional: the adapter's pool), host, port (0: any free one)
 *
 * Answers { app, port }.
 */
export async function startNestApp({
  method = 'POST',
  path,
  handle,
  databaseUrl,
  poolSize,
  host = '127.0.0.1',
  port = 0,
}) {
  const slash = path.lastIndexOf('/');
  const [prefix, route] = [path.slice(1, slash) || '/', path.slice(slash + 1)];
  const providers = databaseUrl ? [await prismaProvider(databaseUrl, poolSize)] : [];

  class EndpointController {
    endpoint(body, req, res) {
      return handle({ body, req, res, prisma: this.prisma });
    }
  }
  // Injected as a property, and only when there is a database: a constructor parameter left
  // without a provider makes Nest warn at every start of the signing baseline.
  if (databaseUrl) Inject(PRISMA)(EndpointController.prototype, 'prisma');
  Body()(EndpointController.prototype, 'endpoint', 0);
  Req()(EndpointController.prototype, 'endpoint', 1);
  Res({ passthrough: true })(EndpointController.prototype, 'endpoint', 2);
  if (method === 'POST') decorate(EndpointController.prototype, 'endpoint', Post(route), HttpCode(200));
  else decorate(EndpointController.prototype, 'endpoint', Get(route));
  Controller(prefix)(EndpointController);

  class AppModule {}
  Module({ controllers: [EndpointController], providers })(AppModule);

  const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
  // As the server (src/app.setup.ts): no ETag (a hash of every body) and no X-Powered-By.
  app.disable('x-powered-by');
  app.set('etag', false);
  app.enableShutdownHooks();
  await app.listen(port, host);
  return { app, port: app.getHttpServer().address().port };
}
