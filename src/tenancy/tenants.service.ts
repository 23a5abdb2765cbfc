import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { AuditService, type AuditEventType } from '../audit/audit.service.js';
import { emailKey, usernameKey } from '../accounts/users.repository.js';
import { ADMIN_POWERS_SCOPE, hasAdminPowers, stepUpRequired } from '../access/step-up.js';
import { insufficientScope } from '../access/scopes.guard.js';
import { Clock } from '../common/clock.js';
import { accountGone, AppError, userNotFound } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { uniqueViolationTarget } from '../common/errors/database-errors.js';
import type { ClientInfo } from '../common/http/client-info.js';
import { DEFAULT_PAGE_SIZE, decodeCursor, toPage } from '../common/http/pagination.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { mailLink } from '../mail/mail-links.js';
import { mailTemplates } from '../mail/mail-templates.js';
import { MailerService } from '../mail/mailer.service.js';
import {
  BUILT_IN_ROLES,
  MAX_CUSTOM_ROLES,
  OWNER,
  ROLE_NAME,
  isBuiltInRole,
  isTenantPermission,
  mayDefine,
  mayGrant,
  permissionsOf,
  type TenantPermission,
} from '../tenants/permissions.js';
import {
  TenantAccessService,
  insufficientTenantPermission,
  tenantNotFound,
  type TenantAccess,
} from '../tenants/tenant-access.service.js';
import { TenantsRepository } from '../tenants/tenants.repository.js';
import { EventBus } from '../events/event-bus.js';
import { RateLimiter } from '../throttle/rate-limiter.js';
import type { Principal } from '../tokens/principal.js';
import {
  InvitationDto,
  MemberDto,
  TenantDto,
  roleNameMessage,
  type AcceptedInvitationDto,
  type TenantRoleDto,
} from './dto/tenants.dto.js';

/** Invitation tokens: 32 CSPRNG bytes, base64url (OWASP: at least 128 bits of entropy). */
const INVITATION_TOKEN = /^[A-Za-z0-9_-]{43}$/;
const hashOf = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();
/** Accepting: submissions per user in 15 minutes (the token itself is unguessable). */
const ACCEPT_LIMIT = 20;
const ACCEPT_WINDOW_MS = 15 * 60_000;
const HOUR_MS = 3_600_000;

const notFound = (what: string): AppError => new AppError(ErrorCode.NOT_FOUND, `No such ${what}`);
const alreadyMember = (): AppError => new AppError(ErrorCode.ALREADY_MEMBER, 'This user is a member already');
const lastOwner = (): AppError =>
  new AppError(ErrorCode.LAST_OWNER, 'A tenant keeps at least one owner: make another member owner first');

/**
 * Tenants (contract v2 §E): creation, membership with per-tenant role lists, invitations,
 * custom roles. Every change to a tenant's members, invitations or roles runs in one
 * transaction that first locks the tenant's row (TenantAccessService.lockedAccess), reads
 * the caller's membership from the database, decides, writes and audits; the membership
 * caches of every instance are told after the commit.
 */
@Injectable()
export class TenantsService {
  /** The tail of each tenant's queue of changes in this process (see serially). */
  private readonly queues = new Map<string, Promise<void>>();

  constructor(
    private readonly repo: TenantsRepository,
    private readonly access: TenantAccessService,
    private readonly audit: AuditService,
    private readonly mailer: MailerService,
    private readonly limiter: RateLimiter,
    private readonly clock: Clock,
    private readonly txHost: TransactionHost<PrismaTx>,
    @InjectConfig() private readonly config: AppConfig,
    private readonly events: EventBus,
  ) {}

