import { Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { AuditService } from '../audit/audit.service.js';
import { PasswordHasher } from '../accounts/password-hasher.service.js';
import type { ClientInfo } from '../common/http/client-info.js';
import { sessionJson } from '../sessions/sessions.repository.js';
import { SessionsService } from '../sessions/sessions.service.js';
import { RevocationService } from '../tokens/revocation.service.js';
import type { Role } from '../common/account-rules.js';
import type { SessionPrincipal } from '../access/auth.decorators.js';
import type { Principal } from '../tokens/principal.js';
import { Clock } from '../common/clock.js';
import { accountGone, AppError, userNotFound } from '../common/errors/app-error.js';
import { StartupError } from '../common/errors/startup-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { DEFAULT_PAGE_SIZE, decodeCursor, toPage } from '../common/http/pagination.js';
import { InjectConfig } from '../config/config.token.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import type { AppConfig } from '../config/config.schema.js';
import { AccountMailService } from '../accounts/account-mail.service.js';
import { CredentialsService } from '../accounts/credentials.service.js';
import { AdminUserDto, MeDto, UserDto } from '../accounts/user.dto.js';
import type { AdminSessionDto } from './dto/audit.dto.js';
import { sortRoles } from '../common/account-rules.js';
import type { AdminUpdateUserDto, UpdateProfileDto } from './dto/users.dto.js';
import { UsersRepository, type UserRecord } from '../accounts/users.repository.js';
import { MfaService } from '../mfa/mfa.service.js';
import { ClientsService } from '../clients/clients.service.js';
import { TenantsRepository } from '../tenants/tenants.repository.js';
import { IdentitiesRepository } from '../identities/identities.repository.js';
import type { DeleteAccountDto } from './dto/users.dto.js';
import { toDto } from './identity-links.service.js';

/** A passwordless person deletes the account from a session opened this recently (seconds). */
const FRESH_SESSION_SECONDS = 300;
/**
 * How long an account deletion's transaction may run, instead of the usual 10 s: its tenant
 * resources are detached (their owner set to null) and its personal ones deleted in it, and an
 * account that created many hundred thousand of them takes longer than 10 s (800,000 tenant
 * resources: about 25 s on a 2-core machine). Meanwhile changes to the account's tenants wait.
 */
const ACCOUNT_DELETION_TIMEOUT_MS = 120_000;

@Injectable()
export class UsersService implements OnApplicationBootstrap {
  private readonly logger = new Logger('Users');

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly users: UsersRepository,
    private readonly passwords: PasswordHasher,
    private readonly sessions: SessionsService,
    private readonly revocation: RevocationService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly txHost: TransactionHost<PrismaTx>,
    private readonly credentials: CredentialsService,
    private readonly accountMail: AccountMailService,
    private readonly mfa: MfaService,
    private readonly clients: ClientsService,
    private readonly tenants: TenantsRepository,
    private readonly identities: IdentitiesRepository,
  ) {}

  /**
   * The first admin: ADMIN_USERNAME is created if missing and given the admin role. An
   * existing account is promoted only when ADMIN_PASSWORD is its password: otherwise anyone
   * who signed up that name first would become admin with their own password.
   */
  async onApplicationBootstrap(): Promise<void> {
    if (this.config.EMAIL_CHANGE_MODE === 'immediate' && this.config.PASSWORD_RESET_UNVERIFIED_EMAIL) {
      this.logger.warn(
        'EMAIL_CHANGE_MODE=immediate with PASSWORD_RESET_UNVERIFIED_EMAIL=true: a stolen access token can move the ' +
          'email address and then reset the password; prefer EMAIL_CHANGE_MODE=verified',
      );
    }
    const { ADMIN_USERNAME: username, ADMIN_PASSWORD: password } = this.config;
    if (!username || !password) return;
    let user = await this.users.findByUsername(username);
    if (!user) {
      try {
        user = await this.users.create({
          username,
          email: null,
          displayName: null,
          passwordHash: await this.passwords.hash(password),
          roles: ['user', 'admin'],
          now: this.clock.now(),
        });
        this.logger.log(`created admin account "${username}"`);
        return;
      } catch (error) {
        // Another instance starting at the same moment created it first.
        if (!(error instanceof AppError && error.code === ErrorCode.USERNAME_TAKEN)) throw error;
        user = await this.users.findByUsername(username);
      }
    }
    if (user && !user.roles.includes('admin')) {
      if (!(await this.passwords.verify(password, user.passwordHash))) {
        throw new StartupError(
          `ADMIN_USERNAME "${username}" names an existing account whose password is not ADMIN_PASSWORD: ` +
            "it was not made admin. Choose another ADMIN_USERNAME, or set ADMIN_PASSWORD to that account's " +
            'password if it is yours, or have an existing admin grant the role (PATCH /users/:id).',
        );
      }
      await this.users.updateAccess(user.id, { roles: ['user', 'admin'] });
      this.logger.log(`gave the admin role to "${username}"`);
    }
  }

  async me(caller: Principal): Promise<MeDto> {
    const user = await this.existing(caller);
    const identities = await this.identities.listOf(user.id);
    return Object.assign(MeDto.fromMe(user), { identities: identities.map(toDto) });
  }

  /**
   * Display name, and the email only with EMAIL_CHANGE_MODE=immediate (v1's behaviour, the
   * new address unverified and sent a verification link). By default an email change goes
   * through POST /users/me/email and confirmation links: a stolen access token must not be
   * able to move the address and then reset the password.
   */
  async updateProfile(caller: Principal, dto: UpdateProfileDto, client: ClientInfo): Promise<UserDto> {
    if (dto.email !== undefined && this.config.EMAIL_CHANGE_MODE === 'verified') {
      throw new AppError(
        ErrorCode.EMAIL_CHANGE_REQUIRES_VERIFICATION,
        'Change the email address with POST /users/me/email: the new address must confirm it',
      );
    }
    const before = dto.email !== undefined ? await this.existing(caller) : null;
    const user = await this.users.updateProfile(caller.userId, { displayName: dto.displayName, email: dto.email });
    if (!user) throw accountGone();
    if (before && before.emailKey !== user.emailKey) {
      // The previous address, if it was proved, hears of it (a stolen token moving the address
      // is then at least seen), and the new one is sent a verification link.
      if (before.email && before.emailVerifiedAt) {
        this.accountMail.noticeEmailChanged(
          { id: before.id, email: before.email, displayName: before.displayName },
          user.email ?? '(none)',
        );
      }
      if (user.email) {
        await this.accountMail.sendVerification(
          { id: user.id, email: user.email, displayName: user.displayName },
          client.ip,
        );
      }
    }
    return UserDto.from(user);
  }

  /** Changes the password and revokes every other session; the caller's stays. */
  async changePassword(
    caller: SessionPrincipal,
    currentPassword: string,
    newPassword: string,
    client: ClientInfo,
  ): Promise<void> {
    const user = await this.existing(caller);
    await this.credentials.recheck(user, currentPassword, client, 'The current password is wrong');
    const changed = await this.credentials.applyPassword({
      userId: user.id,
      expectedHash: user.passwordHash,
      hash: await this.credentials.hash(newPassword),
      keepSessionId: caller.sessionId,
      reason: 'password_changed',
      event: 'password.changed',
      client,
    });
    if (!changed) {
      // The account was deleted meanwhile (by a concurrent DELETE /users/me): 401, as after it.
      await this.existing(caller);
      // The hash changed since it was verified: a concurrent change with the same old password won.
      throw new AppError(ErrorCode.INVALID_PASSWORD, 'The current password is wrong');
    }
  }

  /**
   * Deletes the account with its sessions, memberships and personal resources (its tenant
   * resources stay, without owner), its access tokens revoked and the event audited, in one
   * transaction; never the last admin, nor the last owner of a tenant.
   */
  async deleteAccount(caller: SessionPrincipal, dto: DeleteAccountDto, client: ClientInfo): Promise<void> {
    const user = await this.existing(caller);
    if (user.passwordHash === null && user.kind === 'person') {
      await this.checkPasswordlessDeletion(caller, user, dto.confirm);
    } else {
      if (dto.password === undefined) throw new AppError(ErrorCode.VALIDATION_FAILED, ['password is required']);
      await this.credentials.recheck(user, dto.password, client, 'The password is wrong');
    }
    const outcome = await this.txHost.withTransaction({ timeout: ACCOUNT_DELETION_TIMEOUT_MS }, async () => {
      if (user.roles.includes('admin') && !user.disabled && !(await this.users.anotherAdminRemains(user.id))) {
        return 'last_admin';
      }
      // The last owner of a tenant cannot delete the account (contract v2 §E): the tenants are
      // locked first, so no other owner leaves between this check and the deletion.
      // No tenant creation of this user commits in between (it would have no owner after).
      await this.tenants.lockCreationsOf(user.id);
      await this.tenants.lockTenantsOf(user.id);
      if ((await this.tenants.soleOwnerships(user.id)).length > 0) return 'last_owner';
      // A concurrent deletion with the same token committed first: nothing more to record.
      if (!(await this.users.delete(user.id))) return 'gone';
      await this.revocation.revoke({ users: [user.id], signOut: true });
      await this.audit.record('account.deleted', { userId: user.id, sessionId: caller.sessionId }, client, {
        username: user.username,
      });
      return 'deleted';
    });
    if (outcome === 'gone') throw accountGone();
    if (outcome === 'last_admin')
      throw new AppError(ErrorCode.LAST_ADMIN, 'The last admin cannot delete their account');
    if (outcome === 'last_owner')
      throw new AppError(
        ErrorCode.LAST_OWNER,
        'You are the last owner of a tenant: make another member owner, or delete the tenant, first',
      );
  }

  async list(
    limit = DEFAULT_PAGE_SIZE,
    cursor?: string,
    search?: string,
  ): Promise<{ items: UserDto[]; nextCursor: string | null }> {
    const rows = await this.users.page(limit + 1, decodeCursor(cursor), search);
    return toPage(rows, limit, (u) => UserDto.from(u));
  }

  /** Admin: one user, with what only administrators see (whether the account is disabled). */
  async adminGet(id: string): Promise<AdminUserDto> {
    return AdminUserDto.from(await this.target(id));
  }

  /** Admin: the user's live sessions, the most recently used first. */
  async sessionsOf(id: string): Promise<AdminSessionDto[]> {
    await this.target(id);
    const sessions = await this.sessions.list(id);
    return sessions.map(sessionJson);
  }

  /**
   * Admin: ends one session of the user (audited `session.revoked`, the admin as actor). 404
   * when the user has no such session; a session already ended is found, nothing more happens.
   */
  async revokeSessionOf(admin: Principal, id: string, sessionId: string, client: ClientInfo): Promise<void> {
    await this.checkClientCaller(admin, await this.target(id), false);
    const found = await this.sessions.revokeOwned(id, sessionId, { sessionId: sessionOf(admin), client });
    if (!found) throw new AppError(ErrorCode.NOT_FOUND, 'No such session');
  }

  /** Admin: ends every session of the user, audited `logout_all` with the admin as actor. */
  async revokeSessionsOf(admin: Principal, id: string, client: ClientInfo): Promise<void> {
    await this.checkClientCaller(admin, await this.target(id), false);
    await this.txHost.withTransaction(async () => {
      const ids = await this.sessions.revokeAllOf(id, 'admin');
      await this.audit.record('logout_all', { userId: id, sessionId: sessionOf(admin) }, client, {
        sessions: ids.length,
        by: admin.userId,
      });
    });
  }

  private async target(id: string): Promise<UserRecord> {
    const user = await this.users.findById(id);
    if (!user) throw new AppError(ErrorCode.USER_NOT_FOUND, 'User not found');
    return user;
  }

  /**
   * Admin: roles and disabled, in one transaction with their consequences; never the last
   * admin. Disabling revokes every session at once. A role change revokes every access
   * token the user holds (a `user:` revocation): tokens carry roles, and a demoted admin's
   * token must not keep admin rights until it expires. The sessions stay, so the next
   * refresh gives a token with the roles now in the database. (Chosen over reading roles
   * from the database on admin routes: the check stays free on every request, and every
   * instance and every verifier of the token, not only Gatehouse's own routes, stops
   * honouring the old roles.)
   */
  async adminUpdate(caller: Principal, id: string, dto: AdminUpdateUserDto, client: ClientInfo): Promise<UserDto> {
    // "user" is always kept: roles are ["user"] or ["user","admin"].
    const roles: Role[] | undefined = dto.roles ? sortRoles(dto.roles) : undefined;
    const updated = await this.txHost.withTransaction(async () => {
      // Every change of roles or of the disabled flag is serialised on the admin lock, and
      // decided on the target as it is under that lock: a promotion racing a demotion cannot
      // leave the last admin unchecked.
      if (roles !== undefined || dto.disabled !== undefined) await this.users.lockAdminChanges();
      const target = await this.users.lockById(id);
      if (!target) return null;
      await this.checkClientCaller(caller, target, roles?.includes('admin') === true);
      const rolesChanged = roles !== undefined && roles.join() !== sortRoles(target.roles).join();
      // Only people count as admins here: a machine client's service user cannot sign in to
      // the admin console, and its client may be deleted by anyone holding clients:admin.
      const losesAdmin =
        target.kind === 'person' &&
        target.roles.includes('admin') &&
        !target.disabled &&
        ((roles && !roles.includes('admin')) || dto.disabled === true);
      if (losesAdmin && !(await this.users.anotherAdminRemains(id))) return 'last_admin';
      const user = await this.users.updateAccess(id, { roles, disabled: dto.disabled });
      if (!user) return null;
      const disabling = dto.disabled === true && !target.disabled;
      if (disabling) {
        await this.sessions.revokeAllOf(id, 'disabled');
        // A login waiting for its second step must not complete after a re-enable either.
        await this.mfa.endChallenges(id);
        await this.audit.record('account.disabled', { userId: id, sessionId: sessionOf(caller) }, client, {
          by: caller.userId,
        });
      }
      if (dto.disabled === false && target.disabled) {
        await this.audit.record('account.enabled', { userId: id }, client, { by: caller.userId });
      }
      // Every access token of the user: a role change must not leave old roles in use, and a
      // disable must end tokens that belong to no session (a machine client's, whose `sid`
      // is a client secret).
      if (rolesChanged || disabling) await this.revocation.revoke({ users: [id], signOut: disabling });
      if (rolesChanged) {
        await this.audit.record('roles.changed', { userId: id }, client, { by: caller.userId, roles });
      }
      return user;
    });
    if (updated === 'last_admin')
      throw new AppError(ErrorCode.LAST_ADMIN, 'The last admin cannot be demoted or disabled');
    if (!updated) throw userNotFound();
    return UserDto.from(updated);
  }

  /** Admin: removes a user's two-step sign-in (lost device), within a client caller's limits. */
  async adminResetMfa(caller: Principal, id: string, client: ClientInfo): Promise<void> {
    const target = await this.users.findById(id);
    if (target) await this.checkClientCaller(caller, target, false);
    await this.mfa.adminReset({ userId: caller.userId, sessionId: sessionOf(caller) }, id, client);
  }

  /**
   * A machine client with the admin role and `users:admin` administers users, but gains
   * nothing by it (as on /oauth/clients): not its own service user, not the admin role, not
   * an admin (a person or a service user), and not the service user of a client allowed more
   * than the caller's token carries. Otherwise a client could make a person it controls an
   * admin, or disable a stronger client. People who are admins are not held to this.
   */
  private async checkClientCaller(caller: Principal, target: UserRecord, grantsAdmin: boolean): Promise<void> {
    if (caller.kind !== 'client') return;
    if (target.id === caller.userId) {
      throw new AppError(ErrorCode.CANNOT_TARGET_SELF, 'A client cannot administer its own service user');
    }
    if (grantsAdmin || target.roles.includes('admin')) {
      throw new AppError(ErrorCode.INSUFFICIENT_SCOPE, 'A client cannot grant the admin role or administer an admin');
    }
    if (target.kind === 'service') await this.clients.checkDelegationOver(caller, target.id);
  }

  /**
   * A person without a password (signed in through an external issuer, contract v2 §D)
   * types the username again, from a session whose sign-in (`auth_time`) is under five
   * minutes old (a fresh exchange); otherwise 403 STEP_UP_REQUIRED.
   */
  private async checkPasswordlessDeletion(
    caller: SessionPrincipal,
    user: UserRecord,
    confirm: string | undefined,
  ): Promise<void> {
    if (confirm !== user.username) {
      throw new AppError(ErrorCode.CONFIRMATION_MISMATCH, 'Type the username as `confirm` to delete the account');
    }
    const authTime = await this.identities.sessionAuthTime(caller.sessionId, user.id);
    if (authTime === null || this.clock.nowMs() - authTime.getTime() > FRESH_SESSION_SECONDS * 1000) {
      throw new AppError(
        ErrorCode.STEP_UP_REQUIRED,
        'Sign in again through your identity provider (at most 5 minutes ago) to delete the account',
      );
    }
  }

  private async existing(caller: Principal): Promise<UserRecord> {
    const user = await this.users.findById(caller.userId);
    if (!user) throw accountGone();
    return user;
  }
}

/**
 * The caller's session, for an audit row: a person's token names one; a machine client's
 * `sid` is the id of the secret that obtained it, which is not a session.
 */
function sessionOf(caller: Principal): string | null {
  return caller.kind === 'user' ? caller.sessionId : null;
}
