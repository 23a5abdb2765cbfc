import { randomInt } from 'node:crypto';
import pg from 'pg';
import type { Test } from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_REDIS_URL, onPostgres } from '../support/env.js';
import { bearer, refreshCookieOf } from '../support/factories.js';
import { FakeIdp } from '../support/fake-idp.js';
import { es256KeyPair } from '../support/jwt.js';
import { IdentitiesRepository } from '../../src/identities/identities.repository.js';
import { redisProxy, type RedisProxy } from '../support/tcp-proxy.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { within } from '../support/within.js';
import { ADMIN, BASE_ENV, expectBearerRejected, expectError, expectOk, uniqueSubject } from './accounts-helpers.js';

/**
 * Contract v2 §D tests 9 and 10 "on both instances": two instances on one PostgreSQL
 * database and one Redis. Each instance caches the link of an identity to its user; a
 * disable, a role change, a deletion, a link or an unlink on one instance must act on the
 * other's very next request, however warm its cache. An external token is exchanged once
 * across all instances.
 *
 * Every request comes from this run's own client address (TRUST_PROXY=true), so that the
 * per-IP counters this run leaves in the shared Redis cannot meet another run's; subjects
 * and user names are unique. Nothing global in Redis is flushed. B reaches Redis through a
 * proxy that can make what it hears from there late.
 */
