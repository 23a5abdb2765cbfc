import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { Clock } from '../common/clock.js';
import { AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { EventBus } from '../events/event-bus.js';
import { hasAdminPowers } from '../access/step-up.js';
import type { Principal } from '../tokens/principal.js';
import { OWNER, TENANT_PERMISSIONS, permissionsOf, type TenantPermission } from './permissions.js';
import { TenantsRepository } from './tenants.repository.js';

/** What the caller may do in one tenant, as looked up for this request. */
export interface TenantAccess {
  tenantId: string;
  /** The caller's roles there ([] for a global admin who is not a member). */
  roles: string[];
  permissions: ReadonlySet<TenantPermission>;
  /** Holds `owner` (or acts as a global admin): may grant and touch owners. */
  isOwner: boolean;
  /** A global admin acting in a tenant beyond what their membership allows (audited). */
  override: boolean;
}

interface Cached {
  value: { roles: string[]; permissions: ReadonlySet<TenantPermission> } | null;
  untilMs: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** The request header that aims a request at one tenant (contract v2 §E). */
export const TENANT_HEADER = 'x-tenant-id';
/**
 * How long a looked-up membership may serve without the event that would invalidate it: a
 * safety net for a lost Redis message only; every change emits `tenants.changed`.
 */
const CACHE_TTL_MS = 30_000;
const CACHE_CAPACITY = 10_000;
const ALL_PERMISSIONS: ReadonlySet<TenantPermission> = new Set(TENANT_PERMISSIONS);

export const tenantNotFound = (): AppError => new AppError(ErrorCode.TENANT_NOT_FOUND, 'No such tenant');
export const insufficientTenantPermission = (needed: TenantPermission): AppError =>
  new AppError(ErrorCode.INSUFFICIENT_TENANT_PERMISSION, `This needs the tenant permission ${needed}`);

/**
 * Tenant roles are never trusted from a token for Gatehouse's own routes: each request
 * looks the caller's membership up (one primary-key statement), and a bounded cache keeps
 * the answer until a `tenants.changed` event, local or from another instance, forgets it.
 * So a removal or a downgrade acts on the very next request, on every instance.
 */
@Injectable()
export class TenantAccessService implements OnModuleInit {
  private readonly logger = new Logger('Tenants');
  /** tenantId → userId → membership (or null: not a member). */
  private readonly cache = new Map<string, Map<string, Cached>>();
  private size = 0;
  /**
   * Counts invalidations. A lookup whose statement ran while a change committed could read
   * the old membership and store it after the change's invalidation: it stores nothing when
   * an invalidation happened since it began.
   */
  private epoch = 0;

  constructor(
    private readonly repo: TenantsRepository,
    private readonly events: EventBus,
    private readonly clock: Clock,
    @InjectConfig() private readonly config: AppConfig,
  ) {}

  onModuleInit(): void {
    this.events.on('tenants.changed', ({ tenantId, userId }) => this.forget(tenantId, userId));
  }

  /** The caller's membership in a tenant (roles and permissions), or null. */
  async membership(
    tenantId: string,
    userId: string,
  ): Promise<{ roles: string[]; permissions: ReadonlySet<TenantPermission> } | null> {
    const now = this.clock.nowMs();
    const hit = this.cache.get(tenantId)?.get(userId);
    if (hit && hit.untilMs > now) return hit.value;
    const epoch = this.epoch;
    const row = await this.repo.membership(tenantId, userId);
    const value = row
      ? {
          roles: row.roles,
          permissions: permissionsOf(row.roles, new Map(row.custom.map((c) => [c.name, c.permissions]))),
        }
      : null;
    if (epoch === this.epoch) this.remember(tenantId, userId, { value, untilMs: now + CACHE_TTL_MS });
    return value;
  }

  /**
   * After a committed change to memberships or roles of a tenant: forgets them here and tells
   * every other instance (`userId` null: every member of the tenant).
   */
  async changed(tenantId: string, userId: string | null): Promise<void> {
    this.forget(tenantId, userId);
    try {
      await this.events.emit('tenants.changed', { tenantId, userId });
    } catch (error) {
      this.logger.warn(`could not announce a membership change: ${String(error)}`);
    }
  }

  /**
   * The access of `caller` to the tenant of a /tenants/:id route: a member's, or a global
   * admin's override; 404 TENANT_NOT_FOUND otherwise (existence is not revealed).
   */
  async forTenant(caller: Principal, tenantId: string): Promise<TenantAccess> {
    const found = await this.membership(tenantId, caller.userId);
    const exists = found !== null || (hasAdminPowers(caller, this.config) && (await this.repo.exists(tenantId)));
    return this.accessOf(caller, tenantId, found, exists);
  }

  /**
   * A member acts with their roles' permissions. A global admin (admin role, users:admin,
   * aal2 under ADMIN_REQUIRE_MFA) may act in any tenant as an owner would: `override` marks
   * it, for the audit trail (contract v2 §E). Anyone else gets 404.
   */
  private accessOf(
    caller: Principal,
    tenantId: string,
    found: { roles: string[]; permissions: ReadonlySet<TenantPermission> } | null,
    exists: boolean,
  ): TenantAccess {
    const admin = hasAdminPowers(caller, this.config);
    const roles = found?.roles ?? [];
    if (found && (roles.includes(OWNER) || !admin)) {
      return { tenantId, roles, permissions: found.permissions, isOwner: roles.includes(OWNER), override: false };
    }
    if (admin && exists) return { tenantId, roles, permissions: ALL_PERMISSIONS, isOwner: true, override: true };
    throw tenantNotFound();
  }

  /**
   * As forTenant, inside a transaction: locks the tenant's row first, then reads the caller's
   * membership from the database (never the cache), so that a change decided on it sees the
   * memberships as they are while it commits.
   */
  async lockedAccess(caller: Principal, tenantId: string): Promise<TenantAccess> {
    if (!(await this.repo.lock(tenantId))) throw tenantNotFound();
    const row = await this.repo.membership(tenantId, caller.userId);
    const found = row
      ? {
          roles: row.roles,
          permissions: permissionsOf(row.roles, new Map(row.custom.map((c) => [c.name, c.permissions]))),
        }
      : null;
    return this.accessOf(caller, tenantId, found, true);
  }

  /**
   * The tenant a request is aimed at (contract v2 §E): `X-Tenant-Id`, else the token's `tid`,
   * else none (personal, as v1). A malformed header is 400 TENANT_HEADER_INVALID, a header
   * that differs from `tid` 400 TENANT_MISMATCH, and a tenant the caller is not in 404.
   */
  async context(caller: Principal, header: string | string[] | undefined): Promise<TenantAccess | null> {
    const tenantId = requestedTenant(caller, header);
    return tenantId === null ? null : this.forTenant(caller, tenantId);
  }

  private remember(tenantId: string, userId: string, entry: Cached): void {
    if (this.size >= CACHE_CAPACITY) this.clear();
    let users = this.cache.get(tenantId);
    if (!users) this.cache.set(tenantId, (users = new Map()));
    if (!users.has(userId)) this.size += 1;
    users.set(userId, entry);
  }

  private forget(tenantId: string, userId: string | null): void {
    this.epoch += 1;
    const users = this.cache.get(tenantId);
    if (!users) return;
    if (userId === null) {
      this.size -= users.size;
      this.cache.delete(tenantId);
    } else if (users.delete(userId)) {
      this.size -= 1;
    }
  }

  private clear(): void {
    this.cache.clear();
    this.size = 0;
  }
}

/** The tenant id a request names (header or `tid`), validated; null for a personal request. */
export function requestedTenant(
  caller: Pick<Principal, 'tenantId'>,
  header: string | string[] | undefined,
): string | null {
  if (header !== undefined) {
    if (typeof header !== 'string' || !UUID.test(header)) {
      throw new AppError(ErrorCode.TENANT_HEADER_INVALID, 'X-Tenant-Id must be a tenant id (a UUID)');
    }
    const id = header.toLowerCase();
    if (caller.tenantId !== null && caller.tenantId !== id) {
      throw new AppError(ErrorCode.TENANT_MISMATCH, "X-Tenant-Id differs from the token's selected tenant (tid)");
    }
    return id;
  }
  return caller.tenantId;
}
