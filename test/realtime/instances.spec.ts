import { randomInt, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Redis } from 'ioredis';
import { EventBus } from '../../src/events/event-bus.js';
import { CHANGE_WAIT_TIMEOUT_MS, RealtimeGateway } from '../../src/realtime/realtime.gateway.js';
import { REDIS } from '../../src/redis/redis.module.js';
import { TenantAccessService } from '../../src/tenants/tenant-access.service.js';
import { TenantsRepository } from '../../src/tenants/tenants.repository.js';
import { ROOMY_LIMITS, TEST_REDIS_URL, onPostgres } from '../support/env.js';
import { bearer, decodeJwt, refreshCookieOf, uniqueUsername } from '../support/factories.js';
import { es256KeyPair } from '../support/jwt.js';
import { redisProxy, type RedisProxy } from '../support/tcp-proxy.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { within } from '../support/within.js';
import { addMember, createTenant, createTenantResource, expectError } from '../tenants/tenant-helpers.js';
import { WsClient, listen } from './ws-helpers.js';

/**
 * Real-time connections across instances (contract v2 §F test 5, second case, and its
 * routing rule): two apps on one PostgreSQL database and one Redis, with the same signing
 * keys. A socket on B closes within 1 s of a sign-out on A, and events of changes made
 * through A reach their owner's sockets on B only. A reaches Redis through a proxy, which
 * takes Redis away from A alone (the tenant tests). Every request comes from this run's own
 * client address (TRUST_PROXY), so that per-address counters left in the shared Redis by
 * other runs never meet this one's.
 */