describe.runIf(onPostgres)('federated accounts on two instances sharing PostgreSQL and Redis', () => {
  const keys = es256KeyPair();
  const clientIp = `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
  let idp: FakeIdp;
  let locked: FakeIdp;
  let a: TestApp;
  let b: TestApp;
  let proxy: RedisProxy;

  beforeAll(async () => {
    idp = await FakeIdp.start();
    locked = await FakeIdp.start({ path: '/realms/locked' });
    const env = {
      ...BASE_ENV,
      REDIS_URL: TEST_REDIS_URL,
      JWT_KEYS: keys.pem,
      TRUST_PROXY: 'true',
      // No retention job: its DELETE of audit events would wait for a test's lock too.
      AUDIT_RETENTION: '0',
      FEDERATION_ISSUERS: JSON.stringify([
        idp.entry(),
        locked.entry({ name: 'locked-idp', provisioning: 'linked-only' }),
      ]),
    };
    proxy = await redisProxy(TEST_REDIS_URL);
    a = await startApp(env);
    b = await startApp({ ...env, REDIS_URL: proxy.url }, { databaseUrl: a.databaseUrl });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close(); // drops the database last
    await proxy?.close();
    await idp?.close();
    await locked?.close();
  });

  const from = (req: Test): Test => req.set('X-Forwarded-For', clientIp);
  const on = (app: TestApp) => ({
    get: (path: string) => from(app.http.get(path)),
    post: (path: string) => from(app.http.post(path)),
    patch: (path: string) => from(app.http.patch(path)),
    delete: (path: string) => from(app.http.delete(path)),
  });
  const name = (app: TestApp) => (app === a ? 'A' : 'B');

  interface Local {
    id: string;
    username: string;
    password: string;
    auth: { Authorization: string };
  }
  async function signupOn(app: TestApp): Promise<Local> {
    const username = `fedmi_${randomInt(1e9)}`;
    const password = 'correct horse battery';
    const res = await on(app).post('/auth/signup').send({ username, password });
    expectOk(res, 201);
    return { id: res.body.user.id as string, username, password, auth: bearer(res.body.accessToken as string) };
  }
  async function adminOn(app: TestApp): Promise<{ Authorization: string }> {
    const res = await on(app)
      .post('/auth/login')
      .send({ username: ADMIN.ADMIN_USERNAME, password: ADMIN.ADMIN_PASSWORD });
    expectOk(res, 200);
    return bearer(res.body.accessToken as string);
  }
  /** A token of `issuer` for `sub`, valid an hour, issued now. */
  const tokenFor = (sub: string, issuer = idp) => issuer.sign({ sub }, { ttl: 3600 });
  /** Links `sub` of `idp` to `user` on `app` by proof (201); answers the identity id. */
  async function linkOn(app: TestApp, user: Local, sub: string): Promise<string> {
    const res = await on(app)
      .post('/users/me/identities')
      .set(user.auth)
      .send({ subjectToken: await idp.sign({ sub }), password: user.password });
    expectOk(res, 201);
    return res.body.id as string;
  }
  /** The user id an IdP token maps to on `app` (expects 200). */
  async function whoOn(app: TestApp, token: string): Promise<string> {
    const res = await on(app).get('/users/me').set(bearer(token));
    expect({ on: name(app), status: res.status, body: res.status === 200 ? undefined : res.text }).toEqual({
      on: name(app),
      status: 200,
      body: undefined,
    });
    return res.body.id as string;
  }
  /** Uses the token on both instances, three times each: both caches hold the link. */
  async function warm(token: string, userId: string): Promise<void> {
    for (const app of [a, b]) for (let i = 0; i < 3; i++) expect(await whoOn(app, token)).toBe(userId);
  }

  for (const [src, dst] of [
    ['A', 'B'],
    ['B', 'A'],
  ] as const) {
    it(`a linked user disabled on ${src} is refused on ${dst} at the very next request, and accepted once enabled`, async () => {
      const here = src === 'A' ? a : b;
      const there = dst === 'A' ? a : b;
      const user = await signupOn(here);
      const sub = uniqueSubject('disable');
      await linkOn(here, user, sub);
      const token = await tokenFor(sub);
      await warm(token, user.id);

      const admin = await adminOn(here);
      expectOk(await on(here).patch(`/users/${user.id}`).set(admin).send({ disabled: true }), 200);
      expectBearerRejected(await on(there).get('/users/me').set(bearer(token)), 'account disabled');
      expectBearerRejected(await on(here).get('/users/me').set(bearer(token)), 'account disabled');
      expectError(
        await on(there)
          .post('/auth/federated/session')
          .send({ subjectToken: await idp.sign({ sub }) }),
        403,
        'ACCOUNT_DISABLED',
      );

      expectOk(await on(here).patch(`/users/${user.id}`).set(admin).send({ disabled: false }), 200);
      expect(await whoOn(there, token)).toBe(user.id);
      expect(await whoOn(here, token)).toBe(user.id);
    });

    it(`an identity unlinked on ${src} no longer maps to its user on ${dst} at the very next request`, async () => {
      const here = src === 'A' ? a : b;
      const there = dst === 'A' ? a : b;
      const user = await signupOn(here);
      const sub = uniqueSubject('unlink');
      const identityId = await linkOn(here, user, sub);
      const token = await tokenFor(sub);
      await warm(token, user.id);

      expectOk(await on(here).delete(`/users/me/identities/${identityId}`).set(user.auth), 204);
      const fresh = await whoOn(there, token);
      expect(fresh).not.toBe(user.id);
      expect(await whoOn(here, token)).toBe(fresh);
      const row = await a.prisma.externalIdentity.findFirstOrThrow({ where: { issuer: idp.issuer, subject: sub } });
      expect(row.userId).toBe(fresh);
    });

    it(`linked-only: an admin unlink on ${src} refuses the sub on ${dst} at once; a link on ${src} admits it at once`, async () => {
      const here = src === 'A' ? a : b;
      const there = dst === 'A' ? a : b;
      const user = await signupOn(here);
      const admin = await adminOn(here);
      const sub = uniqueSubject('locked');
      const token = await tokenFor(sub, locked);
      // A refusal is not remembered: linking on one instance admits the sub on the other at once.
      expectError(await on(there).get('/users/me').set(bearer(token)), 403, 'FEDERATED_USER_NOT_PROVISIONED');
      const linked = await on(here)
        .post(`/users/${user.id}/identities`)
        .set(admin)
        .send({ issuer: locked.issuer, subject: sub });
      expectOk(linked, 201);
      expect(await whoOn(there, token)).toBe(user.id);
      await warm(token, user.id);

      expectOk(
        await on(here)
          .delete(`/users/${user.id}/identities/${linked.body.id as string}`)
          .set(admin),
        204,
      );
      expectError(await on(there).get('/users/me').set(bearer(token)), 403, 'FEDERATED_USER_NOT_PROVISIONED');
      expectError(await on(here).get('/users/me').set(bearer(token)), 403, 'FEDERATED_USER_NOT_PROVISIONED');
    });
  }

  it('an unlink on A acts on B at the very next request though B hears announcements 300 ms late', async () => {
    const user = await signupOn(a);
    const sub = uniqueSubject('late');
    const identityId = await linkOn(a, user, sub);
    const token = await tokenFor(sub);
    await warm(token, user.id);

    // A's unlink is held before its commit (its audit row waits for this lock) for longer
    // than B's delay: the announcement made in its transaction reaches B before the commit.
    // The one made after the commit alone would reach B 300 ms after the answer.
    const db = new pg.Client({ connectionString: a.databaseUrl });
    await db.connect();
    const lockWaits = async () => {
      const { rows } = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
      );
      return rows[0]!.n;
    };
    proxy.delaySubscribers(300);
    try {
      await db.query('BEGIN');
      await db.query('LOCK TABLE audit_events IN SHARE MODE');
      const unlinked = on(a)
        .delete(`/users/me/identities/${identityId}`)
        .set(user.auth)
        .then((r) => r);
      await within(5000, async () => (await lockWaits()) === 1);
      await new Promise((r) => setTimeout(r, 600));
      // A request on B meanwhile no longer finds the link in B's cache: its read waits for the
      // unlink (on the account's and the identity's locks), then sees it: the sub starts over.
      const during = whoOn(b, token);
      await within(5000, async () => (await lockWaits()) === 2);
      await db.query('COMMIT');
      expectOk(await unlinked, 204);
      const fresh = await during;
      expect(fresh).not.toBe(user.id);
      expect(await whoOn(b, token)).toBe(fresh);
      expect(await whoOn(a, token)).toBe(fresh);
    } finally {
      proxy.delaySubscribers(0);
      await new Promise((r) => setTimeout(r, 400)); // what is still on its way reaches B
      await db.query('ROLLBACK').catch(() => undefined);
      await db.end();
    }
  });

  it('a link read while an unlink holds the account (before it deletes) waits, then finds nothing: no deadlock', async () => {
    const user = await signupOn(a);
    const sub = uniqueSubject('order');
    await linkOn(a, user, sub);
    // What the unlink does, by hand: the account's lock, a pause, then the identity's row.
    const db = new pg.Client({ connectionString: a.databaseUrl });
    await db.connect();
    try {
      await db.query('BEGIN');
      await db.query('SELECT id FROM users WHERE id = $1 FOR UPDATE', [user.id]);
      const read = b.app.get(IdentitiesRepository).findLink(idp.issuer, sub);
      await new Promise((r) => setTimeout(r, 200));
      await db.query('DELETE FROM external_identities WHERE issuer = $1 AND subject = $2', [idp.issuer, sub]);
      await db.query('COMMIT');
      expect(await read).toBeNull();
    } finally {
      await db.query('ROLLBACK').catch(() => undefined);
      await db.end();
    }
  });

  it('a role change on A acts on the federated bearer token on B at once', async () => {
    const user = await signupOn(a);
    const sub = uniqueSubject('roles');
    await linkOn(a, user, sub);
    const token = await tokenFor(sub);
    await warm(token, user.id);
    expectError(await on(b).get('/users').set(bearer(token)), 403, 'INSUFFICIENT_ROLE');

    const admin = await adminOn(a);
    expectOk(
      await on(a)
        .patch(`/users/${user.id}`)
        .set(admin)
        .send({ roles: ['user', 'admin'] }),
      200,
    );
    expectOk(await on(b).get('/users').set(bearer(token)), 200);
    expectOk(
      await on(b)
        .patch(`/users/${user.id}`)
        .set(admin)
        .send({ roles: ['user'] }),
      200,
    );
    expectError(await on(a).get('/users').set(bearer(token)), 403, 'INSUFFICIENT_ROLE');
    expectError(await on(b).get('/users').set(bearer(token)), 403, 'INSUFFICIENT_ROLE');
  });

  it('an account deleted on A is not served from the cache of B: the sub starts over', async () => {
    const sub = uniqueSubject('deleted');
    const token = await tokenFor(sub);
    const userId = await whoOn(b, token);
    await warm(token, userId);
    const res = await on(a)
      .post('/auth/federated/session')
      .send({ subjectToken: await idp.sign({ sub }) });
    expectOk(res, 200);
    expect(res.body.user.id).toBe(userId);
    const session = bearer(res.body.accessToken as string);
    expectOk(
      await on(a)
        .delete('/users/me')
        .set(session)
        .send({ confirm: res.body.user.username as string }),
      204,
    );

    const again = await whoOn(b, token);
    expect(again).not.toBe(userId);
    expect(await a.prisma.user.findUnique({ where: { id: userId } })).toBeNull();
  });

  it('a token exchanged on A is refused on B: 401 FEDERATED_TOKEN_REUSED', async () => {
    const sub = uniqueSubject('reuse');
    const token = await idp.sign({ sub });
    const first = await on(a).post('/auth/federated/session').send({ subjectToken: token });
    expectOk(first, 200);
    expect(refreshCookieOf(first)).toBeDefined();
    expectError(
      await on(b).post('/auth/federated/session').send({ subjectToken: token }),
      401,
      'FEDERATED_TOKEN_REUSED',
    );
    expectError(
      await on(a).post('/auth/federated/session').send({ subjectToken: token }),
      401,
      'FEDERATED_TOKEN_REUSED',
    );
    // Also when both instances get it at the same moment: exactly one session.
    const raced = await idp.sign({ sub });
    const answers = await Promise.all(
      [a, b, a, b].map((app) => on(app).post('/auth/federated/session').send({ subjectToken: raced })),
    );
    expect(answers.map((r) => r.status).sort((x, y) => x - y)).toEqual([200, 401, 401, 401]);
    for (const r of answers.filter((x) => x.status === 401)) expect(r.body.code).toBe('FEDERATED_TOKEN_REUSED');
  });
});
