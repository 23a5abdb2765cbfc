import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { Logger } from '@nestjs/common';
import type { HttpAdapterHost } from '@nestjs/core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AppModule } from '../../src/app.module.js';
import { parseConfig } from '../../src/config/config.schema.js';
import type { PrismaService } from '../../src/database/prisma.service.js';
import { DatabaseMetrics } from '../../src/metrics/database-metrics.js';
import { RouteTable, refreshOutcome } from '../../src/metrics/http-metrics.js';
import { MetricsModule } from '../../src/metrics/metrics.module.js';
import { MetricsRegistry } from '../../src/metrics/metrics.registry.js';
import { MetricsServer } from '../../src/metrics/metrics-server.js';
import { freePort } from '../reliability/support/net.js';
import { problemsOf } from '../support/config-problems.js';
import { FakeClock } from '../support/fake-clock.js';

/** The metrics endpoint's server on its own (no application), the route labels, and the configuration. */

const listenOn = (server: Server | ReturnType<typeof createTcpServer>, port = 0): Promise<number> =>
  new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
const closeServer = (server: Server | ReturnType<typeof createTcpServer>): Promise<void> =>
  new Promise((resolve) => server.close(() => resolve()));

/** A MetricsServer in front of a stand-in API server (not listening yet). */
function metricsServer(metricsPort: number): { server: MetricsServer; api: Server } {
  const api = createServer((_req, res) => res.end('api'));
  const config = parseConfig({ PORT: '0', METRICS_PORT: String(metricsPort) });
  const host = { httpAdapter: { getHttpServer: () => api } } as unknown as HttpAdapterHost;
  const server = new MetricsServer(config, host, new MetricsRegistry());
  server.onApplicationBootstrap();
  return { server, api };
}

async function reachable(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

describe('MetricsServer', () => {
  const errors: string[] = [];
  let quiet: ReturnType<typeof vi.spyOn>[];
  beforeAll(() => {
    quiet = [
      vi.spyOn(Logger.prototype, 'error').mockImplementation((message: unknown) => void errors.push(String(message))),
      vi.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined),
    ];
  });
  afterAll(() => {
    for (const spy of quiet) spy.mockRestore();
  });

  it('starts when the API server starts listening and closes on shutdown', async () => {
    const port = await freePort();
    const { server, api } = metricsServer(port);
    try {
      expect(await reachable(port)).toBe(false);
      await listenOn(api);
      expect(await server.listening()).toMatchObject({ address: '127.0.0.1', port });
      expect(await reachable(port)).toBe(true);
      await server.onApplicationShutdown();
      expect(await reachable(port)).toBe(false);
      // The API is not touched.
      expect(api.listening).toBe(true);
    } finally {
      await closeServer(api);
    }
  });

  it('never starts when the application shuts down before listening', async () => {
    const port = await freePort();
    const { server, api } = metricsServer(port);
    await server.onApplicationShutdown();
    await listenOn(api);
    try {
      expect(await reachable(port)).toBe(false);
    } finally {
      await closeServer(api);
    }
  });

  it('logs a port in use and leaves the API running without metrics', async () => {
    const squatter = createTcpServer();
    const port = await listenOn(squatter);
    const { server, api } = metricsServer(port);
    try {
      const apiPort = await listenOn(api);
      expect(await server.listening()).toBeNull();
      expect(errors.join('\n')).toContain(`127.0.0.1:${port} is already in use (check METRICS_PORT)`);
      const res = await fetch(`http://127.0.0.1:${apiPort}/`);
      expect(await res.text()).toBe('api');
      await server.onApplicationShutdown();
    } finally {
      await closeServer(api);
      await closeServer(squatter);
    }
  });
});

