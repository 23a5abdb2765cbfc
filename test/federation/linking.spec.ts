import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, signup, type SignedUp } from '../support/factories.js';
import { FakeIdp } from '../support/fake-idp.js';
import type { TestApp } from '../support/test-app.js';
import {
  IDENTITY_KEYS,
  ISO_DATE,
  adminPatchUser,
  adminSession,
  appNow,
  exchange,
  expectBearerRejected,
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

/**
 * Contract v2 §D test 9: a local account links an external identity by proving both
 * accounts (a fresh token of the external one, its own password); the issuer's tokens then
 * act as the local user. Unlinking acts at once, the last way in stays, and disabling the
 * linked user refuses the issuer's tokens at once.
 */
describe('federated accounts: linking', () => {
  let t: TestApp;
  let idp: FakeIdp;
  /** A second issuer of the same app. */
  let other: FakeIdp;
  let admin: SignedUp;

  beforeAll(async () => {
    idp = await FakeIdp.start();
    other = await FakeIdp.start({ path: '/realms/other' });
    t = await startFederated([idp.entry(), other.entry({ name: 'other-idp' })]);
    admin = await adminSession(t);
  });
  afterAll(async () => {
    await t?.close();
    await idp?.close();
    await other?.close();
  });

  const linkOwn = (auth: { Authorization: string }, body: Record<string, unknown>) =>
    t.http.post('/users/me/identities').set(auth).send(body);
  /** Links a fresh token of `issuer` for `sub` to `user` (expects 201) and answers the identity. */
  const linked = async (user: SignedUp, sub: string, issuer = idp): Promise<Record<string, unknown>> => {
    const res = await linkOwn(user.auth, { subjectToken: await tokenOf(t, issuer, { sub }), password: user.password });
    expectOk(res, 201);
    return res.body as Record<string, unknown>;
  };

  it('links with a fresh token and the password (201): the issuer tokens then act as the local user', async () => {
    const carol = await signup(t);
    const sub = uniqueSubject('link');
    const users = await t.prisma.user.count();
    const res = await linkOwn(carol.auth, {
      subjectToken: await tokenOf(t, idp, { sub, preferred_username: 'carol-at-idp', email: 'c@x.test' }),
      password: carol.password,
    });
    expectOk(res, 201);
    expect(Object.keys(res.body as object).sort()).toEqual(IDENTITY_KEYS);
    expect(res.body).toMatchObject({ issuer: idp.issuer, issuerName: 'test-idp', subject: sub });
    expect(res.body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.body.linkedAt).toMatch(ISO_DATE);

    // Bearer, exchange: the local user, nobody new.
    const viaBearer = await me(t, await idpAuth(t, idp, sub));
    expect(viaBearer).toMatchObject({ id: carol.id, username: carol.username, hasPassword: true });
    const session = await federatedSession(t, idp, sub);
    expect(session.id).toBe(carol.id);
    expect(await meId(t, session.auth)).toBe(carol.id);
    expect(await t.prisma.user.count()).toBe(users);

    // Listed on the account, with the exact iss URL, both ways.
    const list = await t.http.get('/users/me/identities').set(carol.auth);
    expectOk(list, 200);
    expect(list.body).toHaveLength(1);
    expect(Object.keys(list.body[0] as object).sort()).toEqual(IDENTITY_KEYS);
    expect(list.body[0]).toMatchObject({
      id: res.body.id,
      issuer: idp.issuer,
      issuerName: 'test-idp',
      subject: sub,
      linkedAt: res.body.linkedAt,
      lastSeenAt: expect.stringMatching(ISO_DATE),
    });
    expect((await me(t, carol.auth)).identities).toEqual(list.body);
    // The federated bearer and the exchanged session see the same list.
    const viaIdp = await t.http.get('/users/me/identities').set(await idpAuth(t, idp, sub));
    expectOk(viaIdp, 200);
    expect(viaIdp.body).toEqual(list.body);
    const audit = await t.prisma.auditEvent.findMany({ where: { type: 'identity.linked', userId: carol.id } });
    expect(audit).toHaveLength(1);
  });

  it('links identities of several issuers to one account, and lists them all', async () => {
    const user = await signup(t);
    const sub = uniqueSubject('multi');
    const first = await linked(user, sub);
    const second = await linked(user, sub, other);
    expect(second.issuerName).toBe('other-idp');
    const list = await t.http.get('/users/me/identities').set(user.auth);
    expect((list.body as Array<{ id: string }>).map((i) => i.id).sort()).toEqual(
      [first.id as string, second.id as string].sort(),
    );
    expect(await meId(t, await idpAuth(t, idp, sub))).toBe(user.id);
    expect(await meId(t, await idpAuth(t, other, sub))).toBe(user.id);
  });

  it('answers 409 IDENTITY_ALREADY_LINKED for an identity linked to another account (or provisioned)', async () => {
    const owner = await signup(t);
    const sub = uniqueSubject('taken');
    await linked(owner, sub);
    const dave = await signup(t);
    const refusedToken = await tokenOf(t, idp, { sub });
    const res = await linkOwn(dave.auth, { subjectToken: refusedToken, password: dave.password });
    expectError(res, 409, 'IDENTITY_ALREADY_LINKED');
    // A refused link does not use the token up: it still opens a session, of the owner's account.
    const exchanged = await t.http.post('/auth/federated/session').send({ subjectToken: refusedToken });
    expect({ status: exchanged.status, user: (exchanged.body as { user?: { id: string } }).user?.id }).toEqual({
      status: 200,
      user: owner.id,
    });
    // Linked to the same account again: also taken.
    const again = await linkOwn(owner.auth, { subjectToken: await tokenOf(t, idp, { sub }), password: owner.password });
    expectError(again, 409, 'IDENTITY_ALREADY_LINKED');
    // An identity that already has its own (jit) account.
    const jitSub = uniqueSubject('jit');
    const jitUser = await meId(t, await idpAuth(t, idp, jitSub));
    const stolen = await linkOwn(dave.auth, {
      subjectToken: await tokenOf(t, idp, { sub: jitSub }),
      password: dave.password,
    });
    expectError(stolen, 409, 'IDENTITY_ALREADY_LINKED');
    expect(await meId(t, await idpAuth(t, idp, sub))).toBe(owner.id);
    expect(await meId(t, await idpAuth(t, idp, jitSub))).toBe(jitUser);
    expect((await me(t, dave.auth)).identities).toEqual([]);
  });

  it('answers 403 INVALID_PASSWORD to a wrong password, before looking at the token', async () => {
    const user = await signup(t);
    const sub = uniqueSubject('wrong-password');
    const token = await tokenOf(t, idp, { sub });
    expectError(
      await linkOwn(user.auth, { subjectToken: token, password: 'not the password' }),
      403,
      'INVALID_PASSWORD',
    );
    expectError(
      await linkOwn(user.auth, { subjectToken: 'garbage', password: 'not the password' }),
      403,
      'INVALID_PASSWORD',
    );
    // The token was not spent by the refused attempt.
    expectOk(await linkOwn(user.auth, { subjectToken: token, password: user.password }), 201);
  });

  it('answers 400 VALIDATION_FAILED to a missing or non-string token or password', async () => {
    const user = await signup(t);
    const token = await tokenOf(t, idp, { sub: uniqueSubject('validation') });
    for (const body of [
      { password: user.password },
      { subjectToken: token },
      { subjectToken: '', password: user.password },
      { subjectToken: 42, password: user.password },
      { subjectToken: token, password: 42 },
    ]) {
      expectError(await linkOwn(user.auth, body), 400, 'VALIDATION_FAILED');
    }
  });

  it('answers 401 FEDERATED_TOKEN_INVALID to a bad, foreign, expired or stale token', async () => {
    const user = await signup(t);
    const sub = uniqueSubject('bad');
    const now = appNow(t);
    const stranger = await FakeIdp.start({ path: '/realms/stranger' });
    try {
      const tokens = {
        garbage: 'garbage',
        notSigned: `${(await tokenOf(t, idp, { sub })).split('.').slice(0, 2).join('.')}.`,
        wrongAudience: await tokenOf(t, idp, { sub, aud: 'someone-else' }),
        unknownIssuer: await stranger.sign({ sub }, { now }),
        otherKey: await stranger.sign({ sub, iss: idp.issuer }, { now }),
        expired: await tokenOf(t, idp, { sub }, { now: now - 1000, ttl: 300 }),
        // Still valid (600 s), but issued 400 s ago: older than FEDERATION_EXCHANGE_MAX_AGE.
        stale: await tokenOf(t, idp, { sub }, { now: now - 400, ttl: 600 }),
        noIat: await tokenOf(t, idp, { sub }, { omit: ['iat'] }),
        gatehouse: user.accessToken,
      };
      for (const [name, subjectToken] of Object.entries(tokens)) {
        const res = await linkOwn(user.auth, { subjectToken, password: user.password });
        expect({ name, status: res.status, code: res.body?.code }).toEqual({
          name,
          status: 401,
          code: 'FEDERATED_TOKEN_INVALID',
        });
      }
    } finally {
      await stranger.close();
    }
    expect((await me(t, user.auth)).identities).toEqual([]);
    expect(await t.prisma.externalIdentity.count({ where: { subject: sub } })).toBe(0);
  });

  it('uses a proof once: the same token again gets 401 FEDERATED_TOKEN_REUSED, as does an exchanged one', async () => {
    const user = await signup(t);
    const sub = uniqueSubject('reuse');
    const token = await tokenOf(t, idp, { sub });
    const first = await linkOwn(user.auth, { subjectToken: token, password: user.password });
    expectOk(first, 201);
    expectError(
      await linkOwn(user.auth, { subjectToken: token, password: user.password }),
      401,
      'FEDERATED_TOKEN_REUSED',
    );
    // Unlinked, the same token still cannot link it again, nor open a session.
    expectOk(await t.http.delete(`/users/me/identities/${first.body.id as string}`).set(user.auth), 204);
    expectError(
      await linkOwn(user.auth, { subjectToken: token, password: user.password }),
      401,
      'FEDERATED_TOKEN_REUSED',
    );
    expectError(await exchange(t, token), 401, 'FEDERATED_TOKEN_REUSED');
    // Without jti, the token itself is remembered.
    const noJti = await tokenOf(t, idp, { sub: uniqueSubject('no-jti') }, { omit: ['jti'] });
    expectOk(await linkOwn(user.auth, { subjectToken: noJti, password: user.password }), 201);
    const bystander = await signup(t);
    expectError(
      await linkOwn(bystander.auth, { subjectToken: noJti, password: bystander.password }),
      401,
      'FEDERATED_TOKEN_REUSED',
    );
    // A token exchanged for a session is spent too.
    const exchanged = await tokenOf(t, idp, { sub: uniqueSubject('exchanged') });
    expectOk(await exchange(t, exchanged), 200);
    expectError(
      await linkOwn(bystander.auth, { subjectToken: exchanged, password: bystander.password }),
      401,
      'FEDERATED_TOKEN_REUSED',
    );
  });

  it('unlinks at once (204): the issuer token then provisions a new, separate user', async () => {
    const erin = await signup(t);
    const sub = uniqueSubject('unlink');
    const identity = await linked(erin, sub);
    const auth = await idpAuth(t, idp, sub);
    for (let i = 0; i < 3; i++) expect(await meId(t, auth)).toBe(erin.id); // the link is cached

    expectOk(await t.http.delete(`/users/me/identities/${identity.id as string}`).set(erin.auth), 204);
    const users = await t.prisma.user.count();
    const fresh = await me(t, auth);
    expect(fresh.id).not.toBe(erin.id);
    expect(fresh).toMatchObject({ hasPassword: false, kind: 'person' });
    expect(await t.prisma.user.count()).toBe(users + 1);
    expect((await me(t, erin.auth)).identities).toEqual([]);
    const session = await federatedSession(t, idp, sub);
    expect(session.id).toBe(fresh.id);
    expectError(await t.http.delete(`/users/me/identities/${identity.id as string}`).set(erin.auth), 404, 'NOT_FOUND');
    const audit = await t.prisma.auditEvent.findMany({ where: { type: 'identity.unlinked', userId: erin.id } });
    expect(audit).toHaveLength(1);
  });

  it("answers 409 LAST_LOGIN_METHOD for a passwordless user's only identity, 204 once it has another", async () => {
    const sub = uniqueSubject('last');
    const session = await federatedSession(t, idp, sub);
    const [only] = (await me(t, session.auth)).identities as Array<{ id: string }>;
    for (const auth of [session.auth, await idpAuth(t, idp, sub)]) {
      expectError(await t.http.delete(`/users/me/identities/${only!.id}`).set(auth), 409, 'LAST_LOGIN_METHOD');
    }
    expect(await meId(t, await idpAuth(t, idp, sub))).toBe(session.id);
    // Without a password it cannot link another identity itself (no proof of this account).
    const res = await linkOwn(session.auth, {
      subjectToken: await tokenOf(t, other, { sub }),
      password: 'correct horse battery',
    });
    expectError(res, 403, 'NO_LOCAL_PASSWORD');
    // An admin can; then the first one may go.
    const added = await t.http
      .post(`/users/${session.id}/identities`)
      .set(admin.auth)
      .send({ issuer: other.issuer, subject: sub });
    expectOk(added, 201);
    expectOk(await t.http.delete(`/users/me/identities/${only!.id}`).set(session.auth), 204);
    expectError(
      await t.http.delete(`/users/me/identities/${added.body.id as string}`).set(session.auth),
      409,
      'LAST_LOGIN_METHOD',
    );
    expect(await meId(t, await idpAuth(t, other, sub))).toBe(session.id);
  });

  it("answers 404 for another user's identity, an unknown id and a non-uuid", async () => {
    const owner = await signup(t);
    const identity = await linked(owner, uniqueSubject('mine'));
    const intruder = await signup(t);
    for (const id of [identity.id as string, randomUUID(), 'not-a-uuid', '1']) {
      expectError(await t.http.delete(`/users/me/identities/${id}`).set(intruder.auth), 404, 'NOT_FOUND');
    }
    expect((await me(t, owner.auth)).identities).toHaveLength(1);
  });

  it('a link racing the deletion of its account is answered 401 (own) or 404 (admin), never 500', async () => {
    for (let round = 0; round < 3; round++) {
      const user = await signup(t);
      const subjectToken = await tokenOf(t, idp, { sub: uniqueSubject('race') });
      const [deleted, own, byAdmin] = await Promise.all([
        t.http.delete('/users/me').set(user.auth).send({ password: user.password }),
        linkOwn(user.auth, { subjectToken, password: user.password }),
        t.http
          .post(`/users/${user.id}/identities`)
          .set(admin.auth)
          .send({ issuer: idp.issuer, subject: uniqueSubject('race-admin') }),
      ]);
      expect(deleted.status).toBe(204);
      // Linked before the deletion (201: the identity went with the account), or refused after it.
      expect({ status: own.status, code: own.status === 201 ? 'linked' : own.body.code }).toSatisfy(
        (o: { status: number; code: string }) =>
          (o.status === 201 && o.code === 'linked') ||
          (o.status === 401 && ['UNAUTHORIZED', 'INVALID_TOKEN'].includes(o.code)),
      );
      expect([201, 404]).toContain(byAdmin.status);
      expect(await t.prisma.externalIdentity.count({ where: { userId: user.id } })).toBe(0);
    }
  });

  it('answers 401 without a token', async () => {
    expect((await t.http.get('/users/me/identities')).status).toBe(401);
    expect((await t.http.post('/users/me/identities').send({ subjectToken: 'x', password: 'y' })).status).toBe(401);
    expect((await t.http.delete(`/users/me/identities/${randomUUID()}`)).status).toBe(401);
  });

  it('refuses the issuer tokens of a disabled linked user at once (401), and accepts them once enabled again', async () => {
    const frank = await signup(t);
    const sub = uniqueSubject('disable');
    await linked(frank, sub);
    const token = await tokenOf(t, idp, { sub, ttl: 3600 });
    for (let i = 0; i < 3; i++) expect(await meId(t, bearer(token))).toBe(frank.id); // the link is cached

    await adminPatchUser(t, admin, frank.id, { disabled: true });
    expectBearerRejected(await t.http.get('/users/me').set(bearer(token)), 'account disabled');
    expectBearerRejected(await t.http.get('/resources').set(await idpAuth(t, idp, sub)), 'account disabled');
    expectError(await exchange(t, await tokenOf(t, idp, { sub })), 403, 'ACCOUNT_DISABLED');

    await adminPatchUser(t, admin, frank.id, { disabled: false });
    expect(await meId(t, bearer(token))).toBe(frank.id);
    const session = await federatedSession(t, idp, sub);
    expect(session.id).toBe(frank.id);
  });
});
