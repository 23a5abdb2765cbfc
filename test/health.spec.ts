import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onPostgres } from './support/env.js';
import { startApp, type TestApp } from './support/test-app.js';

/**
 * GET /health: 200 {status:"ok"} while the database answers, 503 in the contract's error
 * shape (within 2 s) while it does not, and 200 again once it is back, without a restart.
 */

const ERROR_KEYS = ['code', 'error', 'message', 'statusCode'];
/** The contract: /health answers within 2 s whatever the database does. */
const HEALTH_DEADLINE_MS = 2000;

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - start };
}

function expectUnavailable(res: {
  status: number;
  body: Record<string, unknown>;
  text: string;
  headers: Record<string, string>;
}): void {
  expect({ status: res.status, body: res.body }).toMatchObject({ status: 503 });
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(Object.keys(res.body).sort()).toEqual(ERROR_KEYS);
  expect(res.body).toMatchObject({ statusCode: 503, error: 'Service Unavailable', code: 'DATABASE_UNAVAILABLE' });
  expect(typeof res.body.message).toBe('string');
  expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  // Nothing of the driver's error (host, port, SQL state, stack) reaches the client.
  expect(res.text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|5432|timeout|terminat|\bat .+:\d+/i);
  expect(res.headers['x-request-id']).toBeTruthy();
}

/** /health answers 503 within the deadline (three times), and a database route 503s too. */
async function expectDatabaseDown(t: TestApp): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const { value, ms } = await timed(() => t.http.get('/health'));
    expectUnavailable(value);
    expect(ms).toBeLessThan(HEALTH_DEADLINE_MS);
  }
  const login = await t.http.post('/auth/login').send({ username: 'someone', password: 'some password' });
  expectUnavailable(login);
}

/** A port on which nothing listens (taken from the OS, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A "database" that accepts TCP connections and never says a word: the hung-server case. */
async function blackHole(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('GET /health', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp();
  });
  afterAll(async () => t?.close());

  it('answers 200 {status:"ok"} as JSON while the database answers', async () => {
    const res = await t.http.get('/health');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toEqual({ status: 'ok' });
    expect(res.headers['x-request-id']).toBeTruthy();
  });

  it('is public: no token needed, and a bad token does not turn it into 401', async () => {
    await t.http.get('/health').expect(200, { status: 'ok' });
    await t.http.get('/health').set('Authorization', 'Bearer not.a.token').expect(200, { status: 'ok' });
  });

  it('answers many concurrent checks', async () => {
    const responses = await Promise.all(Array.from({ length: 20 }, () => t.http.get('/health')));
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
  });

  it('is not cached by intermediaries', async () => {
    const res = await t.http.get('/health');
    expect(res.headers.etag).toBeUndefined();
  });

  // Last in this block: it shuts the database down under the running application.
  describe('after the database is shut down under the running app', () => {
    it('answers 503 DATABASE_UNAVAILABLE within 2 s, and so do routes that need the database', async () => {
      await t.prisma.onApplicationShutdown();
      const health = await timed(() => t.http.get('/health'));
      expectUnavailable(health.value);
      expect(health.ms).toBeLessThan(HEALTH_DEADLINE_MS);

      const login = await t.http.post('/auth/login').send({ username: 'someone', password: 'some password' });
      expectUnavailable(login);
    });
  });
});

describe('GET /health with PostgreSQL unreachable from the start', () => {
  it('starts (MIGRATE_ON_START=false) and answers 503 within 2 s when nothing listens on the port', async () => {
    const port = await closedPort();
    const t = await startApp(
      { MIGRATE_ON_START: 'false' },
      { databaseUrl: `postgresql://postgres@127.0.0.1:${port}/gatehouse` },
    );
    try {
      await expectDatabaseDown(t);
    } finally {
      await t.close();
    }
  });

  it('answers 503 within 2 s when the server accepts connections but never answers', async () => {
    const hole = await blackHole();
    const t = await startApp(
      { MIGRATE_ON_START: 'false' },
      { databaseUrl: `postgresql://postgres@127.0.0.1:${hole.port}/gatehouse` },
    );
    try {
      const checks = await Promise.all(Array.from({ length: 5 }, () => timed(() => t.http.get('/health'))));
      for (const { value, ms } of checks) {
        expectUnavailable(value);
        expect(ms).toBeLessThan(HEALTH_DEADLINE_MS);
      }
      // A request that needs the database fails fast too (DATABASE_TIMEOUT_MS, 2 s by default), not hanging.
      const login = await timed(() =>
        t.http.post('/auth/login').send({ username: 'someone', password: 'some password' }),
      );
      expectUnavailable(login.value);
      expect(login.ms).toBeLessThan(5000);
    } finally {
      await t.close();
      await hole.close();
    }
  });
});

describe.runIf(onPostgres)('GET /health through a PostgreSQL outage (TEST_DATABASE_URL)', () => {
  let t: TestApp;
  let admin: pg.Client;
  let dbName: string;

  beforeAll(async () => {
    t = await startApp();
    dbName = new URL(t.databaseUrl).pathname.slice(1);
    admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS true`).catch(() => undefined);
    await admin?.end();
    await t?.close();
  });

  async function cutOff(): Promise<void> {
    await admin.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS false`);
    await admin.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [dbName],
    );
  }

  async function restore(): Promise<void> {
    await admin.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS true`);
  }

  it('answers 503 within 2 s while the database refuses connections, then 200 again without a restart', async () => {
    await t.http.get('/health').expect(200, { status: 'ok' });
    // Warm the pool so that there are live connections to lose.
    await Promise.all(Array.from({ length: 5 }, () => t.http.get('/health').expect(200)));

    await cutOff();
    await expectDatabaseDown(t);

    await restore();
    const deadline = Date.now() + 5000;
    let status = 0;
    while (Date.now() < deadline) {
      status = (await t.http.get('/health')).status;
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
    // And the rest of the app works again too.
    await t.http
      .post('/auth/signup')
      .send({ username: `back_${Date.now()}`, password: 'good password' })
      .expect(201);
  });

  it('survives several outages in a row', async () => {
    for (let round = 0; round < 3; round++) {
      await cutOff();
      const { value, ms } = await timed(() => t.http.get('/health'));
      expectUnavailable(value);
      expect(ms).toBeLessThan(HEALTH_DEADLINE_MS);
      await restore();
      await expect.poll(async () => (await t.http.get('/health')).status, { timeout: 5000, interval: 100 }).toBe(200);
    }
  });
});
