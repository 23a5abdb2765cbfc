import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errors, jwtVerify } from 'jose';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { ProviderUnavailable, RemoteKeySet } from '../../src/identities/remote-key-set.js';
import { FakeClock } from '../support/fake-clock.js';
import { FakeIdp } from '../support/fake-idp.js';

/**
 * RemoteKeySet limits found by the federation security review: the size of a JWKS body
 * without a content-length, and the unknown-kid cooldown after a failed fetch.
 */

const CACHE_MS = 600_000;
const COOLDOWN_MS = 30_000;
const TIMEOUT_MS = 5000;
const MAX_BODY = 512 * 1024;
/** What the hostile provider tries to stream. */
const STREAMED = 5 * 1024 * 1024;

let clock: FakeClock;
const closers: Array<() => Promise<void>> = [];

beforeEach(() => {
  clock = new FakeClock();
  clock.freeze();
});
afterAll(async () => {
  for (const close of closers) await close();
});

function keySet(jwksUri: string, issuer: string): RemoteKeySet {
  return new RemoteKeySet(issuer, jwksUri, {
    cacheMaxAgeMs: CACHE_MS,
    cooldownMs: COOLDOWN_MS,
    timeoutMs: TIMEOUT_MS,
    clock,
  });
}

async function startIdp(): Promise<FakeIdp> {
  const idp = await FakeIdp.start();
  closers.push(() => idp.close());
  return idp;
}

function verify(set: RemoteKeySet, jwt: string) {
  return jwtVerify(jwt, set.getKey, { algorithms: ['RS256'], currentDate: clock.now() });
}

/**
 * A provider streaming a 5 MiB JSON body in 64 KiB chunks without a content-length (chunked
 * encoding), paced so that the socket buffers do not hide a client that stops reading. `outcome` says whether it
 * got to the end ('finished') or saw the connection closed first ('closed'), and how much it
 * had written.
 */
async function streamingProvider(): Promise<{
  url: string;
  outcome: Promise<{ ended: 'finished' | 'closed'; written: number }>;
}> {
  let report: (o: { ended: 'finished' | 'closed'; written: number }) => void = () => undefined;
  const outcome = new Promise<{ ended: 'finished' | 'closed'; written: number }>((resolve) => (report = resolve));
  const chunk = 'x'.repeat(64 * 1024);
  const server: Server = createServer((_req, res) => {
    let written = 0;
    let closed = false;
    res.on('close', () => {
      closed = true;
      report({ ended: written >= STREAMED ? 'finished' : 'closed', written });
    });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"keys":[],"padding":"');
    const pump = (): void => {
      if (closed) return;
      if (written >= STREAMED) {
        res.end('"}');
        return;
      }
      written += chunk.length;
      // One chunk per 10 ms once the last one is handed to the socket: the whole body takes
      // about a second, so a client that stops at 512 KiB is seen long before the end.
      res.write(chunk, () => setTimeout(pump, 10));
    };
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/jwks`, outcome };
}

describe('a JWKS body without a content-length', () => {
  // Fix: the body is read chunk by chunk with a byte count, stopping (and cancelling the
  // response) past 512 KiB. Before, response.text() buffered the whole body first and only
  // then compared its length: a provider could make Gatehouse download any amount.
  it('is refused past 512 KiB, and the download stops there', async () => {
    const provider = await streamingProvider();
    const set = keySet(provider.url, 'http://127.0.0.1/realms/streaming');
    const idp = await startIdp();
    const jwt = await idp.sign({}, { now: Math.floor(clock.nowMs() / 1000) });
    await expect(verify(set, jwt)).rejects.toSatisfy(
      (e) => e instanceof ProviderUnavailable && /body too large/.test(e.message),
    );
    const { ended, written } = await provider.outcome;
    expect({ ended, stoppedEarly: written < STREAMED / 2 }).toEqual({ ended: 'closed', stoppedEarly: true });
    expect(written).toBeGreaterThan(MAX_BODY - 64 * 1024);
    expect(set.fetches).toBe(1);
  });
});

describe('unknown kids after a failed fetch', () => {
  // Fix: the cooldown counts from the last fetch attempt, failed or not (attemptedAtMs).
  // Before, it counted from the last successful fetch: once that was over a cooldown old,
  // every unknown kid after the 1 s failure hold fetched again while the provider failed.
  it('refetch only once the cooldown has passed since the failed attempt', async () => {
    const idp = await startIdp();
    const set = keySet(idp.jwksUri, idp.issuer);
    const now = () => Math.floor(clock.nowMs() / 1000);
    await expect(verify(set, await idp.sign({}, { now: now() }))).resolves.toBeDefined();
    expect(idp.jwksHits).toBe(1);
    const fresh = await idp.rotate();
    const unknownKid = () => idp.sign({}, { key: fresh, now: now() });

    clock.advance(COOLDOWN_MS / 1000);
    idp.mode = 'down';
    await expect(verify(set, await unknownKid())).rejects.toBeInstanceOf(ProviderUnavailable);
    expect(idp.jwksHits).toBe(2);
    idp.mode = 'up';

    // 2 s after the failed attempt (the 1 s failure hold is over): still no fetch.
    clock.advance(2);
    await expect(verify(set, await unknownKid())).rejects.toBeInstanceOf(errors.JWKSNoMatchingKey);
    expect(idp.jwksHits).toBe(2);
    // The cached keys still serve their own tokens meanwhile.
    await expect(verify(set, await idp.sign({}, { key: idp.keys[0], now: now() }))).resolves.toBeDefined();
    // 1 s short of the cooldown: still none.
    clock.advance(COOLDOWN_MS / 1000 - 3);
    await expect(verify(set, await unknownKid())).rejects.toBeInstanceOf(errors.JWKSNoMatchingKey);
    expect(idp.jwksHits).toBe(2);

    // A cooldown after the failed attempt: one fetch, which finds the new key.
    clock.advance(1);
    await expect(verify(set, await unknownKid())).resolves.toBeDefined();
    await expect(verify(set, await unknownKid())).resolves.toBeDefined();
    expect(idp.jwksHits).toBe(3);
  });
});
