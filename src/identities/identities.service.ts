import { randomBytes } from 'node:crypto';
import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import {
  NOT_RESERVED_USERNAME,
  USERNAME_MAX,
  USERNAME_MIN,
  isRole,
  sortRoles,
  type Role,
} from '../common/account-rules.js';
import { Clock } from '../common/clock.js';
import { AppError } from '../common/errors/app-error.js';
import { emailProblem } from '../common/http/visible-text.validator.js';
import { uniqueViolationTarget } from '../common/errors/database-errors.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import type { ClientInfo } from '../common/http/client-info.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import type { FederationIssuer } from '../config/federation-issuers.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { EventBus, type GatehouseEvents } from '../events/event-bus.js';
import { AuditService } from '../audit/audit.service.js';
import type { Principal } from '../tokens/principal.js';
import { userTokenScopes } from '../tokens/scopes.js';
import { RevocationService } from '../tokens/revocation.service.js';
import { TokenRejected, TokenVerifier, type ExternalBearerTokens } from '../tokens/token-verifier.js';
import { ExternalTokens, type ExternalToken } from './external-tokens.js';
import { IdentitiesRepository, type LinkedUser } from './identities.repository.js';
import { LinkCache } from './link-cache.js';

const DISPLAY_NAME_MAX = 64;
const EMAIL_MAX = 254;
/**
 * How long nothing is cached once the Redis subscription works again: a link or an unlink
 * announced (before its commit) while it was broken may commit up to a transaction's timeout
 * later (10 s, PrismaService), and its announcement after the commit may have been lost too.
 */
const RESYNC_PAUSE_MS = 15_000;

/**
 * Who an external token speaks for (contract v2 §D): identity = (issuer, sub), stored
 * verbatim; a first-seen identity becomes a passwordless person (`jit`) or is refused
 * (`linked-only`). Never linked by email: a verified address that a local account holds
 * makes a separate account without an email (pre-account-takeover, as Keycloak refuses).
 * Plugged into the TokenVerifier for bearer tokens; also used by the exchange and linking.
 */
