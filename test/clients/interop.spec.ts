import type { Server } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { login } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

/**
 * Machine clients as a third party sees them (contract v2 §C): the server on a real port,
 * discovered by `openid-client` from its RFC 8414 metadata, tokens obtained with the
 * client-credentials grant (client_secret_basic and client_secret_post), verified offline
 * by `jose` against the published JWKS (RFC 9068), then introspected (RFC 7662) and revoked
 * (RFC 7009) with `openid-client` too. Nothing here uses the server's own code to check it.
 *
 * openid-client validates that the discovered `issuer` is the URL it discovered from
 * (RFC 8414 §3.3), so JWT_ISSUER is this server's base URL, like PUBLIC_URL.
 */

const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
/** What a resource server would be configured to expect as `aud`. */
const AUDIENCE = 'https://api.gatehouse.test';
const TTL = 600;

interface Created {
  client: { id: string; clientId: string; serviceUserId: string };
  secret: { id: string; value: string };
}

type Method = 'client_secret_basic' | 'client_secret_post';

/** One request as openid-client sent it. */
interface Sent {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', resolve);
  });
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe('interoperability with openid-client and jose', () => {
  let t: TestApp;
  let base: string;

  beforeAll(async () => {
    // PUBLIC_URL (and so the metadata's URLs) must be known at start-up: the port is chosen first.
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    t = await startApp({
      ...ROOMY_LIMITS,
      LOGIN_RATE_LIMIT: '1000',
      ...ADMIN,
      PUBLIC_URL: base,
      JWT_ISSUER: base,
      JWT_AUDIENCE: AUDIENCE,
      OAUTH_EXTRA_SCOPES: 'billing:read',
    });
    const server = t.app.getHttpServer() as Server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
  });
  afterAll(async () => t?.close());

  /** A client created by the admin API (the creation response is the only place its secret shows). */
  const create = async (allowedScopes: string[], body: Record<string, unknown> = {}): Promise<Created> => {
    const admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
    const res = await t.http
      .post('/oauth/clients')
      .set(admin.auth)
      .send({ name: 'third party', allowedScopes, accessTokenTtl: TTL, ...body })
      .expect(201);
    return res.body as Created;
  };

  /**
   * openid-client's Configuration for this client, by discovery (RFC 8414 metadata, plain
   * http allowed); every request it makes is recorded in `sent`.
   */
  const discover = async (clientId: string, secret: string, method: Method, sent: Sent[] = []) => {
    const auth = method === 'client_secret_basic' ? oidc.ClientSecretBasic(secret) : oidc.ClientSecretPost(secret);
    const recordingFetch: oidc.CustomFetch = (url, options) => {
      sent.push({ url, headers: { ...options.headers }, body: bodyText(options.body) });
      return fetch(url, options as RequestInit);
    };
    return oidc.discovery(new URL(base), clientId, undefined, auth, {
      algorithm: 'oauth2',
      // Plain http on loopback, in a test (marked deprecated only to stand out).
      execute: [oidc.allowInsecureRequests],
      [oidc.customFetch]: recordingFetch,
    });
  };

  /** What a resource server does: verify the JWT against the published keys, as RFC 9068 says. */
  const verify = async (config: oidc.Configuration, token: string) => {
    const metadata = config.serverMetadata();
    const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri!));
    return jwtVerify(token, jwks, {
      issuer: metadata.issuer,
      audience: AUDIENCE,
      typ: 'at+jwt',
      algorithms: ['ES256'],
      requiredClaims: ['iss', 'aud', 'exp', 'iat', 'sub', 'jti', 'client_id'],
    });
  };

  /** An API call with this bearer token, through fetch like any HTTP client. */
  const api = (path: string, token: string, init: { method?: string; body?: string; json?: boolean } = {}) =>
    fetch(`${base}${path}`, {
      method: init.method ?? 'GET',
      body: init.body,
      headers: { Authorization: `Bearer ${token}`, ...(init.json ? { 'Content-Type': 'application/json' } : {}) },
    });

  it('discovers the server through /.well-known/oauth-authorization-server', async () => {
    const c = await create(['resources:read']);
    const sent: Sent[] = [];
    const config = await discover(c.client.clientId, c.secret.value, 'client_secret_basic', sent);
    expect(sent.map((s) => s.url)).toEqual([`${base}/.well-known/oauth-authorization-server`]);
    const metadata = config.serverMetadata();
    expect(metadata).toMatchObject({
      issuer: base,
      token_endpoint: `${base}/oauth/token`,
      introspection_endpoint: `${base}/oauth/introspect`,
      revocation_endpoint: `${base}/oauth/revoke`,
      jwks_uri: `${base}/.well-known/jwks.json`,
      grant_types_supported: expect.arrayContaining(['client_credentials']) as unknown,
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      response_types_supported: [],
    });
    expect(metadata.scopes_supported).toEqual(
      expect.arrayContaining(['resources:read', 'resources:write', 'introspection', 'billing:read']),
    );
    expect(config.clientMetadata().client_id).toBe(c.client.clientId);
  });

  describe.each<Method>(['client_secret_basic', 'client_secret_post'])('clientCredentialsGrant with %s', (method) => {
    it('gets the scope subset asked for, as an RFC 9068 JWT that jose verifies through the JWKS', async () => {
      const c = await create(['resources:read', 'resources:write', 'billing:read']);
      const sent: Sent[] = [];
      const config = await discover(c.client.clientId, c.secret.value, method, sent);
      const tokens = await oidc.clientCredentialsGrant(config, { scope: 'resources:read billing:read' });

      // The request went out as the method says (RFC 6749 §2.3.1).
      const request = sent.find((s) => s.url === `${base}/oauth/token`)!;
      const body = new URLSearchParams(request.body);
      expect(body.get('grant_type')).toBe('client_credentials');
      const authorization = Object.entries(request.headers).find(([k]) => k.toLowerCase() === 'authorization')?.[1];
      expect({
        scheme: authorization?.split(' ')[0],
        client_id: body.get('client_id'),
        client_secret: body.get('client_secret'),
      }).toEqual(
        method === 'client_secret_basic'
          ? { scheme: 'Basic', client_id: null, client_secret: null }
          : { scheme: undefined, client_id: c.client.clientId, client_secret: c.secret.value },
      );

      // The token response (openid-client lower-cases token_type).
      expect(tokens.token_type).toBe('bearer');
      expect(tokens.scope).toBe('billing:read resources:read');
      expect(tokens.expires_in).toBe(TTL);
      expect(tokens.refresh_token).toBeUndefined();
      expect(tokens.id_token).toBeUndefined();

      // Verified offline, as a resource server would.
      const { payload, protectedHeader } = await verify(config, tokens.access_token);
      expect(protectedHeader).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
      expect(typeof protectedHeader.kid).toBe('string');
      const jwks = (await (await fetch(config.serverMetadata().jwks_uri!)).json()) as { keys: Array<{ kid: string }> };
      expect(jwks.keys.map((k) => k.kid)).toContain(protectedHeader.kid);
      expect(payload).toMatchObject({
        iss: base,
        aud: AUDIENCE,
        sub: c.client.serviceUserId,
        client_id: c.client.clientId,
        scope: 'billing:read resources:read',
        sid: c.secret.id,
      });
      expect(payload.exp! - payload.iat!).toBe(tokens.expires_in);
      expect(Math.abs(payload.iat! - Date.now() / 1000)).toBeLessThan(60);

      // The API takes it, for what its scope allows and nothing more.
      expect((await api('/resources', tokens.access_token)).status).toBe(200);
      const write = await api('/resources', tokens.access_token, {
        method: 'POST',
        json: true,
        body: JSON.stringify({ title: 'not allowed' }),
      });
      expect(write.status).toBe(403);
    });

    it('surfaces a wrong secret as invalid_client', async () => {
      const c = await create(['resources:read']);
      const config = await discover(c.client.clientId, `${c.secret.value.slice(0, -1)}x`, method);
      const error = await rejectionOf(oidc.clientCredentialsGrant(config));
      // The 401 carries `WWW-Authenticate: Basic` (RFC 6749 §5.2), which openid-client reports
      // as a challenge error before reading the body; the body is the RFC 6749 error.
      expect(error).toBeInstanceOf(oidc.WWWAuthenticateChallengeError);
      const challenge = error as oidc.WWWAuthenticateChallengeError;
      expect(challenge.status).toBe(401);
      expect(challenge.cause).toEqual([
        expect.objectContaining({ scheme: 'basic', parameters: { realm: 'gatehouse' } }),
      ]);
      expect(await oauthErrorOf(error)).toBe('invalid_client');
      // The right secret still works.
      const good = await discover(c.client.clientId, c.secret.value, method);
      expect((await oidc.clientCredentialsGrant(good)).access_token).toEqual(expect.any(String));
    });
  });

  it('surfaces a scope the client may not have as invalid_scope', async () => {
    const c = await create(['resources:read']);
    const config = await discover(c.client.clientId, c.secret.value, 'client_secret_basic');
    const error = await rejectionOf(oidc.clientCredentialsGrant(config, { scope: 'resources:write' }));
    expect(error).toBeInstanceOf(oidc.ResponseBodyError);
    expect((error as oidc.ResponseBodyError).error).toBe('invalid_scope');
    expect((error as oidc.ResponseBodyError).status).toBe(400);
  });

  it('introspects and revokes with openid-client: revoked, the token is inactive and the API answers 401', async () => {
    // A client allowed introspection, holding a token of its own and looking at another's.
    const self = await create(['introspection', 'resources:read']);
    const other = await create(['resources:read']);
    const config = await discover(self.client.clientId, self.secret.value, 'client_secret_basic');
    const otherConfig = await discover(other.client.clientId, other.secret.value, 'client_secret_post');
    const mine = await oidc.clientCredentialsGrant(config, { scope: 'resources:read' });
    const theirs = await oidc.clientCredentialsGrant(otherConfig);
    const { payload } = await verify(config, mine.access_token);

    const active = await oidc.tokenIntrospection(config, mine.access_token);
    expect(active).toEqual({
      active: true,
      token_type: 'Bearer',
      scope: 'resources:read',
      client_id: self.client.clientId,
      sub: self.client.serviceUserId,
      aud: AUDIENCE,
      iss: base,
      exp: payload.exp,
      iat: payload.iat,
      jti: payload.jti,
      sid: self.secret.id,
    });
    expect(await oidc.tokenIntrospection(config, theirs.access_token)).toMatchObject({
      active: true,
      client_id: other.client.clientId,
      sub: other.client.serviceUserId,
    });
    expect((await api('/resources', mine.access_token)).status).toBe(200);

    // Revoking another client's token is a 200 that does nothing (RFC 7009 §2.2).
    await expect(oidc.tokenRevocation(config, theirs.access_token)).resolves.toBeUndefined();
    expect((await oidc.tokenIntrospection(config, theirs.access_token)).active).toBe(true);
    expect((await api('/resources', theirs.access_token)).status).toBe(200);

    // Its own token: revoked.
    await expect(
      oidc.tokenRevocation(config, mine.access_token, { token_type_hint: 'access_token' }),
    ).resolves.toBeUndefined();
    expect(await oidc.tokenIntrospection(config, mine.access_token)).toEqual({ active: false });
    const refused = await api('/resources', mine.access_token);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer /);
    // The signature stays valid: an offline verifier cannot see a revocation, introspection can.
    await expect(verify(config, mine.access_token)).resolves.toMatchObject({ payload: { jti: payload.jti } });
    // New tokens of the same client work.
    const fresh = await oidc.clientCredentialsGrant(config, { scope: 'resources:read' });
    expect((await api('/resources', fresh.access_token)).status).toBe(200);
    expect((await oidc.tokenIntrospection(config, fresh.access_token)).active).toBe(true);
  });

  it('answers introspection by a client without the introspection scope 403 insufficient_scope, a wrong secret invalid_client', async () => {
    const c = await create(['resources:read']);
    const config = await discover(c.client.clientId, c.secret.value, 'client_secret_post');
    const { access_token } = await oidc.clientCredentialsGrant(config);
    const forbidden = await rejectionOf(oidc.tokenIntrospection(config, access_token));
    expect(forbidden).toBeInstanceOf(oidc.ResponseBodyError);
    expect((forbidden as oidc.ResponseBodyError).status).toBe(403);
    expect((forbidden as oidc.ResponseBodyError).error).toBe('insufficient_scope');

    const introspector = await create(['introspection']);
    const wrong = await discover(introspector.client.clientId, 'gcs_wrong', 'client_secret_basic');
    const unauthorized = await rejectionOf(oidc.tokenIntrospection(wrong, access_token));
    expect(unauthorized).toBeInstanceOf(oidc.WWWAuthenticateChallengeError);
    expect(await oauthErrorOf(unauthorized)).toBe('invalid_client');
    const revokeUnauthorized = await rejectionOf(oidc.tokenRevocation(wrong, access_token));
    expect(await oauthErrorOf(revokeUnauthorized)).toBe('invalid_client');
  });
});

/** The text of a request body as openid-client hands it to fetch. */
function bodyText(body: oidc.CustomFetchOptions['body']): string {
  if (body === undefined || body === null) return '';
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) return body.toString();
  if (body instanceof Uint8Array || body instanceof ArrayBuffer) return new TextDecoder().decode(body);
  throw new Error('unexpected streamed body');
}

/** The error a promise rejects with; fails the test when it resolves. */
async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  const outcome = await promise.then(
    (value) => ({ resolved: true as const, value }),
    (error: unknown) => ({ resolved: false as const, error }),
  );
  if (outcome.resolved) throw new Error(`expected a rejection, got ${JSON.stringify(outcome.value)}`);
  return outcome.error;
}

/**
 * The RFC 6749 §5.2 `error` of an openid-client error: `error` of a ResponseBodyError, or
 * of the body of the response behind a WWWAuthenticateChallengeError (thrown instead when
 * the response carries a challenge, as every 401 invalid_client does).
 */
async function oauthErrorOf(error: unknown): Promise<unknown> {
  if (error instanceof oidc.ResponseBodyError) return error.error;
  if (error instanceof oidc.WWWAuthenticateChallengeError) {
    return ((await error.response.json()) as { error?: unknown }).error;
  }
  throw error;
}
