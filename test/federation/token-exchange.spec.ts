import type { Response } from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, decodeJwt, signup, type SignedUp } from '../support/factories.js';
import { FakeIdp } from '../support/fake-idp.js';
import type { TestApp } from '../support/test-app.js';
import { FORM, basic, form, type Created } from '../clients/oauth-helpers.js';
import {
  adminPatchUser,
  adminSession,
  appNow,
  expectError,
  expectOk,
  meId,
  startFederated,
  tokenOf,
  uniqueSubject,
} from './accounts-helpers.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const TYPE = (name: string) => `urn:ietf:params:oauth:token-type:${name}`;
const ACCESS_TOKEN_TYPE = TYPE('access_token');

/**
 * Contract v2 §D test 12 (RFC 8693, phase 2): a machine client allowed `tokenExchange`
 * trades a configured issuer's token for a Gatehouse access token of the linked user, with
 * `act` naming the client's service user. The token acts as that user, within the
 * intersection of scopes, until the client's secret, the client or the user is ended.
 */
describe('RFC 8693 token exchange on POST /oauth/token', () => {
  let t: TestApp;
  let idp: FakeIdp;
  let locked: FakeIdp;
  let admin: SignedUp;
  let exchanger: Created;
  let plain: Created;
  let introspector: Created;
  /** A local user with a linked identity of `idp`. */
  let linkedUser: SignedUp;
  let linkedSub: string;

  const createClient = async (body: Record<string, unknown>): Promise<Created> => {
    const res = await t.http
      .post('/oauth/clients')
      .set(admin.auth)
      .send({ name: 'machine', ...body });
    expectOk(res, 201);
    return res.body as Created;
  };

  beforeAll(async () => {
    idp = await FakeIdp.start();
    locked = await FakeIdp.start({ path: '/realms/locked' });
    t = await startFederated([idp.entry(), locked.entry({ name: 'locked-idp', provisioning: 'linked-only' })]);
    admin = await adminSession(t);
    exchanger = await createClient({
      name: 'gateway',
      tokenExchange: true,
      allowedScopes: ['profile', 'resources:read', 'resources:write', 'introspection'],
    });
    plain = await createClient({ name: 'plain', allowedScopes: ['profile', 'resources:read'] });
    introspector = await createClient({ name: 'introspector', allowedScopes: ['introspection'] });
    linkedUser = await signup(t);
    linkedSub = uniqueSubject('linked');
    const linked = await t.http
      .post('/users/me/identities')
      .set(linkedUser.auth)
      .send({ subjectToken: await tokenOf(t, idp, { sub: linkedSub }), password: linkedUser.password });
    expectOk(linked, 201);
  });
  afterAll(async () => {
    await t?.close();
    await idp?.close();
    await locked?.close();
  });

  const post = (fields: Record<string, string>, headers: Record<string, string>, path = '/oauth/token') =>
    t.http.post(path).set('Content-Type', FORM).set(headers).send(form(fields));
  /** A token-exchange request of client `c` for `subjectToken`. */
  const exchangeAs = (c: Created, subjectToken: string, fields: Record<string, string> = {}, secret = c.secret.value) =>
    post(
      { grant_type: TOKEN_EXCHANGE, subject_token: subjectToken, subject_token_type: TYPE('jwt'), ...fields },
      basic(c.client.clientId, secret),
    );
  const idpToken = (sub = linkedSub, opts: Parameters<typeof tokenOf>[3] = {}) => tokenOf(t, idp, { sub }, opts);
  /** An exchanged access token (expects 200). */
  const exchanged = async (fields: Record<string, string> = {}, sub = linkedSub): Promise<string> => {
    const res = await exchangeAs(exchanger, await idpToken(sub), fields);
    expectOk(res, 200);
    return res.body.access_token as string;
  };
  const expectOAuthError = (res: Response, status: number, error: string) => {
    expect({ status: res.status, error: res.body?.error, body: res.status === status ? undefined : res.text }).toEqual({
      status,
      error,
      body: undefined,
    });
    expect(res.body.access_token).toBeUndefined();
    expect(res.headers['cache-control']).toBe('no-store');
  };
  const introspect = async (token: string) => {
    const res = await post(
      { token },
      basic(introspector.client.clientId, introspector.secret.value),
      '/oauth/introspect',
    );
    expectOk(res, 200);
    return res.body as Record<string, unknown>;
  };

  it('answers 400 unauthorized_client to a client without tokenExchange', async () => {
    const res = await exchangeAs(plain, await idpToken());
    expectOAuthError(res, 400, 'unauthorized_client');
    expect(plain.client).toMatchObject({ tokenExchange: false });
    expect(exchanger.client).toMatchObject({ tokenExchange: true });
  });

  it('issues an access token for the linked user, with act naming the client (each subject_token_type)', async () => {
    for (const type of ['jwt', 'access_token', 'id_token']) {
      const res = await exchangeAs(exchanger, await idpToken(), { subject_token_type: TYPE(type) });
      expectOk(res, 200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(Object.keys(res.body as object).sort()).toEqual([
        'access_token',
        'expires_in',
        'issued_token_type',
        'scope',
        'token_type',
      ]);
      expect(res.body).toMatchObject({
        issued_token_type: ACCESS_TOKEN_TYPE,
        token_type: 'Bearer',
        scope: 'profile resources:read resources:write',
      });
      expect(res.body.expires_in).toBeGreaterThan(0);
      const { header, payload } = decodeJwt(res.body.access_token as string);
      expect(header.typ).toBe('at+jwt');
      expect(payload).toMatchObject({
        sub: linkedUser.id,
        act: { sub: exchanger.client.serviceUserId, client_id: exchanger.client.clientId },
        client_id: exchanger.client.clientId,
        sid: exchanger.secret.id,
        scope: 'profile resources:read resources:write',
        iss: t.config.JWT_ISSUER,
      });
      expect(payload.exp as number).toBeLessThanOrEqual(appNow(t) + 300 + 5); // not beyond the subject token
    }
    const audit = await t.prisma.auditEvent.findMany({
      where: { type: 'federation.token_exchanged', userId: linkedUser.id },
    });
    expect(audit.length).toBeGreaterThanOrEqual(3);
  });

  it('acts as the linked user on Gatehouse routes, within its scopes, never as a session', async () => {
    const token = await exchanged();
    expect(await meId(t, bearer(token))).toBe(linkedUser.id);
    const created = await t.http.post('/resources').set(bearer(token)).send({ title: 'via gateway' });
    expectOk(created, 201);
    expect(created.body.ownerId).toBe(linkedUser.id);
    const mine = await t.http.get('/resources').set(linkedUser.auth);
    expect((mine.body.items as Array<{ id: string }>).map((r) => r.id)).toContain(created.body.id);
    expectError(await t.http.get('/auth/sessions').set(bearer(token)), 403, 'USER_SESSION_REQUIRED');

    // Narrowed on request: profile only.
    const narrow = await exchangeAs(exchanger, await idpToken(), { scope: 'profile' });
    expectOk(narrow, 200);
    expect(narrow.body.scope).toBe('profile');
    expect(decodeJwt(narrow.body.access_token as string).payload.scope).toBe('profile');
    const narrowAuth = bearer(narrow.body.access_token as string);
    expect(await meId(t, narrowAuth)).toBe(linkedUser.id);
    expectError(await t.http.get('/resources').set(narrowAuth), 403, 'INSUFFICIENT_SCOPE');
  });

  it('answers 400 invalid_scope to a scope beyond the client or beyond user tokens', async () => {
    for (const scope of ['users:admin', 'introspection', 'profile introspection', 'offline_access', 'no-such-scope']) {
      const res = await exchangeAs(exchanger, await idpToken(), { scope });
      expect({ scope, status: res.status, error: res.body.error }).toEqual({
        scope,
        status: 400,
        error: 'invalid_scope',
      });
    }
  });

  it('answers 400 invalid_request to missing or bad parameters and tokens', async () => {
    const good = await idpToken();
    const base = { grant_type: TOKEN_EXCHANGE, subject_token: good, subject_token_type: TYPE('jwt') };
    const auth = basic(exchanger.client.clientId, exchanger.secret.value);
    const stranger = await FakeIdp.start({ path: '/realms/stranger' });
    try {
      const cases: Record<string, Record<string, string>> = {
        noSubjectToken: { grant_type: TOKEN_EXCHANGE, subject_token_type: TYPE('jwt') },
        noSubjectTokenType: { grant_type: TOKEN_EXCHANGE, subject_token: good },
        samlType: { ...base, subject_token_type: TYPE('saml2') },
        refreshType: { ...base, subject_token_type: TYPE('refresh_token') },
        plainType: { ...base, subject_token_type: 'jwt' },
        garbage: { ...base, subject_token: 'garbage' },
        wrongAudience: { ...base, subject_token: await tokenOf(t, idp, { sub: linkedSub, aud: 'other-api' }) },
        expired: { ...base, subject_token: await idpToken(linkedSub, { now: appNow(t) - 400 }) },
        unknownIssuer: { ...base, subject_token: await stranger.sign({ sub: linkedSub }, { now: appNow(t) }) },
        gatehouseToken: { ...base, subject_token: linkedUser.accessToken },
        unlinkedUnderLinkedOnly: { ...base, subject_token: await tokenOf(t, locked, { sub: uniqueSubject('nobody') }) },
        actorToken: { ...base, actor_token: good, actor_token_type: TYPE('jwt') },
        requestedRefresh: { ...base, requested_token_type: TYPE('refresh_token') },
      };
      for (const [name, fields] of Object.entries(cases)) {
        const res = await post(fields, auth);
        expect({ name, status: res.status, error: res.body?.error }).toEqual({
          name,
          status: 400,
          error: 'invalid_request',
        });
        expect(res.body.access_token).toBeUndefined();
      }
    } finally {
      await stranger.close();
    }
    // requested_token_type access_token is what is issued anyway.
    expectOk(
      await post({ ...base, subject_token: await idpToken(), requested_token_type: ACCESS_TOKEN_TYPE }, auth),
      200,
    );
  });

  it('answers 401 invalid_client to a wrong secret or an unknown client', async () => {
    for (const res of [
      await exchangeAs(exchanger, await idpToken(), {}, 'gcs_wrong'),
      await exchangeAs(exchanger, await idpToken(), {}, plain.secret.value),
      await post(
        { grant_type: TOKEN_EXCHANGE, subject_token: await idpToken(), subject_token_type: TYPE('jwt') },
        basic('c_AAAAAAAAAAAAAAAAAAAA', exchanger.secret.value),
      ),
      await post({ grant_type: TOKEN_EXCHANGE, subject_token: await idpToken(), subject_token_type: TYPE('jwt') }, {}),
    ]) {
      expectOAuthError(res, 401, 'invalid_client');
    }
  });

  it('provisions an unseen sub under jit, and refuses a disabled user (invalid_request)', async () => {
    const sub = uniqueSubject('jit');
    const token = await exchanged({}, sub);
    const userId = decodeJwt(token).payload.sub as string;
    expect(userId).not.toBe(linkedUser.id);
    expect(await meId(t, bearer(token))).toBe(userId);
    // The same sub later: the same user.
    expect(decodeJwt(await exchanged({}, sub)).payload.sub).toBe(userId);

    await adminPatchUser(t, admin, userId, { disabled: true });
    expect((await t.http.get('/users/me').set(bearer(token))).status).toBe(401);
    expect(await introspect(token)).toEqual({ active: false });
    expectOAuthError(await exchangeAs(exchanger, await idpToken(sub)), 400, 'invalid_request');
    await adminPatchUser(t, admin, userId, { disabled: false });
    expect(await meId(t, bearer(await exchanged({}, sub)))).toBe(userId);
  });

  it('is reported active by introspection, with sub = the user and the client', async () => {
    const token = await exchanged({ scope: 'profile resources:read' });
    const claims = decodeJwt(token).payload;
    const report = await introspect(token);
    expect(report).toMatchObject({
      active: true,
      sub: linkedUser.id,
      client_id: exchanger.client.clientId,
      scope: 'profile resources:read',
      token_type: 'Bearer',
      sid: exchanger.secret.id,
      jti: claims.jti,
      exp: claims.exp,
    });
  });

  it('ends with the client secret: revoking it makes the token 401 and inactive', async () => {
    const client = await createClient({ name: 'short-lived', tokenExchange: true, allowedScopes: ['profile'] });
    const res = await exchangeAs(client, await idpToken());
    expectOk(res, 200);
    const token = res.body.access_token as string;
    expect(await meId(t, bearer(token))).toBe(linkedUser.id);
    expect((await introspect(token)).active).toBe(true);

    const revoked = await t.http
      .delete(`/oauth/clients/${client.client.id}/secrets/${client.secret.id}`)
      .set((await adminSession(t)).auth);
    expectOk(revoked, 204);
    expect((await t.http.get('/users/me').set(bearer(token))).status).toBe(401);
    expect(await introspect(token)).toEqual({ active: false });
    expectOAuthError(await exchangeAs(client, await idpToken()), 401, 'invalid_client');
    // The user and other clients' tokens are unaffected.
    expect(await meId(t, linkedUser.auth)).toBe(linkedUser.id);
    expect(await meId(t, bearer(await exchanged()))).toBe(linkedUser.id);
  });

  it('ends with the client: disabling it makes the token 401', async () => {
    const client = await createClient({ name: 'disabled-later', tokenExchange: true, allowedScopes: ['profile'] });
    const res = await exchangeAs(client, await idpToken());
    expectOk(res, 200);
    const token = res.body.access_token as string;
    expect(await meId(t, bearer(token))).toBe(linkedUser.id);
    const patched = await t.http
      .patch(`/oauth/clients/${client.client.id}`)
      .set((await adminSession(t)).auth)
      .send({ disabled: true });
    expectOk(patched, 200);
    expect((await t.http.get('/users/me').set(bearer(token))).status).toBe(401);
    expect(await introspect(token)).toEqual({ active: false });
  });
});