@Injectable()
export class IdentitiesService implements OnModuleInit, ExternalBearerTokens {
  private readonly logger = new Logger('Federation');
  private readonly cache: LinkCache;

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly external: ExternalTokens,
    private readonly repo: IdentitiesRepository,
    private readonly verifier: TokenVerifier,
    private readonly events: EventBus,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly txHost: TransactionHost<PrismaTx>,
    private readonly revocation: RevocationService,
  ) {
    this.cache = new LinkCache(config.FEDERATION_LINK_CACHE_TTL * 1000);
  }

  onModuleInit(): void {
    if (!this.external.configured) return;
    this.verifier.useExternal(this);
    // A disable, a role change or a deletion revokes the user's tokens (`user:<id>`), here
    // and on every instance: the cached link is dropped with it, so it acts at once.
    this.events.on('tokens.revoked', ({ entries }) => {
      for (const { key } of entries) if (key.startsWith('user:')) this.cache.forgetUser(key.slice(5));
    });
    // Before the commit (changing: a read from then on waits for the change, findLink's locks,
    // and sees it) and after it (changed).
    const forget = ({ userId, issuer, subject }: GatehouseEvents['identities.changed']) => {
      this.cache.forgetUser(userId);
      this.cache.forget(issuer, subject);
    };
    this.events.on('identities.changing', forget);
    this.events.on('identities.changed', forget);
    // Links changed while the Redis subscription was broken were announced in vain: nothing
    // cached before the break is trusted again, and nothing is cached until it works again
    // and for RESYNC_PAUSE_MS more.
    this.events.onSync((synced) => {
      this.cache.clear();
      if (synced) this.cache.pause(this.clock.nowMs() + RESYNC_PAUSE_MS);
    });
    const names = this.config.federationIssuers.map((i) => `${i.name} (${i.issuer})`).join(', ');
    this.logger.log(`trusting tokens of ${names}`);
  }

  acceptsBearer(iss: string): boolean {
    return this.external.issuer(iss)?.acceptBearer === true;
  }

  claimedIssuer(token: string): string | null | undefined {
    return this.external.claimedIssuer(token);
  }

  /** A bearer token of a configured issuer, as a `federated` principal (guarded routes). */
  async principal(token: string): Promise<Principal> {
    const verified = await this.external.verify(token);
    const user = await this.userFor(verified, null);
    if (user.disabled) throw new TokenRejected('account disabled');
    return this.principalOf(verified, user);
  }

  /** Verifies an external token for the exchange or for linking: FEDERATED_TOKEN_INVALID when bad. */
  async verifySubjectToken(token: string): Promise<ExternalToken> {
    try {
      return await this.external.verify(token);
    } catch (error) {
      if (error instanceof TokenRejected) {
        throw new AppError(ErrorCode.FEDERATED_TOKEN_INVALID, `The external token is not valid: ${error.message}`);
      }
      throw error;
    }
  }

  /**
   * verifySubjectToken(), and the token must carry an `iat` at most FEDERATION_EXCHANGE_MAX_AGE
   * old: what opens a session or links an account is a sign-in just made, not a token kept.
   */
  async verifyFreshSubjectToken(token: string): Promise<ExternalToken> {
    const verified = await this.verifySubjectToken(token);
    const maxAge = this.config.FEDERATION_EXCHANGE_MAX_AGE;
    const nowSeconds = Math.floor(this.clock.nowMs() / 1000);
    if (typeof verified.claims.iat !== 'number' || verified.claims.iat < nowSeconds - maxAge) {
      throw new AppError(
        ErrorCode.FEDERATED_TOKEN_INVALID,
        `The external token must have been issued in the last ${maxAge} seconds: sign in there again`,
      );
    }
    return verified;
  }

  /**
   * The Gatehouse user of a verified external token: the linked one (cached), or a new
   * passwordless person under `jit`; 403 FEDERATED_USER_NOT_PROVISIONED under `linked-only`.
   */
  async userFor(token: ExternalToken, client: ClientInfo | null): Promise<LinkedUser> {
    const { issuer } = token;
    const subject = token.claims.sub;
    const cached = this.events.synced ? this.cache.get(issuer.issuer, subject, this.clock.nowMs()) : undefined;
    if (cached) return cached;
    // A miss is never cached: the identity may be linked a moment later.
    const version = this.cache.version;
    const readAtMs = this.clock.nowMs();
    const found = await this.repo.findLink(issuer.issuer, subject);
    if (found) {
      // Not cached when the user was revoked (disabled, roles changed) about when it was read:
      // the answer may predate that change, and only the next read is sure to see it.
      if (!found.disabled && this.events.synced && !this.revocation.userRevokedSince(found.userId, readAtMs)) {
        this.cache.set(issuer.issuer, subject, found, this.clock.nowMs(), version);
      }
      await this.repo.touch(found.identityId, this.clock.now()).catch(() => undefined);
      return found;
    }
    if (issuer.provisioning === 'linked-only') {
      throw new AppError(
        ErrorCode.FEDERATED_USER_NOT_PROVISIONED,
        'This external account is not linked to a Gatehouse account; an administrator must link it first',
      );
    }
    return this.provision(token, client);
  }

  /** The principal of a verified external token for its (enabled) user. */
  principalOf(token: ExternalToken, user: LinkedUser): Principal {
    const roles = sortRoles([...user.roles, ...mappedRoles(token.issuer, token.claims)]);
    return {
      kind: 'federated',
      userId: user.userId,
      sessionId: null,
      clientId: null,
      roles,
      scopes: userTokenScopes(this.config),
      amr: ['fed'],
      acr: 'aal1',
      tenantId: null,
      iat: token.iat,
      exp: token.claims.exp,
      jti: token.replayId,
      ...(this.config.FEDERATION_DEFAULT_ACCESS === 'tenants-only' ? { tenantsOnly: true } : {}),
    };
  }

  /**
   * Inside the transaction that links or unlinks, once its row is written and before it
   * commits: every instance forgets the identity's link, and their reads from then on wait
   * for the commit (findLink). The announcement after the commit alone can reach another
   * instance after the user's next request there, answered from its cache. A failure to
   * publish fails the change: it rolls back rather than commit unannounced.
   */
  async changing(userId: string, issuer: string, subject: string): Promise<void> {
    await this.events.emit('identities.changing', { userId, issuer, subject });
  }

  /**
   * After the commit: every instance forgets again what it may have cached meanwhile, and
   * real-time connections of the user opened with an external token verify again. Never
   * throws (the change is made): a failure is logged.
   */
  announce(userId: string, issuer: string, subject: string): void {
    // The bus delivers here at once too (onModuleInit's handler forgets the entries).
    this.events.notify('identities.changed', { userId, issuer, subject });
  }

  /**
   * Creates the passwordless person and its identity in one transaction. Username from the
   * claim, cleaned to the signup rules, "-xxxx" added on a collision (never used for
   * authorisation); the email kept, as verified, only with `email_verified: true` and while
   * no account holds it.
   */
  private async provision(token: ExternalToken, client: ClientInfo | null): Promise<LinkedUser> {
    const { issuer, claims } = token;
    const base = cleanUsername(stringClaim(claims, issuer.claims.username));
    const verified = claim(claims, issuer.claims.emailVerified) === true;
    const offeredEmail = verified ? cleanEmail(stringClaim(claims, issuer.claims.email)) : null;
    const displayName = cleanDisplayName(stringClaim(claims, issuer.claims.displayName));
    let email = offeredEmail !== null && !(await this.repo.emailTaken(offeredEmail)) ? offeredEmail : null;
    let username = base ?? fallbackUsername();
    for (let attempt = 0; attempt < 6; attempt++) {
      if (attempt > 0 || (await this.repo.usernameTaken(username))) username = withSuffix(base, attempt);
      try {
        const created = await this.txHost.withTransaction(async () => {
          const now = this.clock.now();
          const user = await this.repo.createPerson({ username, email, displayName, now });
          const identity = await this.repo.link({
            userId: user.id,
            issuer: issuer.issuer,
            issuerName: issuer.name,
            subject: claims.sub,
            emailAtLink: offeredEmail,
            now,
          });
          await this.audit.record('federation.user_provisioned', { userId: user.id }, client ?? {}, {
            issuer: issuer.name,
            identityId: identity.id,
          });
          return {
            identityId: identity.id,
            userId: user.id,
            roles: ['user'] as Role[],
            disabled: false,
            kind: 'person' as const,
          };
        });
        this.logger.log(`provisioned a user for a first-seen identity of ${issuer.name}`);
        return created;
      } catch (error) {
        const target = uniqueViolationTarget(error);
        if (target === null) throw error;
        if (target.some((t) => t.includes('subject') || t.includes('issuer'))) {
          // Provisioned concurrently by another request: that one's user.
          const found = await this.repo.findLink(issuer.issuer, claims.sub);
          if (found) return found;
        } else if (target.some((t) => t.includes('email'))) {
          email = null;
        }
      }
    }
    throw new AppError(ErrorCode.SERVICE_UNAVAILABLE, 'Could not create the account; retry');
  }
}