describe('DatabaseMetrics', () => {
  /** The gauges of a DatabaseMetrics over a stand-in Prisma client. */
  function databaseMetrics(count: () => Promise<number>, pool: PrismaService['poolUsage']) {
    const registry = new MetricsRegistry();
    const clock = new FakeClock();
    clock.freeze();
    const prisma = { poolUsage: pool, session: { count } } as unknown as PrismaService;
    const metrics = new DatabaseMetrics(registry, prisma, clock, parseConfig({}));
    const read = (name: string) => registry.registry.getSingleMetricAsString(name);
    return { metrics, clock, read };
  }

  // prom-client writes NaN as `Nan`, which Prometheus reads as NaN (case does not matter to it).
  it('reads NaN when the live-session count fails, and tries again only after the interval', async () => {
    const warn = vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    try {
      const count = vi.fn<() => Promise<number>>().mockRejectedValueOnce(new Error('database down'));
      count.mockResolvedValue(7);
      const { clock, read } = databaseMetrics(count, () => null);
      expect(await read('gatehouse_active_sessions')).toMatch(/^gatehouse_active_sessions Nan$/m);
      expect(warn).toHaveBeenCalledWith('active sessions not counted: database down');
      clock.advance(29);
      expect(await read('gatehouse_active_sessions')).toMatch(/^gatehouse_active_sessions Nan$/m);
      clock.advance(1);
      expect(await read('gatehouse_active_sessions')).toMatch(/^gatehouse_active_sessions 7$/m);
      expect(count).toHaveBeenCalledTimes(2);
    } finally {
      warn.mockRestore();
    }
  });

  it("reports the pool's total, idle and waiting connections when there is a pool", async () => {
    const { read } = databaseMetrics(
      () => Promise.resolve(0),
      () => ({ total: 6, idle: 2, waiting: 3 }),
    );
    const text = await read('gatehouse_db_pool_connections');
    expect(text.split('\n').filter((l) => !l.startsWith('#'))).toEqual([
      'gatehouse_db_pool_connections{state="total"} 6',
      'gatehouse_db_pool_connections{state="idle"} 2',
      'gatehouse_db_pool_connections{state="waiting"} 3',
    ]);
  });
});

describe('route labels', () => {
  const table = new RouteTable([
    { path: '/users/me', methods: ['GET'] },
    { path: '/users/:id', methods: ['GET'] },
    { path: '/users/:id', methods: ['PATCH'] },
    { path: '/users/:id/sessions/:sessionId', methods: ['DELETE'] },
    { path: '/docs', methods: ['GET'] },
    { path: '/auth/login', methods: ['POST'] },
  ]);

  it.each([
    ['GET', '/users/me', '/users/me'],
    ['HEAD', '/users/me', '/users/me'],
    ['GET', '/users/0b7c', '/users/:id'],
    ['PATCH', '/USERS/0b7c/', '/users/:id'],
    ['DELETE', '/users/0b7c/sessions/42', '/users/:id/sessions/:sessionId'],
    ['GET', '/docs/', '/docs'],
    ['POST', '/auth/login', '/auth/login'],
  ])('%s %s → %s', (method, path, pattern) => {
    expect(table.match(path, method)).toBe(pattern);
  });

  it.each([
    ['GET', '/users'],
    ['GET', '/users//sessions/1'],
    ['GET', '/users/1/sessions'],
    ['POST', '/auth/login/x'],
    ['GET', '/'],
    ['GET', ''],
    // A route's path with a method it does not take: no series of its own.
    ['PUT', '/users/0b7c'],
    ['MERGE', '/users/0b7c'],
    ['GET', '/auth/login'],
  ])('%s %s matches nothing', (method, path) => {
    expect(table.match(path, method)).toBeUndefined();
  });

  it('maps /auth/refresh statuses to outcomes', () => {
    expect([200, 401, 403, 429, 400, 500, 503].map(refreshOutcome)).toEqual([
      'rotated',
      'refused',
      'refused',
      'throttled',
      'error',
      'error',
      'error',
    ]);
  });
});

describe('METRICS_PORT and METRICS_HOST', () => {
  it('are unset / 127.0.0.1 by default, and the application then has no metrics module', () => {
    const config = parseConfig({});
    expect(config.METRICS_PORT).toBeUndefined();
    expect(config.METRICS_HOST).toBe('127.0.0.1');
    expect(AppModule.forRoot(config).imports).not.toContain(MetricsModule);
    expect(AppModule.forRoot(parseConfig({ METRICS_PORT: '9464' })).imports).toContain(MetricsModule);
  });

  it('refuses METRICS_PORT equal to PORT, or outside 1–65535', () => {
    expect(problemsOf({ PORT: '9464', METRICS_PORT: '9464' })).toEqual([
      expect.stringMatching(/^METRICS_PORT: must differ from PORT/),
    ]);
    expect(problemsOf({ METRICS_PORT: '3000' })).toEqual([expect.stringMatching(/^METRICS_PORT: /)]);
    expect(problemsOf({ METRICS_PORT: '9464', METRICS_HOST: 'evil host' })).toEqual([
      expect.stringMatching(/^METRICS_HOST: /),
    ]);
    for (const bad of ['0', '65536', 'x', '1.5']) {
      expect(problemsOf({ METRICS_PORT: bad })).toEqual([expect.stringMatching(/^METRICS_PORT: /)]);
    }
    expect(parseConfig({ METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0' })).toMatchObject({
      METRICS_PORT: 9464,
      METRICS_HOST: '0.0.0.0',
    });
  });
});
