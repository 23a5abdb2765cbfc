import { createHmac, createPublicKey, verify as cryptoVerify, type JsonWebKey } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { bearer, decodeJwt, signup } from '../support/factories.js';
import { es256KeyPair } from '../support/jwt.js';
import { startApp, type TestApp } from '../support/test-app.js';

type Jwk = JsonWebKey & { kid: string; alg: string; use: string };
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];

/** Verifies an ES256 JWT with Node's own crypto against a JWK: no JWT library involved. */
function verifiesWith(token: string, jwk: JsonWebKey): boolean {
  const [h, p, s] = token.split('.');
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  return cryptoVerify(
    'sha256',
    Buffer.from(`${h}.${p}`),
    { key, dsaEncoding: 'ieee-p1363' },
    Buffer.from(s!, 'base64url'),
  );
}

describe('GET /.well-known/jwks.json (default ES256 key)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS });
  });
  afterAll(async () => t?.close());

  it('is public and cacheable for 10 minutes', async () => {
    const res = await t.http.get('/.well-known/jwks.json').expect(200);
    expect(res.headers['cache-control']).toBe('public, max-age=600');
    expect(res.headers['content-type']).toMatch(/^application\/json/);
  });

  it('lists only public members of P-256 keys', async () => {
    const res = await t.http.get('/.well-known/jwks.json').expect(200);
    expect(Object.keys(res.body)).toEqual(['keys']);
    expect(res.body.keys.length).toBeGreaterThanOrEqual(1);
    for (const key of res.body.keys as Jwk[]) {
      expect(key).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
      expect(typeof key.kid).toBe('string');
      expect(key.x).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(key.y).toMatch(/^[A-Za-z0-9_-]{43}$/);
      for (const member of PRIVATE_MEMBERS) expect(key).not.toHaveProperty(member);
    }
  });

  it('signs access tokens with ES256 by default, verifiable with Node crypto and the published key of their kid', async () => {
    const u = await signup(t);
    const { header } = decodeJwt(u.accessToken);
    expect(header).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
    const res = await t.http.get('/.well-known/jwks.json').expect(200);
    const jwk = (res.body.keys as Jwk[]).find((k) => k.kid === header.kid);
    expect(jwk, `no JWKS key with kid ${String(header.kid)}`).toBeDefined();
    expect(verifiesWith(u.accessToken, jwk!)).toBe(true);
    // And the check is real: a changed payload does not verify.
    const [h, , s] = u.accessToken.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ sub: 'someone' })).toString('base64url')}.${s}`;
    expect(verifiesWith(forged, jwk!)).toBe(false);
  });
});

describe('GET /.well-known/jwks.json with JWT_SECRETS (HS256)', () => {
  const secret = 'an HS256 secret of at least 32 bytes for tests';
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({
      ...ROOMY_LIMITS,
      JWT_SECRETS: `${secret},another secret that only verifies and is 32+ bytes`,
    });
  });
  afterAll(async () => t?.close());

  it('publishes no key at all', async () => {
    const res = await t.http.get('/.well-known/jwks.json').expect(200);
    expect(res.body).toEqual({ keys: [] });
  });

  it('issues HS256 access tokens under the first secret, and accepts them', async () => {
    const u = await signup(t);
    const { header } = decodeJwt(u.accessToken);
    expect(header).toMatchObject({ alg: 'HS256', typ: 'at+jwt' });
    expect(typeof header.kid).toBe('string');
    expect(JSON.stringify(header)).not.toContain(secret);
    const [h, p, s] = u.accessToken.split('.');
    expect(createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url')).toBe(s);
    await t.http.get('/auth/sessions').set(u.auth).expect(200);
  });

  it('refuses an HS256 token signed with another secret', async () => {
    const u = await signup(t);
    const { header, payload } = decodeJwt(u.accessToken);
    const forged = jwt.sign(payload, 'a different secret that is also long enough', {
      header: header as unknown as jwt.JwtHeader,
    });
    expect((await t.http.get('/auth/sessions').set(bearer(forged))).status).toBe(401);
  });
});

describe('signing-key rotation (JWT_KEYS = [new private key, old public key])', () => {
  const oldKey = es256KeyPair();
  const newKey = es256KeyPair();
  let t: TestApp;
  let keys: Jwk[];
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, JWT_KEYS: `${newKey.pem}\n${oldKey.publicPem}` });
    keys = (await t.http.get('/.well-known/jwks.json').expect(200)).body.keys;
  });
  afterAll(async () => t?.close());

  const kidOf = (pub: typeof oldKey.publicKey) => {
    const { x } = pub.export({ format: 'jwk' });
    return keys.find((k) => k.x === x)?.kid;
  };

  it('publishes both public keys', () => {
    expect(keys).toHaveLength(2);
    expect(kidOf(newKey.publicKey)).toBeDefined();
    expect(kidOf(oldKey.publicKey)).toBeDefined();
    expect(kidOf(newKey.publicKey)).not.toBe(kidOf(oldKey.publicKey));
  });

  it('signs new tokens with the new key', async () => {
    const u = await signup(t);
    const { header } = decodeJwt(u.accessToken);
    expect(header.kid).toBe(kidOf(newKey.publicKey));
    expect(verifiesWith(u.accessToken, newKey.publicKey.export({ format: 'jwk' }))).toBe(true);
    expect(verifiesWith(u.accessToken, oldKey.publicKey.export({ format: 'jwk' }))).toBe(false);
  });

  it('still accepts a token signed by the old key (signed here with jsonwebtoken)', async () => {
    const u = await signup(t);
    const { payload } = decodeJwt(u.accessToken);
    const old = jwt.sign(payload, oldKey.pem, {
      algorithm: 'ES256',
      keyid: kidOf(oldKey.publicKey),
      header: { alg: 'ES256', typ: 'at+jwt' },
    });
    await t.http.get('/auth/sessions').set(bearer(old)).expect(200);
    // ...but not one signed by the old key that claims the new key's kid.
    const mislabelled = jwt.sign(payload, oldKey.pem, {
      algorithm: 'ES256',
      keyid: kidOf(newKey.publicKey),
      header: { alg: 'ES256', typ: 'at+jwt' },
    });
    expect((await t.http.get('/auth/sessions').set(bearer(mislabelled))).status).toBe(401);
  });
});
