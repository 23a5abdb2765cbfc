import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../../src/common/account-rules.js';
import { parseConfig } from '../../src/config/config.schema.js';
import { problemsOf } from '../support/config-problems.js';
import { OneTimeTokensService } from '../../src/accounts/one-time-tokens.service.js';
import { MailerService } from '../../src/mail/mailer.service.js';
import { AccessTokenService } from '../../src/tokens/access-token.service.js';
import { BUILT_IN_SCOPES } from '../../src/tokens/scopes.js';
import { ROOMY_LIMITS } from '../support/env.js';
import { bearer, createResource, decodeJwt, login, signup, uniqueEmail, uniqueUsername } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

/**
 * Scopes on the v1 routes (contract v2 §C), client tokens on session routes (§0.1), and
 * passwordless accounts (§0.4). Tokens are signed directly with the app's AccessTokenService:
 * the token endpoint is tested elsewhere.
 */

const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
const PASSWORD = 'correct horse battery';
const ALL_BUT_INTROSPECTION = BUILT_IN_SCOPES.filter((s) => s !== 'introspection');

const challenge = (...scopes: string[]) =>
  `Bearer realm="gatehouse", error="insufficient_scope", scope="${scopes.join(' ')}"`;

/** A passwordless service user, as a machine client has (created directly). */
async function serviceUser(t: TestApp, fields: { email?: string; roles?: Role[] } = {}) {
  const username = `svc.${uniqueUsername('c')}`;
  return t.prisma.user.create({
    data: {
      username,
      usernameKey: username.toLowerCase(),
      email: fields.email ?? null,
      emailKey: fields.email?.toLowerCase() ?? null,
      emailVerifiedAt: fields.email ? new Date() : null,
      passwordHash: null,
      kind: 'service',
      roles: fields.roles ?? ['user'],
    },
  });
}

/** A machine client's access token for this service user. */
async function clientToken(
  t: TestApp,
  user: { id: string; roles: Role[] },
  scopes: readonly string[],
): Promise<string> {
  const { token } = await t.app
    .get(AccessTokenService)
    .signClient(
      { serviceUserId: user.id, clientId: `c_${randomUUID()}`, secretId: randomUUID(), roles: user.roles, scopes },
      900,
    );
  return token;
}

/** The same user token as v1 would have signed it: no `scope`, `amr`, `acr` or `auth_time`. */
function asV1Token(t: TestApp, token: string): string {
  const { payload } = decodeJwt(token);
  const { scope, amr, acr, auth_time, ...v1 } = payload;
  expect([scope, amr, acr, auth_time].every((c) => c !== undefined)).toBe(true);
  const keys = t.app.get(AccessTokenService).keys;
  return jwt.sign(v1, keys.signing.key, {
    algorithm: keys.algorithm,
    keyid: keys.signing.kid,
    header: { alg: keys.algorithm, typ: 'at+jwt' },
  });
}

