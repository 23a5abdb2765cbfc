/**
 * Baseline for `memory_idle` and `startup`: the smallest NestJS + Prisma server with Gatehouse's
 * stack underneath — Nest on Express, the project's generated Prisma client (dist/generated/prisma)
 * on @prisma/adapter-pg — and one route, GET /health, which runs `SELECT 1` through Prisma. What
 * any such server costs before it does anything of its own: Gatehouse's idle memory and start-up
 * time are compared with it.
 *
 * Plain JavaScript: Nest's decorators are applied as functions, in the order TypeScript applies them.
 *
 *   DATABASE_URL=postgresql://… PORT=3000 [HOST=127.0.0.1] node bench/idle-baseline.mjs
 *
 * Needs `npm run build` (the generated client is compiled to dist/ with the rest).
 */
import 'reflect-metadata';
import { Controller, Get, Inject, Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { PrismaPg } from '@prisma/adapter-pg';

const { PrismaClient } = await import(new URL('../dist/generated/prisma/client.js', import.meta.url).href);

const url = process.env.DATABASE_URL;
if (!url) {
  console.error('usage: DATABASE_URL=postgresql://… PORT=3000 node bench/idle-baseline.mjs');
  process.exit(2);
}

/** The client as a provider, as an application injects it. */
class PrismaService extends PrismaClient {
  constructor() {
    super({ adapter: new PrismaPg({ connectionString: url }) });
  }

  async onModuleInit() {
    await this.$connect();
  }

  async onApplicationShutdown() {
    await this.$disconnect();
  }
}
Injectable()(PrismaService);

class HealthController {
  constructor(prisma) {
    this.prisma = prisma;
  }

  async health() {
    await this.prisma.$queryRaw`SELECT 1`;
    return { status: 'ok' };
  }
}
Inject(PrismaService)(HealthController, undefined, 0);
Get()(HealthController.prototype, 'health', Object.getOwnPropertyDescriptor(HealthController.prototype, 'health'));
Controller('health')(HealthController);

class AppModule {}
Module({ controllers: [HealthController], providers: [PrismaService] })(AppModule);

const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
app.enableShutdownHooks();
await app.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1');
