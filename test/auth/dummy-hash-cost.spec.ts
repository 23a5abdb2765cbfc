import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PasswordHasher } from '../../src/accounts/password-hasher.service.js';
import { ROOMY_LIMITS, onPostgres } from '../support/env.js';
import { signup } from '../support/factories.js';
import { unknownToWrongPasswordRatio } from '../support/login-timing.js';
import { freshDatabase, startApp } from '../support/test-app.js';

/**
 * A database that outlives one app: a new PostgreSQL database with TEST_DATABASE_URL,
 * else an embedded PGlite directory (one app at a time).
 */
async function persistentDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  if (onPostgres) return freshDatabase();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-dummy-cost-'));
  return { url: `file:${dir}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
}

const ENV = { ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '10000' };

describe('the dummy hash for unknown users after BCRYPT_COST is raised', () => {
  it('costs what the stored hashes cost, so an unknown user takes about as long as a wrong password', async () => {
    const db = await persistentDatabase();
    try {
      // Accounts made at cost 4...
      const first = await startApp({ ...ENV, BCRYPT_COST: '4' }, { databaseUrl: db.url });
      const users = [];
      try {
        for (let i = 0; i < 3; i++) users.push(await signup(first));
      } finally {
        await first.close();
      }
      // ...then the server restarted with BCRYPT_COST=10.
      const second = await startApp({ ...ENV, BCRYPT_COST: '10' }, { databaseUrl: db.url });
      try {
        const hasher = second.app.get(PasswordHasher);
        expect(hasher.dummyHashCost).toBe(4);

        // At cost 10 against 4 the unknown side did 64 times the bcrypt work (10 ms vs 116 ms in
        // the report; 4x medians here on a busy machine); it is ~1x now. A loose bound.
        const { ratio } = await unknownToWrongPasswordRatio(second, users[0]!.username, 9);
        expect(ratio).toBeLessThan(2);

        // Once the accounts have logged in, their hashes are upgraded to cost 10, and so is the dummy.
        for (const user of users)
          await second.http.post('/auth/login').send({ username: user.username, password: user.password }).expect(200);
        const costs = await second.prisma.user.findMany({ select: { passwordHash: true } });
        expect(costs.map((c) => c.passwordHash?.slice(0, 7))).toEqual(['$2b$10$', '$2b$10$', '$2b$10$']);
        await hasher.refreshDummyHash();
        expect(hasher.dummyHashCost).toBe(10);
      } finally {
        await second.close();
      }
    } finally {
      await db.drop();
    }
  }, 120_000);

  it('is made at BCRYPT_COST when there are no users yet', async () => {
    const t = await startApp({ ...ENV, BCRYPT_COST: '5' });
    try {
      expect(t.app.get(PasswordHasher).dummyHashCost).toBe(5);
    } finally {
      await t.close();
    }
  });
});
