import { createPublicKey, generateKeyPairSync, type JsonWebKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  KeyConfigError,
  generateEs256Pem,
  keySetFromKeys,
  keySetFromSecrets,
  thumbprint,
} from '../../src/config/signing-keys.js';

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'];

function ecPair() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    pem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    sec1Pem: privateKey.export({ format: 'pem', type: 'sec1' }).toString(),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    jwk: privateKey.export({ format: 'jwk' }),
    publicJwk: publicKey.export({ format: 'jwk' }),
  };
}

const expectConfigError = (fn: () => unknown, pattern: RegExp) => {
  expect(fn).toThrow(KeyConfigError);
  expect(fn).toThrow(pattern);
};

describe('thumbprint (RFC 7638)', () => {
  it('matches the RFC 7638 §3.1 example', () => {
    const jwk: JsonWebKey = {
      kty: 'RSA',
      n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
      e: 'AQAB',
      alg: 'RS256',
      kid: '2011-04-29',
    };
    expect(thumbprint(jwk)).toBe('NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  });

  it('depends only on the required public members, not on their order or on private ones', () => {
    const { jwk, publicJwk } = ecPair();
    const shuffled = { y: publicJwk.y, x: publicJwk.x, crv: publicJwk.crv, kty: publicJwk.kty, kid: 'x', use: 'sig' };
    expect(thumbprint(jwk)).toBe(thumbprint(publicJwk));
    expect(thumbprint(shuffled)).toBe(thumbprint(publicJwk));
    expect(thumbprint(ecPair().publicJwk)).not.toBe(thumbprint(publicJwk));
  });
});

describe('keySetFromKeys', () => {
  it('takes one PKCS#8 EC private key: ES256, signs with it, kid = thumbprint, public JWK only', () => {
    const k = ecPair();
    const set = keySetFromKeys(k.pem);
    expect(set.algorithm).toBe('ES256');
    expect(set.signing.kid).toBe(thumbprint(k.publicJwk));
    expect(set.signing.key.type).toBe('private');
    expect([...set.verification.keys()]).toEqual([set.signing.kid]);
    const v = set.verification.get(set.signing.kid)!;
    expect(v.key.type).toBe('public');
    expect(v.jwk).toMatchObject({
      kty: 'EC',
      crv: 'P-256',
      x: k.publicJwk.x,
      y: k.publicJwk.y,
      kid: set.signing.kid,
      alg: 'ES256',
      use: 'sig',
    });
    for (const m of PRIVATE_MEMBERS) expect(v.jwk).not.toHaveProperty(m);
  });

  it('reads a SEC1 ("EC PRIVATE KEY") PEM as well', () => {
    const k = ecPair();
    expect(keySetFromKeys(k.sec1Pem).signing.kid).toBe(thumbprint(k.publicJwk));
  });

  it('takes concatenated PEM blocks for rotation: the first (private) signs, the rest verify', () => {
    const next = ecPair();
    const old = ecPair();
    const older = ecPair();
    const set = keySetFromKeys(`${next.pem}\n${old.publicPem}\n${older.pem}`);
    expect(set.signing.kid).toBe(thumbprint(next.publicJwk));
    expect([...set.verification.keys()]).toEqual([next, old, older].map((k) => thumbprint(k.publicJwk)));
  });

  it('takes JWK JSON in every shape (one JWK, an array, a JWKS) and keeps explicit kids', () => {
    const a = ecPair();
    const b = ecPair();
    const one = keySetFromKeys(JSON.stringify({ ...a.jwk, kid: 'key-2026' }));
    expect(one.signing.kid).toBe('key-2026');
    expect(one.verification.get('key-2026')!.jwk).not.toHaveProperty('d');

    const arr = keySetFromKeys(
      JSON.stringify([
        { ...a.jwk, kid: 'new' },
        { ...b.publicJwk, kid: 'old' },
      ]),
    );
    expect(arr.signing.kid).toBe('new');
    expect([...arr.verification.keys()]).toEqual(['new', 'old']);

    const jwks = keySetFromKeys(JSON.stringify({ keys: [a.jwk, b.publicJwk] }));
    expect([...jwks.verification.keys()]).toEqual([thumbprint(a.publicJwk), thumbprint(b.publicJwk)]);
  });

  it('accepts RSA >= 2048 bits as RS256, publishing only n and e', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const set = keySetFromKeys(privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
    expect(set.algorithm).toBe('RS256');
    const jwk = set.verification.get(set.signing.kid)!.jwk!;
    expect(jwk).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
    expect(typeof jwk.n).toBe('string');
    for (const m of PRIVATE_MEMBERS) expect(jwk).not.toHaveProperty(m);
  });

  it('refuses a public key in first place (nothing to sign with)', () => {
    const k = ecPair();
    expectConfigError(() => keySetFromKeys(k.publicPem), /JWT_KEYS: the first key must be a private key/);
    expectConfigError(() => keySetFromKeys(JSON.stringify(k.publicJwk)), /first key must be a private key/);
  });

  it('refuses keys of mixed algorithms', () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rsaPublic = publicKey.export({ format: 'pem', type: 'spki' }).toString();
    expectConfigError(() => keySetFromKeys(`${ecPair().pem}\n${rsaPublic}`), /JWT_KEYS: every key must suit ES256/);
  });

  it('refuses weak or unsupported key types', () => {
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 })
      .privateKey.export({ format: 'pem', type: 'pkcs8' })
      .toString();
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' })
      .privateKey.export({ format: 'pem', type: 'pkcs8' })
      .toString();
    const ed = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    for (const pem of [rsa1024, p384, ed])
      expectConfigError(() => keySetFromKeys(pem), /JWT_KEYS: unsupported key type/);
  });

  it('refuses symmetric JWKs, and HS256 with JWT_KEYS', () => {
    expectConfigError(() => keySetFromKeys(JSON.stringify({ kty: 'oct', k: 'c2VjcmV0' })), /use JWT_SECRETS/);
    expectConfigError(() => keySetFromKeys(ecPair().pem, 'HS256'), /JWT_ALGORITHM/);
  });

  it('refuses a key whose type does not suit a forced algorithm', () => {
    expectConfigError(() => keySetFromKeys(ecPair().pem, 'RS256'), /every key must suit RS256/);
  });

  it('says what is wrong with text that holds no key or a broken one', () => {
    expectConfigError(() => keySetFromKeys('hello'), /JWT_KEYS: no key found/);
    expectConfigError(
      () => keySetFromKeys('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----'),
      /JWT_KEYS: cannot read a key/,
    );
    expectConfigError(
      () => keySetFromKeys('{"kty": "EC", "crv": "P-256", "x": "broken"'),
      /JWT_KEYS: cannot read a key/,
    );
  });

  it('generates PEM that it reads back as an ES256 signing key', () => {
    const pem = generateEs256Pem();
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const set = keySetFromKeys(pem);
    expect(set.algorithm).toBe('ES256');
    expect(thumbprint(createPublicKey(pem).export({ format: 'jwk' }))).toBe(set.signing.kid);
  });
});

