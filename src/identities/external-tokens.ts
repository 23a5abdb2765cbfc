import { createHash } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import { decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { BoundedMap } from '../common/bounded-map.js';
import { Clock } from '../common/clock.js';
import { AppError, retryAfter } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import type { FederationIssuer } from '../config/federation-issuers.js';
import { TokenRejected } from '../tokens/token-verifier.js';
import { ProviderUnavailable, RemoteKeySet } from './remote-key-set.js';

/** A token of a configured issuer that passed every check. */
export interface ExternalToken {
  issuer: FederationIssuer;
  claims: JWTPayload & { sub: string; exp: number; iss: string };
  /** Issued at (epoch seconds): the token's `iat`, or now when it has none. */
  iat: number;
  /** What identifies this token for replay checks and revocation: its `jti`, or its SHA-256. */
  replayId: string;
}

/** Verified external tokens remembered (oldest out first), as many as Gatehouse's own. */
const VERIFIED_CAPACITY = 10_000;

/** Longest token remembered once verified (a provider's access token is 1–3 KiB). */
const VERIFIED_MAX_LENGTH = 8192;
/** A compact JWS in its one canonical spelling: unpadded base64url, nothing else (RFC 7515 §2, §7.1). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Whether a token is spelled as a signer writes it: jose's decoder also takes a signature
 * with padding, whitespace or non-zero unused trailing bits, so one signed token has many
 * spellings that all verify. Only the canonical one (the signature re-encodes to the same
 * text) is remembered, so that no one fills the cache with copies of one token; the others
 * are checked in full every time, as before. The cache is keyed by the token's SHA-256, so
 * that a long token costs it 43 characters, not its length.
 */
function isCanonical(token: string): boolean {
  if (!COMPACT_JWS.test(token)) return false;
  const signature = token.slice(token.lastIndexOf('.') + 1);
  return Buffer.from(signature, 'base64url').toString('base64url') === signature;
}

/** Longest accepted `sub` (contract v2 §D). */
const SUB_MAX = 255;
/** No NUL and no unpaired UTF-16 surrogate. */
const WELL_FORMED = /^(?:[^\0\uD800-\uDFFF]|[\uD800-\uDBFF][\uDC00-\uDFFF])*$/;

/** 503 FEDERATION_UNAVAILABLE: never 401 (the token may be fine) and never 500. */
export const federationUnavailable = (issuer: FederationIssuer): AppError =>
  new AppError(
    ErrorCode.FEDERATION_UNAVAILABLE,
    `The identity provider "${issuer.name}" cannot be reached to check the token; retry shortly`,
    retryAfter(5),
  );

/**
 * Verifies tokens of the external issuers in FEDERATION_ISSUERS (contract v2 §D):
 * - the unverified `iss` only picks the configuration and its key source;
 * - jose checks the signature with a key of that issuer's JWKS, only with the pinned
 *   asymmetric algorithms (no `none`, no HS*: RFC 8725 §3.1 and §3.2), and `iss`, `aud`,
 *   `exp`, `nbf` with FEDERATION_CLOCK_TOLERANCE, on Gatehouse's clock;
 * - then `sub` is 1–255 characters, `iat` not in the future, and exp − iat at most the
 *   issuer's maxTokenLifetime.
 * A failure is TokenRejected; an unreachable provider without keys is 503.
 */
@Injectable()
export class ExternalTokens {
  private readonly byIssuer = new Map<
    string,
    { issuer: FederationIssuer; keys: RemoteKeySet; options: Omit<JWTVerifyOptions, 'currentDate'> }
  >();
  private readonly logger = new Logger('Federation');
  /** When each issuer's unavailability was last logged (at most once per 10 s each). */
  private readonly loggedAtMs = new Map<string, number>();
  /**
   * Tokens that passed every check, by the SHA-256 of their exact text (canonical ones up
   * to 8 KiB only: isCanonical), with the key set that verified them: a client repeating
   * requests with its provider's token is not checked again (an RS256 signature through
   * WebCrypto, the claims, the replay id's SHA-256) while the token is unexpired and those
   * keys are the issuer's current ones, neither fetched again since nor older than
   * FEDERATION_JWKS_CACHE_TTL (a key the provider withdrew stops its tokens at the next
   * fetch, as without this). Only what the token itself proves is kept: the account behind
   * it is looked up on every request (IdentitiesService.userFor).
   */
  private readonly verified = new BoundedMap<string, { keys: RemoteKeySet; generation: number; result: ExternalToken }>(
    VERIFIED_CAPACITY,
  );

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly clock: Clock,
  ) {
    for (const issuer of config.federationIssuers) {
      this.byIssuer.set(issuer.issuer, {
        issuer,
        keys: new RemoteKeySet(issuer.issuer, issuer.jwksUri, {
          cacheMaxAgeMs: config.FEDERATION_JWKS_CACHE_TTL * 1000,
          cooldownMs: config.FEDERATION_JWKS_COOLDOWN * 1000,
          timeoutMs: config.FEDERATION_HTTP_TIMEOUT * 1000,
          clock,
        }),
        // Built once: only the current date changes from one token to the next.
        options: {
          issuer: issuer.issuer,
          audience: [...issuer.audience],
          algorithms: [...issuer.algorithms],
          requiredClaims: ['exp', 'sub', 'iss', 'aud'],
          clockTolerance: config.FEDERATION_CLOCK_TOLERANCE,
        },
      });
    }
  }

  get configured(): boolean {
    return this.byIssuer.size > 0;
  }

  /** The configured issuer with this exact `iss`, if any. */
  issuer(iss: string): FederationIssuer | undefined {
    return this.byIssuer.get(iss)?.issuer;
  }

  /**
   * The `iss` a token claims, unverified: null when it has no string `iss`, undefined when it is
   * not a JWT (its header or its payload not a JSON object): a bearer token is then checked as
   * one of ours, and verify() refuses it as malformed.
   */
  claimedIssuer(token: string): string | null | undefined {
    try {
      decodeProtectedHeader(token);
      const iss = decodeJwt(token).iss;
      return typeof iss === 'string' ? iss : null;
    } catch {
      return undefined;
    }
  }

  async verify(token: string): Promise<ExternalToken> {
    const cacheKey =
      token.length <= VERIFIED_MAX_LENGTH ? createHash('sha256').update(token).digest('base64url') : null;
    const verified = cacheKey === null ? undefined : this.verified.get(cacheKey);
    if (verified !== undefined && cacheKey !== null) {
      const { keys, generation, result } = verified;
      // jose's own expiry test (exp ≤ now − tolerance is expired), with the same clock.
      const nowMs = this.clock.nowMs();
      const live = result.claims.exp > Math.floor(nowMs / 1000) - this.config.FEDERATION_CLOCK_TOLERANCE;
      if (live && keys.isCurrent(generation, nowMs)) return result;
      // Checked again from the start: an expired token gets its 401, keys fetched since decide.
      this.verified.delete(cacheKey);
    }
    const iss = this.claimedIssuer(token);
    if (iss === undefined) throw new TokenRejected('malformed or invalid token');
    const entry = iss === null ? undefined : this.byIssuer.get(iss);
    if (!entry) throw new TokenRejected('unknown issuer');
    const { issuer, keys, options } = entry;
    // Taken before the check: should the keys be fetched again meanwhile, the entry is
    // already stale, and the next use checks the token with the new ones.
    const generation = keys.generation;
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, keys.getKey, { ...options, currentDate: this.clock.now() }));
    } catch (error) {
      if (error instanceof ProviderUnavailable) {
        this.logUnavailable(issuer, error);
        throw federationUnavailable(issuer);
      }
      // TypeError and DOMException: WebCrypto refusing a key the provider published (a JWK
      // without its modulus, a public key with a private part): the token cannot be checked.
      if (error instanceof errors.JOSEError || error instanceof TypeError || error instanceof DOMException) {
        throw new TokenRejected(rejection(error));
      }
      throw error;
    }
    const nowSeconds = Math.floor(this.clock.nowMs() / 1000);
    const { sub, exp, iat } = claims;
    // Stored verbatim, so it must be storable as it is: no NUL (PostgreSQL text refuses it)
    // and no unpaired surrogate (it would be stored as U+FFFD, and two subs would meet).
    if (typeof sub !== 'string' || sub.length === 0 || sub.length > SUB_MAX || !WELL_FORMED.test(sub)) {
      throw new TokenRejected('bad sub');
    }
    if (typeof exp !== 'number') throw new TokenRejected('missing exp');
    if (iat !== undefined && (typeof iat !== 'number' || iat > nowSeconds + this.config.FEDERATION_CLOCK_TOLERANCE)) {
      throw new TokenRejected('iat in the future');
    }
    const issuedAt = typeof iat === 'number' ? iat : nowSeconds;
    // A long-lived external token is refused outright: the provider's own policy should be
    // short tokens, and a stolen one must not be useful for days (contract v2 §D).
    if (exp - issuedAt > issuer.maxTokenLifetime) throw new TokenRejected('lifetime too long');
    // Without a `jti`, the token is known by what was signed (header and payload as sent):
    // hashing the whole text would let the same token pass again with its signature
    // re-encoded (base64url's unused trailing bits are not checked when decoding).
    const replayId =
      typeof claims.jti === 'string' && claims.jti.length > 0 && claims.jti.length <= 512
        ? `jti:${claims.jti}`
        : `sha256:${createHash('sha256')
            .update(token.slice(0, token.lastIndexOf('.')))
            .digest('base64url')}`;
    const result: ExternalToken = {
      issuer,
      claims: claims as ExternalToken['claims'],
      iat: issuedAt,
      replayId,
    };
    if (cacheKey !== null && isCanonical(token)) this.verified.set(cacheKey, { keys, generation, result });
    return result;
  }

  /** Why the provider could not be used (which URL, timeout or status), once per 10 s. */
  private logUnavailable(issuer: FederationIssuer, error: ProviderUnavailable): void {
    const now = this.clock.nowMs();
    if (now - (this.loggedAtMs.get(issuer.name) ?? Number.NEGATIVE_INFINITY) < 10_000) return;
    this.loggedAtMs.set(issuer.name, now);
    this.logger.warn(`identity provider "${issuer.name}" unavailable (503 to its tokens): ${error.message}`);
  }

  /** Key-set fetches so far, per issuer name (operations and tests). */
  fetchCounts(): Record<string, number> {
    return Object.fromEntries([...this.byIssuer.values()].map((e) => [e.issuer.name, e.keys.fetches]));
  }
}

/** A short reason for the RFC 6750 error_description: never the token or key material. */
function rejection(error: Error): string {
  if (error instanceof errors.JWTExpired) return 'expired';
  if (error instanceof errors.JWTClaimValidationFailed) return `claim ${error.claim} invalid`;
  if (error instanceof errors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (error instanceof errors.JWKSNoMatchingKey) return 'no matching key';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'signature invalid';
  return 'malformed or invalid token';
}
