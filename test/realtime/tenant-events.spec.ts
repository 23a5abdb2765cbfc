import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { EventBus } from '../../src/events/event-bus.js';
import { TenantAccessService } from '../../src/tenants/tenant-access.service.js';
import { ROOMY_LIMITS } from '../support/env.js';
import { createResource, decodeJwt, login, signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import {
  addMember,
  createTenant,
  createTenantResource,
  defineRole,
  inTenant,
  MEMBER_KEYS,
  type CreatedTenant,
} from '../tenants/tenant-helpers.js';
import { WsClient, listen, type Frame } from './ws-helpers.js';

/**
 * Contract v2 §F test 6 and the routing rules: tenant events reach only the subscribed current
 * members who may read them; `tenant.member_removed` ends a subscription; personal events
 * (resources, sessions) reach only their owner's sockets.
 *
 * Absence is checked without sleeping: events are sent while the HTTP request that causes
 * them is handled, so once its answer is in, a round trip on the socket (sync) proves that
 * nothing more from that request is on its way to it.
 */
describe('real-time tenant events and routing', () => {
  let t: TestApp;
  let url: string;
  const sockets: WsClient[] = [];
  let syncs = 0;

  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000' });
    url = await listen(t);
  });
  afterEach(() => {
    for (const w of sockets.splice(0)) if (!w.closed) w.close();
  });
  afterAll(async () => t?.close());

  /** An authenticated socket of this user. */
  const socketOf = async (user: SignedUp): Promise<WsClient> => {
    const w = await WsClient.open(url);
    sockets.push(w);
    await w.authenticate(user.accessToken);
    return w;
  };

  const topic = (tenantId: string) => `tenant:${tenantId}`;

  /** Sends a subscribe message and answers the direct answer to it (subscribed or error). */
  const subscribeAnswer = async (w: WsClient, topics: unknown, id = `sub-${++syncs}`): Promise<Frame> => {
    w.send({ event: 'subscribe', data: { topics }, id });
    return answerTo(w, id);
  };

  /** Subscribes to a tenant the socket's user is a member of. */
  const subscribe = async (w: WsClient, tenantId: string): Promise<void> => {
    const answer = await subscribeAnswer(w, [topic(tenantId)]);
    expect(answer).toMatchObject({ event: 'subscribed', data: { topics: [topic(tenantId)] } });
  };

  /** The frame answering the message with this id (the first one; errors come before `subscribed`). */
  const answerTo = async (w: WsClient, id: string): Promise<Frame> => {
    await sync(w);
    const answer = w.frames.find((f) => f.id === id);
    if (!answer) throw new Error(`no answer to ${id}: ${JSON.stringify(w.frames)}`);
    return answer;
  };

  /**
   * A round trip on the socket: an `unsubscribe` of a tenant it never subscribed to, whose
   * answer comes after every frame the server had already sent it.
   */
  const sync = async (w: WsClient): Promise<void> => {
    const id = `sync-${++syncs}`;
    w.send({ event: 'unsubscribe', data: { topics: [topic(randomUUID())] }, id });
    for (;;) {
      const f = await w.next('unsubscribed');
      if (f.id === id) return;
    }
  };

  /** The ids of the resource events of this kind the socket received. */
  const resourceIds = (w: WsClient, action = 'created'): string[] =>
    w.all(`resource.${action}`).map((f) => f.data.id as string);

  /** Frames of a tenant event about this tenant. */
  const tenantFrames = (w: WsClient, event: string, tenantId: string): Frame[] =>
    w.all(event).filter((f) => f.data.tenantId === tenantId);

  /** Whether a tenant resource created now by `by` reaches `w` (checked after a round trip). */
  const reaches = async (w: WsClient, by: SignedUp, tenantId: string): Promise<boolean> => {
    const r = await createTenantResource(t, by.auth, tenantId);
    await sync(w);
    return resourceIds(w).includes(r.id);
  };

  /**
   * Role changes re-read a subscriber's permissions after the HTTP answer (no event tells
   * when): tries a bounded number of resources until `reaches` gives `expected`.
   */
  const becomes = async (w: WsClient, by: SignedUp, tenantId: string, expected: boolean): Promise<boolean> => {
    for (let i = 0; i < 8; i++) if ((await reaches(w, by, tenantId)) === expected) return true;
    return false;
  };

  /** A tenant with owner O, member M (role `member`), and a non-member N. */
  const team = async (): Promise<{ tenant: CreatedTenant; o: SignedUp; m: SignedUp; n: SignedUp }> => {
    const [o, m, n] = [await signup(t), await signup(t), await signup(t)];
    const tenant = await createTenant(t, o);
    await addMember(t, tenant.id, o, m, ['member']);
    return { tenant, o, m, n };
  };

  const removeMember = (tenant: CreatedTenant, by: SignedUp, userId: string) =>
    t.http.delete(`/tenants/${tenant.id}/members/${userId}`).set(by.auth).expect(204);
  const setRoles = (tenant: CreatedTenant, by: SignedUp, userId: string, roles: string[]) =>
    t.http.patch(`/tenants/${tenant.id}/members/${userId}`).set(by.auth).send({ roles }).expect(200);

  it('delivers a tenant resource to a subscribed member only: not to a non-member, an unsubscribed socket, or the owner unsubscribed', async () => {
    const { tenant, o, m, n } = await team();
    const wm = await socketOf(m);
    const wm2 = await socketOf(m); // the same member, not subscribed
    const wo = await socketOf(o); // the owner, not subscribed
    const wn = await socketOf(n);

    const answer = await subscribeAnswer(wm, [topic(tenant.id)], 'm-sub');
    expect(answer).toEqual({ event: 'subscribed', data: { topics: [topic(tenant.id)] }, id: 'm-sub' });
    const refused = await subscribeAnswer(wn, [topic(tenant.id)], 'n-sub');
    expect(refused).toEqual({
      event: 'error',
      data: { code: 'TENANT_NOT_FOUND', message: `Not a member of ${topic(tenant.id)}` },
      id: 'n-sub',
    });

    const r = await createTenantResource(t, o.auth, tenant.id, { title: 'shared plan' });
    const created = await wm.next('resource.created');
    expect(created.data).toEqual(r);
    expect(created.data).toMatchObject({ tenantId: tenant.id, title: 'shared plan' });

    await Promise.all([sync(wm2), sync(wo), sync(wn)]);
    expect(resourceIds(wm2)).toEqual([]);
    expect(resourceIds(wo)).toEqual([]);
    expect(resourceIds(wn)).toEqual([]);
    expect(wn.all('subscribed')).toEqual([]);
    expect(wn.closed).toBeNull();

    // Updates and deletions of the tenant resource follow the same way.
    const patched = await t.http
      .patch(`/resources/${r.id}`)
      .set(o.auth)
      .set(inTenant(tenant.id))
      .send({ title: 'shared plan v2' })
      .expect(200);
    expect((await wm.next('resource.updated')).data).toEqual(patched.body);
    await t.http.delete(`/resources/${r.id}`).set(o.auth).set(inTenant(tenant.id)).expect(204);
    expect((await wm.next('resource.deleted')).data).toEqual({ id: r.id });
    await Promise.all([sync(wm2), sync(wo), sync(wn)]);
    for (const w of [wm2, wo, wn]) {
      expect([...resourceIds(w, 'updated'), ...resourceIds(w, 'deleted')]).toEqual([]);
    }
  });

  it("sends a personal resource to its owner's sockets only, never to a tenant subscriber", async () => {
    const { tenant, o, m } = await team();
    const wm = await socketOf(m);
    const wo = await socketOf(o);
    await subscribe(wm, tenant.id);
    await subscribe(wo, tenant.id);

    const personal = await createResource(t, o.auth, { title: 'my diary' });
    expect((await wo.next('resource.created')).data).toEqual(personal);
    await sync(wm);
    expect(resourceIds(wm)).toEqual([]);

    // A tenant resource still reaches both (the subscription works).
    const shared = await createTenantResource(t, o.auth, tenant.id);
    expect((await wm.next('resource.created')).data.id).toBe(shared.id);
    expect((await wo.next('resource.created')).data.id).toBe(shared.id);
  });

  it('a subscription accepts an upper-case tenant id (answered lower-case) and refuses only the tenants one is not a member of', async () => {
    const { tenant, o, m } = await team();
    const other = await createTenant(t, await signup(t));
    const wm = await socketOf(m);
    wm.send({
      event: 'subscribe',
      data: { topics: [topic(tenant.id.toUpperCase()), topic(other.id)] },
      id: 7,
    });
    await sync(wm);
    const answers = wm.frames.filter((f) => f.id === 7);
    expect(answers).toHaveLength(2);
    expect(answers).toEqual(
      expect.arrayContaining([
        { event: 'error', data: { code: 'TENANT_NOT_FOUND', message: `Not a member of ${topic(other.id)}` }, id: 7 },
        { event: 'subscribed', data: { topics: [topic(tenant.id)] }, id: 7 },
      ]),
    );
    expect(await reaches(wm, o, tenant.id)).toBe(true);
  });

  it("a change of another tenant's access during every membership read does not disturb a subscription", async () => {
    const { tenant, o, m } = await team();
    const wm = await socketOf(m);
    // Each read of a membership is overlapped by a change of another tenant's access.
    const bus = t.app.get(EventBus);
    const access = t.app.get(TenantAccessService);
    const read = access.membership.bind(access);
    let overlapped = 0;
    const spy = vi.spyOn(access, 'membership').mockImplementation(async (tenantId, userId) => {
      const found = await read(tenantId, userId);
      bus.replay('tenants.access_changed', { tenantId: randomUUID(), userId: null, change: 'tenant_changed' });
      overlapped++;
      return found;
    });
    try {
      await subscribe(wm, tenant.id);
    } finally {
      spy.mockRestore();
    }
    expect(overlapped).toBeGreaterThan(0);
    expect(await reaches(wm, o, tenant.id)).toBe(true);
  });

  it('unsubscribe stops the events', async () => {
    const { tenant, o, m } = await team();
    const wm = await socketOf(m);
    await subscribe(wm, tenant.id);
    expect(await reaches(wm, o, tenant.id)).toBe(true);

    wm.send({ event: 'unsubscribe', data: { topics: [topic(tenant.id)] }, id: 'u1' });
    expect(await answerTo(wm, 'u1')).toEqual({
      event: 'unsubscribed',
      data: { topics: [topic(tenant.id)] },
      id: 'u1',
    });
    expect(await reaches(wm, o, tenant.id)).toBe(false);
    expect(wm.closed).toBeNull();
  });

  it('a removed member gets tenant.member_removed on every socket, then nothing more from the tenant', async () => {
    const { tenant, o, m } = await team();
    const wm = await socketOf(m);
    const wm2 = await socketOf(m); // not subscribed: told as the removed user's own socket
    const wo = await socketOf(o);
    await subscribe(wm, tenant.id);
    await subscribe(wo, tenant.id);
    expect(await reaches(wm, o, tenant.id)).toBe(true);

    await removeMember(tenant, o, m.id);
    const removed = { tenantId: tenant.id, userId: m.id };
    expect((await wm.next('tenant.member_removed')).data).toEqual(removed);
    expect((await wm2.next('tenant.member_removed')).data).toEqual(removed);
    expect((await wo.next('tenant.member_removed')).data).toEqual(removed); // a subscriber with members:read

    const after = await createTenantResource(t, o.auth, tenant.id);
    expect((await wo.next('resource.created')).data.id).toBe(after.id);
    await Promise.all([sync(wm), sync(wm2)]);
    expect(resourceIds(wm)).not.toContain(after.id);
    expect(resourceIds(wm2)).not.toContain(after.id);
    expect(wm.closed).toBeNull();

    // Added back, the member is not subscribed again by itself; a new subscribe is needed.
    await addMember(t, tenant.id, o, m, ['member']);
    expect((await wm.next('tenant.member_added')).data).toMatchObject({
      tenantId: tenant.id,
      member: { userId: m.id },
    });
    expect(await reaches(wm, o, tenant.id)).toBe(false);
    await subscribe(wm, tenant.id);
    expect(await reaches(wm, o, tenant.id)).toBe(true);
    expect(tenantFrames(wm, 'tenant.member_removed', tenant.id)).toHaveLength(1);
  });

  it('a member who leaves is unsubscribed too', async () => {
    const { tenant, o, m } = await team();
    const wm = await socketOf(m);
    await subscribe(wm, tenant.id);
    await t.http.delete(`/tenants/${tenant.id}/members/${m.id}`).set(m.auth).expect(204);
    expect((await wm.next('tenant.member_removed')).data).toEqual({ tenantId: tenant.id, userId: m.id });
    expect(await reaches(wm, o, tenant.id)).toBe(false);
    // No longer a member: the subscription is refused.
    const refused = await subscribeAnswer(wm, [topic(tenant.id)]);
    expect(refused.data).toEqual({ code: 'TENANT_NOT_FOUND', message: `Not a member of ${topic(tenant.id)}` });
  });

  it("member_added reaches subscribers with members:read and the added user's own socket, no one else", async () => {
    const { tenant, o, m, n } = await team();
    const v = await signup(t); // a member without members:read
    await defineRole(t, tenant.id, o, 'reader', ['resources:read']);
    await addMember(t, tenant.id, o, v, ['reader']);
    const a = await signup(t); // the user about to be added
    const [wo, wm, wv, wa, wn] = [
      await socketOf(o),
      await socketOf(m),
      await socketOf(v),
      await socketOf(a),
      await socketOf(n),
    ];
    await subscribe(wo, tenant.id);
    await subscribe(wm, tenant.id);
    await subscribe(wv, tenant.id);
    const wm2 = await socketOf(m); // members:read, but not subscribed

    await addMember(t, tenant.id, o, a, ['member']);
    const list = await t.http.get(`/tenants/${tenant.id}/members`).set(o.auth).expect(200);
    const member = (list.body.items as Array<{ userId: string }>).find((x) => x.userId === a.id);
    expect(member).toMatchObject({ username: a.username, roles: ['member'] });
    const expected = { tenantId: tenant.id, member };
    for (const w of [wo, wm, wa]) {
      const added = await w.next('tenant.member_added');
      expect(added.data).toEqual(expected);
      expect(Object.keys(added.data.member as object).sort()).toEqual(MEMBER_KEYS);
    }
    await Promise.all([sync(wv), sync(wn), sync(wm2)]);
    for (const w of [wv, wn, wm2]) expect(w.all('tenant.member_added')).toEqual([]);

    // The added user may subscribe now, and receives the tenant's events.
    await subscribe(wa, tenant.id);
    expect(await reaches(wa, o, tenant.id)).toBe(true);
  });

  it('a member removed is announced to subscribers with members:read only', async () => {
    const { tenant, o, m } = await team();
    const v = await signup(t);
    await defineRole(t, tenant.id, o, 'reader', ['resources:read']);
    await addMember(t, tenant.id, o, v, ['reader']);
    const [wo, wv] = [await socketOf(o), await socketOf(v)];
    await subscribe(wo, tenant.id);
    await subscribe(wv, tenant.id);
    await removeMember(tenant, o, m.id);
    expect((await wo.next('tenant.member_removed')).data).toEqual({ tenantId: tenant.id, userId: m.id });
    await sync(wv);
    expect(wv.all('tenant.member_removed')).toEqual([]);
    // v's own subscription is untouched.
    expect(await reaches(wv, o, tenant.id)).toBe(true);
  });

  it('a custom role without resources:read gets no resource events; a role change granting it does, and one taking it away stops them', async () => {
    const { tenant, o } = await team();
    await defineRole(t, tenant.id, o, 'auditor', ['members:read']);
    const r = await signup(t);
    await addMember(t, tenant.id, o, r, ['auditor']);
    const wr = await socketOf(r);
    await subscribe(wr, tenant.id); // a member may subscribe, whatever its roles
    expect(await reaches(wr, o, tenant.id)).toBe(false);
    expect(await reaches(wr, o, tenant.id)).toBe(false);

    await setRoles(tenant, o, r.id, ['auditor', 'member']);
    expect(await becomes(wr, o, tenant.id, true)).toBe(true);
    expect(await reaches(wr, o, tenant.id)).toBe(true);

    await setRoles(tenant, o, r.id, ['auditor']);
    expect(await becomes(wr, o, tenant.id, false)).toBe(true);
    expect(await reaches(wr, o, tenant.id)).toBe(false);
    expect(wr.closed).toBeNull();
    expect(wr.all('tenant.member_removed')).toEqual([]);
  });

  it("redefining a custom role re-reads its holders' permissions", async () => {
    const { tenant, o } = await team();
    await defineRole(t, tenant.id, o, 'watcher', ['members:read']);
    const w1 = await signup(t);
    await addMember(t, tenant.id, o, w1, ['watcher']);
    const ws = await socketOf(w1);
    await subscribe(ws, tenant.id);
    expect(await reaches(ws, o, tenant.id)).toBe(false);

    await defineRole(t, tenant.id, o, 'watcher', ['members:read', 'resources:read']);
    expect(await becomes(ws, o, tenant.id, true)).toBe(true);

    await defineRole(t, tenant.id, o, 'watcher', ['members:read']);
    expect(await becomes(ws, o, tenant.id, false)).toBe(true);
    expect(await reaches(ws, o, tenant.id)).toBe(false);
  });

  it("redefining a role reads all its subscribers' memberships in one read, not one per subscriber", async () => {
    const { tenant, o } = await team();
    await defineRole(t, tenant.id, o, 'watcher', ['members:read']);
    const watchers = [await signup(t), await signup(t), await signup(t)];
    for (const w of watchers) await addMember(t, tenant.id, o, w, ['watcher']);
    // Four sockets of three users (the first has two), and the owner's.
    const theirs = await Promise.all([...watchers, watchers[0]].map((w) => socketOf(w)));
    const wo = await socketOf(o);
    for (const w of [...theirs, wo]) await subscribe(w, tenant.id);

    const access = t.app.get(TenantAccessService);
    const readMany = access.memberships.bind(access);
    const batches: string[][] = [];
    let single = 0;
    const many = vi.spyOn(access, 'memberships').mockImplementation(async (tenantId, userIds) => {
      if (tenantId === tenant.id) batches.push([...userIds].sort());
      return readMany(tenantId, userIds);
    });
    const one = vi.spyOn(access, 'membership');
    try {
      await defineRole(t, tenant.id, o, 'watcher', ['members:read', 'resources:read']);
      for (const w of theirs) expect(await becomes(w, o, tenant.id, true)).toBe(true);
      // The PUT reads the owner's own membership; no subscriber's is read alone.
      single = one.mock.calls.filter(
        ([tenantId, userId]) => tenantId === tenant.id && watchers.some((w) => w.id === userId),
      ).length;
    } finally {
      many.mockRestore();
      one.mockRestore();
    }
    expect(batches).toEqual([[...watchers.map((w) => w.id), o.id].sort()]);
    expect(single).toBe(0);
    expect(await reaches(wo, o, tenant.id)).toBe(true);
  });

  it('deleting the tenant sends each subscriber tenant.member_removed with its own userId, then nothing', async () => {
    const { tenant, o, m } = await team();
    const k = await signup(t);
    await addMember(t, tenant.id, o, k, ['admin']);
    const [wo, wm, wk] = [await socketOf(o), await socketOf(m), await socketOf(k)];
    await subscribe(wo, tenant.id);
    await subscribe(wm, tenant.id);
    await subscribe(wk, tenant.id);
    expect(await reaches(wm, o, tenant.id)).toBe(true);

    await t.http.delete(`/tenants/${tenant.id}`).set(o.auth).send({ confirm: tenant.slug }).expect(204);
    for (const [w, user] of [
      [wo, o],
      [wm, m],
      [wk, k],
    ] as const) {
      expect((await w.next('tenant.member_removed')).data).toEqual({ tenantId: tenant.id, userId: user.id });
    }
    // The tenant is gone: a new one by the same owner sends nothing to the old subscriptions,
    // and re-subscribing is refused.
    const next = await createTenant(t, o);
    await addMember(t, next.id, o, m, ['member']);
    await createTenantResource(t, o.auth, next.id);
    await Promise.all([sync(wo), sync(wm), sync(wk)]);
    for (const w of [wo, wm, wk]) {
      expect(tenantFrames(w, 'tenant.member_removed', tenant.id)).toHaveLength(1);
      expect(w.closed).toBeNull();
    }
    expect(resourceIds(wk)).toHaveLength(1); // only the one from before the deletion
    const refused = await subscribeAnswer(wm, [topic(tenant.id)]);
    expect(refused.data).toEqual({ code: 'TENANT_NOT_FOUND', message: `Not a member of ${topic(tenant.id)}` });
  });

  it('refuses bad topics with a non-fatal VALIDATION_FAILED and keeps the socket open', async () => {
    const { tenant, o } = await team();
    const wo = await socketOf(o);
    const many = Array.from({ length: 21 }, () => topic(randomUUID()));
    const cases: Array<[string, unknown]> = [
      ['not an array', topic(tenant.id)],
      ['empty', []],
      ['21 topics', many],
      ['not a uuid', ['tenant:not-a-uuid']],
      ['a user topic', ['user:x']],
      ['a number', [42]],
      ['one bad among good', [topic(tenant.id), 'user:x']],
    ];
    // Sent at once (each message counts against WS_MESSAGE_RATE_LIMIT), answered in order.
    const sent: string[] = [];
    for (const [name, topics] of cases) {
      wo.send({ event: 'subscribe', data: { topics }, id: name });
      sent.push(name);
    }
    for (const [i, data] of [null, {}, 'tenant:x', [topic(tenant.id)]].entries()) {
      wo.send({ event: 'subscribe', data, id: `data-${i}` });
      sent.push(`data-${i}`);
    }
    wo.send({ event: 'unsubscribe', data: { topics: ['user:x'] }, id: 'bad-unsub' });
    sent.push('bad-unsub');
    await sync(wo);
    const answers = wo.frames.filter((f) => f.id !== undefined && sent.includes(f.id as string));
    expect(answers).toEqual(
      sent.map((id) => ({ event: 'error', data: { code: 'VALIDATION_FAILED', message: expect.any(String) }, id })),
    );

    // Nothing was subscribed by the refused messages (not even the valid topic of a mixed one).
    expect(wo.all('subscribed')).toEqual([]);
    expect(await reaches(wo, o, tenant.id)).toBe(false);
    // 20 topics are not too many: those are refused as tenants the caller is not a member of.
    const twenty = await subscribeAnswer(wo, many.slice(0, 20), 'twenty');
    expect(twenty.data).toMatchObject({ code: 'TENANT_NOT_FOUND' });
    // Still open and working.
    expect(wo.closed).toBeNull();
    await subscribe(wo, tenant.id);
    expect(await reaches(wo, o, tenant.id)).toBe(true);
  });

  it("a login elsewhere sends session.created to the user's sockets only, and its logout session.revoked", async () => {
    const u = await signup(t);
    const other = await signup(t);
    const wu = await socketOf(u);
    const wother = await socketOf(other);

    const res = await t.http
      .post('/auth/login')
      .set('User-Agent', 'RealtimeTest/2.0')
      .send({ username: u.username, password: u.password })
      .expect(200);
    const sid = decodeJwt(res.body.accessToken as string).payload.sid as string;
    const created = await wu.next('session.created');
    expect(Object.keys(created.data).sort()).toEqual(['createdAt', 'expiresAt', 'id', 'ip', 'lastUsedAt', 'userAgent']);
    const listed = await t.http.get('/auth/sessions').set(u.auth).expect(200);
    const items = listed.body as Array<Record<string, unknown>>;
    const { current: _current, ...session } = items.find((s) => s.id === sid)!;
    expect(created.data).toEqual(session);
    expect(created.data).toMatchObject({ id: sid, userAgent: 'RealtimeTest/2.0' });
    await sync(wother);
    expect(wother.all('session.created')).toEqual([]);

    // The other session signs out: this socket is told, and stays open (its own session lives).
    await t.http
      .post('/auth/logout')
      .set({ Authorization: `Bearer ${res.body.accessToken as string}` })
      .expect(204);
    expect((await wu.next('session.revoked')).data).toEqual({ id: sid });
    await sync(wu);
    expect(wu.closed).toBeNull();
    await sync(wother);
    expect(wother.all('session.revoked')).toEqual([]);

    // A login of the other user is not told to this one.
    await login(t, other.username, other.password);
    await wother.next('session.created');
    await sync(wu);
    expect(wu.all('session.created')).toHaveLength(1);
  });
});