describe('keySetFromSecrets', () => {
  const s1 = 'first secret at least thirty-two bytes long';
  const s2 = 'second secret also at least thirty-two bytes';

  it('makes HS256 keys; the first secret signs, all verify; kids do not reveal the secrets', () => {
    const set = keySetFromSecrets(` ${s1} , ${s2} `);
    expect(set.algorithm).toBe('HS256');
    expect(set.verification.size).toBe(2);
    const kids = [...set.verification.keys()];
    expect(set.signing.kid).toBe(kids[0]);
    expect(kids[0]).not.toBe(kids[1]);
    for (const kid of kids) {
      expect(kid).not.toContain(s1.slice(0, 8));
      expect(kid).not.toContain(s2.slice(0, 8));
    }
    expect(set.signing.key.export().toString()).toBe(s1);
    for (const v of set.verification.values()) expect(v.jwk).toBeUndefined();
  });

  it('gives the same kid for the same secret (stable across instances)', () => {
    expect(keySetFromSecrets(s1).signing.kid).toBe(keySetFromSecrets(`${s1},${s2}`).signing.kid);
  });

  it('refuses secrets under 32 bytes and an empty list', () => {
    expectConfigError(() => keySetFromSecrets(`${s1},short`), /JWT_SECRETS: every secret must be at least 32 bytes/);
    expectConfigError(() => keySetFromSecrets(' , '), /JWT_SECRETS: no secret given/);
  });
});