describe('scopes on the v1 routes', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', ...ADMIN });
  });
  afterAll(async () => t?.close());

  it('a resources:read-only client reads (200) but cannot write (403 INSUFFICIENT_SCOPE, RFC 6750 challenge)', async () => {
    const svc = await serviceUser(t);
    const auth = bearer(await clientToken(t, svc, ['resources:read']));
    const list = await t.http.get('/resources').set(auth).expect(200);
    expect(list.body).toEqual({ items: [], nextCursor: null });

    const res = await t.http.post('/resources').set(auth).send({ title: 'nope' }).expect(403);
    expect(res.body).toMatchObject({ statusCode: 403, error: 'Forbidden', code: 'INSUFFICIENT_SCOPE' });
    expect(res.headers['www-authenticate']).toBe(challenge('resources:write'));
    expect(await t.prisma.resource.count({ where: { ownerId: svc.id } })).toBe(0);
  });

  it('resources:write is needed to change and delete, resources:read to read one', async () => {
    const svc = await serviceUser(t);
    const writer = bearer(await clientToken(t, svc, ['resources:write']));
    const reader = bearer(await clientToken(t, svc, ['resources:read']));
    const created = await createResource(t, writer, { title: 'by a client', visibility: 'public' });
    const hidden = await createResource(t, writer, { title: 'private', visibility: 'private' });
    expect(created.ownerId).toBe(svc.id);

    for (const req of [
      t.http.patch(`/resources/${created.id}`).set(reader).send({ title: 'changed' }),
      t.http.delete(`/resources/${created.id}`).set(reader),
    ]) {
      const res = await req.expect(403);
      expect(res.body.code).toBe('INSUFFICIENT_SCOPE');
      expect(res.headers['www-authenticate']).toBe(challenge('resources:write'));
    }
    // Without resources:read, its own private resource and an unknown id get the same 403.
    const read = await t.http.get(`/resources/${hidden.id}`).set(writer).expect(403);
    const unknown = await t.http.get(`/resources/${randomUUID()}`).set(writer).expect(403);
    for (const res of [read, unknown]) {
      expect(res.body).toEqual({
        statusCode: 403,
        error: 'Forbidden',
        message: 'Insufficient scope: this needs resources:read',
        code: 'INSUFFICIENT_SCOPE',
      });
      expect(res.headers['www-authenticate']).toBe(challenge('resources:read'));
    }
    await t.http.get(`/resources/${hidden.id}`).set(reader).expect(200);
    const list = await t.http.get('/resources').set(writer).expect(403);
    expect(list.headers['www-authenticate']).toBe(challenge('resources:read'));

    // A public resource stays open to anyone: without a token, and with a token that lacks
    // resources:read (reading it needs no scope at all).
    await t.http.get(`/resources/${created.id}`).expect(200);
    expect((await t.http.get(`/resources/${created.id}`).set(writer).expect(200)).body.id).toBe(created.id);
    await t.http.get(`/resources/${created.id}`).set(reader).expect(200);
    await t.http.patch(`/resources/${created.id}`).set(writer).send({ title: 'changed' }).expect(200);
    await t.http.delete(`/resources/${created.id}`).set(writer).expect(204);
  });

  it('/users/me* needs profile', async () => {
    const svc = await serviceUser(t);
    const without = bearer(await clientToken(t, svc, ['resources:read', 'resources:write']));
    for (const req of [
      t.http.get('/users/me').set(without),
      t.http.patch('/users/me').set(without).send({ displayName: 'x' }),
      t.http.delete('/users/me/email/pending').set(without),
    ]) {
      const res = await req.expect(403);
      expect(res.body.code).toBe('INSUFFICIENT_SCOPE');
      expect(res.headers['www-authenticate']).toBe(challenge('profile'));
    }
    const me = await t.http
      .get('/users/me')
      .set(bearer(await clientToken(t, svc, ['profile'])))
      .expect(200);
    expect(me.body.id).toBe(svc.id);
  });

  it('admin routes need the admin role and users:admin', async () => {
    const target = await signup(t);
    const adminSvc = await serviceUser(t, { roles: ['user', 'admin'] });
    const plainSvc = await serviceUser(t);
    const routes = (auth: { Authorization: string }) => [
      t.http.get('/users').set(auth),
      t.http
        .patch(`/users/${target.id}`)
        .set(auth)
        .send({ roles: ['user'] }),
      t.http.delete(`/users/${target.id}/mfa`).set(auth),
    ];
    for (const req of routes(
      bearer(
        await clientToken(
          t,
          adminSvc,
          ALL_BUT_INTROSPECTION.filter((s) => s !== 'users:admin'),
        ),
      ),
    )) {
      const res = await req.expect(403);
      expect(res.body.code).toBe('INSUFFICIENT_SCOPE');
      expect(res.headers['www-authenticate']).toBe(challenge('users:admin'));
    }
    for (const req of routes(bearer(await clientToken(t, plainSvc, ['users:admin'])))) {
      expect((await req.expect(403)).body.code).toBe('INSUFFICIENT_ROLE');
    }
    const [list, patch, mfa] = routes(bearer(await clientToken(t, adminSvc, ['users:admin'])));
    await list!.expect(200);
    await patch!.expect(200);
    expect((await mfa!.expect(409)).body.code).toBe('MFA_NOT_ENABLED');
  });

  it('a v1 user token (no scope claim) still works everywhere', async () => {
    const alice = await signup(t);
    const v1 = bearer(asV1Token(t, alice.accessToken));
    const me = await t.http.get('/users/me').set(v1).expect(200);
    expect(me.body.id).toBe(alice.id);
    await t.http.patch('/users/me').set(v1).send({ displayName: 'Alice' }).expect(200);
    const created = await createResource(t, v1, { title: 'v1' });
    await t.http.get('/resources').set(v1).expect(200);
    await t.http.get(`/resources/${created.id}`).set(v1).expect(200);
    await t.http.patch(`/resources/${created.id}`).set(v1).send({ title: 'v1 changed' }).expect(200);
    await t.http.delete(`/resources/${created.id}`).set(v1).expect(204);
    await t.http.get('/auth/sessions').set(v1).expect(200);
    await t.http.get('/auth/mfa').set(v1).expect(200);

    const admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
    const adminV1 = bearer(asV1Token(t, admin.accessToken));
    await t.http.get('/users').set(adminV1).expect(200);
    await t.http
      .patch(`/users/${alice.id}`)
      .set(adminV1)
      .send({ roles: ['user'] })
      .expect(200);
    expect((await t.http.delete(`/users/${alice.id}/mfa`).set(adminV1).expect(409)).body.code).toBe('MFA_NOT_ENABLED');
  });

  it('user tokens carry every built-in scope but introspection by default', async () => {
    const alice = await signup(t);
    expect(String(decodeJwt(alice.accessToken).payload.scope).split(' ')).toEqual([...ALL_BUT_INTROSPECTION].sort());
  });
});

