import { Injectable } from '@nestjs/common';
import { AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { hasAdminPowers } from '../access/step-up.js';
import type { Principal } from '../tokens/principal.js';
import { OWNER, TENANT_PERMISSIONS, permissionsOf, type TenantPermission } from './permissions.js';
import { TenantsRepository, type MembershipRecord } from './tenants.repository.js';

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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** The request header that aims a request at one tenant (contract v2 §E). */
export const TENANT_HEADER = 'x-tenant-id';
const ALL_PERMISSIONS: ReadonlySet<TenantPermission> = new Set(TENANT_PERMISSIONS);

export const tenantNotFound = (): AppError => new AppError(ErrorCode.TENANT_NOT_FOUND, 'No such tenant');
export const insufficientTenantPermission = (needed: TenantPermission): AppError =>
  new AppError(ErrorCode.INSUFFICIENT_TENANT_PERMISSION, `This needs the tenant permission ${needed}`);

/**
 * Tenant roles are never trusted from a token for Gatehouse's own routes: each request
 * looks the caller's membership up, with one statement on the membership's primary key that
 * also brings the definitions of the custom roles it lists. So a removal or a downgrade acts
 * on the very next request, on every instance. Nothing is cached between requests: an
 * invalidation message between instances can arrive after the removed member's next request
 * (measured: 2 % of immediate follow-ups), and the lookup costs less than the query it guards.
 */
@Injectable()
export class TenantAccessService {
  constructor(
    private readonly repo: TenantsRepository,
    @InjectConfig() private readonly config: AppConfig,
  ) {}

  /** The caller's membership in a tenant (roles and permissions), or null. */
  async membership(tenantId: string, userId: string): Promise<Membership | null> {
    return membershipOf(await this.repo.membership(tenantId, userId));
  }

  /** The memberships of several users in one tenant, read in one statement; non-members are absent. */
  async memberships(tenantId: string, userIds: readonly string[]): Promise<Map<string, Membership>> {
    const found = new Map<string, Membership>();
    for (const [userId, row] of await this.repo.memberships(tenantId, userIds)) found.set(userId, membershipOf(row)!);
    return found;
  }

  /**
   * Waits for a change to a tenant's memberships or roles, announced by another instance, to
   * end (its commit or rollback); fails if it has not ended after `timeoutMs`, or if the
   * database has not answered after `giveUpMs`.
   */
  awaitChange(changeId: string, timeoutMs: number, giveUpMs: number): Promise<void> {
    return this.repo.awaitChange(changeId, timeoutMs, giveUpMs);
  }

  /** Whether that change has ended, without waiting for it; fails if the database has not answered after `giveUpMs`. */
  hasChangeEnded(changeId: string, giveUpMs: number): Promise<boolean> {
    return this.repo.hasChangeEnded(changeId, giveUpMs);
  }

  /**
   * The access of `caller` to the tenant of a /tenants/:id route: a member's, or a global
   * admin's override; 404 TENANT_NOT_FOUND otherwise (existence is not revealed).
   */
  async forTenant(caller: Principal, tenantId: string): Promise<TenantAccess> {
    return this.forTenantWith(caller, tenantId, await this.repo.membership(tenantId, caller.userId));
  }

  /**
   * forTenant() with the caller's membership already read (`row`, null for none), in the
   * statement that also read what the request asked for.
   */
  async forTenantWith(caller: Principal, tenantId: string, row: MembershipRecord | null): Promise<TenantAccess> {
    const found = membershipOf(row);
    const exists = found !== null || (hasAdminPowers(caller, this.config) && (await this.repo.exists(tenantId)));
    return this.accessOf(caller, tenantId, found, exists);
  }

  /**
   * A member acts with their roles' permissions. A global admin (admin role, users:admin,
   * aal2 under ADMIN_REQUIRE_MFA) may act in any tenant as an owner would: `override` marks
   * it, for the audit trail (contract v2 §E). Anyone else gets 404.
   */
  private accessOf(caller: Principal, tenantId: string, found: Membership | null, exists: boolean): TenantAccess {
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
    return this.accessOf(caller, tenantId, await this.membership(tenantId, caller.userId), true);
  }

  /**
   * The tenant a request is aimed at (contract v2 §E): `X-Tenant-Id`, else the token's `tid`,
   * else none (personal, as v1). A malformed header is 400 TENANT_HEADER_INVALID, a header
   * that differs from `tid` 400 TENANT_MISMATCH, and a tenant the caller is not in 404.
   */
  async context(
    caller: Principal,
    header: string | string[] | undefined,
    personalAllowed = false,
  ): Promise<TenantAccess | null> {
    const tenantId = this.requested(caller, header, personalAllowed);
    return tenantId === null ? null : this.forTenant(caller, tenantId);
  }

  /**
   * The tenant of context(), not yet looked up: its id, or null for a personal request (400
   * and 403 as context()). The caller then checks it with forTenant() or forTenantWith().
   */
  requested(caller: Principal, header: string | string[] | undefined, personalAllowed = false): string | null {
    const tenantId = requestedTenant(caller, header);
    if (tenantId === null && caller.tenantsOnly && !personalAllowed) {
      // FEDERATION_DEFAULT_ACCESS=tenants-only (contract v2 §D): an external issuer's user
      // has no rights of its own, only those of its tenant memberships.
      throw new AppError(
        ErrorCode.INSUFFICIENT_TENANT_PERMISSION,
        'Name one of your tenants with X-Tenant-Id: this account acts only inside its tenants',
      );
    }
    return tenantId;
  }
}

/** A member's roles and what they allow. */
export interface Membership {
  roles: string[];
  permissions: ReadonlySet<TenantPermission>;
}

function membershipOf(row: MembershipRecord | null): Membership | null {
  return row
    ? {
        roles: row.roles,
        permissions: permissionsOf(row.roles, new Map(row.custom.map((c) => [c.name, c.permissions]))),
      }
    : null;
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
