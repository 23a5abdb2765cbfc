import { createHash, createPublicKey, generateKeyPairSync, type JsonWebKey } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import jwt from 'jsonwebtoken';
import type { Response } from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AccessTokenService } from '../../src/tokens/access-token.service.js';
import { BUILT_IN_SCOPES } from '../../src/tokens/scopes.js';
import { ROOMY_LIMITS } from '../support/env.js';
import { bearer, decodeJwt, login, signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { ADMIN, FORM, GRANT, basic, form, formEncode, type Created } from './oauth-helpers.js';

/**
 * The OAuth form endpoints of machine clients (contract v2 §C tests 1–6, 9–11, §0.8): the
 * client-credentials grant, client authentication and its throttle, introspection,
 * revocation and the authorization server metadata, all through HTTP.
 */

const DEFAULT_TTL = 900;
const ENV = {
  ...ROOMY_LIMITS,
  LOGIN_RATE_LIMIT: '1000',
  ...ADMIN,
  OAUTH_TOKEN_TTL: String(DEFAULT_TTL),
  OAUTH_EXTRA_SCOPES: 'billing:read',
  PUBLIC_URL: 'http://gatehouse.test:8080',
};
const OAUTH_ERROR_KEYS = ['code', 'error', 'error_description', 'message', 'statusCode'];

describe('OAuth form endpoints', () => {
  let t: TestApp;
  let admin: SignedUp;

  beforeAll(async () => {
    t = await startApp(ENV);
  });
  afterAll(async () => t?.close());
  afterEach(() => t.clock.unfreeze());

  /** A fresh admin session (tests move the clock past access-token lifetimes). */
  const adminAuth = async () => {
    admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
    return admin.auth;
  };
  const create = async (body: Record<string, unknown> = {}): Promise<Created> => {
    const res = await t.http
      .post('/oauth/clients')
      .set(await adminAuth())
      .send({ name: 'machine', allowedScopes: ['resources:read', 'resources:write'], ...body })
      .expect(201);
    return res.body as Created;
  };
  const addSecret = async (c: Created, body: Record<string, unknown> = {}) =>
    (
      await t.http
        .post(`/oauth/clients/${c.client.id}/secrets`)
        .set(await adminAuth())
        .send(body)
        .expect(201)
    ).body as Created['secret'];

  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    t.http.post(path).set('Content-Type', FORM).set(headers).send(body);
  const tokenWith = (c: Created, fields: Record<string, string> = {}, secret = c.secret.value) =>
    post('/oauth/token', form({ ...GRANT, ...fields }), basic(c.client.clientId, secret));
  /** A token from the token endpoint (expects 200). */
  const accessToken = async (c: Created, fields: Record<string, string> = {}, secret?: string): Promise<string> => {
    const res = await tokenWith(c, fields, secret);
    expect({ status: res.status, body: res.text }).toMatchObject({ status: 200 });
    return (res.body as { access_token: string }).access_token;
  };
  const resourcesStatus = async (token: string) => (await t.http.get('/resources').set(bearer(token))).status;

  /** An OAuth error: status, `error`, `code`, the merged body and no-store. */
  const expectOAuthError = (res: Response, status: number, error: string, code: string) => {
    expect({ status: res.status, body: res.text }).toMatchObject({ status });
    expect(Object.keys(res.body as object).sort()).toEqual(OAUTH_ERROR_KEYS);
    expect(res.body).toMatchObject({ statusCode: status, error, code });
    expect(res.body.message).toBe(res.body.error_description);
    expect(res.body.error_description).toMatch(/^[\x20\x21\x23-\x5b\x5d-\x7e]+$/); // RFC 6749 §5.2 characters
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers.pragma).toBe('no-cache');
  };
  const expectInvalidClient = (res: Response) => {
    expectOAuthError(res, 401, 'invalid_client', 'INVALID_CLIENT');
    expect(res.headers['www-authenticate']).toBe('Basic realm="gatehouse"');
  };

  /** Freezes the clock 100 ms into the next second: what happens now happens in one instant. */
  const freezeAtSecondStart = () => t.clock.freeze(Math.ceil(t.clock.nowMs() / 1000) * 1000 + 100);

  describe('POST /oauth/token', () => {
    it('issues an RFC 9068 token to client_secret_basic and client_secret_post', async () => {
      const c = await create({ accessTokenTtl: 600 });
      const viaBasic = await tokenWith(c);
      const viaPost = await post(
        '/oauth/token',
        form({ ...GRANT, client_id: c.client.clientId, client_secret: c.secret.value }),
      );
      const jwks = (await t.http.get('/.well-known/jwks.json').expect(200)).body as { keys: Array<JsonWebKey> };
      for (const res of [viaBasic, viaPost]) {
        expect({ status: res.status, body: res.text }).toMatchObject({ status: 200 });
        expect(res.headers['cache-control']).toBe('no-store');
        expect(res.headers.pragma).toBe('no-cache');
        expect(Object.keys(res.body as object).sort()).toEqual(['access_token', 'expires_in', 'scope', 'token_type']);
        expect(res.body).toMatchObject({
          token_type: 'Bearer',
          expires_in: 600,
          scope: 'resources:read resources:write',
        });
        const token = (res.body as { access_token: string }).access_token;
        const { header, payload } = decodeJwt(token);
        expect(header.typ).toBe('at+jwt');
        expect(typeof header.kid).toBe('string');
        expect(Object.keys(payload).sort()).toEqual(
          ['aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'roles', 'scope', 'sid', 'sub'].sort(),
        );
        expect(payload).toMatchObject({
          sub: c.client.serviceUserId,
          client_id: c.client.clientId,
          scope: 'resources:read resources:write',
          sid: c.secret.id,
          roles: ['user'],
          iss: t.config.JWT_ISSUER,
          aud: t.config.JWT_AUDIENCE,
        });
        expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
        expect((payload.exp as number) - (payload.iat as number)).toBe(600);
        // Verifies with the published key of its kid.
        const jwk = jwks.keys.find((k) => (k as { kid?: string }).kid === header.kid);
        expect(jwk).toBeDefined();
        const key = createPublicKey({ key: jwk!, format: 'jwk' });
        expect(() => jwt.verify(token, key, { algorithms: [header.alg as jwt.Algorithm] })).not.toThrow();
        expect(await resourcesStatus(token)).toBe(200);
      }
      expect(decodeJwt(viaBasic.body.access_token).payload.jti).not.toBe(
        decodeJwt(viaPost.body.access_token).payload.jti,
      );
    });

    it('gives a client without its own TTL OAUTH_TOKEN_TTL', async () => {
      const c = await create();
      const res = await tokenWith(c).expect(200);
      expect(res.body.expires_in).toBe(DEFAULT_TTL);
      const { payload } = decodeJwt(res.body.access_token);
      expect((payload.exp as number) - (payload.iat as number)).toBe(DEFAULT_TTL);
    });

    it('form-url-decodes Basic credentials (RFC 6749 §2.3.1): `:`, `%` and `+` in id and secret', async () => {
      const c = await create();
      // A secret with the characters that need encoding (set directly: generated ones have none).
      const odd = 'p:a%s+s w€:';
      await t.prisma.oAuthClientSecret.create({
        data: { clientId: c.client.id, secretHash: createHash('sha256').update(odd).digest(), prefix: odd.slice(0, 8) },
      });
      // Every character of the id percent-encoded; the secret's `:`, `%`, `+`, space, `€` encoded.
      const pctAll = (s: string) => [...Buffer.from(s)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
      const encoded = basic(c.client.clientId, odd, (s) => (s === odd ? formEncode(s) : pctAll(s)));
      expect(Buffer.from(encoded.Authorization.slice(6), 'base64').toString()).toMatch(
        /^%63%5f.*:p%3Aa%25s%2Bs\+w%E2%82%AC%3A$/i,
      );
      await post('/oauth/token', form(GRANT), encoded).expect(200);
      // The same through client_secret_post (the form decoding is the body's).
      await post('/oauth/token', form({ ...GRANT, client_id: c.client.clientId, client_secret: odd })).expect(200);
      // Not encoded, the secret's `%s+` does not decode and `+` would be a space: refused.
      const raw = { Authorization: `Basic ${Buffer.from(`${c.client.clientId}:${odd}`).toString('base64')}` };
      expectInvalidClient(await post('/oauth/token', form(GRANT), raw));
      const plus = basic(c.client.clientId, odd, (s) => (s === odd ? formEncode(s).replace('%2B', '+') : s));
      expectInvalidClient(await post('/oauth/token', form(GRANT), plus));
      // A colon inside the secret is fine unencoded: the split is at the first one.
      const colon = 'abc:def';
      await t.prisma.oAuthClientSecret.create({
        data: { clientId: c.client.id, secretHash: createHash('sha256').update(colon).digest(), prefix: 'abc:def' },
      });
      const rawColon = { Authorization: `Basic ${Buffer.from(`${c.client.clientId}:${colon}`).toString('base64')}` };
      await post('/oauth/token', form(GRANT), rawColon).expect(200);
    });

    it('answers 400 invalid_request to both methods at once, 401 with a Basic challenge to none', async () => {
      const c = await create();
      const both = await post(
        '/oauth/token',
        form({ ...GRANT, client_id: c.client.clientId, client_secret: c.secret.value }),
        basic(c.client.clientId, c.secret.value),
      );
      expectOAuthError(both, 400, 'invalid_request', 'INVALID_REQUEST');
      const otherId = await post(
        '/oauth/token',
        form({ ...GRANT, client_id: 'c_AAAAAAAAAAAAAAAAAAAA' }),
        basic(c.client.clientId, c.secret.value),
      );
      expectOAuthError(otherId, 400, 'invalid_request', 'INVALID_REQUEST');
      // Basic plus the same client_id in the body is one method.
      await post(
        '/oauth/token',
        form({ ...GRANT, client_id: c.client.clientId }),
        basic(c.client.clientId, c.secret.value),
      ).expect(200);
      expectInvalidClient(await post('/oauth/token', form(GRANT)));
    });

    it('answers byte-identical 401s to every failed authentication', async () => {
      const c = await create();
      const expiring = await addSecret(c, { expiresAt: new Date(t.clock.nowMs() + 60_000).toISOString() });
      const revoked = await addSecret(c);
      await t.http
        .delete(`/oauth/clients/${c.client.id}/secrets/${revoked.id}`)
        .set(await adminAuth())
        .expect(204);
      const disabled = await create();
      await t.http
        .patch(`/oauth/clients/${disabled.client.id}`)
        .set(await adminAuth())
        .send({ disabled: true })
        .expect(200);
      const serviceUserOff = await create();
      await t.http
        .patch(`/users/${serviceUserOff.client.serviceUserId}`)
        .set(await adminAuth())
        .send({ disabled: true })
        .expect(200);
      // The expiring secret works until its expiry.
      await tokenWith(c, {}, expiring.value).expect(200);
      t.clock.advance(61);

      const attempts: Array<[string, () => ReturnType<typeof post>]> = [
        ['unknown client', () => post('/oauth/token', form(GRANT), basic('c_AAAAAAAAAAAAAAAAAAAA', c.secret.value))],
        ['wrong secret', () => tokenWith(c, {}, `${c.secret.value.slice(0, -1)}x`)],
        ['expired secret', () => tokenWith(c, {}, expiring.value)],
        ['revoked secret', () => tokenWith(c, {}, revoked.value)],
        ['disabled client', () => tokenWith(disabled)],
        ['disabled service user', () => tokenWith(serviceUserOff)],
        ['no credentials', () => post('/oauth/token', form(GRANT))],
        ['client_id without secret', () => post('/oauth/token', form({ ...GRANT, client_id: c.client.clientId }))],
        ['malformed Basic', () => post('/oauth/token', form(GRANT), { Authorization: 'Basic !!!' })],
        [
          'Basic without a colon',
          () => post('/oauth/token', form(GRANT), { Authorization: `Basic ${Buffer.from('abc').toString('base64')}` }),
        ],
        ['a bearer token', () => post('/oauth/token', form(GRANT), bearer(admin.accessToken))],
        [
          'client_secret_post, wrong secret',
          () => post('/oauth/token', form({ ...GRANT, client_id: c.client.clientId, client_secret: 'nope' })),
        ],
      ];
      const answers: Array<[string, Response]> = [];
      for (const [label, attempt] of attempts) answers.push([label, await attempt()]);
      const [, first] = answers[0]!;
      const headerNames = (res: Response) =>
        Object.keys(res.headers)
          .filter((h) => h !== 'date')
          .sort();
      for (const [label, res] of answers) {
        expectInvalidClient(res);
        expect({ label, body: res.text, headers: headerNames(res) }).toEqual({
          label,
          body: first.text,
          headers: headerNames(first),
        });
      }
      expect(first.body.error_description).toBe('Client authentication failed');
      // The right secret still works: the client is not locked by a few failures.
      await tokenWith(c).expect(200);
      // Failures are audited with the client_id presented, never a secret.
      const audit = await t.prisma.auditEvent.findMany({ where: { type: 'client.auth_failed' } });
      expect(audit.some((e) => (e.details as { clientId?: string }).clientId === 'c_AAAAAAAAAAAAAAAAAAAA')).toBe(true);
      expect(JSON.stringify(audit)).not.toContain(c.secret.value.slice(4, -1));
    });

    it('rotates: two secrets work, then only the new one after the old one expires', async () => {
      const c = await create();
      const next = await addSecret(c);
      await accessToken(c);
      await accessToken(c, {}, next.value);
      await t.http
        .patch(`/oauth/clients/${c.client.id}/secrets/${c.secret.id}`)
        .set(await adminAuth())
        .send({ expiresAt: new Date(t.clock.nowMs() + 30_000).toISOString() })
        .expect(200);
      await accessToken(c);
      t.clock.advance(31);
      expectInvalidClient(await tokenWith(c));
      await accessToken(c, {}, next.value);
    });

    it("revoking a secret kills its tokens at once; the other secret's live on", async () => {
      const c = await create();
      const other = await addSecret(c);
      const doomed = await accessToken(c);
      const kept = await accessToken(c, {}, other.value);
      expect(await resourcesStatus(doomed)).toBe(200);
      await t.http
        .delete(`/oauth/clients/${c.client.id}/secrets/${c.secret.id}`)
        .set(await adminAuth())
        .expect(204);
      expect(await resourcesStatus(doomed)).toBe(401);
      expect(await resourcesStatus(kept)).toBe(200);
      expectInvalidClient(await tokenWith(c));
    });

    it('gives a client enabled again right after a disable a working token at once', async () => {
      const c = await create();
      const before = await accessToken(c);
      const auth = await adminAuth();
      // Disable, enable and ask for a token in one instant: the token must not be born revoked.
      freezeAtSecondStart();
      await t.http.patch(`/oauth/clients/${c.client.id}`).set(auth).send({ disabled: true }).expect(200);
      expectInvalidClient(await tokenWith(c));
      expect(await resourcesStatus(before)).toBe(401);
      await t.http.patch(`/oauth/clients/${c.client.id}`).set(auth).send({ disabled: false }).expect(200);
      const after = await accessToken(c);
      expect(await resourcesStatus(after)).toBe(200);
      expect(await resourcesStatus(before)).toBe(401);
    });

    it('grants exactly the scopes asked, all allowed ones when none, and refuses any other (invalid_scope)', async () => {
      const c = await create({ allowedScopes: ['resources:read', 'resources:write', 'billing:read'] });
      const subset = await tokenWith(c, { scope: 'resources:write resources:read' }).expect(200);
      expect(subset.body.scope).toBe('resources:read resources:write');
      expect(decodeJwt(subset.body.access_token).payload.scope).toBe('resources:read resources:write');
      const one = await tokenWith(c, { scope: 'resources:read' }).expect(200);
      expect(one.body.scope).toBe('resources:read');
      // A resources:read token cannot write.
      const write = await t.http.post('/resources').set(bearer(one.body.access_token)).send({ title: 'x' });
      expect(write.status).toBe(403);
      for (const scope of ['', ' ']) {
        const all = await post(
          '/oauth/token',
          `${form(GRANT)}&scope=${formEncode(scope)}`,
          basic(c.client.clientId, c.secret.value),
        ).expect(200);
        expect(all.body.scope).toBe('billing:read resources:read resources:write');
      }
      for (const scope of [
        'profile',
        'nope:nothing',
        'offline_access',
        'resources:read offline_access',
        'resources:read introspection',
        'a"b\\c',
      ]) {
        expectOAuthError(await tokenWith(c, { scope }), 400, 'invalid_scope', 'INVALID_SCOPE');
      }
      const named = await tokenWith(c, { scope: 'resources:read users:admin' });
      expect(named.body.error_description).toContain('users:admin');
    });

    it.each(['password', 'refresh_token', 'authorization_code', 'implicit', 'urn:x:unknown'])(
      'answers 400 unsupported_grant_type to grant_type=%s',
      async (grant) => {
        const c = await create();
        expectOAuthError(
          await tokenWith(c, { grant_type: grant }),
          400,
          'unsupported_grant_type',
          'UNSUPPORTED_GRANT_TYPE',
        );
      },
    );

    it('answers 400 invalid_request without grant_type, and unauthorized_client to token exchange without the right', async () => {
      const c = await create();
      const empty = await post('/oauth/token', '', basic(c.client.clientId, c.secret.value));
      expectOAuthError(empty, 400, 'invalid_request', 'INVALID_REQUEST');
      expect(empty.body.error_description).toBe('grant_type is required');
      expectOAuthError(
        await post('/oauth/token', 'grant_type=', basic(c.client.clientId, c.secret.value)),
        400,
        'invalid_request',
        'INVALID_REQUEST',
      );
      const exchange = { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange' };
      expectOAuthError(await tokenWith(c, exchange), 400, 'unauthorized_client', 'UNAUTHORIZED_CLIENT');
      const exchanger = await create({ tokenExchange: true });
      expectOAuthError(await tokenWith(exchanger, exchange), 400, 'invalid_request', 'INVALID_REQUEST');
    });

    it('takes form bodies only: JSON, other types, a repeated parameter or too many are 400 invalid_request', async () => {
      const c = await create();
      const auth = basic(c.client.clientId, c.secret.value);
      const json = await t.http.post('/oauth/token').set(auth).send({ grant_type: 'client_credentials' });
      expectOAuthError(json, 400, 'invalid_request', 'INVALID_REQUEST');
      for (const type of ['text/plain', 'multipart/form-data; boundary=x', 'application/xml']) {
        const res = await t.http
          .post('/oauth/token')
          .set(auth)
          .set('Content-Type', type)
          .send('grant_type=client_credentials');
        expectOAuthError(res, 400, 'invalid_request', 'INVALID_REQUEST');
      }
      const repeated = await post(
        '/oauth/token',
        form([
          ['grant_type', 'client_credentials'],
          ['grant_type', 'client_credentials'],
        ]),
        auth,
      );
      expectOAuthError(repeated, 400, 'invalid_request', 'INVALID_REQUEST');
      expect(repeated.body.error_description).toContain('grant_type');
      const repeatedScope = await post(
        '/oauth/token',
        form([...Object.entries(GRANT), ['scope', 'resources:read'], ['scope', '']]),
        auth,
      );
      expectOAuthError(repeatedScope, 400, 'invalid_request', 'INVALID_REQUEST');
      const many = form([
        ...Object.entries(GRANT),
        ...Array.from({ length: 20 }, (_, i): [string, string] => [`x${i}`, '1']),
      ]);
      expectOAuthError(await post('/oauth/token', many, auth), 400, 'invalid_request', 'INVALID_REQUEST');
      // Unknown parameters are ignored (RFC 6749 §3.2), up to the limit of 20.
      const twenty = form([
        ...Object.entries(GRANT),
        ...Array.from({ length: 19 }, (_, i): [string, string] => [`x${i}`, '1']),
      ]);
      await post('/oauth/token', twenty, auth).expect(200);
      // A charset parameter is fine; the form's own type with a JSON body is not JSON.
      await t.http
        .post('/oauth/token')
        .set(auth)
        .set('Content-Type', `${FORM}; charset=utf-8`)
        .send(form(GRANT))
        .expect(200);
    });

    it('answers 413 to a body over 16 KiB, in the OAuth shape', async () => {
      const c = await create();
      const body = `${form(GRANT)}&pad=${'a'.repeat(17 * 1024)}`;
      const res = await post('/oauth/token', body, basic(c.client.clientId, c.secret.value));
      expectOAuthError(res, 413, 'invalid_request', 'PAYLOAD_TOO_LARGE');
      // Chunked (no Content-Length): refused while reading.
      const chunked = await chunkedPost(
        t,
        '/oauth/token',
        { ...basic(c.client.clientId, c.secret.value), 'Content-Type': FORM },
        body,
      );
      expect(chunked.status).toBe(413);
      expect(chunked.headers['cache-control']).toBe('no-store');
      expect(JSON.parse(chunked.body)).toMatchObject({ error: 'invalid_request', code: 'PAYLOAD_TOO_LARGE' });
    });

    it('routes /oauth/token as the router does (case, trailing slash) with the form parser', async () => {
      const c = await create();
      for (const path of ['/OAuth/Token', '/oauth/token/']) {
        const res = await post(path, form(GRANT), basic(c.client.clientId, c.secret.value));
        expect({ path, status: res.status, body: res.text }).toMatchObject({ path, status: 200 });
      }
    });
  });

  describe('POST /oauth/introspect', () => {
    let introspector: Created;
    beforeAll(async () => {
      introspector = await create({ allowedScopes: ['introspection'] });
    });
    const introspect = (token: string, as: Created = introspector) =>
      post('/oauth/introspect', form({ token }), basic(as.client.clientId, as.secret.value));
    const inactive = async (token: string) => {
      const res = await introspect(token).expect(200);
      expect(res.body).toEqual({ active: false });
      expect(res.headers['cache-control']).toBe('no-store');
    };

    it("describes an active user token, its session's from the database", async () => {
      const user = await signup(t);
      const res = await introspect(user.accessToken).expect(200);
      expect(res.headers['cache-control']).toBe('no-store');
      const claims = decodeJwt(user.accessToken).payload;
      expect(res.body).toEqual({
        active: true,
        token_type: 'Bearer',
        scope: claims.scope,
        username: user.username,
        sub: user.id,
        aud: t.config.JWT_AUDIENCE,
        iss: t.config.JWT_ISSUER,
        exp: claims.exp,
        iat: claims.iat,
        jti: claims.jti,
        sid: claims.sid,
        acr: 'aal1',
        amr: ['pwd'],
      });
      expect(res.body.scope).toBe(
        BUILT_IN_SCOPES.filter((s) => s !== 'introspection')
          .sort()
          .join(' '),
      );
      // After logout: inactive.
      await t.http.post('/auth/logout').set(user.auth).expect(204);
      await inactive(user.accessToken);
    });

    it('describes an active client token', async () => {
      const c = await create();
      const token = await accessToken(c, { scope: 'resources:read' });
      const claims = decodeJwt(token).payload;
      const res = await introspect(token).expect(200);
      expect(res.body).toEqual({
        active: true,
        token_type: 'Bearer',
        scope: 'resources:read',
        client_id: c.client.clientId,
        sub: c.client.serviceUserId,
        aud: t.config.JWT_AUDIENCE,
        iss: t.config.JWT_ISSUER,
        exp: claims.exp,
        iat: claims.iat,
        jti: claims.jti,
        sid: c.secret.id,
      });
      // A client may introspect its own token too (allowed the scope, it is the caller).
      const both = await create({ allowedScopes: ['introspection', 'resources:read'] });
      const own = await accessToken(both);
      expect((await introspect(own, both).expect(200)).body.active).toBe(true);
    });

    it('asks the database: a service user disabled or a session ended there only makes the token inactive', async () => {
      const c = await create();
      const token = await accessToken(c);
      expect((await introspect(token).expect(200)).body.active).toBe(true);
      // Changed in the database only (no revocation entry): the token still verifies, yet is not active.
      await t.prisma.user.update({ where: { id: c.client.serviceUserId }, data: { disabled: true } });
      expect(await resourcesStatus(token)).toBe(200);
      await inactive(token);
      // A user token whose session ended in the database only: the same.
      const user = await signup(t);
      expect((await introspect(user.accessToken).expect(200)).body.active).toBe(true);
      const sid = decodeJwt(user.accessToken).payload.sid as string;
      await t.prisma.session.update({ where: { id: sid }, data: { revokedAt: t.clock.now() } });
      expect(await resourcesStatus(user.accessToken)).toBe(200);
      await inactive(user.accessToken);
    });

    it('answers inactive after a secret revocation, after expiry, and for garbage or foreign tokens', async () => {
      const c = await create({ accessTokenTtl: 60 });
      const revokedToken = await accessToken(c);
      const other = await addSecret(c);
      const expiring = await accessToken(c, {}, other.value);
      await t.http
        .delete(`/oauth/clients/${c.client.id}/secrets/${c.secret.id}`)
        .set(await adminAuth())
        .expect(204);
      await inactive(revokedToken);
      expect((await introspect(expiring).expect(200)).body.active).toBe(true);
      t.clock.advance(61);
      await inactive(expiring);

      for (const garbage of ['x', 'a.b.c', `${'A'.repeat(100)}.${'B'.repeat(100)}.${'C'.repeat(43)}`])
        await inactive(garbage);
      // Signed by someone else's key, with this deployment's claims.
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const fresh = await accessToken(c, {}, other.value);
      const { header, payload } = decodeJwt(fresh);
      await inactive(
        jwt.sign(payload, privateKey, { algorithm: 'ES256', header: { ...header, alg: 'ES256' } as jwt.JwtHeader }),
      );
      // Another issuer's token signed with our own key: not ours either.
      const keys = t.app.get(AccessTokenService).keys;
      const foreign = jwt.sign({ ...payload, iss: 'https://elsewhere.test' }, keys.signing.key, {
        algorithm: keys.algorithm,
        keyid: keys.signing.kid,
        header: { alg: keys.algorithm, typ: 'at+jwt' },
      });
      await inactive(foreign);
    });

    it('answers 403 insufficient_scope without the introspection scope, 401 to bad credentials, 400 without a token', async () => {
      const c = await create();
      const token = await accessToken(c);
      expectOAuthError(
        await post('/oauth/introspect', form({ token }), basic(c.client.clientId, c.secret.value)),
        403,
        'insufficient_scope',
        'INSUFFICIENT_SCOPE',
      );
      expectInvalidClient(
        await post('/oauth/introspect', form({ token }), basic(introspector.client.clientId, 'wrong')),
      );
      expectInvalidClient(await post('/oauth/introspect', form({ token })));
      // A bearer token is no client authentication.
      expectInvalidClient(await post('/oauth/introspect', form({ token }), bearer(token)));
      expectOAuthError(
        await post('/oauth/introspect', '', basic(introspector.client.clientId, introspector.secret.value)),
        400,
        'invalid_request',
        'INVALID_REQUEST',
      );
      const json = await t.http
        .post('/oauth/introspect')
        .set(basic(introspector.client.clientId, introspector.secret.value))
        .send({ token });
      expectOAuthError(json, 400, 'invalid_request', 'INVALID_REQUEST');
    });
  });

  describe('POST /oauth/revoke', () => {
    const revoke = (c: Created, fields: Record<string, string>) =>
      post('/oauth/revoke', form(fields), basic(c.client.clientId, c.secret.value));

    it("revokes the caller's own token: 200, then 401 everywhere and inactive", async () => {
      const c = await create();
      const introspector = await create({ allowedScopes: ['introspection'] });
      const token = await accessToken(c);
      const sibling = await accessToken(c);
      expect(await resourcesStatus(token)).toBe(200);
      const res = await revoke(c, { token, token_type_hint: 'access_token' }).expect(200);
      expect(res.text).toBe('');
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers.pragma).toBe('no-cache');
      expect(await resourcesStatus(token)).toBe(401);
      expect((await t.http.get('/users/me').set(bearer(token))).status).toBe(401);
      const intro = await post(
        '/oauth/introspect',
        form({ token }),
        basic(introspector.client.clientId, introspector.secret.value),
      );
      expect(intro.body).toEqual({ active: false });
      // Only that token: the client's other tokens and new ones work.
      expect(await resourcesStatus(sibling)).toBe(200);
      expect(await resourcesStatus(await accessToken(c))).toBe(200);
      // Audited, by jti.
      const audit = await t.prisma.auditEvent.findMany({
        where: { type: 'client.token_revoked', userId: c.client.serviceUserId },
      });
      expect(audit).toHaveLength(1);
      expect(audit[0]!.details).toMatchObject({ clientId: c.client.clientId, jti: decodeJwt(token).payload.jti });
      // Again: still 200.
      await revoke(c, { token }).expect(200);
    });

    it("leaves another client's token, a user's token and garbage alone, with the same 200", async () => {
      const a = await create();
      const b = await create();
      const user = await signup(t);
      const theirs = await accessToken(b);
      for (const token of [theirs, user.accessToken, 'garbage', 'a.b.c']) {
        const res = await revoke(a, { token, token_type_hint: 'refresh_token' }).expect(200);
        expect(res.text).toBe('');
      }
      expect(await resourcesStatus(theirs)).toBe(200);
      expect(await resourcesStatus(user.accessToken)).toBe(200);
      expect(
        await t.prisma.auditEvent.count({ where: { type: 'client.token_revoked', userId: b.client.serviceUserId } }),
      ).toBe(0);
    });

    it('answers 400 without a token and 401 to bad credentials', async () => {
      const c = await create();
      const token = await accessToken(c);
      expectOAuthError(await revoke(c, {}), 400, 'invalid_request', 'INVALID_REQUEST');
      expectOAuthError(await revoke(c, { token_type_hint: 'access_token' }), 400, 'invalid_request', 'INVALID_REQUEST');
      expectInvalidClient(await post('/oauth/revoke', form({ token }), basic(c.client.clientId, 'wrong')));
      expectInvalidClient(await post('/oauth/revoke', form({ token })));
      expect(await resourcesStatus(token)).toBe(200);
    });
  });

  describe('GET /.well-known/oauth-authorization-server', () => {
    it("publishes RFC 8414 metadata whose issuer is the tokens' iss and whose URLs resolve", async () => {
      const res = await t.http.get('/.well-known/oauth-authorization-server').expect(200);
      expect(res.headers['cache-control']).toBe('public, max-age=600');
      const base = ENV.PUBLIC_URL;
      expect(res.body).toEqual({
        issuer: t.config.JWT_ISSUER,
        token_endpoint: `${base}/oauth/token`,
        introspection_endpoint: `${base}/oauth/introspect`,
        revocation_endpoint: `${base}/oauth/revoke`,
        jwks_uri: `${base}/.well-known/jwks.json`,
        grant_types_supported: ['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'],
        token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
        introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
        revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
        scopes_supported: [...BUILT_IN_SCOPES, 'billing:read'],
        response_types_supported: [],
        service_documentation: `${base}/docs`,
      });
      const c = await create();
      expect(decodeJwt(await accessToken(c)).payload.iss).toBe(res.body.issuer);
      // Each URL is this server's (PUBLIC_URL) and answers there: the form endpoints ask for a client.
      const pathOf = (url: string) => {
        expect(url.startsWith(`${base}/`)).toBe(true);
        return new URL(url).pathname;
      };
      for (const key of ['token_endpoint', 'introspection_endpoint', 'revocation_endpoint']) {
        expectInvalidClient(await post(pathOf(res.body[key] as string), ''));
      }
      const jwks = await t.http.get(pathOf(res.body.jwks_uri as string)).expect(200);
      expect(jwks.body.keys.length).toBeGreaterThan(0);
      await t.http.get(pathOf(res.body.service_documentation as string)).expect(200);
    });
  });

  describe('throttling', () => {
    it('answers the 21st bad secret of a client 429 too_many_requests, leaving other clients alone', async () => {
      const victim = await create();
      const bystander = await create();
      freezeAtSecondStart();
      for (let i = 0; i < 20; i++) expectInvalidClient(await tokenWith(victim, {}, `wrong ${i}`));
      const limited = await tokenWith(victim, {}, 'wrong 20');
      expectOAuthError(limited, 429, 'too_many_requests', 'TOO_MANY_ATTEMPTS');
      expect(limited.headers['retry-after']).toMatch(/^[1-9]\d*$/);
      // The right secret still goes through (a client_id is public: anyone's failures must not
      // lock its service out), and does not lift the limit for wrong ones.
      await accessToken(victim);
      expectOAuthError(await tokenWith(victim, {}, 'wrong 21'), 429, 'too_many_requests', 'TOO_MANY_ATTEMPTS');
      // Other clients, from the same address, are not affected.
      await accessToken(bystander);
      // The same for a client_id that does not exist (no enumeration).
      const ghost = 'c_ZZZZZZZZZZZZZZZZZZZZ';
      for (let i = 0; i < 20; i++) expectInvalidClient(await post('/oauth/token', form(GRANT), basic(ghost, `x${i}`)));
      expectOAuthError(
        await post('/oauth/token', form(GRANT), basic(ghost, 'x')),
        429,
        'too_many_requests',
        'TOO_MANY_ATTEMPTS',
      );
      // Once the back-off has passed, a wrong secret is an ordinary 401 again.
      t.clock.advance(Number(limited.headers['retry-after']));
      expectInvalidClient(await tokenWith(victim, {}, 'wrong 22'));
    });

    it('with the back-off of a login: 429s do not count, a wait of 1 s that doubles', async () => {
      const c = await create();
      freezeAtSecondStart();
      for (let i = 0; i < 20; i++) expectInvalidClient(await tokenWith(c, {}, 'wrong'));
      expect((await tokenWith(c, {}, 'wrong')).headers['retry-after']).toBe('1');
      expect((await tokenWith(c, {}, 'wrong')).headers['retry-after']).toBe('1');
      t.clock.advance(1);
      expectInvalidClient(await tokenWith(c, {}, 'wrong'));
      expect((await tokenWith(c, {}, 'wrong')).headers['retry-after']).toBe('2');
    });

    it('does not count successes', async () => {
      const c = await create();
      freezeAtSecondStart();
      for (let i = 0; i < 25; i++) await accessToken(c);
      for (let i = 0; i < 19; i++) expectInvalidClient(await tokenWith(c, {}, 'wrong'));
      await accessToken(c);
    });
  });
});

describe('OAuth client throttling per address', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ENV, OAUTH_CLIENT_RATE_LIMIT: '2' });
  });
  afterAll(async () => t?.close());

  it('allows an address ten times OAUTH_CLIENT_RATE_LIMIT failures across client ids, then 429', async () => {
    t.clock.freeze();
    const attempt = (i: number) =>
      t.http
        .post('/oauth/token')
        .set('Content-Type', FORM)
        .set(basic(`c_NOSUCHCLIENT${String(i).padStart(7, '0')}`, 'x'))
        .send(form(GRANT));
    // 2 per client id, 10 x 2 = 20 per address: 10 ids twice each pass the client limit.
    for (let i = 0; i < 10; i++) {
      expect((await attempt(i)).status).toBe(401);
      expect((await attempt(i)).status).toBe(401);
    }
    const res = await attempt(10);
    expect(res.status).toBe(429);
    expect(res.body).toMatchObject({ error: 'too_many_requests', code: 'TOO_MANY_ATTEMPTS' });
    t.clock.unfreeze();
  });
});

/** A POST whose body goes in chunks, without Content-Length (what supertest does not send). */
async function chunkedPost(
  t: TestApp,
  path: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const server = t.app.getHttpServer();
  if (!server.listening) await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    for (let i = 0; i < body.length; i += 4096) req.write(body.slice(i, i + 4096));
    req.end();
  });
}
