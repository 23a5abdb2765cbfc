import { createHmac, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errors, jwtVerify } from 'jose';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isSecureUrl } from '../../src/config/federation-issuers.js';
import { ProviderUnavailable, RemoteKeySet } from '../../src/identities/remote-key-set.js';
import { FakeClock } from '../support/fake-clock.js';
import { FakeIdp } from '../support/fake-idp.js';
import { unsignedJwt } from '../support/jwt.js';

/**
 * RemoteKeySet (src/identities/remote-key-set.ts): one issuer's keys fetched from its JWKS,
 * with jose's createRemoteJWKSet policy (cache age, cooldown for unknown kids, timeout, no
 * redirects) timed on the app Clock; concurrent callers share one fetch.
 */

const CACHE_MS = 600_000;
const COOLDOWN_MS = 30_000;
const TIMEOUT_MS = 1000;

let clock: FakeClock;
let idp: FakeIdp;
const servers: Server[] = [];

beforeEach(async () => {
  clock = new FakeClock();
  clock.freeze();
  idp = await FakeIdp.start();
});
afterEach(async () => idp.close());
afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

function keySet(jwksUri: string | null = idp.jwksUri, issuer = idp.issuer): RemoteKeySet {
  return new RemoteKeySet(issuer, jwksUri, {
    cacheMaxAgeMs: CACHE_MS,
    cooldownMs: COOLDOWN_MS,
    timeoutMs: TIMEOUT_MS,
    clock,
  });
}

const nowSeconds = () => Math.floor(clock.nowMs() / 1000);

/** A token of the provider at the clock's "now". */
function token(opts: Parameters<FakeIdp['sign']>[1] = {}): Promise<string> {
  return idp.sign({}, { now: nowSeconds(), ...opts });
}

function verify(set: RemoteKeySet, jwt: string, algorithms = ['RS256', 'ES256']) {
  return jwtVerify(jwt, set.getKey, { algorithms, currentDate: clock.now() });
}

