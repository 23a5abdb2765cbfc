import { randomInt } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS, TEST_REDIS_URL, onPostgres } from '../support/env.js';
import { bearer, decodeJwt, refreshCookieOf, uniqueUsername } from '../support/factories.js';
import { es256KeyPair } from '../support/jwt.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { WsClient, listen } from './ws-helpers.js';

/**
 * Real-time connections across instances (contract v2 §F test 5, second case, and its
 * routing rule): two apps on one PostgreSQL database and one Redis, with the same signing
 * keys. A socket on B closes within 1 s of a sign-out on A, and events of changes made
 * through A reach their owner's sockets on B only. Every request comes from this run's own
 * client address (TRUST_PROXY), so that per-address counters left in the shared Redis by
 * other runs never meet this one's.
 */
describe.runIf(onPostgres)('WebSockets across two instances (PostgreSQL + Redis)', () => {
  const keys = es256KeyPair();
  const clientIp = `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
  const env = { ...ROOMY_LIMITS, REDIS_URL: TEST_REDIS_URL, JWT_KEYS: keys.pem, TRUST_PROXY: 'true' };
  const PASSWORD = 'correct horse battery';
  let a: TestApp;
  let b: TestApp;
  let urlB: string;
  const clients: WsClient[] = [];

  beforeAll(async () => {
    a = await startApp(env);
    b = await startApp(env, { databaseUrl: a.databaseUrl });
    urlB = await listen(b);
  });
  afterAll(async () => {
    await b?.close();
    await a?.close(); // drops the database last
  });
  afterEach(() => {
    for (const c of clients.splice(0)) if (!c.closed) c.ws.terminate();
  });

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
});
