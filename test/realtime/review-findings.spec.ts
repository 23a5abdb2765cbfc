import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { ADMIN, FORM, GRANT, basic, form, type Created } from '../clients/oauth-helpers.js';
import { TenantAccessService } from '../../src/tenants/tenant-access.service.js';
import { TokenVerifier } from '../../src/tokens/token-verifier.js';
import { ROOMY_LIMITS } from '../support/env.js';
import { bearer, decodeJwt, login, signup, type SignedUp } from '../support/factories.js';
import { FakeIdp } from '../support/fake-idp.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { addMember, createTenant, createTenantResource } from '../tenants/tenant-helpers.js';
import { WsClient, listen, type Frame } from './ws-helpers.js';

/**
 * The real-time review findings, each checked where its fix acts: resource events and tenant
 * topics follow the token's scopes; a tenant-bound token (`tid`) subscribes to its tenant
 * only; a same-host Origin is accepted at the upgrade; tokens living beyond Node's 24.8-day
 * timer limit are not closed at once; unlinking or linking an identity closes the sockets of
 * external tokens; a member removed while re-subscribing keeps no subscription.
 *
 * Absence is checked without sleeping: an event is sent while the HTTP request that causes it
 * is handled, so once the answer is in, a round trip on a socket (probe) proves that nothing
 * more from that request is on its way to it.
 */

const INVALID_TOKEN = { code: 4401, reason: 'INVALID_TOKEN' };
const TOKEN_EXPIRED = { code: 4401, reason: 'TOKEN_EXPIRED' };
/** The contract's bound on how long a revocation may take to close a socket. */
const WITHIN_MS = 1000;
const DAY = 86400;

const topic = (tenantId: string) => `tenant:${tenantId}`;
const expOf = (token: string) => decodeJwt(token).payload.exp as number;
const isoOf = (epochSeconds: number) => new Date(epochSeconds * 1000).toISOString();

/** The sockets of one describe block: opened, authenticated, probed, terminated after each test. */
function socketsOf(get: () => { t: TestApp; url: string }) {
  const open: WsClient[] = [];
  let seq = 0;

  const connect = async (options: WebSocket.ClientOptions = {}): Promise<WsClient> => {
    const c = await WsClient.open(get().url, options);
    open.push(c);
    return c;
  };
  const authed = async (token: string): Promise<{ w: WsClient; ok: Frame }> => {
    const w = await connect();
    const ok = await w.authenticate(token);
    return { w, ok };
  };
  /**
   * A round trip (a subscribe with a bad topic answers a non-fatal VALIDATION_FAILED): the
   * socket is open, and every frame the server sent it before has arrived.
   */
  const probe = (w: WsClient): Promise<void> => w.probe();
  /** Sends a message with a fresh id and answers the frame that answers it (after a round trip). */
  const answerTo = async (w: WsClient, event: string, data: unknown): Promise<Frame> => {
    const id = `m-${++seq}`;
    w.send({ event, data, id });
    await probe(w);
    const answer = w.frames.find((f) => f.id === id);
    if (!answer) throw new Error(`no answer to ${id}: ${JSON.stringify(w.frames)}`);
    return answer;
  };
  const subscribe = (w: WsClient, ...tenantIds: string[]) => answerTo(w, 'subscribe', { topics: tenantIds.map(topic) });
  const unsubscribe = (w: WsClient, ...tenantIds: string[]) =>
    answerTo(w, 'unsubscribe', { topics: tenantIds.map(topic) });
  const cleanup = () => {
    for (const c of open.splice(0)) if (!c.closed) c.ws.terminate();
  };
  return { connect, authed, probe, answerTo, subscribe, unsubscribe, cleanup, nextId: () => `m-${++seq}` };
}

/** Frames of resource events (any action) about this resource id. */
const resourceFrames = (w: WsClient, id?: string): Frame[] =>
  w.frames.filter((f) => f.event.startsWith('resource.') && (id === undefined || f.data.id === id));