describe('client tokens on session routes', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS });
  });
  afterAll(async () => t?.close());

  it('answer 403 USER_SESSION_REQUIRED on every session route', async () => {
    const svc = await serviceUser(t);
    const auth = bearer(await clientToken(t, svc, BUILT_IN_SCOPES));
    const routes: Array<[string, () => ReturnType<TestApp['http']['get']>]> = [
      ['POST /auth/logout-all', () => t.http.post('/auth/logout-all').set(auth)],
      ['GET /auth/sessions', () => t.http.get('/auth/sessions').set(auth)],
      ['DELETE /auth/sessions/:id', () => t.http.delete(`/auth/sessions/${randomUUID()}`).set(auth)],
      ['GET /auth/mfa', () => t.http.get('/auth/mfa').set(auth)],
      ['POST /auth/mfa/totp', () => t.http.post('/auth/mfa/totp').set(auth).send({ password: PASSWORD })],
      ['POST /auth/mfa/totp/confirm', () => t.http.post('/auth/mfa/totp/confirm').set(auth).send({ code: '123456' })],
      [
        'POST /auth/mfa/recovery-codes',
        () => t.http.post('/auth/mfa/recovery-codes').set(auth).send({ code: '123456' }),
      ],
      ['DELETE /auth/mfa', () => t.http.delete('/auth/mfa').set(auth).send({ password: PASSWORD, code: '123456' })],
      [
        'POST /users/me/password',
        () =>
          t.http
            .post('/users/me/password')
            .set(auth)
            .send({ currentPassword: PASSWORD, newPassword: 'a new passphrase' }),
      ],
      [
        'POST /users/me/email',
        () => t.http.post('/users/me/email').set(auth).send({ newEmail: uniqueEmail(), password: PASSWORD }),
      ],
      ['DELETE /users/me/email/pending', () => t.http.delete('/users/me/email/pending').set(auth)],
      ['DELETE /users/me', () => t.http.delete('/users/me').set(auth).send({ password: PASSWORD })],
    ];
    for (const [route, send] of routes) {
      const res = await send();
      expect({ route, status: res.status, code: res.body.code }).toEqual({
        route,
        status: 403,
        code: 'USER_SESSION_REQUIRED',
      });
    }
    expect(await t.prisma.user.count({ where: { id: svc.id } })).toBe(1);
  });

  it('leave the public routes alone: /auth/login/mfa, and /auth/logout does not revoke the client secret', async () => {
    const svc = await serviceUser(t);
    const token = await clientToken(t, svc, ['resources:read']);
    const mfa = await t.http
      .post('/auth/login/mfa')
      .set(bearer(token))
      .send({ mfaToken: 'not-a-challenge', code: '123456' });
    expect(mfa.body.code).not.toBe('USER_SESSION_REQUIRED');
    expect(mfa.status).toBe(401);

    await t.http.post('/auth/logout').set(bearer(token)).expect(204);
    t.clock.advance(2);
    await t.http.get('/resources').set(bearer(token)).expect(200);
  });
});

