import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ME_KEYS, bearer, login, refresh, signup, uniqueEmail, type SignedUp } from '../support/factories.js';
import { FakeIdp } from '../support/fake-idp.js';
import type { TestApp } from '../support/test-app.js';
import {
  IDENTITY_KEYS,
  ISO_DATE,
  adminSession,
  exchange,
  expectError,
  expectOk,
  idpAuth,
  me,
  meId,
  startFederated,
  tokenOf,
  uniqueSubject,
} from './accounts-helpers.js';

/**
 * Contract v2 §D "Provisioning and linking", tests 8 and 10: first sight of an identity
 * under `jit` makes a passwordless person (cleaned username, never taken over by email,
 * one account however many first requests race); under `linked-only` an unlinked `sub` is
 * refused until an administrator links it, and unlinking refuses it again at once.
 */
describe('federated accounts: provisioning', () => {
  let t: TestApp;
  /** Issuer with `jit` provisioning. */
  let idp: FakeIdp;
  /** Issuer with `linked-only` provisioning. */
  let locked: FakeIdp;
  let admin: SignedUp;
  let alice: SignedUp;
  const aliceEmail = 'alice@x.test';

  beforeAll(async () => {
    idp = await FakeIdp.start();
    locked = await FakeIdp.start({ path: '/realms/locked' });
    t = await startFederated([idp.entry(), locked.entry({ name: 'locked-idp', provisioning: 'linked-only' })]);
    admin = await adminSession(t);
    alice = await signup(t, { username: 'alice', email: aliceEmail });
  });
  afterAll(async () => {
    await t?.close();
    await idp?.close();
    await locked?.close();
  });

  describe('jit', () => {
    it('makes a passwordless person from the claims, on first sight, and the same one on repeat', async () => {
      const sub = uniqueSubject('fields');
      const email = uniqueEmail('fed');
      const claims = { preferred_username: 'Ålice Smith!', name: '  Alice\u0000 Smith  ', email, email_verified: true };
      const body = await me(t, await idpAuth(t, idp, sub, claims));
      expect(Object.keys(body).sort()).toEqual(ME_KEYS);
      expect(body).toMatchObject({
        username: 'AliceSmith',
        displayName: 'Alice Smith',
        email,
        emailVerified: true,
        kind: 'person',
        hasPassword: false,
        mfaEnabled: false,
        roles: ['user'],
        pendingEmail: null,
      });
      const identities = body.identities as Array<Record<string, unknown>>;
      expect(identities).toHaveLength(1);
      expect(Object.keys(identities[0]!).sort()).toEqual(IDENTITY_KEYS);
      expect(identities[0]).toMatchObject({ issuer: idp.issuer, issuerName: 'test-idp', subject: sub });
      expect(identities[0]!.linkedAt).toMatch(ISO_DATE);

      // The same sub, another token, other claims: the same account, not updated from the claims.
      const again = await me(t, await idpAuth(t, idp, sub, { preferred_username: 'someone-else' }));
      expect(again.id).toBe(body.id);
      expect(again.username).toBe('AliceSmith');
      const row = await t.prisma.user.findUniqueOrThrow({ where: { id: body.id as string } });
      expect(row.passwordHash).toBeNull();
      const audit = await t.prisma.auditEvent.findMany({
        where: { type: 'federation.user_provisioned', userId: body.id as string },
      });
      expect(audit).toHaveLength(1);
    });

    it('keeps the email only when email_verified is the boolean true', async () => {
      for (const emailVerified of ['true', 1, false, undefined]) {
        const body = await me(
          t,
          await idpAuth(t, idp, uniqueSubject('unverified'), {
            email: uniqueEmail('fed'),
            email_verified: emailVerified,
          }),
        );
        expect({ emailVerified, email: body.email }).toEqual({ emailVerified, email: null });
      }
    });

    it('adds "-xxxx" to a username already taken (whatever its case)', async () => {
      for (const claimed of ['alice', 'ALICE']) {
        const body = await me(t, await idpAuth(t, idp, uniqueSubject('collide'), { preferred_username: claimed }));
        expect(body.username).toMatch(new RegExp(`^${claimed}-[0-9a-f]{4}$`));
        expect(body.id).not.toBe(alice.id);
      }
    });

    it('falls back to "user.<12 hex>" when the claim is missing, too short, not a string or reserved', async () => {
      for (const claimed of [undefined, 'ab', '!!', '..', 42, 'svc.x', 'svc.robot', '.svc.robot']) {
        const claims = claimed === undefined ? {} : { preferred_username: claimed };
        const body = await me(t, await idpAuth(t, idp, uniqueSubject('fallback'), claims));
        expect({ claimed, username: body.username }).toEqual({
          claimed,
          username: expect.stringMatching(/^user\.[0-9a-f]{12}$/),
        });
      }
    });

    it('cleans the claim: leading dots and hyphens stripped, length capped, never "svc." after cleaning', async () => {
      const stripped = await me(t, await idpAuth(t, idp, uniqueSubject('clean'), { preferred_username: '-.bob_2' }));
      expect(stripped.username).toBe('bob_2');
      const long = 'x'.repeat(40);
      const capped = await me(t, await idpAuth(t, idp, uniqueSubject('clean'), { preferred_username: long }));
      expect(capped.username).toBe('x'.repeat(27));
      const service = await me(
        t,
        await idpAuth(t, idp, uniqueSubject('clean'), { preferred_username: 's v c . x y z' }),
      );
      expect(service.username).toMatch(/^user\.[0-9a-f]{12}$/);
    });

    it('never takes over a local account by email: a verified alice@x.test makes a separate user with no email', async () => {
      const before = await me(t, alice.auth);
      const sessionsBefore = await t.http.get('/auth/sessions').set(alice.auth);
      expectOk(sessionsBefore, 200);

      for (const email of [aliceEmail, 'ALICE@X.TEST']) {
        const sub = uniqueSubject('takeover');
        const claims = { preferred_username: 'alice', email, email_verified: true };
        const viaBearer = await me(t, await idpAuth(t, idp, sub, claims));
        expect(viaBearer.id).not.toBe(alice.id);
        expect(viaBearer).toMatchObject({ email: null, emailVerified: false, hasPassword: false });
        expect(viaBearer.username).toMatch(/^alice-[0-9a-f]{4}$/);
        // The exchange answers the same separate account.
        const viaExchange = await exchange(t, await tokenOf(t, idp, { sub, ...claims }));
        expectOk(viaExchange, 200);
        expect(viaExchange.body.user.id).toBe(viaBearer.id);
      }
      // Nor through the exchange on first sight.
      const first = await exchange(
        t,
        await tokenOf(t, idp, { sub: uniqueSubject('takeover'), email: aliceEmail, email_verified: true }),
      );
      expectOk(first, 200);
      expect(first.body.user.id).not.toBe(alice.id);
      expect(first.body.user.email).toBeNull();

      // Alice is untouched: her profile, her identities, her password, her sessions.
      const after = await me(t, alice.auth);
      expect(after).toEqual(before);
      expect(after).toMatchObject({ email: aliceEmail, identities: [], hasPassword: true });
      expect(await t.prisma.externalIdentity.count({ where: { userId: alice.id } })).toBe(0);
      const sessionsAfter = await t.http.get('/auth/sessions').set(alice.auth);
      expectOk(sessionsAfter, 200);
      expect(sessionsAfter.body).toEqual(sessionsBefore.body);
      const renewed = await refresh(t, alice.refreshToken);
      expectOk(renewed, 200);
      alice = { ...alice, accessToken: renewed.body.accessToken, auth: bearer(renewed.body.accessToken) };
      for (const name of ['alice', aliceEmail]) {
        expect((await login(t, name, alice.password)).id).toBe(alice.id);
      }
      expect(await t.prisma.user.count({ where: { emailKey: aliceEmail } })).toBe(1);
    });

    it('makes exactly one user of 10 concurrent first requests with the same new sub', async () => {
      const sub = uniqueSubject('race');
      const users = await t.prisma.user.count();
      const tokens = await Promise.all(
        Array.from({ length: 10 }, () => tokenOf(t, idp, { sub, preferred_username: 'racer' })),
      );
      const answers = await Promise.all(tokens.map((token) => t.http.get('/users/me').set(bearer(token))));
      for (const res of answers) expectOk(res, 200);
      const ids = new Set(answers.map((res) => res.body.id as string));
      expect(ids.size).toBe(1);
      expect(await t.prisma.externalIdentity.count({ where: { issuer: idp.issuer, subject: sub } })).toBe(1);
      expect(await t.prisma.user.count()).toBe(users + 1);
      expect(answers[0]!.body.username).toBe('racer');
    });

    it('makes exactly one user of 10 concurrent first exchanges with the same new sub', async () => {
      const sub = uniqueSubject('race-exchange');
      const users = await t.prisma.user.count();
      const tokens = await Promise.all(Array.from({ length: 10 }, () => tokenOf(t, idp, { sub })));
      const answers = await Promise.all(tokens.map((token) => exchange(t, token)));
      for (const res of answers) expectOk(res, 200);
      expect(new Set(answers.map((res) => res.body.user.id as string)).size).toBe(1);
      expect(await t.prisma.externalIdentity.count({ where: { issuer: idp.issuer, subject: sub } })).toBe(1);
      expect(await t.prisma.user.count()).toBe(users + 1);
    });

    it('gives a free verified email to one of 10 concurrent new users claiming it, and null to the others', async () => {
      const email = uniqueEmail('contested');
      const tokens = await Promise.all(
        Array.from({ length: 10 }, () =>
          tokenOf(t, idp, { sub: uniqueSubject('contested'), email, email_verified: true }),
        ),
      );
      const answers = await Promise.all(tokens.map((token) => t.http.get('/users/me').set(bearer(token))));
      for (const res of answers) expectOk(res, 200);
      expect(new Set(answers.map((res) => res.body.id as string)).size).toBe(10);
      const emails = answers.map((res) => res.body.email as string | null);
      expect(emails.filter((e) => e === email)).toHaveLength(1);
      expect(emails.filter((e) => e === null)).toHaveLength(9);
    });

    it('refuses a password login to the passwordless user: 401 INVALID_CREDENTIALS', async () => {
      const sub = uniqueSubject('nopassword');
      const email = uniqueEmail('nopw');
      const user = await me(
        t,
        await idpAuth(t, idp, sub, { preferred_username: 'nopassword', email, email_verified: true }),
      );
      expect(user.hasPassword).toBe(false);
      for (const name of [user.username as string, email]) {
        for (const password of ['correct horse battery', 'x'.repeat(64), ' ']) {
          const res = await t.http.post('/auth/login').send({ username: name, password });
          expectError(res, 401, 'INVALID_CREDENTIALS');
        }
      }
    });
  });

  describe('linked-only', () => {
    const link = (userId: string, body: Record<string, unknown>, auth = admin.auth) =>
      t.http.post(`/users/${userId}/identities`).set(auth).send(body);

    it('refuses an unlinked sub on the bearer path and on the exchange: 403 FEDERATED_USER_NOT_PROVISIONED', async () => {
      const sub = uniqueSubject('unlinked');
      const users = await t.prisma.user.count();
      expectError(
        await t.http.get('/users/me').set(await idpAuth(t, locked, sub)),
        403,
        'FEDERATED_USER_NOT_PROVISIONED',
      );
      expectError(
        await t.http.get('/resources').set(await idpAuth(t, locked, sub)),
        403,
        'FEDERATED_USER_NOT_PROVISIONED',
      );
      expectError(await exchange(t, await tokenOf(t, locked, { sub })), 403, 'FEDERATED_USER_NOT_PROVISIONED');
      expect(await t.prisma.user.count()).toBe(users);
      expect(await t.prisma.externalIdentity.count({ where: { issuer: locked.issuer } })).toBe(
        await t.prisma.externalIdentity.count({ where: { issuer: locked.issuer, subject: { not: sub } } }),
      );
    });

    it('lets an admin pre-link a sub (201): then the bearer and the exchange act as that user', async () => {
      const bob = await signup(t);
      const sub = `CgVhZG1pbhIFbG9jYWw-${randomUUID()}`;
      expectError(
        await t.http.get('/users/me').set(await idpAuth(t, locked, sub)),
        403,
        'FEDERATED_USER_NOT_PROVISIONED',
      );

      const res = await link(bob.id, { issuer: locked.issuer, subject: sub });
      expectOk(res, 201);
      expect(Object.keys(res.body as object).sort()).toEqual(IDENTITY_KEYS);
      expect(res.body).toMatchObject({
        issuer: locked.issuer,
        issuerName: 'locked-idp',
        subject: sub,
      });
      expect(res.body.linkedAt).toMatch(ISO_DATE);

      // At once: the refusal above was not remembered.
      const viaBearer = await me(t, await idpAuth(t, locked, sub));
      expect(viaBearer).toMatchObject({ id: bob.id, username: bob.username, hasPassword: true });
      expect(viaBearer.identities).toEqual([{ ...res.body, lastSeenAt: expect.stringMatching(ISO_DATE) }]);
      const session = await exchange(t, await tokenOf(t, locked, { sub }));
      expectOk(session, 200);
      expect(session.body.user.id).toBe(bob.id);
      // The identity stays verbatim: another case of the sub is another identity.
      expectError(
        await t.http.get('/users/me').set(await idpAuth(t, locked, sub.toLowerCase())),
        403,
        'FEDERATED_USER_NOT_PROVISIONED',
      );
      const audit = await t.prisma.auditEvent.findMany({ where: { type: 'identity.linked', userId: bob.id } });
      expect(audit).toHaveLength(1);
    });

    it('reports an identity an admin pre-linked as never seen (lastSeenAt null) until its first sign-in', async () => {
      const grace = await signup(t);
      const sub = uniqueSubject('never-seen');
      const res = await link(grace.id, { issuer: locked.issuer, subject: sub });
      expectOk(res, 201);
      const listed = await t.http.get('/users/me/identities').set(grace.auth);
      expectOk(listed, 200);
      expect({ created: res.body.lastSeenAt, listed: listed.body[0]?.lastSeenAt }).toEqual({
        created: null,
        listed: null,
      });
      await meId(t, await idpAuth(t, locked, sub));
      const seen = await t.http.get('/users/me/identities').set(grace.auth);
      expect(seen.body[0]?.lastSeenAt).toMatch(ISO_DATE);
    });

    it('answers 400 for an unknown issuer, a malformed body or a service user, 404 for an unknown user', async () => {
      const carol = await signup(t);
      const sub = uniqueSubject('admin-errors');
      for (const issuer of [
        'https://unknown.example/realms/x',
        `${locked.issuer}/`,
        locked.issuer.toUpperCase(),
        'locked-idp',
      ]) {
        expectError(await link(carol.id, { issuer, subject: sub }), 400, 'VALIDATION_FAILED');
      }
      for (const body of [
        { issuer: locked.issuer },
        { subject: sub },
        { issuer: locked.issuer, subject: '' },
        { issuer: locked.issuer, subject: 'x'.repeat(256) },
        { issuer: 42, subject: sub },
      ]) {
        expectError(await link(carol.id, body), 400, 'VALIDATION_FAILED');
      }
      const client = await t.http
        .post('/oauth/clients')
        .set(admin.auth)
        .send({ name: 'robot', allowedScopes: ['resources:read'] });
      expectOk(client, 201);
      expectError(
        await link(client.body.client.serviceUserId as string, { issuer: locked.issuer, subject: sub }),
        400,
        'VALIDATION_FAILED',
      );
      expectError(await link(randomUUID(), { issuer: locked.issuer, subject: sub }), 404, 'USER_NOT_FOUND');
      expectError(await link('not-a-uuid', { issuer: locked.issuer, subject: sub }), 404, 'USER_NOT_FOUND');
      expect(await t.prisma.externalIdentity.count({ where: { subject: sub } })).toBe(0);
      // The same sub at each issuer is a different identity.
      expectOk(await link(carol.id, { issuer: locked.issuer, subject: sub }), 201);
      const dave = await signup(t);
      expectOk(await link(dave.id, { issuer: idp.issuer, subject: sub }), 201);
      expect(await meId(t, await idpAuth(t, locked, sub))).toBe(carol.id);
      expect(await meId(t, await idpAuth(t, idp, sub))).toBe(dave.id);
    });

    it('answers 409 IDENTITY_ALREADY_LINKED to a link of an identity any account holds', async () => {
      const carol = await signup(t);
      const dave = await signup(t);
      const sub = uniqueSubject('admin-taken');
      expectOk(await link(carol.id, { issuer: locked.issuer, subject: sub }), 201);
      expectError(await link(carol.id, { issuer: locked.issuer, subject: sub }), 409, 'IDENTITY_ALREADY_LINKED');
      expectError(await link(dave.id, { issuer: locked.issuer, subject: sub }), 409, 'IDENTITY_ALREADY_LINKED');
      // A jit identity is taken too.
      const jitSub = uniqueSubject('jit-taken');
      await meId(t, await idpAuth(t, idp, jitSub));
      expectError(await link(dave.id, { issuer: idp.issuer, subject: jitSub }), 409, 'IDENTITY_ALREADY_LINKED');
      expect(await meId(t, await idpAuth(t, locked, sub))).toBe(carol.id);
      expect((await me(t, dave.auth)).identities).toEqual([]);
    });

    it('answers 403 INSUFFICIENT_ROLE to a non-admin, and 401 without a token', async () => {
      const eve = await signup(t);
      const sub = uniqueSubject('non-admin');
      expectError(await link(eve.id, { issuer: locked.issuer, subject: sub }, eve.auth), 403, 'INSUFFICIENT_ROLE');
      expect(
        (await t.http.post(`/users/${eve.id}/identities`).send({ issuer: locked.issuer, subject: sub })).status,
      ).toBe(401);
      expectError(
        await t.http.get('/users/me').set(await idpAuth(t, locked, sub)),
        403,
        'FEDERATED_USER_NOT_PROVISIONED',
      );
      const other = await signup(t);
      expectError(await link(other.id, { issuer: locked.issuer, subject: sub }, eve.auth), 403, 'INSUFFICIENT_ROLE');
      expect(await t.prisma.externalIdentity.count({ where: { subject: sub } })).toBe(0);
    });

    it('lets an admin unlink (204): the sub is refused again at once, however warm the cache', async () => {
      const frank = await signup(t);
      const sub = uniqueSubject('admin-unlink');
      const linked = await link(frank.id, { issuer: locked.issuer, subject: sub });
      expectOk(linked, 201);
      const auth = await idpAuth(t, locked, sub);
      for (let i = 0; i < 3; i++) expect(await meId(t, auth)).toBe(frank.id);

      const path = `/users/${frank.id}/identities/${linked.body.id as string}`;
      expectError(await t.http.delete(path).set(frank.auth), 403, 'INSUFFICIENT_ROLE');
      expectError(
        await t.http.delete(`/users/${frank.id}/identities/${randomUUID()}`).set(admin.auth),
        404,
        'NOT_FOUND',
      );
      expectError(
        await t.http.delete(`/users/${randomUUID()}/identities/${linked.body.id as string}`).set(admin.auth),
        404,
        'USER_NOT_FOUND',
      );
      const other = await signup(t);
      expectError(
        await t.http.delete(`/users/${other.id}/identities/${linked.body.id as string}`).set(admin.auth),
        404,
        'NOT_FOUND',
      );
      expect(await meId(t, auth)).toBe(frank.id);

      expectOk(await t.http.delete(path).set(admin.auth), 204);
      expectError(await t.http.get('/users/me').set(auth), 403, 'FEDERATED_USER_NOT_PROVISIONED');
      expectError(await exchange(t, await tokenOf(t, locked, { sub })), 403, 'FEDERATED_USER_NOT_PROVISIONED');
      expectError(await t.http.delete(path).set(admin.auth), 404, 'NOT_FOUND');
      expect((await me(t, frank.auth)).identities).toEqual([]);
      const audit = await t.prisma.auditEvent.findMany({ where: { type: 'identity.unlinked', userId: frank.id } });
      expect(audit).toHaveLength(1);
    });

    it("refuses to unlink a passwordless user's only identity: 409 LAST_LOGIN_METHOD", async () => {
      const sub = uniqueSubject('admin-last');
      const user = await me(t, await idpAuth(t, idp, sub));
      const [identity] = user.identities as Array<{ id: string }>;
      const res = await t.http.delete(`/users/${user.id as string}/identities/${identity!.id}`).set(admin.auth);
      expectError(res, 409, 'LAST_LOGIN_METHOD');
      expect(await meId(t, await idpAuth(t, idp, sub))).toBe(user.id);
    });
  });
});
