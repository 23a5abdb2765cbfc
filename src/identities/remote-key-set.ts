import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { Clock } from '../common/clock.js';
import { isSecureUrl } from '../config/federation-issuers.js';

/** The provider could not be reached (or answered nonsense) and no usable keys are cached. */
export class ProviderUnavailable extends Error {
  override name = 'ProviderUnavailable';
}

export interface RemoteKeySetOptions {
  /** Keys older than this are fetched again before use. */
  cacheMaxAgeMs: number;
  /** An unknown `kid` refetches the keys at most once per this period. */
  cooldownMs: number;
  /** Each HTTP request (discovery, JWKS) gives up after this. */
  timeoutMs: number;
  clock: Clock;
}

/** Bodies larger than this are not key sets. */
const MAX_BODY_BYTES = 512 * 1024;
/** After a failed fetch, requests answer 503 at once for this long instead of each waiting. */
const FAILURE_HOLD_MS = 1000;

/**
 * One external issuer's signing keys, fetched from its JWKS (found by OIDC discovery when
 * no `jwksUri` is configured) and selected by jose's `createLocalJWKSet` (by `kid` and
 * `alg`, among the keys of the set only: `jku`, `x5u` and an embedded `jwk` are never
 * followed).
 *
 * The policy is jose's `createRemoteJWKSet`'s (cache age, a cooldown before an unknown
 * `kid` refetches, a timeout, no redirects), kept here because that function measures
 * time with `Date.now()`: Gatehouse reads every time through its injectable Clock, so key
 * expiry and the cooldown follow the same clock as token expiry, in production and in
 * tests. Concurrent callers share one fetch.
 */
export class RemoteKeySet {
  private keys: ReturnType<typeof createLocalJWKSet> | null = null;
  private fetchedAtMs = Number.NEGATIVE_INFINITY;
  private failedAtMs = Number.NEGATIVE_INFINITY;
  /** When a fetch was last started, successful or not (the cooldown counts from it). */
  private attemptedAtMs = Number.NEGATIVE_INFINITY;
  private pending: Promise<void> | null = null;
  private jwksUri: string | null;
  /** Key-set fetches made (discovery not counted), for logs and tests. */
  fetches = 0;
  /** Goes up with every key set fetched: what was verified with an earlier one is checked again. */
  generation = 0;

  constructor(
    private readonly issuer: string,
    jwksUri: string | null,
    private readonly options: RemoteKeySetOptions,
  ) {
    this.jwksUri = jwksUri;
  }

  /**
   * Whether keys of `generation` are the ones held now and still young enough to be used
   * without fetching them again: a verification made with them still stands.
   */
  isCurrent(generation: number, nowMs: number): boolean {
    return generation === this.generation && nowMs < this.fetchedAtMs + this.options.cacheMaxAgeMs;
  }

  /** jose's key-resolution function: the key for this token's header, fetching as needed. */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    const now = this.options.clock.nowMs();
    if (!this.keys || now >= this.fetchedAtMs + this.options.cacheMaxAgeMs) await this.reload();
    const keys = this.keys;
    if (!keys) throw new ProviderUnavailable('no keys');
    try {
      return await keys(header, token);
    } catch (error) {
      // A key the cached set does not have: perhaps rotated in since. Refetched at most once
      // per cooldown after the last attempt (successful or not), so a flood of made-up
      // `kid`s costs one fetch per period, even while the provider misbehaves.
      if (
        error instanceof errors.JWKSNoMatchingKey &&
        this.options.clock.nowMs() >= this.attemptedAtMs + this.options.cooldownMs
      ) {
        await this.reload();
        return (this.keys ?? keys)(header, token);
      }
      throw error;
    }
  };

  private reload(): Promise<void> {
    if (this.options.clock.nowMs() < this.failedAtMs + FAILURE_HOLD_MS) {
      return Promise.reject(new ProviderUnavailable('the provider failed a moment ago'));
    }
    this.pending ??= this.fetchKeys().finally(() => (this.pending = null));
    return this.pending;
  }

  private async fetchKeys(): Promise<void> {
    this.attemptedAtMs = this.options.clock.nowMs();
    try {
      const uri = this.jwksUri ?? (await this.discover());
      this.fetches++;
      const body = await this.getJson(uri);
      const set = body as JSONWebKeySet;
      if (!Array.isArray(set.keys)) throw new ProviderUnavailable(`${uri} is not a JSON Web Key Set`);
      // Only public keys of asymmetric types: a JWKS holding an "oct" (shared secret) key
      // would otherwise let that secret verify HS* tokens if an algorithm list allowed them.
      const keys = set.keys.filter(
        (k) => k !== null && typeof k === 'object' && (k.kty === 'RSA' || k.kty === 'EC' || k.kty === 'OKP'),
      );
      this.keys = createLocalJWKSet({ keys });
      this.fetchedAtMs = this.options.clock.nowMs();
      this.generation++;
    } catch (error) {
      this.failedAtMs = this.options.clock.nowMs();
      if (error instanceof ProviderUnavailable) throw error;
      throw new ProviderUnavailable(error instanceof Error ? error.message : String(error));
    }
  }

  /** OIDC Discovery 1.0 §4: the document's `issuer` must be exactly the configured one. */
  private async discover(): Promise<string> {
    const url = `${this.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    const doc = (await this.getJson(url)) as { issuer?: unknown; jwks_uri?: unknown };
    if (doc.issuer !== this.issuer) throw new ProviderUnavailable(`discovery at ${url} names another issuer`);
    if (typeof doc.jwks_uri !== 'string' || !isSecureUrl(doc.jwks_uri)) {
      throw new ProviderUnavailable(`discovery at ${url} has no usable https jwks_uri`);
    }
    this.jwksUri = doc.jwks_uri;
    return doc.jwks_uri;
  }

  /** GET, JSON, 200 only, no redirects followed, bounded in time and size. */
  private async getJson(url: string): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(url, {
        redirect: 'manual',
        headers: { accept: 'application/json, application/jwk-set+json' },
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (error) {
      const reason = error instanceof Error && error.name === 'TimeoutError' ? 'timed out' : 'unreachable';
      throw new ProviderUnavailable(`${url}: ${reason}`);
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new ProviderUnavailable(`${url}: HTTP ${response.status}`);
    }
    const declared = Number(response.headers.get('content-length') ?? 0);
    if (declared > MAX_BODY_BYTES) {
      await response.body?.cancel();
      throw new ProviderUnavailable(`${url}: body too large`);
    }
    // Read with a byte count, stopping at the limit: a body without a length (chunked) must
    // not be buffered whole before it is found too large.
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      for await (const chunk of response.body ?? []) {
        size += chunk.byteLength;
        if (size > MAX_BODY_BYTES) break;
        chunks.push(chunk);
      }
    } catch {
      throw new ProviderUnavailable(`${url}: timed out`);
    }
    if (size > MAX_BODY_BYTES) {
      await response.body?.cancel().catch(() => undefined);
      throw new ProviderUnavailable(`${url}: body too large`);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new ProviderUnavailable(`${url}: not JSON`);
    }
  }
}
