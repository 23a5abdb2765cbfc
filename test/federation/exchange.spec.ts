import { randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bearer,
  decodeJwt,
  refresh,
  refreshCookieOf,
  setCookiesOf,
  signup,
  type SignedUp,
} from '../support/factories.js';
import { FakeIdp } from '../support/fake-idp.js';
import type { TestApp } from '../support/test-app.js';
import { addMember, createTenant, inTenant } from '../tenants/tenant-helpers.js';
import {
  adminPatchUser,
  adminSession,
  appNow,
  exchange,
  expectError,
  expectOk,
  federatedSession,
  idpAuth,
  me,
  meId,
  startFederated,
  tokenOf,
  uniqueSubject,
} from './accounts-helpers.js';

/** A client address of its own for each test (TRUST_PROXY): the per-IP exchange limit stays out of the way. */
const ip = () => ({ 'X-Forwarded-For': `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}` });

/**
 * Contract v2 §D test 10 and the account it opens: POST /auth/federated/session turns a
 * fresh external token, once, into a cookie session like a login's; the passwordless person
 * deletes the account from a fresh session. FEDERATION_DEFAULT_ACCESS=tenants-only confines
 * federated callers to their tenants.
 */
describe('POST /auth/federated/session', () => {
  let t: TestApp;
  let idp: FakeIdp;
  let admin: SignedUp;

  beforeAll(async () => {
    idp = await FakeIdp.start();
    t = await startFederated([idp.entry()], { TRUST_PROXY: 'true' });
    admin = await adminSession(t);
  });
  afterAll(async () => {
    await t?.close();
    await idp?.close();
  });

  it("moves the user's session_seq on, as every statement that opens a session does", async () => {
    // A login racing the exchange tells from it that a session was opened (see withinCapSql).
    const sub = uniqueSubject('seq');
    const s = await federatedSession(t, idp, sub); // creates the account and opens its first session
    const seq = async () => (await t.prisma.user.findUniqueOrThrow({ where: { id: s.id } })).sessionSeq;
    const first = await seq();
    await federatedSession(t, idp, sub);
    expect(await seq()).toBe(first + 1);
  });

  it("opens a cookie session like a login's: the body, the cookie's attributes, amr fed", async () => {
    const local = await signup(t);
    const login = await t.http
      .post('/auth/login')
      .set(ip())
      .send({ username: local.username, password: local.password });
    expectOk(login, 200);
    const sub = uniqueSubject('session');
    const res = await exchange(t, await tokenOf(t, idp, { sub, preferred_username: 'exchanger' }), ip());
    expectOk(res, 200);
    expect(Object.keys(res.body as object).sort()).toEqual(Object.keys(login.body as object).sort());
    expect(Object.keys(res.body as object).sort()).toEqual(['accessToken', 'expiresIn', 'tokenType', 'user']);
    expect(res.body).toMatchObject({ tokenType: 'Bearer', expiresIn: login.body.expiresIn });
    expect(Object.keys(res.body.user as object).sort()).toEqual(Object.keys(login.body.user as object).sort());
    expect(res.body.user).toMatchObject({ username: 'exchanger', kind: 'person', email: null, roles: ['user'] });
    expect(res.headers['cache-control']).toBe('no-store');

    // The same cookie as a login's, but for its value.
    const attributes = (r: { headers: Record<string, unknown> }) =>
      setCookiesOf(r).map((c) => c.replace(/^refresh_token=[^;]+/, 'refresh_token=<value>'));
    expect(attributes(res)).toEqual(attributes(login));
    const [cookie] = setCookiesOf(res);
    expect(cookie).toMatch(/^refresh_token=[A-Za-z0-9_-]{20,};/);
    for (const attribute of ['HttpOnly', 'Path=/auth', 'SameSite=Strict']) expect(cookie).toContain(`; ${attribute}`);

    const { header, payload } = decodeJwt(res.body.accessToken as string);
    expect(header.typ).toBe('at+jwt');
    expect(payload).toMatchObject({
      sub: res.body.user.id,
      iss: t.config.JWT_ISSUER,
      amr: ['fed'],
      acr: 'aal1',
      roles: ['user'],
      sid: expect.any(String),
    });
    expect(payload.auth_time).toBeGreaterThanOrEqual(appNow(t) - 60);
    const session = await t.prisma.session.findUniqueOrThrow({ where: { id: payload.sid as string } });
    expect(session).toMatchObject({ userId: res.body.user.id, issuer: idp.issuer });
    const audit = await t.prisma.auditEvent.findMany({
      where: { type: 'federation.session', userId: res.body.user.id as string },
    });
    expect(audit).toHaveLength(1);
  });

  it('gives a user session: /auth/sessions lists it as current, refresh renews it with amr fed, logout ends it', async () => {
    const s = await federatedSession(t, idp, uniqueSubject('refresh'), {}, ip());
    const sessions = await t.http.get('/auth/sessions').set(s.auth);
    expectOk(sessions, 200);
    expect(sessions.body).toHaveLength(1);
    expect(sessions.body[0]).toMatchObject({ id: decodeJwt(s.accessToken).payload.sid, current: true });

    const renewed = await refresh(t, s.refreshToken, ip());
    expectOk(renewed, 200);
    const next = refreshCookieOf(renewed);
    expect(next).toBeDefined();
    expect(next).not.toBe(s.refreshToken);
    const claims = decodeJwt(renewed.body.accessToken as string).payload;
    expect(claims).toMatchObject({ sub: s.id, amr: ['fed'], sid: decodeJwt(s.accessToken).payload.sid });
    expect(await meId(t, bearer(renewed.body.accessToken as string))).toBe(s.id);

    expectOk(await t.http.post('/auth/logout').set('Cookie', `refresh_token=${next!}`).set(ip()), 204);
    expect((await refresh(t, next!, ip())).status).toBe(401);
  });

  it('exchanges a token once: the same token again gets 401 FEDERATED_TOKEN_REUSED, with or without jti', async () => {
    const sub = uniqueSubject('once');
    for (const opts of [{}, { omit: ['jti' as const] }]) {
      const token = await tokenOf(t, idp, { sub }, opts);
      const first = await exchange(t, token, ip());
      expectOk(first, 200);
      expectError(await exchange(t, token, ip()), 401, 'FEDERATED_TOKEN_REUSED');
      expectError(await exchange(t, token, ip()), 401, 'FEDERATED_TOKEN_REUSED');
      // Still a valid bearer token: only the exchange is once.
      expect(await meId(t, bearer(token))).toBe(first.body.user.id);
    }
    // Two tokens without jti differ (their iat or claims): each is exchanged once.
    const a = await tokenOf(t, idp, { sub, nonce: 'a' }, { omit: ['jti'] });
    const b = await tokenOf(t, idp, { sub, nonce: 'b' }, { omit: ['jti'] });
    expectOk(await exchange(t, a, ip()), 200);
    expectOk(await exchange(t, b, ip()), 200);
    // Another token with the same jti is the same token for the exchange.
    const jti = `jti-${sub}`;
    expectOk(await exchange(t, await tokenOf(t, idp, { sub, jti }), ip()), 200);
    expectError(
      await exchange(t, await tokenOf(t, idp, { sub, jti, nonce: 'x' }), ip()),
      401,
      'FEDERATED_TOKEN_REUSED',
    );
  });

  it('lets exactly one of 10 concurrent exchanges of the same token through', async () => {
    // A known sub: the race is on the token alone (first sight races are in provisioning.spec.ts).
    const sub = uniqueSubject('race');
    const user = await meId(t, await idpAuth(t, idp, sub));
    const token = await tokenOf(t, idp, { sub });
    const answers = await Promise.all(Array.from({ length: 10 }, () => exchange(t, token, ip())));
    const statuses = answers.map((r) => r.status).sort((x, y) => x - y);
    expect(statuses).toEqual([200, ...Array<number>(9).fill(401)]);
    for (const r of answers.filter((a) => a.status === 401)) expect(r.body.code).toBe('FEDERATED_TOKEN_REUSED');
    expect(answers.find((a) => a.status === 200)?.body.user.id).toBe(user);
  });

  it('answers 401 FEDERATED_TOKEN_INVALID to a token issued more than 300 s ago, or without iat', async () => {
    const sub = uniqueSubject('old');
    const now = appNow(t);
    const stale = await tokenOf(t, idp, { sub }, { now: now - 400, ttl: 3600 });
    expectError(await exchange(t, stale, ip()), 401, 'FEDERATED_TOKEN_INVALID');
    const justStale = await tokenOf(t, idp, { sub }, { now: now - 310, ttl: 3600 });
    expectError(await exchange(t, justStale, ip()), 401, 'FEDERATED_TOKEN_INVALID');
    const noIat = await tokenOf(t, idp, { sub }, { omit: ['iat'] });
    expectError(await exchange(t, noIat, ip()), 401, 'FEDERATED_TOKEN_INVALID');
    // The same tokens are fine as bearer tokens (valid until exp).
    const id = await meId(t, bearer(stale));
    // A fresh one of the same sub works; so does one 250 s old.
    expectOk(await exchange(t, await tokenOf(t, idp, { sub }, { now: now - 250 }), ip()), 200);
    // After the app clock moves past 300 s, yesterday's fresh token is stale too.
    const token = await tokenOf(t, idp, { sub }, { ttl: 3600 });
    t.clock.advance(301);
    expectError(await exchange(t, token, ip()), 401, 'FEDERATED_TOKEN_INVALID');
    expect((await federatedSession(t, idp, sub, {}, ip())).id).toBe(id);
  });

  it('answers 401 FEDERATED_TOKEN_INVALID to garbage, a foreign or expired token, and a Gatehouse token', async () => {
    const local = await signup(t);
    const sub = uniqueSubject('garbage');
    const stranger = await FakeIdp.start({ path: '/realms/stranger' });
    try {
      const tokens = {
        garbage: 'garbage',
        dots: 'a.b.c',
        wrongAudience: await tokenOf(t, idp, { sub, aud: 'another-api' }),
        expired: await tokenOf(t, idp, { sub }, { now: appNow(t) - 200, ttl: 100 }),
        unknownIssuer: await stranger.sign({ sub }, { now: appNow(t) }),
        otherKey: await stranger.sign({ sub, iss: idp.issuer }, { now: appNow(t) }),
        gatehouse: local.accessToken,
        // A header that is not JSON, before the provider's own payload and signature.
        notJsonHeader: `${Buffer.from('not json').toString('base64url')}.${(await tokenOf(t, idp, { sub })).split('.').slice(1).join('.')}`,
      };
      const messages: Record<string, unknown> = {};
      for (const [name, token] of Object.entries(tokens)) {
        const res = await exchange(t, token, ip());
        expect({ name, status: res.status, code: res.body?.code }).toEqual({
          name,
          status: 401,
          code: 'FEDERATED_TOKEN_INVALID',
        });
        expect(setCookiesOf(res)).toEqual([]);
        messages[name] = res.body?.message;
      }
      // No JWT at all is malformed, whatever its payload claims; a JWT of another issuer is unknown.
      const reason = (why: string) => `The external token is not valid: ${why}`;
      expect(messages).toMatchObject({
        garbage: reason('malformed or invalid token'),
        dots: reason('malformed or invalid token'),
        notJsonHeader: reason('malformed or invalid token'),
        unknownIssuer: reason('unknown issuer'),
        expired: reason('expired'),
      });
    } finally {
      await stranger.close();
    }
    expect(await t.prisma.externalIdentity.count({ where: { subject: sub } })).toBe(0);
  });

  it('answers 400 VALIDATION_FAILED to a missing, empty or non-string subjectToken', async () => {
    for (const body of [
      {},
      { subjectToken: '' },
      { subjectToken: 42 },
      { subjectToken: null },
      { subjectToken: ['a'] },
    ]) {
      const res = await t.http.post('/auth/federated/session').set(ip()).send(body);
      expect({ body, status: res.status, code: res.body?.code }).toEqual({
        body,
        status: 400,
        code: 'VALIDATION_FAILED',
      });
    }
  });

  it('answers 403 ACCOUNT_DISABLED for a disabled user, and opens sessions again once enabled', async () => {
    const sub = uniqueSubject('disabled');
    const s = await federatedSession(t, idp, sub, {}, ip());
    await adminPatchUser(t, admin, s.id, { disabled: true });
    expectError(await exchange(t, await tokenOf(t, idp, { sub }), ip()), 403, 'ACCOUNT_DISABLED');
    // Disabling revoked the session opened before.
    expect((await t.http.get('/users/me').set(s.auth)).status).toBe(401);
    expect((await refresh(t, s.refreshToken, ip())).status).toBe(401);
    await adminPatchUser(t, admin, s.id, { disabled: false });
    expect((await federatedSession(t, idp, sub, {}, ip())).id).toBe(s.id);
  });

  it('answers 429 after 60 exchanges per minute from one address, and not to another address', async () => {
    const from = ip();
    for (let i = 0; i < 60; i++) {
      const res = await exchange(t, 'garbage', from);
      expect({ i, status: res.status }).toEqual({ i, status: 401 });
    }
    const limited = await exchange(t, await tokenOf(t, idp, { sub: uniqueSubject('limit') }), from);
    expectError(limited, 429, 'TOO_MANY_REQUESTS');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expectOk(await exchange(t, await tokenOf(t, idp, { sub: uniqueSubject('limit') }), ip()), 200);
  });

  describe('DELETE /users/me for the passwordless user', () => {
    it('deletes the account from a fresh session with {confirm: username} (204); the sub then starts over', async () => {
      const sub = uniqueSubject('delete');
      const s = await federatedSession(t, idp, sub, { preferred_username: 'leaving' }, ip());
      expectError(
        await t.http.delete('/users/me').set(s.auth).send({ confirm: 'someone' }),
        400,
        'CONFIRMATION_MISMATCH',
      );
      // No field at all is malformed, as for DELETE /tenants/:id.
      expectError(await t.http.delete('/users/me').set(s.auth).send({}), 400, 'VALIDATION_FAILED');
      expectError(await t.http.delete('/users/me').set(s.auth).send({ confirm: 42 }), 400, 'VALIDATION_FAILED');
      expectError(
        await t.http.delete('/users/me').set(s.auth).send({ confirm: s.username.toUpperCase() }),
        400,
        'CONFIRMATION_MISMATCH',
      );
      // A password is no proof for an account without one.
      expectError(
        await t.http.delete('/users/me').set(s.auth).send({ password: 'correct horse battery' }),
        400,
        'CONFIRMATION_MISMATCH',
      );
      expect(await meId(t, s.auth)).toBe(s.id);

      expectOk(await t.http.delete('/users/me').set(s.auth).send({ confirm: s.username }), 204);
      expect((await t.http.get('/users/me').set(s.auth)).status).toBe(401);
      expect((await refresh(t, s.refreshToken, ip())).status).toBe(401);
      expect(await t.prisma.user.findUnique({ where: { id: s.id } })).toBeNull();
      expect(await t.prisma.externalIdentity.count({ where: { subject: sub } })).toBe(0);
      // The identity went with the account: the next token of the sub makes a new one.
      const again = await me(t, await idpAuth(t, idp, sub));
      expect(again.id).not.toBe(s.id);
    });

    it('answers 403 STEP_UP_REQUIRED once the sign-in is over 300 s old (refresh does not renew it)', async () => {
      const sub = uniqueSubject('stale-session');
      const s = await federatedSession(t, idp, sub, {}, ip());
      t.clock.advance(301);
      const body = { confirm: s.username };
      expectError(await t.http.delete('/users/me').set(s.auth).send(body), 403, 'STEP_UP_REQUIRED');
      const renewed = await refresh(t, s.refreshToken, ip());
      expectOk(renewed, 200);
      const renewedAuth = bearer(renewed.body.accessToken as string);
      expectError(await t.http.delete('/users/me').set(renewedAuth).send(body), 403, 'STEP_UP_REQUIRED');
      // The wrong confirmation is still told apart.
      expectError(
        await t.http.delete('/users/me').set(renewedAuth).send({ confirm: 'x' }),
        400,
        'CONFIRMATION_MISMATCH',
      );
      expect(await meId(t, s.auth)).toBe(s.id);

      // A new exchange (a fresh sign-in at the issuer) makes it work.
      const fresh = await federatedSession(t, idp, sub, {}, ip());
      expect(fresh.id).toBe(s.id);
      expectOk(await t.http.delete('/users/me').set(fresh.auth).send(body), 204);
      expect(await t.prisma.user.findUnique({ where: { id: s.id } })).toBeNull();
    });

    it('answers 403 USER_SESSION_REQUIRED to the federated bearer token (no session)', async () => {
      const sub = uniqueSubject('bearer-delete');
      const auth = await idpAuth(t, idp, sub);
      const user = await me(t, auth);
      for (const path of ['/auth/sessions']) {
        expectError(await t.http.get(path).set(auth), 403, 'USER_SESSION_REQUIRED');
      }
      expectError(
        await t.http.delete('/users/me').set(auth).send({ confirm: user.username }),
        403,
        'USER_SESSION_REQUIRED',
      );
      expect(await meId(t, auth)).toBe(user.id);
    });

    it('still asks an account with a password for its password', async () => {
      const local = await signup(t);
      expectError(
        await t.http.delete('/users/me').set(local.auth).send({ confirm: local.username }),
        400,
        'VALIDATION_FAILED',
      );
      expectError(
        await t.http.delete('/users/me').set(local.auth).send({ password: 'wrong password!' }),
        403,
        'INVALID_PASSWORD',
      );
      expectOk(await t.http.delete('/users/me').set(local.auth).send({ password: local.password }), 204);
    });
  });
});