describe('ADMIN_REQUIRE_MFA=true and client tokens', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', ADMIN_REQUIRE_MFA: 'true', ...ADMIN });
  });
  afterAll(async () => t?.close());

  it('holds people to a second factor, not a machine client given the admin role', async () => {
    const target = await signup(t);
    const privateOne = await createResource(t, target.auth, { title: 'private', visibility: 'private' });
    const admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
    const people = await t.http.get('/users').set(admin.auth).expect(403);
    expect(people.body.code).toBe('STEP_UP_REQUIRED');
    // Without a second factor an admin's powers over others' resources are gone too.
    await t.http.get(`/resources/${privateOne.id}`).set(admin.auth).expect(404);

    const adminSvc = await serviceUser(t, { roles: ['user', 'admin'] });
    const client = bearer(await clientToken(t, adminSvc, ['users:admin', 'resources:read']));
    const list = await t.http.get('/users').set(client).expect(200);
    expect(list.body.items.map((u: { id: string }) => u.id)).toContain(target.id);
    await t.http.get(`/resources/${privateOne.id}`).set(client).expect(200);
    // A user token of the same service user (a session, were there one) is a person's rule.
    const asUser = bearer(
      await t.app
        .get(AccessTokenService)
        .sign(adminSvc, randomUUID(), { amr: ['pwd'], acr: 'aal1', authTime: new Date() }),
    );
    expect((await t.http.get('/users').set(asUser).expect(403)).body.code).toBe('STEP_UP_REQUIRED');
  });
});

describe('USER_TOKEN_SCOPES without profile', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, USER_TOKEN_SCOPES: 'resources:read,resources:write' });
  });
  afterAll(async () => t?.close());

  it('gives user tokens only those scopes: /users/me answers 403, resources still work', async () => {
    const alice = await signup(t);
    expect(decodeJwt(alice.accessToken).payload.scope).toBe('resources:read resources:write');
    for (const auth of [alice.auth, bearer(asV1Token(t, alice.accessToken))]) {
      const res = await t.http.get('/users/me').set(auth).expect(403);
      expect(res.body.code).toBe('INSUFFICIENT_SCOPE');
      expect(res.headers['www-authenticate']).toBe(challenge('profile'));
      await createResource(t, auth);
      await t.http.get('/resources').set(auth).expect(200);
      // Session routes need no scope.
      await t.http.get('/auth/sessions').set(auth).expect(200);
    }
  });
});

