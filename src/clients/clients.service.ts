import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { AuditService, type AuditEventType } from '../audit/audit.service.js';
import type { Role } from '../common/account-rules.js';
import { Clock } from '../common/clock.js';
import { AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import type { ClientInfo } from '../common/http/client-info.js';
import { DEFAULT_PAGE_SIZE, decodeCursor, toPage } from '../common/http/pagination.js';
import type { AppConfig } from '../config/config.schema.js';
import { InjectConfig } from '../config/config.token.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { EventBus } from '../events/event-bus.js';
import { RevocationService } from '../tokens/revocation.service.js';
import { BUILT_IN_SCOPES } from '../tokens/scopes.js';
import { ClientAuthCache, type CachedClientAuth } from './client-auth-cache.js';
import { CreatedClientDto, IssuedClientSecretDto, OAuthClientDto, OAuthClientSecretDto } from './client.dto.js';
import {
  CLIENT_ID_PATTERN,
  hashSecret,
  matchesSecret,
  newClientId,
  newClientSecret,
  secretPrefix,
} from './client-secrets.js';
import { ClientsRepository, type ClientRecord } from './clients.repository.js';

/** A secret's `lastUsedAt` is written at most this often (it is informative only). */
export const LAST_USED_PRECISION_MS = 60_000;

/**
 * How long a successful client authentication at POST /oauth/introspect is remembered. 30 s,
 * as FEDERATION_LINK_CACHE_TTL's default: long enough that a busy introspecting service reads
 * its client once per 30 s instead of on every call, short enough to bound what only the TTL
 * ends (a `clients.changed` event lost with Redis, a change made in the database by hand).
 * Revocations and admin changes end an entry at once whatever this value (ClientAuthCache).
 * It must stay below the life of a revocation entry (token lifetime + 60 s, so never under
 * 60 s): a hit is voided by the entry of its secret's or service user's revocation.
 */
export const CLIENT_AUTH_CACHE_TTL_MS = 30_000;

/**
 * A cached authentication is void when its secret or service user was revoked up to this long
 * before it was read: the revocation is announced before its transaction commits, and a read
 * in between still sees the old rows (RevocationService.revokedSince adds its own second). As
 * long as the longest such transaction may run (PrismaService's 10 s timeout), plus a second.
 */
const REVOCATION_MARGIN_MS = 11_000;

/** The shortest per-client access-token lifetime, in seconds (the longest is OAUTH_MAX_TOKEN_TTL). */
export const MIN_CLIENT_TOKEN_TTL = 60;

/** Who makes an admin change (audited as `by`). */
export interface ClientAdmin {
  userId: string;
  /** A machine client administering clients is held to what it has itself (checkDelegation). */
  kind?: string;
  clientId?: string | null;
  scopes?: readonly string[];
}

/** POST /oauth/clients. Instants are ISO 8601 strings. */
export interface NewClient {
  name: string;
  description?: string | null;
  allowedScopes: readonly string[];
  /** Seconds, MIN_CLIENT_TOKEN_TTL..OAUTH_MAX_TOKEN_TTL; null or absent: OAUTH_TOKEN_TTL. */
  accessTokenTtl?: number | null;
  tokenExchange?: boolean;
  /** Expiry of the first secret (in the future); null or absent: none. */
  secretExpiresAt?: string | null;
}

/** PATCH /oauth/clients/:id; undefined: unchanged. */
export interface ClientPatch {
  name?: string;
  description?: string | null;
  allowedScopes?: readonly string[];
  accessTokenTtl?: number | null;
  tokenExchange?: boolean;
  disabled?: boolean;
}

/** POST /oauth/clients/:id/secrets. */
export interface NewSecret {
  label?: string | null;
  /** In the future; null or absent: none. */
  expiresAt?: string | null;
}

/** A client that proved one of its secrets (the token endpoint's view of it). */
export interface AuthenticatedClient {
  /** Row id. */
  id: string;
  /** Public `client_id`. */
  clientId: string;
  name: string;
  allowedScopes: string[];
  /** Seconds: the client's own, else OAUTH_TOKEN_TTL, never above OAUTH_MAX_TOKEN_TTL. */
  accessTokenTtl: number;
  tokenExchange: boolean;
  serviceUserId: string;
  serviceUserRoles: Role[];
  /** The secret that was presented: the `sid` of the tokens it obtains. */
  secretId: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** The latest instant accepted (what PostgreSQL and toISOString both keep in plain form). */
const MAX_INSTANT_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

const notFound = () => new AppError(ErrorCode.CLIENT_NOT_FOUND, 'No such client');
const secretNotFound = () => new AppError(ErrorCode.CLIENT_NOT_FOUND, 'No such client secret');
const invalid = (message: string) => new AppError(ErrorCode.VALIDATION_FAILED, [message]);

/**
 * A machine client may administer clients (its service user has the admin role, its token
 * `clients:admin`), but gains nothing by it: it may not change its own client, touch a
 * client that is allowed a scope its token does not carry (or token exchange), or allow
 * such a scope. Otherwise a `clients:admin` client could allow itself `users:admin`, or
 * take a secret of a stronger client. People who are admins are the root of trust and
 * are not held to this.
 */
function checkDelegation(
  admin: ClientAdmin,
  target: { clientId: string; allowedScopes: readonly string[]; tokenExchange: boolean } | null,
  grants: { allowedScopes?: readonly string[]; tokenExchange?: boolean } = {},
): void {
  if (admin.kind !== 'client') return;
  if (target !== null && target.clientId === admin.clientId) {
    throw new AppError(ErrorCode.CANNOT_TARGET_SELF, 'A client cannot administer itself');
  }
  const held = admin.scopes ?? [];
  const beyond = [...new Set([...(target?.allowedScopes ?? []), ...(grants.allowedScopes ?? [])])].filter(
    (s) => !held.includes(s),
  );
  if (beyond.length > 0) {
    throw new AppError(
      ErrorCode.INSUFFICIENT_SCOPE,
      `A client cannot administer or allow scopes its own token does not carry: ${beyond.join(' ')}`,
    );
  }
  if (target?.tokenExchange === true || grants.tokenExchange === true) {
    throw new AppError(ErrorCode.INSUFFICIENT_SCOPE, 'A client cannot administer clients allowed token exchange');
  }
}

/**
 * Machine clients (contract v2 §C): the admin side (clients, their secrets, their service
 * users) and what the OAuth endpoints ask of the database (client authentication, whether
 * a token is still active).
 *
 * Secrets are shown once, at creation, and stored as SHA-256; neither a secret nor its hash
 * is ever logged, audited or returned again. Every change that ends a secret's or a client's
 * tokens revokes the secrets' `sid` keys in the same transaction as the change.
 */
@Injectable()
export class ClientsService implements OnModuleInit {
  private readonly logger = new Logger('Clients');
  private readonly authCache = new ClientAuthCache<AuthenticatedClient>(CLIENT_AUTH_CACHE_TTL_MS);

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly repo: ClientsRepository,
    private readonly revocation: RevocationService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly txHost: TransactionHost<PrismaTx>,
    private readonly events: EventBus,
  ) {}

  onModuleInit(): void {
    // Published after the commit of every admin change but a new secret, here and elsewhere.
    this.events.on('clients.changed', ({ id }) => this.authCache.forgetClient(id));
    // Changes announced while the Redis subscription was broken are lost: nothing cached
    // before the break is trusted again, and nothing is cached until it works again.
    this.events.onSync(() => this.authCache.clear());
  }

  /**
   * Tells every instance (this one included) that a client changed, once the change is
   * committed: a cached authentication read before the commit must not outlive it. A Redis
   * outage only delays the other instances by up to CLIENT_AUTH_CACHE_TTL_MS (logged).
   */
  private changed(id: string): void {
    this.events.notify('clients.changed', { id });
  }

  /** Every scope a client may be allowed: the built-in ones and OAUTH_EXTRA_SCOPES. */
  get knownScopes(): readonly string[] {
    return [...BUILT_IN_SCOPES, ...(this.config.OAUTH_EXTRA_SCOPES ?? [])];
  }

  /**
   * A new client with its service user and its first secret, in one transaction. The
   * secret's value is in the answer and nowhere else.
   */
  async create(input: NewClient, admin: ClientAdmin, client: ClientInfo): Promise<CreatedClientDto> {
    const allowedScopes = this.checkScopes(input.allowedScopes);
    const accessTokenTtl = this.checkTtl(input.accessTokenTtl);
    checkDelegation(admin, null, { allowedScopes, tokenExchange: input.tokenExchange });
    const now = this.clock.now();
    const expiresAt = this.instant(input.secretExpiresAt, 'secretExpiresAt', now);
    const clientId = newClientId();
    const value = newClientSecret();
    const { row, secret } = await this.txHost.withTransaction(async () => {
      const serviceUser = await this.repo.createServiceUser(clientId, now);
      const created = await this.repo.createClient({
        clientId,
        name: input.name,
        description: input.description ?? null,
        allowedScopes,
        accessTokenTtl,
        tokenExchange: input.tokenExchange ?? false,
        serviceUserId: serviceUser.id,
        createdBy: admin.userId,
        now,
      });
      const first = await this.repo.createSecret({
        clientRowId: created.id,
        hash: hashSecret(value),
        prefix: secretPrefix(value),
        label: null,
        expiresAt,
        now,
      });
      await this.record('client.created', created, admin, client, {
        name: created.name,
        allowedScopes,
        secretId: first.id,
      });
      return { row: { ...created, secrets: [first] }, secret: first };
    });
    return { client: OAuthClientDto.from(row), secret: IssuedClientSecretDto.from(secret, value) };
  }

  /**
   * Throws unless `admin` may administer the service user `serviceUserId` (checkDelegation
   * on its client; a service user whose client is gone has nothing to delegate).
   */
  async checkDelegationOver(admin: ClientAdmin, serviceUserId: string): Promise<void> {
    const owner = await this.repo.findByServiceUserId(serviceUserId);
    if (owner) checkDelegation(admin, owner);
  }

  /** Newest first, by keyset (`nextCursor`). */
  async list(
    limit = DEFAULT_PAGE_SIZE,
    cursor?: string,
  ): Promise<{ items: OAuthClientDto[]; nextCursor: string | null }> {
    const rows = await this.repo.page(limit + 1, decodeCursor(cursor));
    return toPage(rows, limit, (c) => OAuthClientDto.from(c));
  }

  async get(id: string): Promise<OAuthClientDto> {
    const row = await this.repo.findById(id);
    if (!row) throw notFound();
    return OAuthClientDto.from(row);
  }

  /**
   * Changes the client. Disabling revokes the tokens of every secret (`sid` keys,
   * not-before: enabled again, it gets working tokens within a second); enabling only
   * clears the flag. Taking a scope away also revokes the tokens issued so far, as a role
   * change does for a user: they carry the scope until they expire otherwise.
   */
  async update(id: string, patch: ClientPatch, admin: ClientAdmin, client: ClientInfo): Promise<OAuthClientDto> {
    const allowedScopes = patch.allowedScopes === undefined ? undefined : this.checkScopes(patch.allowedScopes);
    const accessTokenTtl = patch.accessTokenTtl === undefined ? undefined : this.checkTtl(patch.accessTokenTtl);
    await this.txHost.withTransaction(async () => {
      const before = await this.repo.lockById(id);
      if (!before) throw notFound();
      checkDelegation(admin, before, { allowedScopes, tokenExchange: patch.tokenExchange });
      const after = await this.repo.update(id, {
        name: patch.name,
        description: patch.description,
        allowedScopes,
        accessTokenTtl,
        tokenExchange: patch.tokenExchange,
        disabled: patch.disabled,
        now: this.clock.now(),
      });
      if (!after) throw notFound();
      const changed = changedFields(before, after);
      const disabling = after.disabled && !before.disabled;
      const scopeTaken = before.allowedScopes.some((s) => !after.allowedScopes.includes(s));
      if (disabling || scopeTaken) {
        await this.revocation.revoke({ secrets: await this.repo.secretIds(id) });
      }
      if (changed.length > 0) {
        await this.record('client.updated', after, admin, client, {
          changed,
          ...(changed.includes('allowedScopes') ? { allowedScopes: after.allowedScopes } : {}),
        });
      }
      if (disabling) await this.record('client.disabled', after, admin, client);
      if (before.disabled && !after.disabled) await this.record('client.enabled', after, admin, client);
    });
    this.changed(id);
    return this.get(id);
  }

  /**
   * Deletes the client (its secrets cascade) and ends every token it holds; its service
   * user is disabled, not deleted: the resources it owns stay.
   */
  async delete(id: string, admin: ClientAdmin, client: ClientInfo): Promise<void> {
    await this.txHost.withTransaction(async () => {
      const row = await this.repo.lockById(id);
      if (!row) throw notFound();
      checkDelegation(admin, row);
      const secrets = await this.repo.secretIds(id);
      await this.repo.delete(id);
      await this.repo.disableServiceUser(row.serviceUserId, this.clock.now());
      await this.revocation.revoke({ secrets, users: [row.serviceUserId], signOut: true });
      await this.record('client.deleted', row, admin, client, { name: row.name });
    });
    this.changed(id);
  }

  /**
   * A new secret for the client (rotation: add one, then give the old one an expiry). 409
   * TOO_MANY_SECRETS when the client already has OAUTH_MAX_SECRETS_PER_CLIENT live ones;
   * counted and inserted under the client's row lock, so concurrent additions cannot pass
   * the cap together.
   */
  async addSecret(
    id: string,
    input: NewSecret,
    admin: ClientAdmin,
    client: ClientInfo,
  ): Promise<IssuedClientSecretDto> {
    const now = this.clock.now();
    const expiresAt = this.instant(input.expiresAt, 'expiresAt', now);
    const value = newClientSecret();
    const secret = await this.txHost.withTransaction(async () => {
      const row = await this.repo.lockById(id);
      if (!row) throw notFound();
      checkDelegation(admin, row);
      const max = this.config.OAUTH_MAX_SECRETS_PER_CLIENT;
      if ((await this.repo.countLiveSecrets(id, now)) >= max) {
        throw new AppError(
          ErrorCode.TOO_MANY_SECRETS,
          `A client has at most ${max} live secrets: revoke one, or wait until one expires`,
        );
      }
      const created = await this.repo.createSecret({
        clientRowId: id,
        hash: hashSecret(value),
        prefix: secretPrefix(value),
        label: input.label ?? null,
        expiresAt,
        now,
      });
      await this.record('client.secret_created', row, admin, client, {
        secretId: created.id,
        expiresAt: created.expiresAt?.toISOString() ?? null,
      });
      return created;
    });
    return IssuedClientSecretDto.from(secret, value);
  }

  /**
   * Gives a live secret an expiry (null: none), which schedules a rotation. An expiry that
   * is not in the future ends the secret now, and its tokens with it. An expired or revoked
   * secret is 404: it cannot be brought back.
   */
  async setSecretExpiry(
    id: string,
    secretId: string,
    expiresAt: string | null,
    admin: ClientAdmin,
    client: ClientInfo,
  ): Promise<OAuthClientSecretDto> {
    const now = this.clock.now();
    const at = this.instant(expiresAt, 'expiresAt', null);
    const secret = await this.txHost.withTransaction(async () => {
      const row = await this.repo.lockById(id);
      if (!row) throw notFound();
      checkDelegation(admin, row);
      // Only a live secret: an expired or revoked one stays ended (reviving it would also
      // slip past OAUTH_MAX_SECRETS_PER_CLIENT).
      const updated = await this.repo.setSecretExpiry(id, secretId, at, now);
      if (!updated) throw secretNotFound();
      if (at !== null && at.getTime() <= now.getTime()) await this.revocation.revoke({ secrets: [secretId] });
      await this.record('client.secret_expiry_set', row, admin, client, {
        secretId,
        expiresAt: at?.toISOString() ?? null,
      });
      return updated;
    });
    this.changed(id);
    return OAuthClientSecretDto.from(secret);
  }

  /** Revokes a secret now, with every token it obtained. Idempotent for a revoked one. */
  async revokeSecret(id: string, secretId: string, admin: ClientAdmin, client: ClientInfo): Promise<void> {
    await this.txHost.withTransaction(async () => {
      const row = await this.repo.lockById(id);
      if (!row) throw notFound();
      checkDelegation(admin, row);
      const outcome = await this.repo.revokeSecret(id, secretId, this.clock.now());
      if (outcome === null) throw secretNotFound();
      await this.revocation.revoke({ secrets: [secretId] });
      if (outcome === 'revoked') await this.record('client.secret_revoked', row, admin, client, { secretId });
    });
    this.changed(id);
  }

  /**
   * The client of `clientId` if `secret` is one of its live secrets and the client and its
   * service user are enabled; null otherwise, whatever the reason. The same work in every
   * case: one query, one SHA-256, and constant-time comparisons against the client's live
   * secrets or a dummy (an unknown id costs what a known one does).
   */
  async authenticate(clientId: string, secret: string): Promise<AuthenticatedClient | null> {
    return (await this.check(clientId, secret, this.clock.now()))?.client ?? null;
  }

  /**
   * authenticate() once every change of the client or its service user that is still
   * committing has committed: for a signer that saw a revocation announced (announcements
   * come before the commit) and must not sign from rows that predate it.
   */
  async authenticateAfterChanges(clientId: string, secret: string): Promise<AuthenticatedClient | null> {
    if (CLIENT_ID_PATTERN.test(clientId)) await this.repo.waitForChanges(clientId);
    return this.authenticate(clientId, secret);
  }

  /**
   * authenticate() for POST /oauth/token's client-credentials grant: authenticateCached() on a
   * single instance (no REDIS_URL), where every revocation and every change reaches the cache
   * synchronously, and a fresh read with Redis. With several instances, one that missed the
   * announcement of a revocation (its Redis connection broken meanwhile) would keep issuing
   * tokens from its entry for up to CLIENT_AUTH_CACHE_TTL_MS, and those tokens, born after the
   * revocation's not-before, would be accepted everywhere; a fresh read refuses them.
   */
  async authenticateForToken(clientId: string, secret: string): Promise<AuthenticatedClient | null> {
    return this.events.crossInstance ? this.authenticate(clientId, secret) : this.authenticateCached(clientId, secret);
  }

  /**
   * authenticate() for the calls a client makes many times a second: POST /oauth/introspect,
   * and POST /oauth/token with the client-credentials grant on a single instance
   * (authenticateForToken). A success is remembered for
   * CLIENT_AUTH_CACHE_TTL_MS (ClientAuthCache), so a repeated right secret costs a hash and a
   * map lookup instead of a query. A hit is taken only while neither the secret nor the
   * service user has been revoked since about its read (checked against the revocation
   * entries, which this instance learns of at once and the others through Redis, as for
   * every access token): that covers everything that takes something away from the client's
   * tokens (a secret revoked, the client disabled, deleted or losing a scope, its service
   * user disabled or given other roles). Every other change of the client drops it on every
   * instance after its commit. While this instance's Redis subscription is broken, nothing is
   * taken from or put in the cache (EventBus.synced). Token exchange never comes here
   * (OAuthService.issueToken).
   */
  async authenticateCached(clientId: string, secret: string): Promise<AuthenticatedClient | null> {
    // A malformed id is refused by check() with the full work; it is never a key here.
    if (!CLIENT_ID_PATTERN.test(clientId) || !this.events.synced) return this.authenticate(clientId, secret);
    const key = ClientAuthCache.keyOf(clientId, secret);
    const now = this.clock.now();
    const hit = this.authCache.get(key, now.getTime());
    if (hit) {
      if (!this.revokedAround(hit.client, hit.readAtMs)) {
        await this.recordUse(hit, now);
        return { ...hit.client, allowedScopes: [...hit.client.allowedScopes] };
      }
      this.authCache.delete(key);
    }
    const version = this.authCache.version;
    const checked = await this.check(clientId, secret, now);
    if (!checked) return null;
    if (!this.revokedAround(checked.client, checked.readAtMs)) this.authCache.set(key, checked, version);
    return { ...checked.client, allowedScopes: [...checked.client.allowedScopes] };
  }

  /** How many successful client authentications this instance remembers (tests, diagnostics). */
  get cachedAuthentications(): number {
    return this.authCache.size;
  }

  /**
   * Whether the secret or the service user of a client read at `readAtMs` was revoked from
   * REVOCATION_MARGIN_MS before that read on: a revocation is announced before its
   * transaction commits, so a read just after the announcement may still see the old rows.
   */
  private revokedAround(client: AuthenticatedClient, readAtMs: number): boolean {
    const since = readAtMs - REVOCATION_MARGIN_MS;
    return (
      this.revocation.revokedSince(`user:${client.serviceUserId}`, since) ||
      this.revocation.revokedSince(`sid:${client.secretId}`, since)
    );
  }

  /** The work of authenticate(), with what the cache needs to remember about the secret. */
  private async check(
    clientId: string,
    secret: string,
    now: Date,
  ): Promise<CachedClientAuth<AuthenticatedClient> | null> {
    // An id that cannot be one of ours is not looked up (nor can a NUL byte or the like
    // reach the database); the secret is still hashed against the dummy.
    const row = CLIENT_ID_PATTERN.test(clientId) ? await this.repo.findForAuthentication(clientId, now) : null;
    const secrets = row?.secrets ?? [];
    const index = matchesSecret(
      secret,
      secrets.map((s) => s.secretHash),
    );
    const matched = index >= 0 ? secrets[index] : undefined;
    if (!row || !matched || row.disabled || row.serviceUser.disabled) return null;
    const checked: CachedClientAuth<AuthenticatedClient> = {
      client: {
        id: row.id,
        clientId: row.clientId,
        name: row.name,
        allowedScopes: [...row.allowedScopes],
        accessTokenTtl: Math.min(row.accessTokenTtl ?? this.config.OAUTH_TOKEN_TTL, this.config.OAUTH_MAX_TOKEN_TTL),
        tokenExchange: row.tokenExchange,
        serviceUserId: row.serviceUserId,
        serviceUserRoles: [...row.serviceUser.roles],
        secretId: matched.id,
      },
      readAtMs: now.getTime(),
      secretExpiresAtMs: matched.expiresAt?.getTime() ?? null,
      lastUsedAtMs: matched.lastUsedAt?.getTime() ?? null,
    };
    await this.recordUse(checked, now);
    return checked;
  }

  /**
   * Writes the secret's `last_used_at`, to the minute: a busy client must not turn every
   * request into a write. The time is noted before the write, so concurrent requests of one
   * cached secret write once.
   */
  private async recordUse(auth: CachedClientAuth<AuthenticatedClient>, now: Date): Promise<void> {
    if (auth.lastUsedAtMs !== null && now.getTime() - auth.lastUsedAtMs < LAST_USED_PRECISION_MS) return;
    auth.lastUsedAtMs = now.getTime();
    try {
      await this.repo.touchSecret(auth.client.secretId, now);
    } catch (error) {
      // Best effort: the time of last use is informative, never a reason to refuse.
      this.logger.warn(`could not record the use of secret ${auth.client.secretId}: ${(error as Error).message}`);
    }
  }

  /**
   * Introspection of a client token, from the database: its secret is unrevoked (an expiry
   * stops new tokens; those obtained before it live to their own `exp`, as on every route),
   * belongs to the client `clientId` (public id) whose service user is
   * `serviceUserId`, and client and service user are enabled.
   */
  async isClientTokenActive(secretId: string, clientId: string, serviceUserId: string): Promise<boolean> {
    if (!UUID.test(secretId) || !UUID.test(serviceUserId)) return false;
    return this.repo.clientTokenLive(secretId, clientId, serviceUserId);
  }

  /**
   * Introspection of a user token, from the database: the username of its user when its
   * session is live and the user enabled, else null (one statement).
   */
  async activeSessionUsername(sessionId: string, userId: string): Promise<string | null> {
    if (!UUID.test(sessionId) || !UUID.test(userId)) return null;
    return this.repo.liveSessionUsername(sessionId, userId, this.clock.now());
  }

  /** Known scopes, without duplicates, sorted; 400 VALIDATION_FAILED naming the unknown ones. */
  private checkScopes(scopes: readonly string[]): string[] {
    const known = new Set(this.knownScopes);
    const unknown = [...new Set(scopes)].filter((s) => !known.has(s));
    if (unknown.length > 0) {
      throw invalid(
        `allowedScopes: unknown scope${unknown.length > 1 ? 's' : ''} ${unknown.map((s) => `"${s}"`).join(', ')}`,
      );
    }
    return [...new Set(scopes)].sort();
  }

  /** MIN_CLIENT_TOKEN_TTL..OAUTH_MAX_TOKEN_TTL whole seconds, or null (the default). */
  private checkTtl(ttl: number | null | undefined): number | null {
    if (ttl === undefined || ttl === null) return null;
    const max = this.config.OAUTH_MAX_TOKEN_TTL;
    if (!Number.isInteger(ttl) || ttl < MIN_CLIENT_TOKEN_TTL || ttl > max) {
      throw invalid(`accessTokenTtl must be an integer from ${MIN_CLIENT_TOKEN_TTL} to ${max} (OAUTH_MAX_TOKEN_TTL)`);
    }
    return ttl;
  }

  /**
   * An ISO 8601 instant, or null. With `futureOf`, it must be later than that instant (a new
   * secret that is already expired is a mistake).
   */
  private instant(value: string | null | undefined, field: string, futureOf: Date | null): Date | null {
    if (value === undefined || value === null) return null;
    const ms = Date.parse(value);
    if (!Number.isFinite(ms) || ms < 0 || ms > MAX_INSTANT_MS)
      throw invalid(`${field} must be a date from 1970 to 9999`);
    if (futureOf && ms <= futureOf.getTime()) throw invalid(`${field} must be in the future`);
    return new Date(ms);
  }

  /** An audit event about a client: its service user is the subject, the admin is `by`. Never a secret. */
  private record(
    type: Extract<AuditEventType, `client.${string}`>,
    row: ClientRecord,
    admin: ClientAdmin,
    client: ClientInfo,
    details: Record<string, string | string[] | null> = {},
  ): Promise<void> {
    return this.audit.record(type, { userId: row.serviceUserId }, client, {
      by: admin.userId,
      client: row.id,
      clientId: row.clientId,
      ...details,
    });
  }
}

/** The names of the fields an update changed (for the audit). */
function changedFields(before: ClientRecord, after: ClientRecord): string[] {
  const fields = ['name', 'description', 'allowedScopes', 'accessTokenTtl', 'tokenExchange'] as const;
  return fields.filter((f) => JSON.stringify(before[f]) !== JSON.stringify(after[f]));
}