describe('real-time scopes: USER_TOKEN_SCOPES without resources:read and tenants:read', () => {
  let t: TestApp;
  let url: string;
  let admin: SignedUp;
  const s = socketsOf(() => ({ t, url }));
  const USER_SCOPES = ['clients:admin', 'events:read', 'profile', 'resources:write'];

  beforeAll(async () => {
    t = await startApp({
      ...ROOMY_LIMITS,
      ...ADMIN,
      LOGIN_RATE_LIMIT: '1000',
      // Write without read; clients:admin lets the administrator make the machine clients.
      USER_TOKEN_SCOPES: USER_SCOPES.join(' '),
    });
    url = await listen(t);
    admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
  });
  afterAll(async () => t?.close());
  afterEach(() => s.cleanup());

  async function machineClient(allowedScopes: string[]): Promise<Created> {
    const res = await t.http.post('/oauth/clients').set(admin.auth).send({ name: 'events client', allowedScopes });
    expect({ status: res.status, body: res.text }).toMatchObject({ status: 201 });
    return res.body as Created;
  }
  /** A client-credentials token with exactly these scopes. */
  async function clientToken(c: Created, scopes: string[]): Promise<string> {
    const res = await t.http
      .post('/oauth/token')
      .set('Content-Type', FORM)
      .set(basic(c.client.clientId, c.secret.value))
      .send(form({ ...GRANT, scope: scopes.join(' ') }));
    expect({ status: res.status, body: res.text }).toMatchObject({ status: 200 });
    expect((res.body.scope as string).split(' ').sort()).toEqual([...scopes].sort());
    return res.body.access_token as string;
  }

  it("a user token without resources:read gets no resource event, not even of the user's own resources", async () => {
    const u = await signup(t);
    expect((decodeJwt(u.accessToken).payload.scope as string).split(' ').sort()).toEqual(USER_SCOPES);
    const { w, ok } = await s.authed(u.accessToken);
    expect(ok.data.scopes).toContain('events:read');
    expect(ok.data.scopes).not.toContain('resources:read');

    const created = await t.http.post('/resources').set(u.auth).send({ title: 'write only' }).expect(201);
    expect(created.body.ownerId).toBe(u.id);
    await t.http.patch(`/resources/${created.body.id}`).set(u.auth).send({ title: 'renamed' }).expect(200);
    await t.http.delete(`/resources/${created.body.id}`).set(u.auth).expect(204);
    await s.probe(w);
    expect(resourceFrames(w)).toEqual([]);
    expect(w.closed).toBeNull();
  });

  it("a client's own resource reaches its socket with resources:read, not its socket without", async () => {
    const c = await machineClient(['events:read', 'resources:read', 'resources:write']);
    const writer = bearer(await clientToken(c, ['resources:write']));
    const { w: without, ok } = await s.authed(await clientToken(c, ['events:read']));
    expect(ok.data.userId).toBe(c.client.serviceUserId);
    const { w: reader } = await s.authed(await clientToken(c, ['events:read', 'resources:read']));

    const created = await t.http.post('/resources').set(writer).send({ title: 'by the client' }).expect(201);
    expect(created.body.ownerId).toBe(c.client.serviceUserId);
    expect((await reader.next('resource.created')).data).toEqual(created.body);
    const updated = await t.http
      .patch(`/resources/${created.body.id}`)
      .set(writer)
      .send({ title: 'renamed' })
      .expect(200);
    expect((await reader.next('resource.updated')).data).toEqual(updated.body);
    await t.http.delete(`/resources/${created.body.id}`).set(writer).expect(204);
    expect((await reader.next('resource.deleted')).data).toEqual({ id: created.body.id });

    await s.probe(without);
    expect(resourceFrames(without)).toEqual([]);
    expect(without.closed).toBeNull();
  });

  it('tenant topics need tenants:read (non-fatal INSUFFICIENT_SCOPE); tenant resources need resources:read in the token too', async () => {
    const owner = await machineClient([
      'events:read',
      'resources:read',
      'resources:write',
      'tenants:read',
      'tenants:write',
    ]);
    const ownerAuth = bearer(await clientToken(owner, ['resources:write', 'tenants:write', 'tenants:read']));
    const tenant = await createTenant(t, { auth: ownerAuth });
    const u = await signup(t);
    const worker = await machineClient(['events:read', 'resources:read', 'tenants:read']);
    await addMember(t, tenant.id, { auth: ownerAuth }, u, ['member']);
    await addMember(t, tenant.id, { auth: ownerAuth }, { username: `svc.${worker.client.clientId}` }, ['member']);

    // A member whose token lacks tenants:read: refused, not subscribed, and the socket stays.
    const { w: user } = await s.authed(u.accessToken);
    const refused = await s.subscribe(user, tenant.id);
    expect(refused).toMatchObject({ event: 'error', data: { code: 'INSUFFICIENT_SCOPE' } });
    expect(user.all('subscribed')).toEqual([]);
    expect(user.closed).toBeNull();

    // The worker's socket without resources:read subscribes (tenant events) but gets no resource.
    const { w: noRead } = await s.authed(await clientToken(worker, ['events:read', 'tenants:read']));
    const { w: reader } = await s.authed(await clientToken(worker, ['events:read', 'tenants:read', 'resources:read']));
    for (const w of [noRead, reader]) {
      expect(await s.subscribe(w, tenant.id)).toMatchObject({
        event: 'subscribed',
        data: { topics: [topic(tenant.id)] },
      });
    }
    const r = await createTenantResource(t, ownerAuth, tenant.id);
    expect((await reader.next('resource.created')).data).toEqual(r);
    await Promise.all([s.probe(noRead), s.probe(user)]);
    expect(resourceFrames(noRead)).toEqual([]);
    expect(resourceFrames(user)).toEqual([]);

    // The subscription itself is live: a member added is announced to it (members:read).
    const other = await signup(t);
    await addMember(t, tenant.id, { auth: ownerAuth }, other, ['member']);
    expect((await noRead.next('tenant.member_added')).data).toMatchObject({
      tenantId: tenant.id,
      member: { userId: other.id },
    });
    await s.probe(user);
    expect(user.all('tenant.member_added')).toEqual([]);
  });
});

