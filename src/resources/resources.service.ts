import { Injectable } from '@nestjs/common';
import type { Principal } from '../tokens/principal.js';
import { Clock } from '../common/clock.js';
import { accountGone, AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { DEFAULT_PAGE_SIZE, decodeCursor, toPage, type Position } from '../common/http/pagination.js';
import { ResourceDto, type CreateResourceDto, type UpdateResourceDto } from './dto/resources.dto.js';
import { ResourcesRepository, type ChangeRight, type ResourceRecord, type Viewer } from './resources.repository.js';
import { ADMIN_POWERS_SCOPE, hasAdminPowers, stepUpRequired } from '../access/step-up.js';
import { insufficientScope } from '../access/scopes.guard.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { TenantAccessService, insufficientTenantPermission, tenantNotFound } from '../tenants/tenant-access.service.js';
import { AuditService } from '../audit/audit.service.js';
import { EventBus } from '../events/event-bus.js';
import { isForeignKeyViolation } from '../common/errors/database-errors.js';
import type { ClientInfo } from '../common/http/client-info.js';

/** The X-Tenant-Id header as Express gives it (a repeated header is an array). */
export type TenantHeader = string | string[] | undefined;

/**
 * Ownership and visibility (v1), in tenants (contract v2 §E):
 * - personal resources (no tenant): the owner and global admins read and change them;
 * - tenant resources: members read them with resources:read (a member without it gets 403),
 *   the owner changes them while a member with resources:write, any member with
 *   resources:manage, and global admins always;
 * - anyone, even anonymous, reads a public resource.
 * A resource the caller may not see gives 404 (its existence is not revealed); one they may
 * see but not change gives 403 NOT_OWNER. The tenant context (X-Tenant-Id or the token's
 * `tid`) decides where a resource is created and which list is read; the caller's roles in
 * it are looked up for each request.
 */
@Injectable()
export class ResourcesService {
  constructor(
    private readonly resources: ResourcesRepository,
    private readonly tenants: TenantAccessService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    @InjectConfig() private readonly config: AppConfig,
    private readonly events: EventBus,
  ) {}

  /** Real-time `resource.*` events (contract v2 §F): to the owner, or to the tenant's subscribers. */
  private announce(action: 'created' | 'updated' | 'deleted', r: ResourceRecord, view: ResourceDto | null): void {
    this.events.notify('resources.changed', {
      action,
      ownerId: r.ownerId,
      tenantId: r.tenantId,
      resource: view ?? { id: r.id },
    });
  }

  async create(
    caller: Principal,
    dto: CreateResourceDto,
    header: TenantHeader,
    client: ClientInfo,
  ): Promise<ResourceDto> {
    const context = await this.tenants.context(caller, header);
    if (context && !context.permissions.has('resources:write')) throw insufficientTenantPermission('resources:write');
    let created: ResourceRecord;
    try {
      created = await this.resources.create({
        ownerId: caller.userId,
        tenantId: context?.tenantId ?? null,
        title: dto.title,
        body: dto.body ?? '',
        visibility: dto.visibility ?? 'private',
        now: this.clock.now(),
      });
    } catch (error) {
      // The tenant (or the account) was deleted between the check and the insert.
      if (!isForeignKeyViolation(error)) throw error;
      throw context ? tenantNotFound() : accountGone();
    }
    if (context?.override) await this.audited(caller, client, 'resource.created', created);
    const view = ResourceDto.from(created);
    this.announce('created', created, view);
    return view;
  }

  async list(
    caller: Principal,
    query: { limit?: number; cursor?: string; scope?: 'all' | 'memberships' },
    header: TenantHeader,
  ) {
    const limit = query.limit ?? DEFAULT_PAGE_SIZE;
    const after = decodeCursor(query.cursor);
    if (query.scope === undefined) return this.listOne(caller, header, limit, after);
    // Checked on every list, scoped or not: a malformed, conflicting or foreign tenant is refused.
    await this.tenants.context(caller, header, query.scope === 'memberships');
    if (query.scope === 'all') {
      if (!caller.roles.includes('admin')) throw new AppError(ErrorCode.INSUFFICIENT_ROLE, 'scope=all is for admins');
      if (!caller.scopes.includes(ADMIN_POWERS_SCOPE)) throw insufficientScope([ADMIN_POWERS_SCOPE]);
      if (!hasAdminPowers(caller, this.config)) throw stepUpRequired();
      return toPage(await this.resources.page({ all: true }, limit + 1, after), limit, (r) => ResourceDto.from(r));
    }
    // scope=memberships
    const rows = await this.resources.pageAcrossMemberships(caller.userId, limit + 1, after);
    return toPage(rows, limit, (r) => ResourceDto.from(r));
  }

  /**
   * The personal list, or one tenant's (X-Tenant-Id or `tid`): the membership and the page
   * are read by one statement, then the membership is checked as context() would.
   */
  private async listOne(caller: Principal, header: TenantHeader, limit: number, after: Position | undefined) {
    const tenantId = this.tenants.requested(caller, header);
    if (tenantId === null) {
      const rows = await this.resources.page({ personal: caller.userId }, limit + 1, after);
      return toPage(rows, limit, (r) => ResourceDto.from(r));
    }
    const found = await this.resources.tenantPage(tenantId, caller.userId, limit + 1, after);
    const context = await this.tenants.forTenantWith(caller, tenantId, found.membership);
    if (!context.permissions.has('resources:read')) throw insufficientTenantPermission('resources:read');
    // A global admin acting in a tenant they are not a member of: the statement read no page.
    const rows = found.membership ? found.rows : await this.resources.page({ tenant: tenantId }, limit + 1, after);
    return toPage(rows, limit, (r) => ResourceDto.from(r));
  }

  async get(caller: Principal | undefined, id: string, header: TenantHeader): Promise<ResourceDto> {
    if (caller) await this.tenants.context(caller, header);
    const viewer = this.viewer(caller);
    // Read by primary key and decide visibility here rather than with visibleTo()'s OR and
    // membership EXISTS in SQL: the same rule, but one plain index lookup (a signed-in read
    // of a public or personal resource cost twice the database time of an anonymous one).
    // A tenant's private resource needs the membership, read as before.
    const found = await this.resources.findById(id);
    if (!found) throw notVisible();
    if (found.visibility === 'public' || viewer?.isAdmin) return ResourceDto.from(found);
    if (!caller || !viewer) throw notVisible();
    if (found.tenantId === null) {
      if (found.ownerId !== viewer.userId) throw notVisible();
      return ResourceDto.from(found);
    }
    const membership = await this.tenants.membership(found.tenantId, caller.userId);
    if (!membership) throw notVisible();
    if (!membership.permissions.has('resources:read')) throw insufficientTenantPermission('resources:read');
    return ResourceDto.from(found);
  }

  /** The resource if anyone may read it (public), else null. */
  async findPublic(id: string): Promise<ResourceDto | null> {
    const found = await this.resources.findVisibleTo(id, undefined);
    return found ? ResourceDto.from(found) : null;
  }

  async update(
    caller: Principal,
    id: string,
    dto: UpdateResourceDto,
    header: TenantHeader,
    client: ClientInfo,
  ): Promise<ResourceDto> {
    const { viewer, right, found } = await this.changeRight(caller, id, header);
    const updated = await this.resources.updateWith(id, viewer, right, {
      title: dto.title,
      body: dto.body,
      visibility: dto.visibility,
      updatedAt: this.clock.now(),
    });
    if (!updated) throw await this.whyNot(id, viewer);
    await this.auditOverride(caller, client, 'resource.updated', found);
    const view = ResourceDto.from(updated);
    this.announce('updated', updated, view);
    return view;
  }

  async delete(caller: Principal, id: string, header: TenantHeader, client: ClientInfo): Promise<void> {
    const { viewer, right, found } = await this.changeRight(caller, id, header);
    if (!(await this.resources.deleteWith(id, viewer, right))) throw await this.whyNot(id, viewer);
    await this.auditOverride(caller, client, 'resource.deleted', found);
    if (found) this.announce('deleted', found, null);
  }

  /**
   * A global admin changing a tenant's resource without a member's right to: audited as
   * tenant.admin_override (contract v2 §E). Their own changes as a member are not overrides.
   */
  private async auditOverride(
    caller: Principal,
    client: ClientInfo,
    action: string,
    found: ResourceRecord | null,
  ): Promise<void> {
    if (!found?.tenantId) return;
    const membership = await this.tenants.membership(found.tenantId, caller.userId);
    const allowed =
      membership?.permissions.has('resources:manage') ||
      (membership?.permissions.has('resources:write') && found.ownerId === caller.userId);
    if (!allowed) await this.audited(caller, client, action, found);
  }

  private async audited(caller: Principal, client: ClientInfo, action: string, r: ResourceRecord): Promise<void> {
    await this.audit.record(
      'tenant.admin_override',
      { userId: caller.userId, sessionId: caller.kind === 'user' ? caller.sessionId : null },
      client,
      { action, tenantId: r.tenantId ?? '', resourceId: r.id },
    );
  }

  /**
   * Which right the caller could change this resource with; the UPDATE or DELETE then
   * carries it in its own WHERE clause. 404 when they cannot see it, 403 NOT_OWNER when they
   * see it but may not change it.
   */
  private async changeRight(
    caller: Principal,
    id: string,
    header: TenantHeader,
  ): Promise<{ viewer: Viewer; right: ChangeRight; found: ResourceRecord | null }> {
    await this.tenants.context(caller, header);
    const viewer = this.viewer(caller)!;
    const found = await this.resources.findVisibleTo(id, viewer);
    if (viewer.isAdmin) return { viewer, right: { kind: 'admin' }, found };
    if (!found) throw notVisible();
    return { viewer, right: await this.rightOver(found, caller), found };
  }

  private async rightOver(found: ResourceRecord, caller: Principal): Promise<ChangeRight> {
    if (!found.tenantId) {
      if (found.ownerId === caller.userId) return { kind: 'personal' };
      throw notOwner();
    }
    const membership = await this.tenants.membership(found.tenantId, caller.userId);
    if (membership?.permissions.has('resources:manage')) return { kind: 'tenant', reach: 'any' };
    if (membership?.permissions.has('resources:write') && found.ownerId === caller.userId) {
      return { kind: 'tenant', reach: 'own' };
    }
    throw notOwner();
  }

  /** After a change that matched nothing: gone or no longer visible (404), or visible (403). */
  private async whyNot(id: string, viewer: Viewer): Promise<AppError> {
    return (await this.resources.findVisibleTo(id, viewer)) ? notOwner() : notVisible();
  }

  /** An admin sees and changes every resource, with ADMIN_REQUIRE_MFA only from an aal2 session. */
  private viewer(caller: Principal | undefined): Viewer | undefined {
    return caller ? { userId: caller.userId, isAdmin: hasAdminPowers(caller, this.config) } : undefined;
  }
}

const notVisible = (): AppError => new AppError(ErrorCode.RESOURCE_NOT_FOUND, 'No such resource');
const notOwner = (): AppError =>
  new AppError(
    ErrorCode.NOT_OWNER,
    'Only the owner, a tenant member allowed to manage it, or an admin may change this resource',
  );
