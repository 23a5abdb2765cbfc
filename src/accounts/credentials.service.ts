import { Injectable } from '@nestjs/common';
import { AuditService, type AuditEventType } from '../audit/audit.service.js';
import { AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import type { ClientInfo } from '../common/http/client-info.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { SessionsService } from '../sessions/sessions.service.js';
import { LoginThrottleService, throttleAccountKey } from '../throttle/login-throttle.service.js';
import { OneTimeTokensService } from './one-time-tokens.service.js';
import { PasswordHasher } from './password-hasher.service.js';
import { UsersRepository, type UserRecord } from './users.repository.js';

export interface NewPassword {
  userId: string;
  /** The hash the caller verified: the change applies only while it is current (null: unconditionally). */
  expectedHash: string | null;
  /** The new password's hash, from hash() (bcrypt runs before any transaction). */
  hash: string;
  /** The session that stays signed in (the caller's own), or null to end every session. */
  keepSessionId: string | null;
  /** Why the other sessions end (stored on them), and the audit event recorded. */
  reason: string;
  event: AuditEventType;
  client: ClientInfo;
}

/**
 * Passwords of existing accounts, the one way every path handles them (change, reset,
 * admin actions):
 * - recheck(): a password given to confirm a sensitive action, throttled exactly like a
 *   login (one budget per account: a guess is a guess);
 * - applyPassword(): the new hash, every other session and its access tokens revoked, the
 *   outstanding reset links void, and the audit event, in one transaction, so a new password
 *   never takes effect without the revocation (a change answered with an error changed
 *   nothing).
 */
@Injectable()
export class CredentialsService {
  constructor(
    private readonly users: UsersRepository,
    private readonly passwords: PasswordHasher,
    private readonly sessions: SessionsService,
    private readonly tokens: OneTimeTokensService,
    private readonly throttle: LoginThrottleService,
    private readonly audit: AuditService,
    private readonly txHost: TransactionHost<PrismaTx>,
  ) {}

  hash(password: string): Promise<string> {
    return this.passwords.hash(password);
  }

  /**
   * 403 INVALID_PASSWORD (`wrong` as message) unless `password` is the account's. The attempt
   * takes its place in the account's throttle budget before bcrypt runs, so concurrent
   * re-checks cannot all pass (429 TOO_MANY_ATTEMPTS beyond it). An account without a
   * password gets 403 NO_LOCAL_PASSWORD first, without spending its budget: there is
   * nothing to guess.
   */
  async recheck(user: UserRecord, password: string, client: ClientInfo, wrong: string): Promise<void> {
    requireLocalPassword(user);
    const attempt = await this.throttle.admit(
      throttleAccountKey(user.id, user.usernameKey),
      client.ip ?? 'unknown',
      'Too many password attempts; retry later',
    );
    if (!(await this.passwords.verify(password, user.passwordHash)))
      throw new AppError(ErrorCode.INVALID_PASSWORD, wrong);
    await this.throttle.recordSuccess(attempt);
  }

  /**
   * Sets the new password (in the caller's transaction, or one of its own). False when the
   * hash changed since it was verified (nothing is done): of concurrent changes made with the
   * same old password exactly one wins.
   */
  async applyPassword(change: NewPassword): Promise<boolean> {
    return this.txHost.withTransaction(async () => {
      const replaced =
        change.expectedHash === null
          ? await this.users.setPasswordHash(change.userId, change.hash)
          : await this.users.replacePasswordHash(change.userId, change.expectedHash, change.hash);
      if (!replaced) return false;
      await this.sessions.revokeAllOf(change.userId, change.reason, change.keepSessionId);
      await this.tokens.revoke(change.userId, ['reset_password']);
      await this.audit.record(change.event, { userId: change.userId, sessionId: change.keepSessionId }, change.client);
      return true;
    });
  }

  /** After a password reset: failed guesses at the old password no longer slow the owner down. */
  async clearThrottle(user: UserRecord, client: ClientInfo): Promise<void> {
    await this.throttle.clearAccount(throttleAccountKey(user.id, user.usernameKey), client.ip ?? 'unknown');
  }
}

/**
 * 403 NO_LOCAL_PASSWORD for a passwordless account (contract v2 §0.4: a machine client's
 * service user, later a federated one): a route that needs the password cannot serve it.
 */
export function requireLocalPassword(user: Pick<UserRecord, 'passwordHash'>): void {
  if (user.passwordHash === null) {
    throw new AppError(ErrorCode.NO_LOCAL_PASSWORD, 'This account has no password: it cannot be confirmed with one');
  }
}
