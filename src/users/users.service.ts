import { Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { AuditService } from '../auth/audit/audit.service.js';
import { PasswordHasher } from '../auth/passwords/password-hasher.service.js';
import type { ClientInfo } from '../auth/sessions/sessions.service.js';
import { SessionsService } from '../auth/sessions/sessions.service.js';
import { RevocationService } from '../auth/revocation/revocation.service.js';
import { LoginThrottleService, throttleAccountKey } from '../auth/throttle/login-throttle.service.js';
import type { AuthUser, Role } from '../auth/tokens/access-token.service.js';
import { Clock } from '../common/clock.js';
import { AppException, forbidden, notFound, unauthorized } from '../common/errors/app.exception.js';
import { StartupError } from '../common/errors/startup-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { DEFAULT_PAGE_SIZE, decodeCursor, toPage } from '../common/http/pagination.js';
import { InjectConfig } from '../config/config.token.js';
import { PrismaService } from '../database/prisma.service.js';
import type { AppConfig } from '../config/config.schema.js';
import { UserDto, sortRoles } from './dto/user.dto.js';
import type { AdminUpdateUserDto, UpdateProfileDto } from './dto/users.dto.js';
import { UsersRepository, type UserRecord } from './users.repository.js';

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
    private readonly prisma: PrismaService,
    private readonly throttle: LoginThrottleService,
  ) {}

  /**
   * The first admin: ADMIN_USERNAME is created if missing and given the admin role. An
   * existing account is promoted only when ADMIN_PASSWORD is its password: otherwise anyone
   * who signed up that name first would become admin with their own password.
   */
  async onApplicationBootstrap(): Promise<void> {
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
        if (!(error instanceof AppException && error.code === ErrorCode.USERNAME_TAKEN)) throw error;
        user = await this.users.findByUsername(username);
      }
    }
    if (user && !user.roles.includes('admin')) {
      if (!(await this.passwords.verify(password, user.passwordHash))) {
        throw new StartupError(
          `ADMIN_USERNAME "${username}" names an existing account whose password is not ADMIN_PASSWORD: ` +
            'it was not made admin. Choose another ADMIN_USERNAME, or set ADMIN_PASSWORD to that account\'s ' +
            'password if it is yours, or have an existing admin grant the role (PATCH /users/:id).',
        );
      }
      await this.users.update(user.id, { roles: ['user', 'admin'] });
      this.logger.log(`gave the admin role to "${username}"`);
    }
  }

  async me(caller: AuthUser): Promise<UserDto> {
    return UserDto.from(await this.existing(caller));
  }

  async updateProfile(caller: AuthUser, dto: UpdateProfileDto): Promise<UserDto> {
    const user = await this.users.updateProfile(caller.userId, { displayName: dto.displayName, email: dto.email });
    if (!user) throw unauthorized(ErrorCode.UNAUTHORIZED, 'The account no longer exists');
    return UserDto.from(user);
  }

  /** Changes the password and revokes every other session; the caller's stays. */
  async changePassword(caller: AuthUser, currentPassword: string, newPassword: string, client: ClientInfo): Promise<void> {
    const user = await this.existing(caller);
    await this.recheckPassword(user, currentPassword, client, 'The current password is wrong');
    const next = await this.passwords.hash(newPassword);
    // One transaction: the new password never takes effect without the other sessions being
    // revoked (a change answered with an error, the database lost half-way, changed nothing).
    await this.prisma.$transaction(async (tx) => {
      // Conditional on the hash we verified against: of concurrent changes exactly one wins;
      // the others were made with a password that is no longer current.
      if (!(await this.users.replacePasswordHash(user.id, user.passwordHash, next, tx))) {
        throw forbidden(ErrorCode.INVALID_PASSWORD, 'The current password is wrong');
      }
      await this.sessions.revokeAllOf(user.id, 'password_changed', caller.sessionId, tx);
      await this.audit.record('password.changed', { userId: user.id, sessionId: caller.sessionId }, client, undefined, tx);
    });
  }

  /**
   * Deletes the account with its sessions and resources (cascading), its access tokens
   * revoked and the event audited, in one transaction; never the last admin.
   */
  async deleteAccount(caller: AuthUser, password: string, client: ClientInfo): Promise<void> {
    const user = await this.existing(caller);
    await this.recheckPassword(user, password, client, 'The password is wrong');
    const outcome = await this.prisma.$transaction(async (tx) => {
      if (user.roles.includes('admin') && !user.disabled && !(await this.users.anotherAdminRemains(user.id, tx))) {
        return 'last_admin';
      }
      await this.users.delete(user.id, tx);
      await this.revocation.revoke({ users: [user.id] }, tx);
      await this.audit.record('account.deleted', { userId: user.id, sessionId: caller.sessionId }, client, { username: user.username }, tx);
      return 'deleted';
    });
    if (outcome === 'last_admin') throw forbidden(ErrorCode.LAST_ADMIN, 'The last admin cannot delete their account');
  }

  async list(limit = DEFAULT_PAGE_SIZE, cursor?: string): Promise<{ items: UserDto[]; nextCursor: string | null }> {
    const rows = await this.users.page(limit + 1, decodeCursor(cursor));
    return toPage(rows, limit, (u) => UserDto.from(u));
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
  async adminUpdate(caller: AuthUser, id: string, dto: AdminUpdateUserDto, client: ClientInfo): Promise<UserDto> {
    const target = await this.users.findById(id);
    if (!target) throw notFound(ErrorCode.USER_NOT_FOUND, 'No such user');
    // "user" is always kept: roles are ["user"] or ["user","admin"].
    const roles: Role[] | undefined = dto.roles ? sortRoles(dto.roles) : undefined;
    const rolesChanged = roles !== undefined && roles.join() !== sortRoles(target.roles).join();
    const losesAdmin = target.roles.includes('admin') && ((roles && !roles.includes('admin')) || dto.disabled === true);
    const updated = await this.prisma.$transaction(async (tx) => {
      if (losesAdmin && !(await this.users.anotherAdminRemains(id, tx))) return 'last_admin';
      const user = await this.users.update(id, { roles, disabled: dto.disabled }, tx);
      if (!user) return null;
      if (dto.disabled === true && !target.disabled) {
        await this.sessions.revokeAllOf(id, 'disabled', undefined, tx);
        await this.audit.record('account.disabled', { userId: id, sessionId: caller.sessionId }, client, { by: caller.userId }, tx);
      }
      if (dto.disabled === false && target.disabled) {
        await this.audit.record('account.enabled', { userId: id }, client, { by: caller.userId }, tx);
      }
      if (rolesChanged) {
        await this.revocation.revoke({ users: [id] }, tx);
        await this.audit.record('roles.changed', { userId: id }, client, { by: caller.userId, roles }, tx);
      }
      return user;
    });
    if (updated === 'last_admin') throw forbidden(ErrorCode.LAST_ADMIN, 'The last admin cannot be demoted or disabled');
    if (!updated) throw notFound(ErrorCode.USER_NOT_FOUND, 'No such user');
    return UserDto.from(updated);
  }

  private async existing(caller: AuthUser): Promise<UserRecord> {
    const user = await this.users.findById(caller.userId);
    if (!user) throw unauthorized(ErrorCode.UNAUTHORIZED, 'The account no longer exists');
    return user;
  }

  /**
   * The caller's password, checked again before a sensitive change, under the login
   * throttle and its budget for this account (a guess is a guess, whichever endpoint takes
   * it: a stolen access token must not allow guessing at full speed). 429 TOO_MANY_ATTEMPTS
   * while it must wait, 403 INVALID_PASSWORD when wrong; the right one clears it like a login.
   */
  private async recheckPassword(user: UserRecord, password: string, client: ClientInfo, wrong: string): Promise<void> {
    const key = throttleAccountKey(user.id, user.usernameKey);
    const ip = client.ip ?? 'unknown';
    await this.throttle.check(key, ip, 'Too many password attempts; retry later');
    if (!(await this.passwords.verify(password, user.passwordHash))) {
      await this.throttle.recordFailure(key, ip);
      throw forbidden(ErrorCode.INVALID_PASSWORD, wrong);
    }
    await this.throttle.recordSuccess(key, ip);
  }
}
