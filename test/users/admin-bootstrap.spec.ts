import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOMY_LIMITS, onPostgres } from '../support/env.js';
import { decodeJwt, login, signup } from '../support/factories.js';
import { freshDatabase, startApp, type TestApp } from '../support/test-app.js';

const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
const ENV = { ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', ...ADMIN };
const sortedRoles = (token: string) => [...(decodeJwt(token).payload.roles as string[])].sort();

/**
 * A database that outlives one app: a new PostgreSQL database with TEST_DATABASE_URL,
 * else an embedded PGlite directory (one app at a time).
 */
async function persistentDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  if (onPostgres) return freshDatabase();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bootstrap-'));
  return { url: `file:${dir}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
}

async function rootsIn(t: TestApp) {
  return t.prisma.user.findMany({ where: { usernameKey: 'root' } });
}

/** Each test starts two applications (PGlite start-up is slow on a busy machine). */
const TWO_APPS = 120_000;

describe('admin bootstrap across restarts', () => {
  it(
    'a restart on the same database keeps exactly one admin account, which still logs in',
    async () => {
      const db = await persistentDatabase();
      try {
        const first = await startApp(ENV, { databaseUrl: db.url });
        const before = await login(first, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
        await first.close();

        const second = await startApp(ENV, { databaseUrl: db.url });
        try {
          const roots = await rootsIn(second);
          expect(roots).toHaveLength(1);
          expect(roots[0]!.id).toBe(before.id);
          expect([...roots[0]!.roles].sort()).toEqual(['admin', 'user']);
          const after = await login(second, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
          expect(after.id).toBe(before.id);
          expect(sortedRoles(after.accessToken)).toEqual(['admin', 'user']);
          await second.http.get('/users').set(after.auth).expect(200);
        } finally {
          await second.close();
        }
      } finally {
        await db.drop();
      }
    },
    TWO_APPS,
  );

  it(
    'gives the admin role back at start-up to an ADMIN_USERNAME account that lost it',
    async () => {
      const db = await persistentDatabase();
      try {
        const first = await startApp(ENV, { databaseUrl: db.url });
        try {
          const root = await login(first, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
          const other = await signup(first);
          await first.http
            .patch(`/users/${other.id}`)
            .set(root.auth)
            .send({ roles: ['user', 'admin'] })
            .expect(200);
          const otherAdmin = await login(first, other.username, other.password);
          await first.http
            .patch(`/users/${root.id}`)
            .set(otherAdmin.auth)
            .send({ roles: ['user'] })
            .expect(200);
          const demoted = await login(first, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
          expect(sortedRoles(demoted.accessToken)).toEqual(['user']);
        } finally {
          await first.close();
        }

        const second = await startApp(ENV, { databaseUrl: db.url });
        try {
          expect(await rootsIn(second)).toHaveLength(1);
          const root = await login(second, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
          expect(sortedRoles(root.accessToken)).toEqual(['admin', 'user']);
          expect((await second.http.get('/users/me').set(root.auth).expect(200)).body.roles).toEqual(['user', 'admin']);
        } finally {
          await second.close();
        }
      } finally {
        await db.drop();
      }
    },
    TWO_APPS,
  );

  it.runIf(onPostgres)(
    'a second instance starting beside a running one creates no second admin',
    async () => {
      const db = await freshDatabase();
      const apps: TestApp[] = [];
      try {
        apps.push(await startApp(ENV, { databaseUrl: db.url }));
        apps.push(await startApp(ENV, { databaseUrl: db.url }));
        expect(await rootsIn(apps[0]!)).toHaveLength(1);
        const a = await login(apps[0]!, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
        const b = await login(apps[1]!, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
        expect(b.id).toBe(a.id);
      } finally {
        for (const app of apps) await app.close();
        await db.drop();
      }
    },
    TWO_APPS,
  );

  it.runIf(onPostgres)(
    'two servers starting at once on a fresh database create the admin exactly once',
    async () => {
      const db = await freshDatabase();
      const started = await Promise.allSettled([
        startApp(ENV, { databaseUrl: db.url }),
        startApp(ENV, { databaseUrl: db.url }),
      ]);
      try {
        for (const s of started) expect(s.status === 'rejected' ? String(s.reason) : 'started').toBe('started');
        const [a, b] = started.map((s) => (s as PromiseFulfilledResult<TestApp>).value) as [TestApp, TestApp];
        const roots = await rootsIn(a);
        expect(roots).toHaveLength(1);
        expect([...roots[0]!.roles].sort()).toEqual(['admin', 'user']);
        for (const app of [a, b]) {
          const s = await login(app, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
          expect(s.id).toBe(roots[0]!.id);
        }
      } finally {
        for (const s of started) if (s.status === 'fulfilled') await s.value.close();
        await db.drop();
      }
    },
    TWO_APPS,
  );
});
