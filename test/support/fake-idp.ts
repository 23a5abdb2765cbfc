import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose';

/** One signing key of the fake provider. */
export interface FakeKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

export interface SignOptions {
  /** Header overrides and additions (kid, alg, jku, x5u, jwk, typ ...). */
  header?: Record<string, unknown>;
  /** The key to sign with (default: the newest published one). */
  key?: FakeKey;
  /** Omit these registered claims (e.g. ['exp']). */
  omit?: Array<'iss' | 'aud' | 'exp' | 'iat' | 'sub' | 'jti'>;
  /** Lifetime in seconds from `iat` (default 300). */
  ttl?: number;
  /** Epoch seconds used as "now" for iat/exp (default: the real clock). */
  now?: number;
}

/**
 * An OpenID provider served by the test on 127.0.0.1 (contract v2 §D tests): discovery,
 * JWKS, key rotation and removal, hit counters per path, and switches to go down or slow.
 * Tokens are signed with jose.
 */
export class FakeIdp {
  readonly keys: FakeKey[] = [];
  /** Keys that sign but are no longer published. */
  readonly retired: FakeKey[] = [];
  readonly hits = new Map<string, number>();
  /** 'up', 'down' (every request answers 500) or 'slow' (answers after `slowMs`). */
  mode: 'up' | 'down' | 'slow' = 'up';
  slowMs = 10_000;
  /** The `issuer` the discovery document names (default: this issuer). */
  discoveryIssuer: string | null = null;
  private server!: Server;
  issuer = '';
  private readonly pendingTimers = new Set<NodeJS.Timeout>();

  private constructor(private readonly alg: string) {}

  /** Starts a provider with one key of `alg` (default RS256); `path` is the issuer's path. */
  static async start(opts: { alg?: string; path?: string } = {}): Promise<FakeIdp> {
    const idp = new FakeIdp(opts.alg ?? 'RS256');
    await idp.addKey();
    idp.server = createServer((req, res) => idp.handle(req, res));
    await new Promise<void>((resolve) => idp.server.listen(0, '127.0.0.1', resolve));
    const { port } = idp.server.address() as AddressInfo;
    idp.issuer = `http://127.0.0.1:${port}${opts.path ?? '/realms/test'}`;
    return idp;
  }

  get jwksUri(): string {
    return `${this.issuer}/protocol/openid-connect/certs`;
  }

  get discoveryPath(): string {
    return `${new URL(this.issuer).pathname}/.well-known/openid-configuration`;
  }

  get jwksPath(): string {
    return new URL(this.jwksUri).pathname;
  }

  /** How many times the JWKS was fetched. */
  get jwksHits(): number {
    return this.hits.get(this.jwksPath) ?? 0;
  }

  /** Publishes a new key (rotation) and returns it; it signs from now on. */
  async addKey(alg = this.alg): Promise<FakeKey> {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const kid = randomUUID();
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
    const key = { kid, alg, privateKey, publicKey, publicJwk };
    this.keys.push(key);
    return key;
  }

  /** Rotation: a new key signs, the old ones stay published. */
  rotate(): Promise<FakeKey> {
    return this.addKey();
  }

  /** Stops publishing a key (it can still sign, for tests of removed keys). */
  remove(kid: string): void {
    const index = this.keys.findIndex((k) => k.kid === kid);
    if (index >= 0) this.retired.push(...this.keys.splice(index, 1));
  }

  get currentKey(): FakeKey {
    const key = this.keys.at(-1);
    if (!key) throw new Error('the fake provider has no published key');
    return key;
  }

  /** A token of this provider: iss, sub, aud, iat, exp, jti plus `claims`. */
  async sign(claims: JWTPayload & Record<string, unknown>, opts: SignOptions = {}): Promise<string> {
    const key = opts.key ?? this.currentKey;
    const now = opts.now ?? Math.floor(Date.now() / 1000);
    const payload: JWTPayload & Record<string, unknown> = {
      iss: this.issuer,
      sub: 'subject-1',
      aud: 'gatehouse-api',
      iat: now,
      exp: now + (opts.ttl ?? 300),
      jti: randomUUID(),
      ...claims,
    };
    for (const name of opts.omit ?? []) delete payload[name];
    return new SignJWT(payload)
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...opts.header } as { alg: string })
      .sign(key.privateKey);
  }

  /** The FEDERATION_ISSUERS entry for this provider (override any field). */
  entry(overrides: Record<string, unknown> = {}): Record<string, unknown> {
    return { name: 'test-idp', issuer: this.issuer, audience: 'gatehouse-api', ...overrides };
  }

  async close(): Promise<void> {
    for (const timer of this.pendingTimers) clearTimeout(timer);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    this.hits.set(path, (this.hits.get(path) ?? 0) + 1);
    const answer = () => {
      if (this.mode === 'down') {
        res.writeHead(500).end();
        return;
      }
      if (path === this.discoveryPath) {
        json(res, { issuer: this.discoveryIssuer ?? this.issuer, jwks_uri: this.jwksUri });
      } else if (path === this.jwksPath) {
        json(res, { keys: this.keys.map((k) => k.publicJwk) });
      } else {
        res.writeHead(404).end();
      }
    };
    if (this.mode === 'slow') {
      const timer = setTimeout(() => {
        this.pendingTimers.delete(timer);
        answer();
      }, this.slowMs);
      this.pendingTimers.add(timer);
    } else {
      answer();
    }
  }
}

function json(res: ServerResponse, body: unknown): void {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/**
 * A server that only counts requests (a `jku`/`x5u` canary: Gatehouse must never fetch it).
 */
export async function startCanary(): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const server = createServer((_req, res) => {
    hits++;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":[]}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/keys`,
    hits: () => hits,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