  async create(caller: Principal, dto: { name: string; slug: string }, client: ClientInfo): Promise<TenantDto> {
    if (caller.tenantsOnly) {
      throw new AppError(ErrorCode.TENANT_CREATION_DISABLED, 'This account acts only inside the tenants it belongs to');
    }
    if (this.config.TENANT_CREATION === 'admin' && !hasAdminPowers(caller, this.config)) {
      throw new AppError(ErrorCode.TENANT_CREATION_DISABLED, 'Only administrators may create tenants here');
    }
    try {
      const tenant = await this.txHost.withTransaction(async () => {
        await this.repo.lockCreationsOf(caller.userId);
        if (!(await this.repo.holdAccount(caller.userId))) throw accountGone();
        if ((await this.repo.countOwnedBy(caller.userId)) >= this.config.TENANT_LIMIT_PER_USER) {
          throw new AppError(
            ErrorCode.TENANT_LIMIT_REACHED,
            `You own ${this.config.TENANT_LIMIT_PER_USER} tenants already, the most allowed`,
          );
        }
        const created = await this.repo.create({
          slug: dto.slug,
          name: dto.name,
          createdBy: caller.userId,
          now: this.clock.now(),
        });
        await this.record('tenant.created', caller, client, { tenantId: created.id, slug: created.slug });
        return created;
      });
      return TenantDto.from(tenant, [OWNER]);
    } catch (error) {
      if (uniqueViolationTarget(error) !== null) {
        throw new AppError(ErrorCode.TENANT_SLUG_TAKEN, 'This slug is taken');
      }
      throw error;
    }
  }

  async list(
    caller: Principal,
    q: { limit?: number; cursor?: string; all?: 'true' | 'false' },
  ): Promise<{ items: TenantDto[]; nextCursor: string | null }> {
    const limit = q.limit ?? DEFAULT_PAGE_SIZE;
    const after = decodeCursor(q.cursor);
    if (q.all === 'true') {
      // As scope=all on /resources: the role, then the users:admin scope, then step-up.
      if (!caller.roles.includes('admin')) throw new AppError(ErrorCode.INSUFFICIENT_ROLE, 'all=true is for admins');
      if (!caller.scopes.includes(ADMIN_POWERS_SCOPE)) throw insufficientScope([ADMIN_POWERS_SCOPE]);
      if (!hasAdminPowers(caller, this.config)) throw stepUpRequired();
    }
    const rows =
      q.all === 'true'
        ? await this.repo.pageOfAll(caller.userId, limit + 1, after)
        : await this.repo.pageOfMember(caller.userId, limit + 1, after);
    return toPage(rows, limit, (t) => TenantDto.from(t, t.myRoles));
  }

  async get(caller: Principal, tenantId: string): Promise<TenantDto> {
    const access = await this.access.forTenant(caller, tenantId);
    const tenant = await this.repo.find(tenantId);
    if (!tenant) throw tenantNotFound();
    return TenantDto.from(tenant, access.roles);
  }

  async update(caller: Principal, tenantId: string, dto: { name?: string }, client: ClientInfo): Promise<TenantDto> {
    return this.changeTenant(caller, tenantId, async (access) => {
      this.require(access, 'tenant:update');
      const tenant =
        dto.name === undefined
          ? await this.repo.find(tenantId)
          : await this.repo.rename(tenantId, dto.name, this.clock.now());
      if (!tenant) throw tenantNotFound();
      await this.record('tenant.updated', caller, client, { tenantId, name: tenant.name }, access);
      return TenantDto.from(tenant, access.roles);
    });
  }

  /** Deletes the tenant with its resources, memberships, roles and invitations (cascade). */
  async remove(caller: Principal, tenantId: string, confirm: string, client: ClientInfo): Promise<void> {
    const changeId = randomUUID();
    await this.changeTenant(caller, tenantId, async (access) => {
      this.require(access, 'tenant:delete');
      const tenant = await this.repo.find(tenantId);
      if (!tenant) throw tenantNotFound();
      if (confirm !== tenant.slug) {
        throw new AppError(ErrorCode.CONFIRMATION_MISMATCH, "confirm must be the tenant's slug");
      }
      await this.repo.delete(tenantId);
      await this.record('tenant.deleted', caller, client, { tenantId, slug: tenant.slug }, access);
      await this.changing(tenantId, null, changeId);
    });
    this.events.notify('tenants.access_changed', { tenantId, userId: null, change: 'tenant_deleted', changeId });
  }

