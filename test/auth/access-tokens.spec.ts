import { createPublicKey, randomUUID, type JsonWebKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thumbprint } from '../../src/config/signing-keys.js';
import { ROOMY_LIMITS } from '../support/env.js';
import { bearer, decodeJwt, signup, type SignedUp } from '../support/factories.js';
import { es256KeyPair, signEs256, signHs256, unsignedJwt } from '../support/jwt.js';
import { startApp, type TestApp } from '../support/test-app.js';

const TTL = 300;
const ISSUER = 'https://issuer.gatehouse.test';
const AUDIENCE = 'gatehouse-tests';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('access tokens', () => {
  // The server signs with a key the test knows, so that the test can forge tokens that
  // are correctly signed but wrong in one respect only.
  const serverKey = es256KeyPair();
  const kid = thumbprint(serverKey.publicKey.export({ format: 'jwk' }));
  let t: TestApp;
  let u: SignedUp;

  beforeAll(async () => {
    t = await startApp({
      ...ROOMY_LIMITS,
      JWT_KEYS: serverKey.pem,
      ACCESS_TOKEN_TTL: String(TTL),
      JWT_ISSUER: ISSUER,
      JWT_AUDIENCE: AUDIENCE,
    });
    t.clock.freeze();
    u = await signup(t);
  });
  afterAll(async () => t?.close());

  /** The claims of `u`'s real token, for forging variants of it. */
  const claimsOf = (token: string) => decodeJwt(token).payload;
  const goodHeader = () => ({ alg: 'ES256', typ: 'at+jwt', kid });
  const forge = (header: Record<string, unknown>, patch: Record<string, unknown> = {}, omit: string[] = []) => {
    const payload: Record<string, unknown> = { ...claimsOf(u.accessToken), jti: randomUUID(), ...patch };
    for (const k of omit) delete payload[k];
    return signEs256({ ...goodHeader(), ...header }, payload, serverKey.privateKey);
  };

  const expectInvalidToken = async (token: string) => {
    const res = await t.http.get('/auth/sessions').set(bearer(token));
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ statusCode: 401, error: 'Unauthorized', code: 'INVALID_TOKEN' });
    expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="[^"]+", error="invalid_token"/);
  };

  it('has a header with kid, typ "at+jwt" and the configured algorithm', () => {
    const { header } = decodeJwt(u.accessToken);
    expect(header).toEqual({ alg: 'ES256', typ: 'at+jwt', kid });
  });

  it('carries sub, sid, roles, amr, acr, auth_time, scope, iat, exp, iss, aud and jti, and lives ACCESS_TOKEN_TTL seconds', async () => {
    const { payload } = decodeJwt(u.accessToken);
    expect(Object.keys(payload).sort()).toEqual([
      'acr',
      'amr',
      'aud',
      'auth_time',
      'exp',
      'iat',
      'iss',
      'jti',
      'roles',
      'scope',
      'sid',
      'sub',
    ]);
    // USER_TOKEN_SCOPES, by default every built-in scope but introspection (contract v2 §C).
    expect(payload.scope).toBe(
      'clients:admin events:read profile resources:read resources:write tenants:read tenants:write users:admin',
    );
    // A password session (contract v2 §0.2, RFC 8176): aal1, signed in at the signup.
    expect(payload.amr).toEqual(['pwd']);
    expect(payload.acr).toBe('aal1');
    expect(payload.auth_time).toBe(payload.iat);
    expect(payload.sub).toBe(u.id);
    expect(payload.roles).toEqual(['user']);
    expect(payload.iss).toBe(ISSUER);
    expect(payload.aud).toBe(AUDIENCE);
    expect(payload.jti).toMatch(UUID);
    expect((payload.exp as number) - (payload.iat as number)).toBe(TTL);
    expect(Math.abs((payload.iat as number) - t.clock.nowMs() / 1000)).toBeLessThanOrEqual(1);
    const sessions = await t.http.get('/auth/sessions').set(u.auth).expect(200);
    expect(sessions.body.find((s: { current: boolean }) => s.current).id).toBe(payload.sid);
  });

  it('answers with expiresIn equal to ACCESS_TOKEN_TTL and a fresh jti on every token', async () => {
    const res = await t.http.post('/auth/login').send({ username: u.username, password: u.password }).expect(200);
    expect(res.body.expiresIn).toBe(TTL);
    expect(claimsOf(res.body.accessToken).jti).not.toBe(claimsOf(u.accessToken).jti);
  });

  it('is accepted when forged with the server key and every claim right (the control for the attacks below)', async () => {
    await t.http
      .get('/auth/sessions')
      .set(bearer(forge({})))
      .expect(200);
  });

  it('is refused with 401 and WWW-Authenticate error="invalid_token" once expired', async () => {
    const v = await signup(t);
    t.clock.advance(TTL - 1);
    expect((await t.http.get('/auth/sessions').set(v.auth)).status).toBe(200);
    t.clock.advance(2);
    await expectInvalidToken(v.accessToken);
  });

  it('is asked for with 401 and WWW-Authenticate: Bearer realm=... when missing', async () => {
    const res = await t.http.get('/auth/sessions');
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ statusCode: 401, error: 'Unauthorized' });
    expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="[^"]+"$/);
  });

  it.each([
    ['a Basic scheme', 'Basic dXNlcjpwYXNz'],
    ['Bearer without a token', 'Bearer'],
    ['Bearer with two tokens', 'Bearer a.b.c d.e.f'],
    ['a token that is not a JWT', 'Bearer not-a-jwt'],
  ])('is refused with 401 invalid_token for %s', async (_label, header) => {
    const res = await t.http.get('/auth/sessions').set('Authorization', header);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="[^"]+", error="invalid_token"/);
  });

  describe('attacks, each refused with 401 invalid_token', () => {
    it('alg "none" (with and without the trailing dot, any case)', async () => {
      const payload = { ...claimsOf(u.accessToken), roles: ['user', 'admin'] };
      for (const alg of ['none', 'None', 'NONE']) {
        const unsigned = unsignedJwt({ alg, typ: 'at+jwt', kid }, payload);
        await expectInvalidToken(`${unsigned}.`);
        await expectInvalidToken(unsigned);
      }
    });

    it('HS256 signed with the server public key as the secret, in PEM and JWK-JSON forms from the JWKS', async () => {
      const jwks = await t.http.get('/.well-known/jwks.json').expect(200);
      const jwk = jwks.body.keys[0] as JsonWebKey & { kid: string };
      expect(jwk.kid).toBe(kid);
      const pub = createPublicKey({ key: jwk, format: 'jwk' });
      const spki = pub.export({ format: 'pem', type: 'spki' }).toString();
      const secrets = [
        spki,
        spki.trim(),
        JSON.stringify(jwk),
        JSON.stringify(pub.export({ format: 'jwk' })),
        pub.export({ format: 'der', type: 'spki' }),
      ];
      for (const secret of secrets) {
        await expectInvalidToken(
          signHs256({ typ: 'at+jwt', kid }, { ...claimsOf(u.accessToken), jti: randomUUID() }, secret),
        );
      }
    });

    it('a tampered payload (roles → admin) under the original signature', async () => {
      const [h, p, s] = u.accessToken.split('.');
      const payload = { ...JSON.parse(Buffer.from(p!, 'base64url').toString()), roles: ['user', 'admin'] };
      await expectInvalidToken(`${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`);
      // A flipped signature bit alone is refused too.
      const sig = Buffer.from(s!, 'base64url');
      sig[5]! ^= 1;
      await expectInvalidToken(`${h}.${p}.${sig.toString('base64url')}`);
    });

    it('a correctly signed token without exp', async () => {
      await expectInvalidToken(forge({}, {}, ['exp']));
    });

    it('a correctly signed token with a non-numeric exp, or without sub, sid or jti', async () => {
      await expectInvalidToken(forge({}, { exp: String(Math.floor(t.clock.nowMs() / 1000) + 100) }));
      await expectInvalidToken(forge({}, {}, ['sub']));
      await expectInvalidToken(forge({}, {}, ['sid']));
      await expectInvalidToken(forge({}, {}, ['jti']));
    });

    it('a correctly signed token with an unknown role', async () => {
      await expectInvalidToken(forge({}, { roles: ['superuser'] }));
    });

    it('a correctly signed token with the wrong aud or iss', async () => {
      await expectInvalidToken(forge({}, { aud: 'someone-else' }));
      await expectInvalidToken(forge({}, { aud: 'gatehouse' }));
      await expectInvalidToken(forge({}, { iss: 'https://evil.example' }));
      await expectInvalidToken(forge({}, { iss: 'gatehouse' }));
      await expectInvalidToken(forge({}, {}, ['aud']));
      await expectInvalidToken(forge({}, {}, ['iss']));
    });

    it('a correctly signed token with the wrong typ (or none)', async () => {
      await expectInvalidToken(forge({ typ: 'JWT' }));
      await expectInvalidToken(forge({ typ: undefined }));
    });

    it('a correctly signed token with an unknown kid, or none', async () => {
      await expectInvalidToken(forge({ kid: 'no-such-key' }));
      await expectInvalidToken(forge({ kid: undefined }));
    });

    it("a token signed with another key under the server's kid", async () => {
      const attacker = es256KeyPair();
      await expectInvalidToken(
        signEs256(goodHeader(), { ...claimsOf(u.accessToken), jti: randomUUID() }, attacker.privateKey),
      );
    });

    it('a correctly signed token that claims another algorithm in its header', async () => {
      await expectInvalidToken(forge({ alg: 'RS256' }));
      await expectInvalidToken(forge({ alg: 'ES384' }));
    });
  });
});
