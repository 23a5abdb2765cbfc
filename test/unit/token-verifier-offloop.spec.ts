import { createHmac, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.schema.js';
import type { SecretsService } from '../../src/config/secrets.service.js';
import { AccessTokenService } from '../../src/tokens/access-token.service.js';
import type { RevocationService } from '../../src/tokens/revocation.service.js';
import { MAX_COLD_IN_FLIGHT, TokenRejected, TokenVerifier } from '../../src/tokens/token-verifier.js';
import { FakeClock } from '../support/fake-clock.js';

/**
 * The guard checks a token it has not seen before with its signature verified on libuv's
 * thread pool (TokenVerifier.verifyBearer), and everything else (identify(), verify()) with
 * jsonwebtoken. Both must accept exactly the same tokens: every token below goes through
 * both paths, each on its own verifier (a success is cached, and the cache would answer the
 * second), and the answers must be equal, principal or reason.
 */
const noSecrets = {} as SecretsService;
const notRevoked = { isRevoked: () => false } as unknown as RevocationService;
const b64 = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

type Algorithm = 'ES256' | 'RS256' | 'HS256';

function setting(algorithm: Algorithm): Record<string, string> {
  if (algorithm === 'HS256') return { JWT_SECRETS: randomBytes(30).toString('base64url') };
  const pair =
    algorithm === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { JWT_KEYS: pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() };
}

/** A signature of `input` as the service would make it, with `key`. */
function signature(algorithm: Algorithm, input: string, key: KeyObject): Buffer {
  if (algorithm === 'HS256') return createHmac('sha256', key).update(input).digest();
  return algorithm === 'ES256'
    ? sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
    : sign('sha256', Buffer.from(input), key);
}

/** base64url whose last character differs in the bits that carry no data: the same bytes. */
function nonCanonical(encoded: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(encoded.at(-1)!);
  return encoded.slice(0, -1) + alphabet[last ^ 1];
}

async function outcome(run: () => unknown): Promise<string> {
  try {
    return `accepted ${JSON.stringify(await run())}`;
  } catch (error) {
    if (error instanceof TokenRejected) return `rejected: ${error.message}`;
    throw error;
  }
}

describe.each<Algorithm>(['ES256', 'RS256', 'HS256'])('%s: the off-loop check and jsonwebtoken agree', (algorithm) => {
  const config = parseConfig(setting(algorithm));
  // Frozen: the cases are made when the file is collected and checked later (`nbf` half a
  // second ahead must still be ahead then); both paths read this clock.
  const clock = new FakeClock();
  clock.freeze();
  const service = new AccessTokenService(config, clock, noSecrets);
  const otherKey = new AccessTokenService(parseConfig(setting(algorithm)), clock, noSecrets).keys.signing.key;
  const now = Math.floor(clock.nowMs() / 1000);
  const header = { alg: algorithm, typ: 'at+jwt', kid: service.keys.signing.kid };
  const claims = {
    sub: '0b5f1c8e-7d2a-4f4e-9a51-3c1d2e4f5a6b',
    sid: '6a1f2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b',
    roles: ['user'],
    amr: ['pwd'],
    acr: 'aal1',
    auth_time: now,
    scope: 'profile',
    iat: now,
    exp: now + 600,
    iss: config.JWT_ISSUER,
    aud: config.JWT_AUDIENCE,
    jti: '9c0d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f',
  };
  const token = (payload: unknown, opts: { head?: unknown; key?: KeyObject; sig?: (s: string) => string } = {}) => {
    const input = `${b64(opts.head ?? header)}.${b64(payload)}`;
    const encoded = signature(algorithm, input, opts.key ?? service.keys.signing.key).toString('base64url');
    return `${input}.${(opts.sig ?? ((s) => s))(encoded)}`;
  };
  const flip = (s: string) => {
    const bytes = Buffer.from(s, 'base64url');
    bytes[5] = bytes[5]! ^ 1;
    return bytes.toString('base64url');
  };
  const cases: [string, string, boolean][] = [
    ['valid', token(claims), true],
    ['aud an array holding the audience', token({ ...claims, aud: ['elsewhere', config.JWT_AUDIENCE] }), true],
    ['nbf in the past', token({ ...claims, nbf: now - 10 }), true],
    ['nbf now', token({ ...claims, nbf: now }), true],
    ['nbf half a second from now', token({ ...claims, nbf: now + 0.5 }), false],
    ['aud an array of other types and the audience', token({ ...claims, aud: [7, null, config.JWT_AUDIENCE] }), true],
    ['aud an empty array', token({ ...claims, aud: [] }), false],
    ['iss an array holding the issuer', token({ ...claims, iss: [config.JWT_ISSUER] }), false],
    ['a __proto__ member', token(JSON.parse(`{"__proto__":{"iss":"x"},${JSON.stringify(claims).slice(1)}`)), true],
    ['wrong iss', token({ ...claims, iss: 'someone-else' }), false],
    ['no iss', token({ ...claims, iss: undefined }), false],
    ['aud an array without the audience', token({ ...claims, aud: ['elsewhere'] }), false],
    ['no aud', token({ ...claims, aud: undefined }), false],
    ['aud a number', token({ ...claims, aud: 7 }), false],
    ['nbf in the future', token({ ...claims, nbf: now + 3600 }), false],
    ['nbf a string', token({ ...claims, nbf: String(now - 10) }), false],
    ['nbf null', token({ ...claims, nbf: null }), false],
    ['payload an array', token([claims]), false],
    ['payload a JSON string', token('"text"'), false],
    ['no sub', token({ ...claims, sub: undefined }), false],
    ['a flipped signature bit', token(claims, { sig: flip }), false],
    [
      'a signature a byte short',
      token(claims, { sig: (s) => Buffer.from(s, 'base64url').subarray(1).toString('base64url') }),
      false,
    ],
    [
      'a signature a byte long',
      token(claims, {
        sig: (s) => Buffer.concat([Buffer.from(s, 'base64url'), Buffer.alloc(1)]).toString('base64url'),
      }),
      false,
    ],
    ['no signature', token(claims, { sig: () => '' }), false],
    ['signed with another key under this kid', token(claims, { key: otherKey }), false],
    ['alg none', token(claims, { head: { ...header, alg: 'none' } }), false],
    ['typ JWT', token(claims, { head: { ...header, typ: 'JWT' } }), false],
    ['unknown kid', token(claims, { head: { ...header, kid: 'nope' } }), false],
    // jsonwebtoken decodes an RSA or EC signature leniently and compares an HMAC as text.
    ['a non-canonical last signature character', token(claims, { sig: nonCanonical }), algorithm !== 'HS256'],
    ['not a JWT', 'abc.def', false],
  ];
  if (algorithm === 'ES256') {
    // The same signature in DER (what crypto.sign makes by default) instead of r‖s.
    const input = `${b64(header)}.${b64(claims)}`;
    const der = sign('sha256', Buffer.from(input), service.keys.signing.key).toString('base64url');
    cases.push(['an ES256 signature in DER', `${input}.${der}`, false]);
  }

  it.each(cases)('%s', async (_name, jwt, accepted) => {
    const withJsonwebtoken = await outcome(() => new TokenVerifier(config, service, notRevoked, clock).verify(jwt));
    const offLoop = await outcome(() => new TokenVerifier(config, service, notRevoked, clock).verifyBearer(jwt));
    expect(offLoop).toBe(withJsonwebtoken);
    expect(offLoop.startsWith('accepted')).toBe(accepted);
  });

  it('a session revoked while its token is being checked off the loop is refused', async () => {
    let revoked = false;
    const revocation = { isRevoked: () => revoked } as unknown as RevocationService;
    const pending = new TokenVerifier(config, service, revocation, clock).verifyBearer(token(claims));
    expect(pending).toBeInstanceOf(Promise);
    revoked = true;
    await expect(pending).rejects.toThrow('session revoked');
  });

  it(`checks at most ${MAX_COLD_IN_FLIGHT} new tokens off the loop at once, the others on it`, async () => {
    const verifier = new TokenVerifier(config, service, notRevoked, clock);
    const answers = Array.from({ length: MAX_COLD_IN_FLIGHT + 20 }, (_, i) =>
      verifier.verifyBearer(token({ ...claims, jti: `9c0d1e2f-3a4b-4c5d-8e6f-${String(i).padStart(12, '0')}` })),
    );
    expect(answers.filter((a) => a instanceof Promise)).toHaveLength(MAX_COLD_IN_FLIGHT);
    const principals = await Promise.all(answers.map(async (a) => a));
    expect(new Set(principals.map((p) => p.jti)).size).toBe(MAX_COLD_IN_FLIGHT + 20);
    // Once they are done, the next new token goes off the loop again.
    expect(verifier.verifyBearer(token({ ...claims, jti: '9c0d1e2f-3a4b-4c5d-8e6f-ffffffffffff' }))).toBeInstanceOf(
      Promise,
    );
  });

  it('the off-loop path answers a token it verified from the cache, and its revocation still counts', async () => {
    let revoked = false;
    const revocation = { isRevoked: () => revoked } as unknown as RevocationService;
    const verifier = new TokenVerifier(config, service, revocation, clock);
    const jwt = token(claims);
    const cold = verifier.verifyBearer(jwt);
    expect(cold).toBeInstanceOf(Promise);
    await cold;
    // Cached: answered without a promise.
    expect(verifier.verifyBearer(jwt)).toMatchObject({ userId: claims.sub, sessionId: claims.sid });
    revoked = true;
    expect(() => verifier.verifyBearer(jwt)).toThrow('session revoked');
  });
});