describe('FEDERATION_DEFAULT_ACCESS=tenants-only', () => {
  let t: TestApp;
  let idp: FakeIdp;

  beforeAll(async () => {
    idp = await FakeIdp.start();
    t = await startFederated([idp.entry()], { FEDERATION_DEFAULT_ACCESS: 'tenants-only', TRUST_PROXY: 'true' });
  });
  afterAll(async () => {
    await t?.close();
    await idp?.close();
  });

  /** The federated bearer token and an exchanged session of the same new user. */
  async function federatedCallers(tag: string) {
    const sub = uniqueSubject(tag);
    const session = await federatedSession(t, idp, sub, { preferred_username: tag }, ip());
    const token = await tokenOf(t, idp, { sub }, { ttl: 3600 });
    return { sub, session, callers: { bearer: bearer(token), session: session.auth } };
  }

  it('refuses personal resources and tenant creation to the federated bearer and the exchanged session', async () => {
    const { callers } = await federatedCallers('confined');
    for (const [name, auth] of Object.entries(callers)) {
      const check = async (res: Promise<import('supertest').Response>, status: number, code: string) => {
        const r = await res;
        expect({ name, status: r.status, code: r.body?.code }).toEqual({ name, status, code });
      };
      await check(t.http.post('/resources').set(auth).send({ title: 'mine' }), 403, 'INSUFFICIENT_TENANT_PERMISSION');
      await check(t.http.get('/resources').set(auth), 403, 'INSUFFICIENT_TENANT_PERMISSION');
      await check(
        t.http
          .post('/tenants')
          .set(auth)
          .send({ name: 'Mine', slug: `mine-${randomInt(1e9)}` }),
        403,
        'TENANT_CREATION_DISABLED',
      );
      const memberships = await t.http.get('/resources').query({ scope: 'memberships' }).set(auth);
      expect({ name, status: memberships.status }).toEqual({ name, status: 200 });
      expect(memberships.body.items).toEqual([]);
      expectOk(await t.http.get('/users/me').set(auth), 200);
    }
    expect(await t.prisma.resource.count()).toBe(0);
    expect(await t.prisma.tenant.count()).toBe(0);
  });

  it('leaves local users as they were: personal resources and tenants', async () => {
    const local = await signup(t);
    expectOk(await t.http.post('/resources').set(local.auth).send({ title: 'local' }), 201);
    expectOk(await t.http.get('/resources').set(local.auth), 200);
    await createTenant(t, local);
  });

  it('lets them act inside a tenant they were added to (X-Tenant-Id), and nowhere else', async () => {
    const owner = await signup(t);
    const tenant = await createTenant(t, owner);
    const elsewhere = await createTenant(t, owner);
    const { session, callers } = await federatedCallers('member');
    for (const auth of Object.values(callers)) {
      expectError(
        await t.http.post('/resources').set(auth).set(inTenant(tenant.id)).send({ title: 'x' }),
        404,
        'TENANT_NOT_FOUND',
      );
    }
    await addMember(t, tenant.id, owner, { username: session.username }, ['member']);

    for (const [name, auth] of Object.entries(callers)) {
      const created = await t.http
        .post('/resources')
        .set(auth)
        .set(inTenant(tenant.id))
        .send({ title: `by ${name}` });
      expectOk(created, 201);
      expect(created.body.tenantId).toBe(tenant.id);
      const list = await t.http.get('/resources').set(auth).set(inTenant(tenant.id));
      expectOk(list, 200);
      expect((list.body.items as Array<{ title: string }>).map((r) => r.title)).toContain(`by ${name}`);
      const memberships = await t.http.get('/resources').query({ scope: 'memberships' }).set(auth);
      expectOk(memberships, 200);
      expect((memberships.body.items as Array<{ id: string }>).map((r) => r.id)).toContain(created.body.id);
      // Still nothing personal, and no other tenant.
      expectError(
        await t.http.post('/resources').set(auth).send({ title: 'personal' }),
        403,
        'INSUFFICIENT_TENANT_PERMISSION',
      );
      expectError(await t.http.get('/resources').set(auth).set(inTenant(elsewhere.id)), 404, 'TENANT_NOT_FOUND');
    }
    // The owner sees what they made in the tenant.
    const seen = await t.http.get('/resources').set(owner.auth).set(inTenant(tenant.id));
    expect((seen.body.items as Array<{ title: string }>).map((r) => r.title).sort()).toEqual([
      'by bearer',
      'by session',
    ]);
  });
});