/** A server answering every request with `handler`; counts requests. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{
  url: string;
  hits: () => number;
}> {
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    handler(req, res);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/jwks`, hits: () => hits };
}

describe('fetching and caching', () => {
  it('shares one fetch among 20 concurrent callers', async () => {
    const set = keySet();
    const jwt = await token();
    const results = await Promise.all(Array.from({ length: 20 }, () => verify(set, jwt)));
    expect(results.every((r) => r.payload.sub === 'subject-1')).toBe(true);
    expect(idp.jwksHits).toBe(1);
    expect(set.fetches).toBe(1);
  });

  it('uses the cached keys until they are older than the cache age (by the clock), then refetches once', async () => {
    const set = keySet();
    await verify(set, await token());
    clock.advance(CACHE_MS / 1000 - 1);
    await verify(set, await token());
    expect(idp.jwksHits).toBe(1);
    clock.advance(1);
    await verify(set, await token());
    await verify(set, await token());
    expect(idp.jwksHits).toBe(2);
  });

  it('refuses a removed key once the cache has expired', async () => {
    const set = keySet();
    const old = idp.currentKey;
    await verify(set, await token());
    await idp.rotate();
    idp.remove(old.kid);
    await expect(verify(set, await token({ key: old }))).resolves.toBeDefined();
    clock.advance(CACHE_MS / 1000);
    await expect(verify(set, await token({ key: old }))).rejects.toBeInstanceOf(errors.JWKSNoMatchingKey);
    await expect(verify(set, await token())).resolves.toBeDefined();
    expect(idp.jwksHits).toBe(2);
  });

  it('finds the JWKS by discovery once, and checks the discovery issuer', async () => {
    const set = keySet(null);
    await verify(set, await token());
    clock.advance(CACHE_MS / 1000);
    await verify(set, await token());
    expect(idp.hits.get(idp.discoveryPath)).toBe(1);
    expect(idp.jwksHits).toBe(2);

    const other = keySet(null);
    idp.discoveryIssuer = `${idp.issuer}/`;
    await expect(verify(other, await token())).rejects.toBeInstanceOf(ProviderUnavailable);
    expect(idp.jwksHits).toBe(2);
  });

  it('refuses a discovered jwks_uri on plain http off loopback', async () => {
    const doc = await serve((req, res) => {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ issuer: `http://${req.headers.host}/realm`, jwks_uri: 'http://keys.example.com/jwks' }));
    });
    const set = keySet(null, `${new URL(doc.url).origin}/realm`);
    await expect(verify(set, await token())).rejects.toThrow(/no usable https jwks_uri/);
    expect(doc.hits()).toBe(1);
  });
});

describe('unknown kids', () => {
  it('refetch at most once per cooldown (by the clock)', async () => {
    const set = keySet();
    await verify(set, await token());
    expect(idp.jwksHits).toBe(1);
    const fresh = await idp.rotate();
    // Within the cooldown: not fetched for.
    await expect(verify(set, await token({ key: fresh }))).rejects.toBeInstanceOf(errors.JWKSNoMatchingKey);
    expect(idp.jwksHits).toBe(1);
    clock.advance(COOLDOWN_MS / 1000);
    await expect(verify(set, await token({ key: fresh }))).resolves.toBeDefined();
    expect(idp.jwksHits).toBe(2);
  });

  it('cost one fetch for 50 random kids (concurrent and sequential)', async () => {
    const set = keySet();
    await verify(set, await token());
    const stray = await idp.addKey();
    idp.remove(stray.kid);
    clock.advance(COOLDOWN_MS / 1000);
    const forged = () => token({ key: stray, header: { kid: randomUUID() } });
    const concurrent = await Promise.allSettled(Array.from({ length: 25 }, async () => verify(set, await forged())));
    expect(concurrent.every((r) => r.status === 'rejected' && r.reason instanceof errors.JWKSNoMatchingKey)).toBe(true);
    for (let i = 0; i < 25; i++) {
      await expect(verify(set, await forged())).rejects.toBeInstanceOf(errors.JWKSNoMatchingKey);
    }
    expect(idp.jwksHits).toBe(2);
  });
});

describe('failures', () => {
  it('treats a provider error as unavailable, answers at once for 1 s, then tries again', async () => {
    idp.mode = 'down';
    const set = keySet();
    await expect(verify(set, await token())).rejects.toBeInstanceOf(ProviderUnavailable);
    expect(idp.jwksHits).toBe(1);
    idp.mode = 'up';
    await expect(verify(set, await token())).rejects.toBeInstanceOf(ProviderUnavailable);
    expect(idp.jwksHits).toBe(1);
    clock.advance(1);
    await expect(verify(set, await token())).resolves.toBeDefined();
    expect(idp.jwksHits).toBe(2);
  });

  it('does not follow a redirect (302 is a failure)', async () => {
    const redirect = await serve((_req, res) => res.writeHead(302, { location: idp.jwksUri }).end());
    const set = keySet(redirect.url);
    await expect(verify(set, await token())).rejects.toBeInstanceOf(ProviderUnavailable);
    expect(redirect.hits()).toBe(1);
    expect(idp.jwksHits).toBe(0);
  });

  it('refuses a body over 512 KiB, with or without a content-length', async () => {
    const keys = { keys: idp.keys.map((k) => k.publicJwk), padding: 'x'.repeat(513 * 1024) };
    const body = JSON.stringify(keys);
    const declared = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
    await expect(verify(keySet(declared.url), await token())).rejects.toThrow(/body too large/);
    const chunked = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      for (let i = 0; i < body.length; i += 64 * 1024) res.write(body.slice(i, i + 64 * 1024));
      res.end();
    });
    await expect(verify(keySet(chunked.url), await token())).rejects.toThrow(/body too large/);
    // The same keys in a small body are fine.
    const small = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: keys.keys }));
    });
    await expect(verify(keySet(small.url), await token())).resolves.toBeDefined();
  });

  it('refuses a body that is not JSON or not a key set', async () => {
    const notJson = await serve((_req, res) => res.writeHead(200).end('<html>hello</html>'));
    await expect(verify(keySet(notJson.url), await token())).rejects.toBeInstanceOf(ProviderUnavailable);
    const notASet = await serve((_req, res) => res.writeHead(200).end('{"keys": {}}'));
    await expect(verify(keySet(notASet.url), await token())).rejects.toBeInstanceOf(ProviderUnavailable);
  });

  it('gives up after the timeout when the provider is slow', async () => {
    idp.mode = 'slow';
    const set = keySet();
    const started = Date.now();
    await expect(verify(set, await token())).rejects.toThrow(/timed out/);
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 2000);
  });

  it('never verifies an HS256 token with a shared-secret ("oct") key of the set', async () => {
    const secret = 'shared secret of the provider 0123456789';
    const oct = { kty: 'oct', kid: 'hmac', alg: 'HS256', k: Buffer.from(secret).toString('base64url') };
    const jwks = await serve((_req, res) => {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ keys: [oct, ...idp.keys.map((k) => k.publicJwk)] }));
    });
    const set = keySet(jwks.url);
    const input = unsignedJwt(
      { alg: 'HS256', kid: 'hmac', typ: 'JWT' },
      {
        iss: idp.issuer,
        sub: 'x',
        aud: 'gatehouse-api',
        iat: nowSeconds(),
        exp: nowSeconds() + 300,
      },
    );
    const hs = `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
    await expect(verify(set, hs, ['HS256'])).rejects.toBeInstanceOf(errors.JOSEError);
    // The RSA key of the same set works.
    await expect(verify(set, await token())).resolves.toBeDefined();
  });
});

describe('isSecureUrl', () => {
  it('accepts https anywhere and http on loopback only', () => {
    expect(isSecureUrl('https://idp.example.com/keys')).toBe(true);
    expect(isSecureUrl('http://127.0.0.1:8080/keys')).toBe(true);
    expect(isSecureUrl('http://localhost/keys')).toBe(true);
    expect(isSecureUrl('http://[::1]:9/keys')).toBe(true);
    expect(isSecureUrl('http://idp.example.com/keys')).toBe(false);
    expect(isSecureUrl('ftp://idp.example.com/keys')).toBe(false);
    expect(isSecureUrl('/relative/keys')).toBe(false);
  });
});
