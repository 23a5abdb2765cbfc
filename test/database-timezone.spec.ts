import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { onPostgres } from './support/env.js';
import { bearer } from './support/factories.js';
import { freshDatabase, startApp, type TestApp } from './support/test-app.js';

/**
 * A PostgreSQL database whose TimeZone is not UTC (initdb takes the operating system's): the
 * instants Gatehouse stores and answers are the same as on a UTC one, whichever way a
 * statement goes (Prisma, or the pool's prepared statements).
 */
describe.runIf(onPostgres)('a database in another time zone', () => {
  let database: { url: string; drop(): Promise<void> };
  let t: TestApp;

  beforeAll(async () => {
    database = await freshDatabase();
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    const { rows } = await admin.query<{ name: string }>('SELECT current_database() AS name');
    await admin.query(`ALTER DATABASE "${rows[0]!.name}" SET timezone = 'Asia/Kolkata'`);
    await admin.end();
    t = await startApp({}, { databaseUrl: database.url });
  });
  afterAll(async () => {
    await t?.close();
    await database?.drop();
  });

  it('stores and answers the real instant of a resource, in its own answer, by id and in the list', async () => {
    const signup = await t.http
      .post('/auth/signup')
      .send({ username: 'kolkata', password: 'correct horse battery' })
      .expect(201);
    const auth = bearer(signup.body.accessToken as string);
    const before = t.clock.nowMs();
    const created = await t.http.post('/resources').set(auth).send({ title: 'when' }).expect(201);
    const after = t.clock.nowMs();
    const at = Date.parse(created.body.createdAt as string);
    expect(at).toBeGreaterThanOrEqual(before);
    expect(at).toBeLessThanOrEqual(after);

    const byId = await t.http
      .get(`/resources/${created.body.id as string}`)
      .set(auth)
      .expect(200);
    const list = await t.http.get('/resources').set(auth).expect(200);
    expect(byId.body.createdAt).toBe(created.body.createdAt);
    expect(list.body.items).toMatchObject([{ id: created.body.id, createdAt: created.body.createdAt }]);

    // In the table too: the stored instant, read by a client in the database's own zone.
    const db = new pg.Client({ connectionString: database.url });
    await db.connect();
    try {
      const { rows } = await db.query<{ zone: string; ms: number }>(
        `SELECT current_setting('TimeZone') AS zone, (extract(epoch FROM created_at) * 1000)::float8 AS ms
         FROM resources WHERE id = $1`,
        [created.body.id],
      );
      expect(rows[0]).toEqual({ zone: 'Asia/Kolkata', ms: at });
    } finally {
      await db.end();
    }
  });

  it('refuses a new connection whose time zone cannot be set: 503 DATABASE_UNAVAILABLE, then serves once it can', async () => {
    const signup = await t.http
      .post('/auth/signup')
      .send({ username: 'kolkata_refused', password: 'correct horse battery' })
      .expect(201);
    const auth = bearer(signup.body.accessToken as string);
    // The next connections the pool opens are refused the setting (as a server could refuse a
    // parameter's value); the open ones are ended, so that the pool must open new ones.
    const query = Reflect.get(pg.Client.prototype, 'query') as (
      this: pg.Client,
      ...args: unknown[]
    ) => Promise<unknown>;
    const refuse = vi.spyOn(pg.Client.prototype, 'query').mockImplementation(function (
      this: pg.Client,
      ...args: unknown[]
    ) {
      if (args[0] === 'SET TIME ZONE UTC') {
        return Promise.reject(
          Object.assign(new Error('invalid value for parameter "TimeZone": "UTC"'), { code: '22023' }),
        ) as never;
      }
      return query.apply(this, args) as never;
    });
    try {
      const admin = new pg.Client({ connectionString: database.url });
      await admin.connect();
      try {
        await query.call(
          admin,
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
        );
      } finally {
        await admin.end();
      }
      let refused: { status: number; body: { code?: string }; headers: Record<string, string> } | undefined;
      for (let i = 0; i < 20 && refused === undefined; i++) {
        const res = await t.http.post('/resources').set(auth).send({ title: 'shifted?' });
        if (res.status !== 201) refused = res;
      }
      expect(refused?.status).toBe(503);
      expect(refused?.body.code).toBe('DATABASE_UNAVAILABLE');
      // A passing outage: the client is told when to try again, as for any unreachable database.
      expect(refused?.headers['retry-after']).toBe('5');
      expect(refuse).toHaveBeenCalledWith('SET TIME ZONE UTC');
    } finally {
      refuse.mockRestore();
    }
    // Set again on the connections opened now: served, and the instant is right.
    const before = t.clock.nowMs();
    const created = await t.http.post('/resources').set(auth).send({ title: 'on time' }).expect(201);
    const at = Date.parse(created.body.createdAt as string);
    expect(at).toBeGreaterThanOrEqual(before);
    expect(at).toBeLessThanOrEqual(t.clock.nowMs());
  });
});
