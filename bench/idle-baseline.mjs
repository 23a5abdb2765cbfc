/**
 * Baseline for `memory_idle` and `startup`: the smallest NestJS + Prisma server with Gatehouse's
 * stack underneath (bench/lib/nest-app.mjs: Nest on Express, the project's generated Prisma
 * client on @prisma/adapter-pg) and one route, GET /health, which runs `SELECT 1` through
 * Prisma (a named prepared statement, and answers without ETag, as nest-app.mjs makes every
 * baseline). What any such server costs before it does anything of its own: Gatehouse's idle
 * memory and start-up time are compared with it.
 *
 *   DATABASE_URL=postgresql://… PORT=3000 [HOST=127.0.0.1] node bench/idle-baseline.mjs
 *
 * Needs `npm run build` (the generated client is compiled to dist/ with the rest).
 */
import { startNestApp } from './lib/nest-app.mjs';

const url = process.env.DATABASE_URL;
if (!url) {
  console.error('usage: DATABASE_URL=postgresql://… PORT=3000 node bench/idle-baseline.mjs');
  process.exit(2);
}

await startNestApp({
  method: 'GET',
  path: '/health',
  databaseUrl: url,
  host: process.env.HOST ?? '127.0.0.1',
  port: Number(process.env.PORT ?? 3000),
  handle: async ({ prisma }) => {
    await prisma.$queryRaw`SELECT 1`;
    return { status: 'ok' };
  },
});