describe('passwordless accounts', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000' });
  });
  afterAll(async () => t?.close());

  /** A user token of a Gatehouse session for this user (no session row is needed to verify it). */
  const sessionToken = async (user: { id: string; roles: Role[] }) =>
    bearer(
      await t.app.get(AccessTokenService).sign(user, randomUUID(), { amr: ['pwd'], acr: 'aal1', authTime: new Date() }),
    );

  const passwordRoutes = (auth: { Authorization: string }): Array<[string, ReturnType<TestApp['http']['get']>]> => [
    [
      'POST /users/me/password',
      t.http.post('/users/me/password').set(auth).send({ currentPassword: PASSWORD, newPassword: 'a new passphrase' }),
    ],
    ['DELETE /users/me', t.http.delete('/users/me').set(auth).send({ password: PASSWORD })],
    ['POST /auth/mfa/totp', t.http.post('/auth/mfa/totp').set(auth).send({ password: PASSWORD })],
    ['DELETE /auth/mfa', t.http.delete('/auth/mfa').set(auth).send({ password: PASSWORD, code: '123456' })],
    [
      'POST /users/me/email',
      t.http.post('/users/me/email').set(auth).send({ newEmail: uniqueEmail(), password: PASSWORD }),
    ],
  ];

  it('answer 403 NO_LOCAL_PASSWORD on the routes that need the password', async () => {
    const svc = await serviceUser(t);
    for (const [route, req] of passwordRoutes(await sessionToken(svc))) {
      const res = await req;
      expect({ route, status: res.status, code: res.body.code }).toEqual({
        route,
        status: 403,
        code: 'NO_LOCAL_PASSWORD',
      });
    }
    const after = await t.prisma.user.findUniqueOrThrow({ where: { id: svc.id } });
    expect(after.passwordHash).toBeNull();
    expect(after.mfaEnabled).toBe(false);
  });

  it('/users/me tells a person from a service user: kind, hasPassword, identities (only there)', async () => {
    const alice = await signup(t);
    const svc = await serviceUser(t);
    const person = await t.http.get('/users/me').set(alice.auth).expect(200);
    expect(person.body).toMatchObject({ id: alice.id, kind: 'person', hasPassword: true, identities: [] });
    const service = await t.http
      .get('/users/me')
      .set(await sessionToken(svc))
      .expect(200);
    expect(service.body).toMatchObject({ id: svc.id, kind: 'service', hasPassword: false, identities: [] });
    const patched = await t.http.patch('/users/me').set(alice.auth).send({ displayName: 'Alice' }).expect(200);
    expect(patched.body.kind).toBe('person');
    expect(Object.keys(patched.body).filter((k) => /password|identit/i.test(k))).toEqual([]);
  });

  it('an account with a password gets INVALID_PASSWORD there instead (the check is for passwordless ones)', async () => {
    const alice = await signup(t);
    const user = await t.prisma.user.findUniqueOrThrow({ where: { id: alice.id } });
    const wrong = [
      t.http
        .post('/users/me/password')
        .set(alice.auth)
        .send({ currentPassword: 'wrong password', newPassword: 'x'.repeat(10) }),
      t.http.delete('/users/me').set(alice.auth).send({ password: 'wrong password' }),
    ];
    for (const req of wrong) expect((await req.expect(403)).body.code).toBe('INVALID_PASSWORD');
    expect(user.passwordHash).not.toBeNull();
  });

  it('a password login to a passwordless account takes the unknown-account path', async () => {
    const svc = await serviceUser(t);
    const known = await t.http.post('/auth/login').send({ username: svc.username, password: PASSWORD }).expect(401);
    const unknown = await t.http
      .post('/auth/login')
      .send({ username: uniqueUsername('nobody'), password: PASSWORD })
      .expect(401);
    expect(known.text).toBe(unknown.text);
    expect(known.body.code).toBe('INVALID_CREDENTIALS');
  });

  it('a password reset never sets a password on a service user', async () => {
    const email = uniqueEmail('svc');
    const svc = await serviceUser(t, { email });
    // "forgot" treats it as unknown: no reset token is issued (a person's is, for contrast).
    const person = await signup(t, { email: uniqueEmail('person') });
    const personRow = await t.prisma.user.findUniqueOrThrow({ where: { id: person.id } });
    for (const name of [email, svc.username, personRow.email!]) {
      await t.http.post('/auth/password/forgot').send({ login: name }).expect(202);
    }
    await t.app.get(MailerService).whenIdle();
    const resets = (userId: string) => t.prisma.oneTimeToken.count({ where: { userId, purpose: 'reset_password' } });
    expect(await resets(person.id)).toBe(1);
    expect(await resets(svc.id)).toBe(0);

    // A reset token that somehow exists for it is refused.
    const token = await t.app
      .get(OneTimeTokensService)
      .issue({ userId: svc.id, purpose: 'reset_password', targetEmail: email, ttlSeconds: 600, ip: null });
    expect(token).not.toBeNull();
    const res = await t.http
      .post('/auth/password/reset')
      .send({ token, newPassword: 'a brand new passphrase' })
      .expect(400);
    expect(res.body.code).toBe('RESET_TOKEN_INVALID');
    expect((await t.prisma.user.findUniqueOrThrow({ where: { id: svc.id } })).passwordHash).toBeNull();
  });
});

describe('USER_TOKEN_SCOPES and OAUTH_EXTRA_SCOPES (configuration)', () => {
  it('accepts built-in scopes, and extra ones once OAUTH_EXTRA_SCOPES names them', () => {
    expect(parseConfig({ USER_TOKEN_SCOPES: 'profile resources:read' }).USER_TOKEN_SCOPES).toEqual([
      'profile',
      'resources:read',
    ]);
    const config = parseConfig({ OAUTH_EXTRA_SCOPES: 'billing:read, reports', USER_TOKEN_SCOPES: 'profile,reports' });
    expect(config.OAUTH_EXTRA_SCOPES).toEqual(['billing:read', 'reports']);
    expect(config.USER_TOKEN_SCOPES).toEqual(['profile', 'reports']);
  });

  it('refuses an unknown scope in USER_TOKEN_SCOPES, naming the variable and the scope', () => {
    const problems = problemsOf({ USER_TOKEN_SCOPES: 'profile reports' });
    expect(problems).toEqual([expect.stringMatching(/^USER_TOKEN_SCOPES: .*"reports"/)]);
  });

  it('refuses introspection in USER_TOKEN_SCOPES (only clients may hold it)', () => {
    const problems = problemsOf({ USER_TOKEN_SCOPES: 'profile introspection' });
    expect(problems).toEqual([expect.stringMatching(/^USER_TOKEN_SCOPES: .*"introspection"/)]);
  });

  it('refuses a built-in name in OAUTH_EXTRA_SCOPES', () => {
    const problems = problemsOf({ OAUTH_EXTRA_SCOPES: 'reports resources:read' });
    expect(problems).toEqual([expect.stringMatching(/^OAUTH_EXTRA_SCOPES: .*"resources:read"/)]);
  });
});