  async members(
    caller: Principal,
    tenantId: string,
    q: { limit?: number; cursor?: string },
  ): Promise<{ items: MemberDto[]; nextCursor: string | null }> {
    const access = await this.access.forTenant(caller, tenantId);
    this.require(access, 'members:read');
    const limit = q.limit ?? DEFAULT_PAGE_SIZE;
    const rows = await this.repo.pageOfMembers(tenantId, limit + 1, decodeCursor(q.cursor));
    return toPage(rows, limit, (m) => MemberDto.from(m));
  }

  /** Direct add (as Cafienne's tenant owners do): the account exists; no invitation. */
  async addMember(
    caller: Principal,
    tenantId: string,
    dto: { username: string; roles: string[] },
    client: ClientInfo,
  ): Promise<MemberDto> {
    const member = await this.changeTenant(caller, tenantId, async (access) => {
      this.require(access, 'members:write');
      const custom = await this.repo.customRoles(tenantId);
      const roles = this.checkRoles(dto.roles, custom);
      this.checkGrant(access, roles, custom);
      const userId = await this.repo.userIdByUsernameKey(usernameKey(dto.username));
      if (!userId || !(await this.repo.holdAccount(userId))) {
        throw userNotFound();
      }
      if (await this.repo.findMember(tenantId, userId)) throw alreadyMember();
      await this.checkMemberLimit(tenantId);
      const added = await this.repo.addMember({
        tenantId,
        userId,
        roles,
        addedBy: caller.userId,
        now: this.clock.now(),
      });
      if (!added) throw alreadyMember();
      await this.record('tenant.member_added', caller, client, { tenantId, memberId: userId, roles }, access);
      return this.repo.findMember(tenantId, userId);
    });
    if (!member) throw tenantNotFound();
    const view = MemberDto.from(member);
    this.events.notify('tenants.access_changed', {
      tenantId,
      userId: view.userId,
      change: 'member_added',
      member: view,
    });
    return view;
  }

  async setMemberRoles(
    caller: Principal,
    tenantId: string,
    userId: string,
    requested: string[],
    client: ClientInfo,
  ): Promise<MemberDto> {
    const changeId = randomUUID();
    const member = await this.changeTenant(caller, tenantId, async (access) => {
      this.require(access, 'members:write');
      const target = await this.repo.findMember(tenantId, userId);
      if (!target) throw new AppError(ErrorCode.USER_NOT_FOUND, 'No such member');
      const custom = await this.repo.customRoles(tenantId);
      const roles = this.checkRoles(requested, custom);
      this.checkTouch(access, target.roles, custom);
      this.checkGrant(access, roles, custom);
      if (target.roles.includes(OWNER) && !roles.includes(OWNER)) {
        if ((await this.repo.countOtherOwners(tenantId, userId)) === 0) throw lastOwner();
      }
      await this.repo.setRoles(tenantId, userId, roles);
      await this.record(
        'tenant.roles_changed',
        caller,
        client,
        { tenantId, memberId: userId, from: target.roles, to: roles },
        access,
      );
      await this.changing(tenantId, userId, changeId);
      return { ...target, roles };
    });
    this.events.notify('tenants.access_changed', { tenantId, userId, change: 'roles_changed', changeId });
    return MemberDto.from(member);
  }

  /** Removes a member; the caller removing themselves is leaving, which needs no permission. */
  async removeMember(caller: Principal, tenantId: string, userId: string, client: ClientInfo): Promise<void> {
    const changeId = randomUUID();
    await this.changeTenant(caller, tenantId, async (access) => {
      const leaving = userId === caller.userId;
      if (!leaving) this.require(access, 'members:write');
      const target = await this.repo.findMember(tenantId, userId);
      if (!target) throw new AppError(ErrorCode.USER_NOT_FOUND, 'No such member');
      if (!leaving) this.checkTouch(access, target.roles, await this.repo.customRoles(tenantId));
      if (target.roles.includes(OWNER) && (await this.repo.countOtherOwners(tenantId, userId)) === 0) {
        throw lastOwner();
      }
      await this.repo.removeMember(tenantId, userId);
      await this.record(
        'tenant.member_removed',
        caller,
        client,
        { tenantId, memberId: userId, left: leaving },
        leaving ? undefined : access,
      );
      await this.changing(tenantId, userId, changeId);
    });
    this.events.notify('tenants.access_changed', { tenantId, userId, change: 'member_removed', changeId });
  }