/** The value at a dot path of the claims (own properties only), or undefined. */
export function claim(claims: Record<string, unknown>, path: string): unknown {
  let value: unknown = claims;
  for (const part of path.split('.')) {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || !Object.hasOwn(value, part)) {
      return undefined;
    }
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

function stringClaim(claims: Record<string, unknown>, path: string): string | null {
  const value = claim(claims, path);
  return typeof value === 'string' ? value : null;
}

/** Roles from the issuer's roleMap for the values of its roles claim (a string or a list). */
function mappedRoles(issuer: FederationIssuer, claims: Record<string, unknown>): Role[] {
  if (!issuer.roleMap) return [];
  const value = claim(claims, issuer.claims.roles);
  const values = Array.isArray(value) ? value : [value];
  const roles: Role[] = [];
  for (const v of values) {
    if (typeof v !== 'string' || !Object.hasOwn(issuer.roleMap, v)) continue;
    const role = issuer.roleMap[v];
    if (isRole(role)) roles.push(role);
  }
  return roles;
}

/** The claim cleaned to the signup rules (letters, digits, "_", "." and "-"; 3–32), or null. */
export function cleanUsername(raw: string | null): string | null {
  if (raw === null) return null;
  const cleaned = raw
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9_.-]+/g, '')
    .replace(/^[.-]+/, '')
    .slice(0, USERNAME_MAX - 5);
  if (cleaned.length < USERNAME_MIN || !NOT_RESERVED_USERNAME.test(cleaned)) return null;
  return cleaned;
}

function withSuffix(base: string | null, attempt: number): string {
  if (base === null || attempt >= 4) return fallbackUsername();
  return `${base}-${randomBytes(2).toString('hex')}`;
}

function fallbackUsername(): string {
  return `user.${randomBytes(6).toString('hex')}`;
}

/**
 * The address if signup would take it: one "@", a dotted domain, and none of the invisible,
 * lookalike or mixed-script characters signup refuses (an address that looks like another
 * account's must not arrive marked verified through a provider).
 */
export function cleanEmail(raw: string | null): string | null {
  if (raw === null) return null;
  const email = raw.trim();
  if (email.length > EMAIL_MAX || !/^[^\s@\p{Cc}]+@[^\s@\p{Cc}]+\.[^\s@\p{Cc}]+$/u.test(email)) return null;
  if (emailProblem(email) !== undefined) return null;
  return email;
}

function cleanDisplayName(raw: string | null): string | null {
  if (raw === null) return null;
  // oxlint-disable-next-line no-control-regex
  const name = raw
    .replace(/[\p{Cc}\p{Cf}]+/gu, ' ')
    .trim()
    .replace(/\s+/g, ' ');
  if (name === '') return null;
  return Array.from(name).slice(0, DISPLAY_NAME_MAX).join('');
}
