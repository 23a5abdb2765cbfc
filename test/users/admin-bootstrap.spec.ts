import { describe, expect, it } from 'vitest';
import { ROOMY_LIMITS, onPostgres } from '../support/env.js';
import { decodeJwt, login, signup } from '../support/factories.js';
import { freshDatabase, persistentDatabase, startApp, type TestApp } from '../support/test-app.js';

const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
const ENV = { ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', ...ADMIN };
const sortedRoles = (token: string) => [...(decodeJwt(token).payload.roles as string[])].sort();

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

  it(
    'never promotes a squatter: an existing ADMIN_USERNAME account with another password stops start-up',
    async () => {
      const db = await persistentDatabase();
      try {
        // Before the operator sets ADMIN_USERNAME=boss9, someone signs up "Boss9".
        const first = await startApp(ROOMY_LIMITS, { databaseUrl: db.url });
        let squatter;
        try {
          squatter = await signup(first, { username: 'Boss9', password: 'attacker password 1' });
        } finally {
          await first.close();
        }
        const refused = await startApp(
          { ...ENV, ADMIN_USERNAME: 'boss9', ADMIN_PASSWORD: 'operator password 1' },
          {
            databaseUrl: db.url,
          },
        ).then(
          async (app) => {
            await app.close();
            return null;
          },
          (error: unknown) => error,
        );
        expect(refused).toBeInstanceOf(Error);
        expect((refused as Error).name).toBe('StartupError');
        expect((refused as Error).message).toMatch(
          /ADMIN_USERNAME "boss9" names an existing account whose password is not ADMIN_PASSWORD/,
        );
        expect((refused as Error).message).toMatch(/Choose another ADMIN_USERNAME/);

        // Nothing changed: the squatter is still a plain user.
        const again = await startApp(ROOMY_LIMITS, { databaseUrl: db.url });
        try {
          const row = await again.prisma.user.findUniqueOrThrow({ where: { id: squatter.id } });
          expect(row.roles).toEqual(['user']);
          const token = await login(again, 'Boss9', 'attacker password 1');
          expect(sortedRoles(token.accessToken)).toEqual(['user']);
        } finally {
          await again.close();
        }
      } finally {
        await db.drop();
      }
    },
    TWO_APPS * 2,
  );

  it(
    'promotes an existing ADMIN_USERNAME account whose password is ADMIN_PASSWORD',
    async () => {
      const db = await persistentDatabase();
      try {
        const first = await startApp(ROOMY_LIMITS, { databaseUrl: db.url });
        try {
          await signup(first, { username: 'Boss9', password: ADMIN.ADMIN_PASSWORD });
        } finally {
          await first.close();
        }
        const second = await startApp({ ...ENV, ADMIN_USERNAME: 'boss9' }, { databaseUrl: db.url });
        try {
          const token = await login(second, 'boss9', ADMIN.ADMIN_PASSWORD);
          expect(sortedRoles(token.accessToken)).toEqual(['admin', 'user']);
        } finally {
          await second.close();
        }
      } finally {
        await db.drop();
      }
    },
    TWO_APPS,
  );
});