  async invite(
    caller: Principal,
    tenantId: string,
    dto: { email: string; roles: string[] },
    client: ClientInfo,
  ): Promise<InvitationDto> {
    const token = randomBytes(32).toString('base64url');
    const key = emailKey(dto.email);
    const { invitation, tenantName } = await this.changeTenant(caller, tenantId, async (access) => {
      this.require(access, 'invitations:write');
      const custom = await this.repo.customRoles(tenantId);
      const roles = this.checkRoles(dto.roles, custom);
      this.checkGrant(access, roles, custom);
      if (await this.repo.memberWithEmail(tenantId, key)) {
        throw new AppError(ErrorCode.ALREADY_MEMBER, 'Someone with this email address is a member already');
      }
      await this.limiter.hit(`tenant-invite:${tenantId}`, this.config.TENANT_INVITE_RATE_LIMIT, HOUR_MS);
      // Invitation mail counts against the recipient's mail budget like every other mail
      // Gatehouse sends to an address: one inviter, or several tenants, cannot flood it.
      await this.limiter.hit(`mail:to:${key}`, this.config.MAIL_RATE_LIMIT, HOUR_MS);
      const now = this.clock.now();
      const created = await this.repo.invite({
        tenantId,
        email: dto.email,
        emailKey: key,
        roles,
        tokenHash: hashOf(token),
        invitedBy: caller.userId,
        expiresAt: new Date(now.getTime() + this.config.TENANT_INVITATION_TTL * 1000),
        now,
      });
      const tenant = await this.repo.find(tenantId);
      await this.record(
        'tenant.invitation_sent',
        caller,
        client,
        { tenantId, invitationId: created.id, roles },
        access,
      );
      return { invitation: created, tenantName: tenant?.name ?? '' };
    });
    const link = mailLink(this.config, 'invitation', token);
    this.mailer.send({
      ...mailTemplates.tenantInvitation(
        tenantName,
        await this.inviterName(caller),
        link,
        Math.round(this.config.TENANT_INVITATION_TTL / 3600),
      ),
      to: { address: dto.email, name: null },
      userId: null,
      kind: 'tenant_invitation',
    });
    return InvitationDto.from(invitation);
  }

  async invitations(
    caller: Principal,
    tenantId: string,
    q: { limit?: number; cursor?: string },
  ): Promise<{ items: InvitationDto[]; nextCursor: string | null }> {
    const access = await this.access.forTenant(caller, tenantId);
    this.require(access, 'invitations:write');
    const limit = q.limit ?? DEFAULT_PAGE_SIZE;
    const rows = await this.repo.pageOfInvitations(tenantId, limit + 1, decodeCursor(q.cursor));
    return toPage(rows, limit, (i) => InvitationDto.from(i));
  }

  async revokeInvitation(caller: Principal, tenantId: string, id: string, client: ClientInfo): Promise<void> {
    await this.changeTenant(caller, tenantId, async (access) => {
      this.require(access, 'invitations:write');
      if (!(await this.repo.revokeInvitation(tenantId, id, this.clock.now()))) throw notFound('invitation');
      await this.record('tenant.invitation_revoked', caller, client, { tenantId, invitationId: id }, access);
    });
  }