describe.runIf(onPostgres)('WebSockets across two instances (PostgreSQL + Redis)', () => {
  const keys = es256KeyPair();
  const clientIp = `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
  const env = { ...ROOMY_LIMITS, REDIS_URL: TEST_REDIS_URL, JWT_KEYS: keys.pem, TRUST_PROXY: 'true' };
  const PASSWORD = 'correct horse battery';
  let proxy: RedisProxy;
  let a: TestApp;
  let b: TestApp;
  let urlB: string;
  const clients: WsClient[] = [];
  /** How many times A's Redis client has become ready. */
  let readies = 0;

  beforeAll(async () => {
    proxy = await redisProxy(TEST_REDIS_URL);
    a = await startApp({ ...env, REDIS_URL: proxy.url });
    b = await startApp(env, { databaseUrl: a.databaseUrl });
    urlB = await listen(b);
    a.app.get<Redis>(REDIS).on('ready', () => readies++);
  });
  afterAll(async () => {
    await b?.close();
    await a?.close(); // drops the database last
    await proxy?.close();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) if (!c.closed) c.ws.terminate();
    await redisBackOnA();
  });

  /**
   * Redis back for A: its client reconnects by itself (and sends again the command it had
   * in flight when cut off, which is why a second cut waits for this). After a cut the client
   * may not have seen its connection close yet: a reconnection is waited for.
   */
  async function redisBackOnA(): Promise<void> {
    const before = readies;
    const cut = proxy.stopped;
    proxy.start();
    const redis = a.app.get<Redis>(REDIS);
    await within(15_000, async () => (!cut || readies > before) && redis.status === 'ready');
  }

  const post = (app: TestApp, path: string) => app.http.post(path).set('X-Forwarded-For', clientIp);

  interface Session {
    id: string;
    username: string;
    accessToken: string;
    refreshToken: string;
    auth: { Authorization: string };
  }
  const session = (id: string, username: string, res: { body: { accessToken: string }; headers: object }) => ({
    id,
    username,
    accessToken: res.body.accessToken,
    refreshToken: refreshCookieOf(res as { headers: Record<string, unknown> })!,
    auth: bearer(res.body.accessToken),
  });
  async function signupOnA(): Promise<Session> {
    const username = uniqueUsername('rt');
    const res = await post(a, '/auth/signup').send({ username, password: PASSWORD }).expect(201);
    return session(res.body.user.id as string, username, res);
  }
  async function loginOnA(u: Session): Promise<Session> {
    const res = await post(a, '/auth/login').send({ username: u.username, password: PASSWORD }).expect(200);
    return session(u.id, u.username, res);
  }
  const sidOf = (token: string) => decodeJwt(token).payload.sid as string;

  /** An authenticated socket on B. */
  async function onB(token: string): Promise<WsClient> {
    const c = await WsClient.open(urlB, { headers: { 'X-Forwarded-For': clientIp } });
    clients.push(c);
    await c.authenticate(token);
    return c;
  }

  /** A round trip: the socket is open and has every frame sent to it before (WsClient.probe). */
  const probe = (c: WsClient): Promise<void> => c.probe();

  it('closes a socket on B with 4410 within 1 s of a logout on A; B hears session.created/revoked', async () => {
    const s1 = await signupOnA();
    const w1 = await onB(s1.accessToken);
    const s2 = await loginOnA(s1);
    expect((await w1.next('session.created')).data).toMatchObject({ id: sidOf(s2.accessToken) });
    const w2 = await onB(s2.accessToken);

    await post(a, '/auth/logout').set(s1.auth).expect(204);
    expect(await w1.closing(1000)).toEqual({ code: 4410, reason: 'SESSION_REVOKED' });
    expect((await w2.next('session.revoked')).data).toEqual({ id: sidOf(s1.accessToken) });
    await probe(w2);
  });

  it("sends a resource changed through A to the owner's socket on B, and not to another user's on B", async () => {
    const owner = await signupOnA();
    const other = await signupOnA();
    const w = await onB(owner.accessToken);
    const bystander = await onB(other.accessToken);

    const created = await a.http.post('/resources').set(owner.auth).send({ title: 'from A', visibility: 'public' });
    expect(created.status).toBe(201);
    expect((await w.next('resource.created')).data).toEqual(created.body);
    const updated = await a.http
      .patch(`/resources/${created.body.id}`)
      .set(owner.auth)
      .send({ body: 'edited on A' })
      .expect(200);
    expect((await w.next('resource.updated')).data).toEqual(updated.body);
    await a.http.delete(`/resources/${created.body.id}`).set(owner.auth).expect(204);
    expect((await w.next('resource.deleted')).data).toEqual({ id: created.body.id });

    // B sent the bystander everything meant for it before answering this round trip.
    await probe(bystander);
    expect(bystander.frames.filter((f) => f.event.startsWith('resource.'))).toEqual([]);
  });

  it('closes the sockets on B with 4410 within 1 s of the account being deleted on A', async () => {
    const s1 = await signupOnA();
    const s2 = await loginOnA(s1);
    const sockets = [await onB(s1.accessToken), await onB(s2.accessToken)];
    await a.http
      .delete('/users/me')
      .set(s1.auth)
      .set('X-Forwarded-For', clientIp)
      .send({ password: PASSWORD })
      .expect(204);
    const closes = await Promise.all(sockets.map((s) => s.closing(1000)));
    for (const close of closes) expect(close).toEqual({ code: 4410, reason: 'SESSION_REVOKED' });
  });

  describe('tenant access changed on A while A loses Redis', () => {
    /** Owner O and member M (role `member`) of a tenant made on A; M's socket on B subscribed to it. */
    async function team(): Promise<{ tenantId: string; o: Session; m: Session; w: WsClient }> {
      const [o, m] = [await signupOnA(), await signupOnA()];
      const tenant = await createTenant(a, o);
      await addMember(a, tenant.id, o, m, ['member']);
      const w = await onB(m.accessToken);
      w.send({ event: 'subscribe', data: { topics: [`tenant:${tenant.id}`] }, id: 'sub' });
      expect((await w.next('subscribed')).id).toBe('sub');
      return { tenantId: tenant.id, o, m, w };
    }

    /** Whether a tenant resource created on B by `by` now reaches the socket (after a round trip). */
    async function reaches(w: WsClient, by: Session, tenantId: string): Promise<boolean> {
      const r = await createTenantResource(b, by.auth, tenantId);
      await probe(w);
      return w.all('resource.created').some((f) => f.data.id === r.id);
    }

    /** Defines, on A, the custom role `lookers`: members:read without resources:read. */
    async function defineLookers(tenantId: string, o: Session): Promise<void> {
      await a.http
        .put(`/tenants/${tenantId}/roles/lookers`)
        .set(o.auth)
        .send({ permissions: ['members:read'] })
        .expect(200);
    }

    it("a removal whose announcement after the commit is lost still ends the member's subscription on B", async () => {
      const { tenantId, o, m, w } = await team();
      expect(await reaches(w, o, tenantId)).toBe(true);

      // Redis goes away from A when A announces the committed removal: only the announcement
      // made inside the transaction reached B.
      proxy.cutOn(/tenants\.access_changed/);
      await a.http.delete(`/tenants/${tenantId}/members/${m.id}`).set(o.auth).expect(204);
      expect(proxy.stopped).toBe(true);

      expect((await w.next('tenant.member_removed')).data).toEqual({ tenantId, userId: m.id });
      expect(await reaches(w, o, tenantId)).toBe(false);
      expect(w.closed).toBeNull();

      // Reconnected, A's client sends the lost announcement again, late: B does not tell the
      // member twice. The member added back is told after it (A's messages keep their order).
      await redisBackOnA();
      await addMember(a, tenantId, o, m, ['member']);
      expect((await w.next('tenant.member_added')).data).toMatchObject({ tenantId, member: { userId: m.id } });
      expect(w.all('tenant.member_removed')).toHaveLength(1);
    });

    it('a role change and a tenant deletion whose announcements are lost act on B too', async () => {
      const { tenantId, o, m, w } = await team();
      await defineLookers(tenantId, o);
      proxy.cutOn(/tenants\.access_changed/);
      await a.http
        .patch(`/tenants/${tenantId}/members/${m.id}`)
        .set(o.auth)
        .send({ roles: ['lookers'] })
        .expect(200);
      expect(proxy.stopped).toBe(true);
      // The re-check on B runs once the change has committed; no event tells when it is done.
      let reached = true;
      for (let i = 0; i < 8 && reached; i++) reached = await reaches(w, o, tenantId);
      expect(reached).toBe(false);

      // The owner's own socket on B, subscribed: told when the tenant is deleted on A.
      await redisBackOnA();
      const wo = await onB(o.accessToken);
      wo.send({ event: 'subscribe', data: { topics: [`tenant:${tenantId}`] }, id: 'sub-o' });
      expect((await wo.next('subscribed')).id).toBe('sub-o');
      const slug = (await a.http.get(`/tenants/${tenantId}`).set(o.auth).expect(200)).body.slug as string;
      proxy.cutOn(/tenants\.access_changed/);
      await a.http.delete(`/tenants/${tenantId}`).set(o.auth).send({ confirm: slug }).expect(204);
      expect(proxy.stopped).toBe(true);
      expect((await wo.next('tenant.member_removed')).data).toEqual({ tenantId, userId: o.id });
    });

    it("holds the tenant's events for a member whose access is changing until B has read it again", async () => {
      const { tenantId, o, m, w } = await team();
      const db = new pg.Client({ connectionString: a.databaseUrl });
      await db.connect();
      const bus = b.app.get(EventBus);
      /**
       * A change of M's access in progress, as another instance makes it: the change's own
       * lock taken (TenantsRepository.holdChange), the change announced before the commit.
       * `change` runs inside the transaction, before the announcement.
       */
      const changing = async (change: () => Promise<unknown>) => {
        const changeId = randomUUID();
        await db.query('BEGIN');
        await db.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [changeId]);
        await change();
        bus.replay('tenants.access_changing', { tenantId, userId: m.id, changeId });
      };
      /** Meanwhile: a resource created through B, and a member added as another instance announces it. */
      const meanwhile = async () => {
        const resource = await createTenantResource(b, o.auth, tenantId);
        const member = { userId: randomUUID() };
        bus.replay('tenants.access_changed', { tenantId, userId: member.userId, change: 'member_added', member });
        await probe(w);
        return { resourceId: resource.id, memberId: member.userId };
      };
      const got = (ids: { resourceId: string; memberId: string }) => ({
        resource: w.all('resource.created').some((f) => f.data.id === ids.resourceId),
        member: w.all('tenant.member_added').some((f) => (f.data.member as { userId: string }).userId === ids.memberId),
      });
      /** The change commits: what happened meanwhile reaches M, in order. */
      const committed = async (ids: { resourceId: string; memberId: string }) => {
        await db.query('COMMIT');
        expect((await w.next('resource.created')).data.id).toBe(ids.resourceId);
        expect((await w.next('tenant.member_added')).data.member).toEqual({ userId: ids.memberId });
      };
      try {
        // M keeps the access: what happened meanwhile reaches M after the commit, in order.
        await changing(async () => undefined);
        const kept = await meanwhile();
        expect(got(kept)).toEqual({ resource: false, member: false });
        await committed(kept);

        // Another transaction waits for the tenant's row (a slow deletion, say) as the change
        // commits: the change's end is what B waits for, not that transaction's.
        const other = new pg.Client({ connectionString: a.databaseUrl });
        await other.connect();
        try {
          await other.query('BEGIN');
          // FOR NO KEY UPDATE: it blocks the wait on the row of the earlier design, and not
          // the resource inserted meanwhile (its foreign key's check).
          await other.query('SELECT id FROM tenants WHERE id = $1 FOR NO KEY UPDATE', [tenantId]);
          await changing(async () => undefined);
          const queued = await meanwhile();
          expect(got(queued)).toEqual({ resource: false, member: false });
          await committed(queued);
        } finally {
          await other.end();
        }

        // Still running after CHANGE_WAIT_TIMEOUT_MS (its instance frozen): the subscription
        // ends with an error, and nothing held is sent.
        await changing(async () => undefined);
        const stalled = await meanwhile();
        const error = await w.next('error', CHANGE_WAIT_TIMEOUT_MS + 5000);
        expect(error.data).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
        await db.query('ROLLBACK');
        await probe(w);
        expect(got(stalled)).toEqual({ resource: false, member: false });
        w.send({ event: 'subscribe', data: { topics: [`tenant:${tenantId}`] }, id: 'again' });
        expect((await w.next('subscribed')).id).toBe('again');

        // M removed: what happened meanwhile never reaches M.
        await changing(() =>
          db.query('DELETE FROM tenant_memberships WHERE tenant_id = $1 AND user_id = $2', [tenantId, m.id]),
        );
        const hidden = await meanwhile();
        await db.query('COMMIT');
        expect((await w.next('tenant.member_removed')).data).toEqual({ tenantId, userId: m.id });
        await probe(w);
        expect(got(hidden)).toEqual({ resource: false, member: false });
      } finally {
        await db.end();
      }
    });

    /**
     * Another instance gives M the role `lookers` (no resources:read) and commits late: B gives
     * up waiting (M's subscription ends with an error), M subscribes again as told (read before
     * the commit, with the old roles), `beforeCommit` runs, then the change commits. Its
     * announcement after the commit is the caller's to send, or not. Answers the change's id.
     */
    async function lateLookersChange(
      { tenantId, m, w }: { tenantId: string; m: Session; w: WsClient },
      beforeCommit: () => Promise<void> = async () => undefined,
    ): Promise<string> {
      const db = new pg.Client({ connectionString: a.databaseUrl });
      await db.connect();
      const changeId = randomUUID();
      try {
        await db.query('BEGIN');
        await db.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [changeId]);
        await db.query(`UPDATE tenant_memberships SET roles = '{lookers}' WHERE tenant_id = $1 AND user_id = $2`, [
          tenantId,
          m.id,
        ]);
        b.app.get(EventBus).replay('tenants.access_changing', { tenantId, userId: m.id, changeId });
        expect((await w.next('error', CHANGE_WAIT_TIMEOUT_MS + 5000)).data).toMatchObject({
          code: 'SERVICE_UNAVAILABLE',
        });
        w.send({ event: 'subscribe', data: { topics: [`tenant:${tenantId}`] }, id: 'again' });
        expect((await w.next('subscribed')).id).toBe('again');
        await beforeCommit();
        await db.query('COMMIT');
      } finally {
        await db.end();
      }
      return changeId;
    }

    it('a change that commits after B gave up waiting is read again at its announcement after the commit', async () => {
      const team1 = await team();
      const { tenantId, o, m, w } = team1;
      await defineLookers(tenantId, o);
      const changeId = await lateLookersChange(team1);
      b.app
        .get(EventBus)
        .replay('tenants.access_changed', { tenantId, userId: m.id, change: 'roles_changed', changeId });
      // The re-check runs after the announcement; no event tells when it is done.
      let reached = true;
      for (let i = 0; i < 8 && reached; i++) reached = await reaches(w, o, tenantId);
      expect(reached).toBe(false);
    });

    it('a change that commits after B gave up waiting, whose announcement after the commit is lost, is read again once it has ended', async () => {
      const team1 = await team();
      const { tenantId, o, w } = team1;
      await defineLookers(tenantId, o);
      // The announcement after the commit never comes (that instance lost Redis as it committed).
      await lateLookersChange(team1, async () => {
        expect(await reaches(w, o, tenantId)).toBe(true);
      });
      // B waits for the change again in the background (first after 1 s) and, once it has
      // ended, reads M's permissions again; no event tells when it is done.
      const deadline = Date.now() + 15_000;
      let reached = true;
      while (reached && Date.now() < deadline) {
        reached = await reaches(w, o, tenantId);
        // One probe a second: the socket may send 30 messages in 10 s (WS_MESSAGE_RATE_LIMIT).
        if (reached) await sleep(1000);
      }
      expect(reached).toBe(false);
      expect(w.closed).toBeNull();
    }, 30_000);

    it('follows up one change per tenant after waits gave up: the latest of the changes heard, asked without waiting', async () => {
      const { tenantId, m, w } = await team();
      const access = b.app.get(TenantAccessService);
      const lockTimeout = Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03' });
      const fail = vi.spyOn(access, 'awaitChange').mockRejectedValue(lockTimeout);
      const asked = vi.spyOn(access, 'hasChangeEnded');
      const bus = b.app.get(EventBus);
      const changes = Array.from({ length: 20 }, () => randomUUID());
      try {
        for (const changeId of changes) bus.replay('tenants.access_changing', { tenantId, userId: m.id, changeId });
        expect((await w.next('error')).data).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
        // The first follow-up asks after 1 s: once, for the latest change, not once per change.
        await within(5000, async () => asked.mock.calls.length > 0);
        await sleep(500);
        expect(asked.mock.calls.map(([changeId]) => changeId)).toEqual([changes.at(-1)]);
      } finally {
        fail.mockRestore();
        asked.mockRestore();
      }
    });

    it('a wait whose database connection never answers gives up too, and frees its place for other tenants', async () => {
      // Four tenants, one more than the waits B runs at once (MAX_CHANGE_WAITS): each wait
      // hangs as on a connection cut off without a word (lock_timeout cannot end it).
      const teams = [await team(), await team(), await team(), await team()];
      const access = b.app.get(TenantAccessService);
      const hang = vi.spyOn(access, 'awaitChange').mockImplementation(() => new Promise<void>(() => undefined));
      const bus = b.app.get(EventBus);
      const announce = ({ tenantId, m }: (typeof teams)[number]) =>
        bus.replay('tenants.access_changing', { tenantId, userId: m.id, changeId: randomUUID() });
      try {
        for (const each of teams.slice(0, 3)) announce(each);
        // The fourth tenant's change queues behind them.
        announce(teams[3]!);
        for (const { w } of teams.slice(0, 3)) {
          expect((await w.next('error', CHANGE_WAIT_TIMEOUT_MS + 5000)).data).toMatchObject({
            code: 'SERVICE_UNAVAILABLE',
          });
        }
      } finally {
        hang.mockRestore();
      }
      // Its turn came once the others gave up; its own wait hangs too (begun before the
      // restore), so it ends the same way: the queue moved.
      expect((await teams[3]!.w.next('error', CHANGE_WAIT_TIMEOUT_MS + 5000)).data).toMatchObject({
        code: 'SERVICE_UNAVAILABLE',
      });
      // With the database answering again, a change is waited for and read as usual.
      const { tenantId, o, m, w } = teams[0]!;
      w.send({ event: 'subscribe', data: { topics: [`tenant:${tenantId}`] }, id: 'again' });
      expect((await w.next('subscribed')).id).toBe('again');
      bus.replay('tenants.access_changing', { tenantId, userId: m.id, changeId: randomUUID() });
      const r = await createTenantResource(b, o.auth, tenantId);
      expect((await w.next('resource.created')).data.id).toBe(r.id);
    });

    it('a wait on a database connection gone silent is given up, and the connection leaves the pool', async () => {
      // A third instance reaching PostgreSQL through a proxy that can stop its answers.
      const pgProxy = await redisProxy(a.databaseUrl);
      const through = new URL(a.databaseUrl);
      through.port = new URL(pgProxy.url).port;
      const c = await startApp(env, { databaseUrl: through.toString() });
      try {
        const tenants = c.app.get(TenantsRepository);
        const pool = c.prisma.pgPool()!;
        let removed = 0;
        pool.on('remove', () => removed++);
        pgProxy.mute();
        const started = Date.now();
        await expect(tenants.awaitChange(randomUUID(), CHANGE_WAIT_TIMEOUT_MS, 1000)).rejects.toThrow(/timeout/);
        expect(Date.now() - started).toBeLessThan(CHANGE_WAIT_TIMEOUT_MS);
        // Closed and forgotten by the pool, not given back to be handed out again.
        await within(5000, async () => removed === 1);
        pgProxy.unmute();
        await c.http.get('/health').expect(200);
      } finally {
        await c.close();
        await pgProxy.close();
      }
    });

    it("re-checks a subscriber's permissions on B once per role change made on A", async () => {
      const { tenantId, o, m, w } = await team();
      // The gateway's own re-check (a membership read may be repeated within it, when
      // another announcement of the change arrives during the read).
      const gateway = b.app.get(RealtimeGateway) as unknown as {
        recheck(conns: unknown[], tenant: string): Promise<void>;
      };
      const recheck = gateway.recheck.bind(gateway);
      let rechecks = 0;
      const spy = vi.spyOn(gateway, 'recheck').mockImplementation((conns, tenant) => {
        if (tenant === tenantId) rechecks++;
        return recheck(conns, tenant);
      });
      try {
        await a.http
          .patch(`/tenants/${tenantId}/members/${m.id}`)
          .set(o.auth)
          .send({ roles: ['admin'] })
          .expect(200);
        // A's messages arrive in order: once M's own resource created after it is on B's
        // socket, B has handled the change's second announcement.
        const mine = await a.http.post('/resources').set(m.auth).send({ title: 'after' }).expect(201);
        expect((await w.next('resource.created')).data.id).toBe(mine.body.id);
        await within(5000, async () => rechecks >= 1);
        await probe(w);
        expect(rechecks).toBe(1);
      } finally {
        spy.mockRestore();
      }
    });

    it('a removal on A while Redis is away from A answers 503 and changes nothing', async () => {
      const { tenantId, o, m, w } = await team();
      proxy.stop();
      const res = await a.http.delete(`/tenants/${tenantId}/members/${m.id}`).set(o.auth);
      expectError(res, 503, 'SERVICE_UNAVAILABLE');
      await b.http.get(`/tenants/${tenantId}`).set(m.auth).expect(200);
      expect(await reaches(w, o, tenantId)).toBe(true);
    });
  });
});