describe('real-time review findings', () => {
  let t: TestApp;
  let url: string;
  let port: number;
  let admin: SignedUp;
  let idp: FakeIdp;
  const s = socketsOf(() => ({ t, url }));

  beforeAll(async () => {
    idp = await FakeIdp.start();
    t = await startApp({
      ...ROOMY_LIMITS,
      ...ADMIN,
      LOGIN_RATE_LIMIT: '1000',
      // 30 days: beyond the 2^31 ms a Node timer holds.
      ACCESS_TOKEN_TTL: String(30 * DAY),
      TENANT_LIMIT_PER_USER: '100',
      // The re-subscription race sends many messages per socket.
      WS_MESSAGE_RATE_LIMIT: '100000',
      FEDERATION_ISSUERS: JSON.stringify([idp.entry({ provisioning: 'linked-only' })]),
    });
    url = await listen(t);
    port = (t.app.getHttpServer().address() as AddressInfo).port;
    admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
  });
  afterAll(async () => {
    await t?.close();
    await idp?.close();
  });
  afterEach(() => {
    t.clock.unfreeze();
    s.cleanup();
  });

  describe('a tenant-bound token (tid)', () => {
    it('subscribes to its own tenant only: another tenant of the user is refused with TENANT_MISMATCH', async () => {
      const o = await signup(t);
      const m = await signup(t);
      const bound = await createTenant(t, o);
      const other = await createTenant(t, o);
      await addMember(t, bound.id, o, m, ['member']);
      await addMember(t, other.id, o, m, ['member']);
      const selected = await t.http.post('/auth/tenant').set(m.auth).send({ tenantId: bound.id }).expect(200);
      const token = selected.body.accessToken as string;
      expect(decodeJwt(token).payload.tid).toBe(bound.id);

      const { w } = await s.authed(token);
      for (const tenants of [[other.id], [bound.id, other.id], [other.id, bound.id]]) {
        const answer = await s.subscribe(w, ...tenants);
        expect(answer).toMatchObject({ event: 'error', data: { code: 'TENANT_MISMATCH' } });
      }
      expect(w.all('subscribed')).toEqual([]);
      const elsewhere = await createTenantResource(t, o.auth, other.id);
      await s.probe(w);
      expect(resourceFrames(w, elsewhere.id)).toEqual([]);

      // Its own tenant (in any case) is accepted and delivers.
      expect(await s.subscribe(w, bound.id.toUpperCase())).toMatchObject({
        event: 'subscribed',
        data: { topics: [topic(bound.id)] },
      });
      const here = await createTenantResource(t, o.auth, bound.id);
      expect((await w.next('resource.created')).data).toEqual(here);
      const again = await createTenantResource(t, o.auth, other.id);
      await s.probe(w);
      expect(resourceFrames(w, again.id)).toEqual([]);

      // The same user's unbound token may subscribe to the other tenant.
      const { w: unbound } = await s.authed(m.accessToken);
      expect(await s.subscribe(unbound, other.id)).toMatchObject({
        event: 'subscribed',
        data: { topics: [topic(other.id)] },
      });
      expect(w.closed).toBeNull();
    });
  });

  describe('same-host Origin at the upgrade', () => {
    /** The HTTP status of an upgrade that the server answers before any 101 (or 101). */
    function upgradeStatus(headers: Record<string, string>): Promise<{ status: number; code?: unknown }> {
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, [], { headers });
        ws.on('open', () => {
          ws.terminate();
          resolve({ status: 101 });
        });
        ws.on('error', reject);
        ws.on('unexpected-response', (req, res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => {
            req.destroy();
            resolve({ status: res.statusCode ?? 0, code: (JSON.parse(text) as { code?: unknown }).code });
          });
        });
      });
    }
    const FORBIDDEN = { status: 403, code: 'ORIGIN_NOT_ALLOWED' };

    it('accepts http:// and https:// of the Host header, though neither PUBLIC_URL nor in CORS_ORIGINS', async () => {
      const host = `127.0.0.1:${port}`;
      for (const origin of [`http://${host}`, `https://${host}`]) {
        expect(t.config.CORS_ORIGINS).not.toContain(origin);
        expect(new URL(t.config.PUBLIC_URL).origin).not.toBe(origin);
        expect({ origin, ...(await upgradeStatus({ Origin: origin })) }).toEqual({ origin, status: 101 });
      }
      // The Host the client asked for, whatever address it reached.
      for (const origin of ['http://gatehouse.test', 'https://gatehouse.test']) {
        expect({ origin, ...(await upgradeStatus({ Host: 'gatehouse.test', Origin: origin })) }).toEqual({
          origin,
          status: 101,
        });
      }
      // An accepted socket works.
      const u = await signup(t);
      const w = await s.connect({ headers: { Origin: `http://${host}` } });
      expect((await w.authenticate(u.accessToken)).data.userId).toBe(u.id);
    });

    it('refuses a look-alike of the Host header: a suffix, another port, another scheme, no port', async () => {
      const host = `127.0.0.1:${port}`;
      for (const origin of [
        `http://${host}.evil`,
        `http://127.0.0.1:${port === 65535 ? port - 1 : port + 1}`,
        'http://127.0.0.1',
        `ws://${host}`,
        `http://x${host}`,
      ]) {
        expect({ origin, ...(await upgradeStatus({ Origin: origin })) }).toEqual({ origin, ...FORBIDDEN });
      }
      for (const origin of [
        'http://gatehouse.test.evil',
        'http://gatehouse.test:8080',
        'https://evil.gatehouse.test',
      ]) {
        expect({ origin, ...(await upgradeStatus({ Host: 'gatehouse.test', Origin: origin })) }).toEqual({
          origin,
          ...FORBIDDEN,
        });
      }
    });
  });

  describe('sockets of an external issuer’s token', () => {
    const now = () => Math.floor(t.clock.nowMs() / 1000);
    const linkIdentity = async (userId: string, subject: string): Promise<string> => {
      const res = await t.http
        .post(`/users/${userId}/identities`)
        .set(admin.auth)
        .send({ issuer: idp.issuer, subject });
      expect({ status: res.status, body: res.text }).toMatchObject({ status: 201 });
      return res.body.id as string;
    };

    it('linking another identity, then unlinking the one used, closes the socket 4401 INVALID_TOKEN within 1 s', async () => {
      const u = await signup(t);
      const sub = `rt-${randomUUID()}`;
      const identityId = await linkIdentity(u.id, sub);
      const external = await idp.sign({ sub }, { now: now() });

      const { w: fed, ok } = await s.authed(external);
      expect(ok.data.userId).toBe(u.id);
      const { w: local } = await s.authed(u.accessToken);

      // Another identity linked to the account: the external token's socket verifies again.
      const sub2 = `rt-${randomUUID()}`;
      await linkIdentity(u.id, sub2);
      expect(await fed.closing(WITHIN_MS)).toEqual(INVALID_TOKEN);
      await s.probe(local);

      // Still linked: the same token authenticates again.
      const { w: fed2, ok: ok2 } = await s.authed(external);
      expect(ok2.data.userId).toBe(u.id);

      // An admin unlinks it: closed at once, and the token no longer reaches the account.
      await t.http.delete(`/users/${u.id}/identities/${identityId}`).set(admin.auth).expect(204);
      expect(await fed2.closing(WITHIN_MS)).toEqual(INVALID_TOKEN);
      const fed3 = await s.connect();
      fed3.auth(external);
      expect(await fed3.closing()).toEqual(INVALID_TOKEN);
      expect(fed3.all('auth.ok')).toEqual([]);

      // The password session's socket stays; the other identity's token still works.
      await s.probe(local);
      expect(local.closed).toBeNull();
      const { ok: ok4 } = await s.authed(await idp.sign({ sub: sub2 }, { now: now() }));
      expect(ok4.data.userId).toBe(u.id);
    });

    it('an unlink that commits while the token is being verified is not missed: the socket is verified again, and refused', async () => {
      const u = await signup(t);
      const sub = `rt-${randomUUID()}`;
      const identityId = await linkIdentity(u.id, sub);
      const external = await idp.sign({ sub }, { now: now() });
      // The first verification has read the link; the unlink then commits (and is announced)
      // before the connection is known as the account's, so that no announcement reaches it.
      const verifier = t.app.get(TokenVerifier);
      const verify = verifier.verifyBearer.bind(verifier);
      const spy = vi.spyOn(verifier, 'verifyBearer').mockImplementationOnce(async (token: string) => {
        const principal = await verify(token);
        await t.http.delete(`/users/${u.id}/identities/${identityId}`).set(admin.auth).expect(204);
        return principal;
      });
      try {
        const w = await s.connect();
        w.auth(external);
        expect(await w.closing()).toEqual(INVALID_TOKEN);
        expect(w.all('auth.ok')).toEqual([]);
        // Twice for the socket's token (the admin's request is verified in between).
        expect(spy.mock.calls.filter(([token]) => token === external)).toHaveLength(2);
      } finally {
        spy.mockRestore();
      }
    });
  });

  describe('a member removed while re-subscribing', () => {
    it('a subscribe whose membership read predates the removal is refused (TENANT_NOT_FOUND), not granted after it', async () => {
      const o = await signup(t);
      const m = await signup(t);
      const tenant = await createTenant(t, o);
      await addMember(t, tenant.id, o, m, ['member']);
      const { w: wo } = await s.authed(o.accessToken);
      const { w: w1 } = await s.authed(m.accessToken);
      const { w: w2 } = await s.authed(m.accessToken);
      // Subscribe, unsubscribe, subscribe again: w2 is the tenant's only subscriber.
      for (const w of [w1, w2]) expect(await s.subscribe(w, tenant.id)).toMatchObject({ event: 'subscribed' });
      for (const w of [w1, w2]) expect(await s.unsubscribe(w, tenant.id)).toMatchObject({ event: 'unsubscribed' });
      expect(await s.subscribe(w2, tenant.id)).toMatchObject({ event: 'subscribed' });

      // w1's next membership read is answered by the database at once, and handed back to
      // the gateway only after the removal (a slow answer): it predates the removal.
      const access = t.app.get(TenantAccessService);
      const read = access.membership.bind(access);
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let readDone!: (found: unknown) => void;
      const held = new Promise<unknown>((resolve) => (readDone = resolve));
      let holding = true;
      const spy = vi.spyOn(access, 'membership').mockImplementation(async (tenantId, userId) => {
        const found = await read(tenantId, userId);
        if (holding && tenantId === tenant.id && userId === m.id) {
          holding = false;
          readDone(found);
          await released;
        }
        return found;
      });
      const id = s.nextId();
      try {
        w1.send({ event: 'subscribe', data: { topics: [topic(tenant.id)] }, id });
        expect(await held).not.toBeNull(); // M was still a member when read
        await t.http.delete(`/tenants/${tenant.id}/members/${m.id}`).set(o.auth).expect(204);
        for (const w of [w1, w2]) {
          expect((await w.next('tenant.member_removed')).data).toEqual({ tenantId: tenant.id, userId: m.id });
        }
      } finally {
        release();
        spy.mockRestore();
      }
      await s.probe(w1);
      expect(w1.frames.find((f) => f.id === id)).toMatchObject({ event: 'error', data: { code: 'TENANT_NOT_FOUND' } });

      expect(await s.subscribe(wo, tenant.id)).toMatchObject({ event: 'subscribed' });
      const r = await createTenantResource(t, o.auth, tenant.id);
      expect((await wo.next('resource.created')).data.id).toBe(r.id);
      await Promise.all([s.probe(w1), s.probe(w2)]);
      expect(resourceFrames(w1, r.id)).toEqual([]);
      expect(resourceFrames(w2, r.id)).toEqual([]);
    });

    it('keeps no subscription on any socket: the next tenant resource reaches none of them (10 rounds)', async () => {
      const o = await signup(t);
      const m = await signup(t);
      const { w: wo } = await s.authed(o.accessToken);
      const mine: WsClient[] = [];
      for (let i = 0; i < 4; i++) mine.push((await s.authed(m.accessToken)).w);

      for (let round = 0; round < 10; round++) {
        const tenant = await createTenant(t, o);
        await addMember(t, tenant.id, o, m, ['member']);
        // Subscribe, unsubscribe, subscribe again on every socket.
        await Promise.all(
          mine.map(async (w) => {
            expect(await s.subscribe(w, tenant.id)).toMatchObject({ event: 'subscribed' });
            expect(await s.unsubscribe(w, tenant.id)).toMatchObject({ event: 'unsubscribed' });
            expect(await s.subscribe(w, tenant.id)).toMatchObject({ event: 'subscribed' });
          }),
        );

        // The owner removes M while every socket keeps subscribing: each sends its next
        // subscribe as soon as the last one is answered, so that one is always being checked.
        const sent = mine.map(() => [] as string[]);
        let removed = false;
        const pumps = mine.map((w, i) => {
          const next = () => {
            const id = s.nextId();
            sent[i]!.push(id);
            w.send({ event: 'subscribe', data: { topics: [topic(tenant.id)] }, id });
          };
          const onMessage = (data: Buffer) => {
            const f = JSON.parse(data.toString()) as Frame;
            if (!removed && f.id === sent[i]!.at(-1) && sent[i]!.length < 500) next();
          };
          w.ws.on('message', onMessage);
          next();
          return () => w.ws.off('message', onMessage);
        });
        const removal = await t.http.delete(`/tenants/${tenant.id}/members/${m.id}`).set(o.auth);
        removed = true;
        for (const stop of pumps) stop();
        expect(removal.status).toBe(204);

        for (const [i, w] of mine.entries()) {
          expect((await w.next('tenant.member_removed')).data).toEqual({ tenantId: tenant.id, userId: m.id });
          await s.probe(w);
          const removedAt = w.frames.findIndex(
            (f) => f.event === 'tenant.member_removed' && f.data.tenantId === tenant.id,
          );
          // Each subscribe is refused, or accepted before the removal was announced (which
          // then ended it): none accepted after.
          const wrong = sent[i]!.map((id) => {
            const at = w.frames.findIndex((f) => f.id === id);
            const f = w.frames[at];
            return { id, event: f?.event, code: f?.data.code, beforeRemoval: at >= 0 && at < removedAt };
          }).filter(
            (a) =>
              !(a.event === 'error' && a.code === 'TENANT_NOT_FOUND') && !(a.event === 'subscribed' && a.beforeRemoval),
          );
          expect({ round, wrong }).toEqual({ round, wrong: [] });
        }

        // The owner subscribes now (not before: a subscriber left would hide the race).
        expect(await s.subscribe(wo, tenant.id)).toMatchObject({ event: 'subscribed' });
        const r = await createTenantResource(t, o.auth, tenant.id);
        expect((await wo.next('resource.created')).data.id).toBe(r.id);
        await Promise.all(mine.map((w) => s.probe(w)));
        for (const w of mine) expect({ round, got: resourceFrames(w, r.id).length }).toEqual({ round, got: 0 });
        expect(await s.unsubscribe(wo, tenant.id)).toMatchObject({ event: 'unsubscribed' });
      }
      for (const w of mine) expect(w.closed).toBeNull();
    });
  });

  // Last: it moves the app's clock 30 days on.
  describe('a token living longer than 24.8 days (2^31 ms)', () => {
    it('is not closed at auth; warns at exp−WS_EXPIRY_WARNING and closes 4401 TOKEN_EXPIRED at exp', async () => {
      const warning = t.config.WS_EXPIRY_WARNING;
      expect(t.config.ACCESS_TOKEN_TTL * 1000).toBeGreaterThan(2 ** 31);
      const u = await signup(t);
      const exp = expOf(u.accessToken);
      // Authenticated on the running clock: its timers are real timers too.
      const { w, ok } = await s.authed(u.accessToken);
      expect(ok.data.expiresAt).toBe(isoOf(exp));
      await s.probe(w);
      await s.probe(w);
      expect(w.all('auth.expiring')).toEqual([]);

      t.clock.freeze(Math.ceil(t.clock.nowMs() / 1000) * 1000);
      const secondsTo = () => exp - t.clock.nowMs() / 1000;
      for (const seconds of [3600, 20 * DAY]) {
        t.clock.advance(seconds);
        await s.probe(w);
        expect(w.closed).toBeNull();
        expect(w.all('auth.expiring')).toEqual([]);
      }

      // Its timers were set on the running clock: their deadlines may lie a few ms after exp
      // (and exp − WS_EXPIRY_WARNING), so each is checked a second either side.
      t.clock.advance(secondsTo() - warning - 1);
      await s.probe(w);
      expect(w.all('auth.expiring')).toEqual([]);
      t.clock.advance(2);
      expect((await w.next('auth.expiring')).data).toEqual({ expiresAt: isoOf(exp), inSeconds: warning - 1 });
      t.clock.advance(secondsTo() - 1);
      await s.probe(w);
      expect(w.closed).toBeNull();
      t.clock.advance(2);
      expect(await w.closing()).toEqual(TOKEN_EXPIRED);
      expect(w.all('auth.expiring')).toHaveLength(1);
    });
  });
});