  /**
   * Accepts an invitation: the caller's verified email address must be the invited one
   * (403 INVITATION_EMAIL_MISMATCH otherwise, and the invitation stays usable). The
   * invitation is consumed by one conditional UPDATE, so only one use ever wins.
   */
  async accept(caller: Principal, token: string, client: ClientInfo): Promise<AcceptedInvitationDto> {
    await this.limiter.hit(`tenant-accept:${caller.userId}`, ACCEPT_LIMIT, ACCEPT_WINDOW_MS);
    if (!INVITATION_TOKEN.test(token)) throw invitationInvalid();
    const now = this.clock.now();
    const result = await this.txHost.withTransaction(async () => {
      const invitation = await this.repo.findInvitationByHash(hashOf(token));
      if (!invitation || invitation.acceptedAt || invitation.revokedAt) throw invitationInvalid();
      if (invitation.expiresAt <= now) {
        throw new AppError(ErrorCode.INVITATION_EXPIRED, 'This invitation has expired: ask for a new one');
      }
      const account = await this.repo.account(caller.userId);
      if (!account?.emailVerifiedAt || account.emailKey !== invitation.emailKey) {
        throw new AppError(
          ErrorCode.INVITATION_EMAIL_MISMATCH,
          'This invitation is for another email address, or yours is not verified yet',
        );
      }
      if (!(await this.repo.lock(invitation.tenantId))) throw invitationInvalid();
      if (!(await this.repo.holdAccount(caller.userId))) throw accountGone();
      // The roles must still be the inviter's to give: an invitation sent by someone since
      // removed or downgraded grants nothing.
      const custom = await this.repo.customRoles(invitation.tenantId);
      if (!(await this.inviterMayStillGrant(invitation.tenantId, invitation.invitedBy, invitation.roles, custom))) {
        throw invitationInvalid();
      }
      if (await this.repo.findMember(invitation.tenantId, caller.userId)) {
        throw new AppError(ErrorCode.ALREADY_MEMBER, 'You are a member already');
      }
      await this.checkMemberLimit(invitation.tenantId);
      if (!(await this.repo.consumeInvitation(invitation.id, caller.userId, now))) throw invitationInvalid();
      // A custom role deleted meanwhile grants nothing (ROLE_IN_USE keeps it while pending).
      const roles = invitation.roles.filter((r) => isBuiltInRole(r) || custom.has(r));
      await this.repo.addMember({
        tenantId: invitation.tenantId,
        userId: caller.userId,
        roles,
        addedBy: invitation.invitedBy,
        now,
      });
      await this.record('tenant.invitation_accepted', caller, client, {
        tenantId: invitation.tenantId,
        invitationId: invitation.id,
        roles,
      });
      const tenant = await this.repo.find(invitation.tenantId);
      const member = await this.repo.findMember(invitation.tenantId, caller.userId);
      if (!tenant || !member) throw invitationInvalid();
      return { tenant, roles, member };
    });
    this.events.notify('tenants.access_changed', {
      tenantId: result.tenant.id,
      userId: caller.userId,
      change: 'member_added',
      member: MemberDto.from(result.member),
    });
    return { tenant: TenantDto.from(result.tenant, result.roles), roles: result.roles };
  }

  async roles(caller: Principal, tenantId: string): Promise<TenantRoleDto[]> {
    const access = await this.access.forTenant(caller, tenantId);
    this.require(access, 'members:read');
    const custom = await this.repo.customRoles(tenantId);
    return [
      ...Object.entries(BUILT_IN_ROLES).map(([name, permissions]) => ({
        name,
        builtIn: true,
        permissions: [...permissions],
      })),
      ...[...custom].map(([name, permissions]) => ({ name, builtIn: false, permissions })),
    ];
  }

