import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RevocationService } from '../../src/tokens/revocation.service.js';
import { ROOMY_LIMITS, onPostgres } from '../support/env.js';
import { login } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { ADMIN, FORM, GRANT, basic, form, type Created } from './oauth-helpers.js';

/**
 * A revocation is announced (and refused in memory) before its transaction commits. A token
 * request that sees the announcement waits until a token signed now would not be born
 * revoked (at most a second) and reads the client again; when the revoking transaction
 * commits later than that, the second read must wait for it, or it signs from the rows of
 * before the change a token dated after the revocation, which nothing would refuse. The
 * commit is held back here by a lock on the revocation's row, taken by another connection.
 */
describe.runIf(onPostgres)('a client token requested while its revocation is still committing', () => {
  let t: TestApp;
  let db: pg.Client;

  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, ...ADMIN });
    db = new pg.Client({ connectionString: t.databaseUrl });
    await db.connect();
  });
  afterAll(async () => {
    await db?.end();
    await t?.close();
  });

  it('is refused once the disable commits, however late', async () => {
    const admin = (await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD)).auth;
    const c = (
      await t.http
        .post('/oauth/clients')
        .set(admin)
        .send({ name: 'slow-commit', allowedScopes: ['resources:read'] })
        .expect(201)
    ).body as Created;
    const tokenRequest = () =>
      t.http
        .post('/oauth/token')
        .set('Content-Type', FORM)
        .set(basic(c.client.clientId, c.secret.value))
        .send(form(GRANT));
    expect((await tokenRequest()).status).toBe(200);

    const key = `sid:${c.secret.id}`;
    await db.query(`INSERT INTO revocations (key, not_before, expires_at) VALUES ($1, 0, now() + interval '1 hour')`, [
      key,
    ]);
    await db.query('BEGIN');
    await db.query('SELECT key FROM revocations WHERE key = $1 FOR UPDATE', [key]);
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await db.query('COMMIT');
    };
    try {
      // The disable locks the client, announces the revocation, then waits on the row.
      const disable = t.http
        .patch(`/oauth/clients/${c.client.id}`)
        .set(admin)
        .send({ disabled: true })
        .then((r) => r);
      const revocation = t.app.get(RevocationService);
      const start = Date.now();
      while (!revocation.revokedSince(key, Date.now())) {
        if (Date.now() - start > 5000) throw new Error('the disable was not announced');
        await new Promise((r) => setTimeout(r, 10));
      }
      const during = tokenRequest().then((r) => r);
      // Longer than the signer's wait for the not-before (at most about a second).
      await new Promise((r) => setTimeout(r, 2500));
      await release();
      expect((await disable).status).toBe(200);
      const res = await during;
      expect({ status: res.status, error: res.body.error }).toEqual({ status: 401, error: 'invalid_client' });
    } finally {
      await release();
    }
  });
});