  async putRole(
    caller: Principal,
    tenantId: string,
    name: string,
    permissions: string[],
    client: ClientInfo,
  ): Promise<TenantRoleDto> {
    checkRoleName(name);
    const wanted = permissions.filter(isTenantPermission).sort();
    const changeId = randomUUID();
    await this.changeTenant(caller, tenantId, async (access) => {
      this.require(access, 'roles:write');
      const custom = await this.repo.customRoles(tenantId);
      const previous = custom.get(name);
      // Neither the new definition nor the one it replaces may reach beyond the caller's own.
      if (!mayDefine(access, wanted) || (previous && !mayDefine(access, previous.filter(isTenantPermission)))) {
        throw new AppError(
          ErrorCode.INSUFFICIENT_TENANT_PERMISSION,
          'A role may only hold permissions you hold yourself',
        );
      }
      if (!previous && custom.size >= MAX_CUSTOM_ROLES) {
        throw new AppError(ErrorCode.TENANT_LIMIT_REACHED, `A tenant has at most ${MAX_CUSTOM_ROLES} custom roles`);
      }
      await this.repo.putRole(tenantId, name, wanted, this.clock.now());
      await this.record('tenant.role_defined', caller, client, { tenantId, role: name, permissions: wanted }, access);
      await this.changing(tenantId, null, changeId);
    });
    this.events.notify('tenants.access_changed', { tenantId, userId: null, change: 'tenant_changed', changeId });
    return { name, builtIn: false, permissions: wanted };
  }

  async deleteRole(caller: Principal, tenantId: string, name: string, client: ClientInfo): Promise<void> {
    checkRoleName(name);
    await this.changeTenant(caller, tenantId, async (access) => {
      this.require(access, 'roles:write');
      const previous = (await this.repo.customRoles(tenantId)).get(name);
      if (!previous) throw notFound('role');
      if (!mayDefine(access, previous.filter(isTenantPermission))) {
        throw new AppError(
          ErrorCode.INSUFFICIENT_TENANT_PERMISSION,
          'A role holding permissions you lack cannot be deleted by you',
        );
      }
      if (await this.repo.roleInUse(tenantId, name)) {
        throw new AppError(ErrorCode.ROLE_IN_USE, 'Members or pending invitations still hold this role');
      }
      await this.repo.deleteRole(tenantId, name);
      await this.record('tenant.role_deleted', caller, client, { tenantId, role: name }, access);
    });
  }

  /**
   * Announces, inside the change's transaction and last before its commit, a change that can
   * take access to the tenant's events away (`userId` null: anyone's). Every other instance
   * waits for the commit and reads its subscribers' permissions again: the announcement after
   * the commit is lost when Redis fails in between, and a removed member would otherwise keep
   * receiving the tenant's events on a WebSocket held elsewhere. A failure to publish (503)
   * rolls the change back. This instance needs none: its own announcement after the commit is
   * delivered in-process and cannot be lost. `changeId` names the change in both
   * announcements (an instance that re-read permissions after the first skips that after the
   * second) and in the lock the others wait on for its commit (TenantsRepository.holdChange).
   */
  private async changing(tenantId: string, userId: string | null, changeId: string): Promise<void> {
    if (this.events.crossInstance) await this.repo.holdChange(changeId);
    await this.events.emit('tenants.access_changing', { tenantId, userId, changeId });
  }

  /**
   * A change to a tenant: queued behind this process's other changes to it, then in one
   * transaction that first locks the tenant's row and reads the caller's access there.
   */
  private changeTenant<T>(
    caller: Principal,
    tenantId: string,
    change: (access: TenantAccess) => Promise<T>,
  ): Promise<T> {
    return this.serially(tenantId, () =>
      this.txHost.withTransaction(async () => change(await this.access.lockedAccess(caller, tenantId))),
    );
  }

  /**
   * Runs the changes to one tenant one after another in this process, before each opens its
   * transaction: a burst of changes to one tenant would otherwise hold every pooled
   * connection while waiting for the tenant's row lock, and other requests would time out
   * waiting for a connection. Across instances the row lock still serialises them.
   */
  private serially<T>(tenantId: string, change: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(tenantId) ?? Promise.resolve();
    const run = previous.then(change);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(tenantId, tail);
    void tail.then(() => {
      if (this.queues.get(tenantId) === tail) this.queues.delete(tenantId);
    });
    return run;
  }

  private require(access: TenantAccess, permission: TenantPermission): void {
    if (!access.permissions.has(permission)) throw insufficientTenantPermission(permission);
  }

  /** Role names must exist here (built-in, or custom in this tenant); sorted and deduplicated. */
  private checkRoles(roles: readonly string[], custom: ReadonlyMap<string, readonly string[]>): string[] {
    const unknown = roles.filter((r) => !isBuiltInRole(r) && !custom.has(r));
    if (unknown.length > 0) {
      throw new AppError(ErrorCode.VALIDATION_FAILED, [`unknown role: ${unknown.join(', ')}`]);
    }
    return [...new Set(roles)].sort();
  }

  private checkGrant(
    access: TenantAccess,
    roles: readonly string[],
    custom: ReadonlyMap<string, readonly string[]>,
  ): void {
    if (!mayGrant(access, roles, custom)) {
      throw new AppError(
        ErrorCode.INSUFFICIENT_TENANT_PERMISSION,
        roles.includes(OWNER)
          ? 'Only an owner may grant the owner role'
          : 'You may only grant roles whose permissions you hold yourself',
      );
    }
  }

  /** Owners are touched only by owners; anyone else only by a holder of every permission they have. */
  private checkTouch(
    access: TenantAccess,
    targetRoles: readonly string[],
    custom: ReadonlyMap<string, readonly string[]>,
  ): void {
    if (access.isOwner) return;
    if (targetRoles.includes(OWNER)) {
      throw new AppError(ErrorCode.INSUFFICIENT_TENANT_PERMISSION, 'Only an owner may change or remove an owner');
    }
    for (const p of permissionsOf(targetRoles, custom)) {
      if (!access.permissions.has(p)) {
        throw new AppError(
          ErrorCode.INSUFFICIENT_TENANT_PERMISSION,
          'This member holds permissions you lack: you cannot change or remove them',
        );
      }
    }
  }

  /**
   * Whether whoever sent an invitation could still send it now: a member with
   * invitations:write who may grant its roles (an owner always), or a global admin (an
   * account with the admin role, still enabled).
   */
  private async inviterMayStillGrant(
    tenantId: string,
    inviterId: string | null,
    roles: readonly string[],
    custom: ReadonlyMap<string, readonly string[]>,
  ): Promise<boolean> {
    if (!inviterId) return false;
    const membership = await this.repo.membership(tenantId, inviterId);
    if (membership) {
      const permissions = permissionsOf(membership.roles, custom);
      const grantor = { isOwner: membership.roles.includes(OWNER), permissions };
      if ((grantor.isOwner || permissions.has('invitations:write')) && mayGrant(grantor, roles, custom)) return true;
    }
    return this.repo.isEnabledAdmin(inviterId);
  }

  private async checkMemberLimit(tenantId: string): Promise<void> {
    if ((await this.repo.countMembers(tenantId)) >= this.config.TENANT_MEMBER_LIMIT) {
      throw new AppError(
        ErrorCode.TENANT_LIMIT_REACHED,
        `A tenant has at most ${this.config.TENANT_MEMBER_LIMIT} members`,
      );
    }
  }

  private async inviterName(caller: Principal): Promise<string> {
    const name = await this.repo.displayNameOf(caller.userId).catch(() => null);
    return name ?? 'Someone';
  }

  /** Audits a tenant event, and a global admin's override as well (contract v2 §E). */
  private async record(
    type: AuditEventType,
    caller: Principal,
    client: ClientInfo,
    details: Record<string, string | boolean | string[]>,
    access?: TenantAccess,
  ): Promise<void> {
    const who = { userId: caller.userId, sessionId: caller.kind === 'user' ? caller.sessionId : null };
    await this.audit.record(type, who, client, details);
    if (access?.override) await this.audit.record('tenant.admin_override', who, client, { ...details, action: type });
  }
}

const invitationInvalid = (): AppError =>
  new AppError(ErrorCode.INVITATION_INVALID, 'This invitation link is not valid (used, revoked or unknown)');

function checkRoleName(name: string): void {
  if (!ROLE_NAME.test(name) || isBuiltInRole(name)) {
    throw new AppError(ErrorCode.VALIDATION_FAILED, [roleNameMessage]);
  }
}
