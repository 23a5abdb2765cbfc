import { Injectable } from '@nestjs/common';
import { isEmail } from 'class-validator';
import type { SessionPrincipal } from '../access/auth.decorators.js';
import { AccountMailService } from '../accounts/account-mail.service.js';
import { CredentialsService } from '../accounts/credentials.service.js';
import { OneTimeTokensService, type ConsumeFailure, type Consumed } from '../accounts/one-time-tokens.service.js';
import { emailKey, usernameKey, UsersRepository, type UserRecord } from '../accounts/users.repository.js';
import { AuditService } from '../audit/audit.service.js';
import { Clock } from '../common/clock.js';
import { accountGone, AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import type { ClientInfo } from '../common/http/client-info.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { mailLink } from '../mail/mail-links.js';
import { mailTemplates } from '../mail/mail-templates.js';
import { MailerService } from '../mail/mailer.service.js';
import { RateLimiter } from '../throttle/rate-limiter.js';

const HOUR_MS = 3_600_000;
/** Token submissions (verify, reset) per client address per 15 minutes. */
const SUBMISSIONS_PER_15_MIN = 30;

export const ACCEPTED_MESSAGE = 'If the account exists and has an email address, a reset link has been sent.';
export const VERIFY_ACCEPTED_MESSAGE =
  'If the address belongs to an account waiting for verification, a link has been sent.';

export type VerifyStatus = 'verified' | 'email_changed' | 'awaiting_other_confirmation';

/**
 * Account recovery and verification (contract v2 §A): verification of the email address,
 * "forgot password" and reset, and a change of email address confirmed by the new address
 * (and by the current one when it is verified).
 *
 * No enumeration: the public requests (forgot, anonymous verify-request) count the
 * identifier and the address against their limits whether or not an account exists, do the
 * same lookup, then only queue (or skip) a mail job: issuing the token and rendering the
 * mail happen in the mail queue, off the request path, so answers are identical in status,
 * bytes, headers and work.
 */
@Injectable()
export class RecoveryService {
  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly users: UsersRepository,
    private readonly tokens: OneTimeTokensService,
    private readonly credentials: CredentialsService,
    private readonly accountMail: AccountMailService,
    private readonly mailer: MailerService,
    private readonly limiter: RateLimiter,
    private readonly audit: AuditService,
    private readonly txHost: TransactionHost<PrismaTx>,
    private readonly clock: Clock,
  ) {}

  /** POST /auth/email/verify-request from a signed-in user: a link for their own address. */
  async requestOwnVerification(caller: { userId: string }, client: ClientInfo): Promise<void> {
    const user = await this.users.findById(caller.userId);
    if (!user) throw accountGone();
    if (!user.email) throw new AppError(ErrorCode.NO_EMAIL, 'The account has no email address');
    if (user.emailVerifiedAt)
      throw new AppError(ErrorCode.EMAIL_ALREADY_VERIFIED, 'The email address is already verified');
    await this.limiter.hit(`mail:id:user:${user.id}`, this.config.MAIL_RATE_LIMIT, HOUR_MS);
    await this.accountMail.sendVerification(
      { id: user.id, email: user.email, displayName: user.displayName },
      client.ip,
    );
  }

  /** POST /auth/email/verify-request, anonymous: the same answer for any address. */
  async requestVerification(email: string, client: ClientInfo): Promise<void> {
    await this.limitMailRequest(emailKey(email), client);
    const user = await this.users.findByLogin(email.includes('@') ? email : `${email}@`);
    if (user?.email && !user.emailVerifiedAt && !user.disabled) {
      const account = { id: user.id, email: user.email, displayName: user.displayName };
      this.mailer.send(async () => {
        await this.accountMail.sendVerification(account, client.ip);
        return null; // sendVerification queued the mail itself
      });
    }
  }

  /** POST /auth/password/forgot: the same answer whether or not the account exists. */
  async forgotPassword(login: string, client: ClientInfo): Promise<void> {
    const canonical = login.includes('@') ? emailKey(login) : usernameKey(login);
    await this.limitMailRequest(canonical, client);
    // A machine client's service user never has a password (contract v2 §0.4): unknown here.
    const found = await this.users.findByLogin(login);
    const user = found?.kind === 'service' ? null : found;
    if (user && this.mayReceiveReset(user)) {
      const account = { id: user.id, email: user.email!, displayName: user.displayName };
      this.mailer.send(() => this.resetMail(account, client));
    } else if (!user && this.config.MAIL_NOTIFY_UNKNOWN && isEmail(login)) {
      // Only a single, valid address (never a list or a display name): no relay for spam.
      this.mailer.send({ ...mailTemplates.noAccount(), to: { address: login }, userId: null, kind: 'no_account' });
    }
  }

  /**
   * POST /auth/password/reset: nothing changes before a valid token; then, in one
   * transaction, the new password, every session and access token revoked, the other reset
   * tokens void, the address verified when it is the token's. No session is opened.
   */
  async resetPassword(token: string, newPassword: string, client: ClientInfo): Promise<void> {
    await this.limitSubmission(client);
    if (!this.tokens.isWellFormed(token))
      throw new AppError(ErrorCode.RESET_TOKEN_INVALID, 'This reset link is invalid or was already used');
    const hash = await this.credentials.hash(newPassword); // bcrypt before the transaction
    const outcome = await this.txHost.withTransaction(async (): Promise<UserRecord | ConsumeFailure> => {
      // The account's row first, then the token's: the order every change of an account
      // takes (a password change locks the user, then voids tokens), so no deadlock.
      const owner = await this.tokens.ownerOf(token);
      if (owner) await this.users.lockById(owner);
      const consumed = await this.tokens.consume(token, ['reset_password']);
      if (typeof consumed === 'string') return consumed;
      const user = await this.users.findById(consumed.userId);
      // The link went to an address the account no longer has: it proves nothing now.
      if (!user || !consumed.targetEmail || user.emailKey !== emailKey(consumed.targetEmail)) return 'invalid';
      // A service user is never given a password (contract v2 §0.4), whatever link exists.
      if (user.kind === 'service') return 'invalid';
      // Thrown: the transaction rolls back and the token stays valid.
      if (user.disabled) throw new AppError(ErrorCode.ACCOUNT_DISABLED, 'This account is disabled');
      await this.credentials.applyPassword({
        userId: user.id,
        expectedHash: null,
        hash,
        keepSessionId: null,
        reason: 'password_reset',
        event: 'password.reset',
        client,
      });
      if (!user.emailVerifiedAt) await this.users.markEmailVerified(user.id, consumed.targetEmail, this.clock.now());
      return user;
    });
    if (outcome === 'invalid')
      throw new AppError(ErrorCode.RESET_TOKEN_INVALID, 'This reset link is invalid or was already used');
    if (outcome === 'expired')
      throw new AppError(ErrorCode.RESET_TOKEN_EXPIRED, 'This reset link has expired; ask for a new one');
    await this.credentials.clearThrottle(outcome, client);
    if (outcome.email) {
      this.mailer.send({
        ...mailTemplates.passwordChanged(),
        to: { address: outcome.email, name: outcome.displayName },
        userId: outcome.id,
        kind: 'password_changed',
      });
    }
  }

  /** POST /auth/email/verify: the token's purpose decides what it confirms. */
  async verify(token: string, client: ClientInfo): Promise<VerifyStatus> {
    await this.limitSubmission(client);
    const result = await this.txHost.withTransaction(async (): Promise<VerifyStatus | ConsumeFailure> => {
      // The account's row first, then the token's (as every change of an account): no deadlock
      // with a concurrent cancel or password change.
      const owner = await this.tokens.ownerOf(token);
      if (owner) await this.users.lockById(owner);
      const consumed = await this.tokens.consume(token, ['verify_email', 'email_change_new', 'email_change_current']);
      if (typeof consumed === 'string') return consumed;
      const user = await this.users.findById(consumed.userId);
      if (!user || !consumed.targetEmail) return 'invalid';
      if (consumed.purpose === 'verify_email') {
        // The address changed since the link was sent: it verifies nothing.
        if (user.emailKey !== emailKey(consumed.targetEmail)) return 'invalid';
        await this.users.markEmailVerified(user.id, consumed.targetEmail, this.clock.now());
        await this.audit.record('email.verified', { userId: user.id }, client, { email: consumed.targetEmail });
        return 'verified';
      }
      return this.confirmEmailChange(user, consumed, client);
    });
    if (result === 'invalid')
      throw new AppError(ErrorCode.VERIFICATION_TOKEN_INVALID, 'This link is invalid or was already used');
    if (result === 'expired')
      throw new AppError(ErrorCode.VERIFICATION_TOKEN_EXPIRED, 'This link has expired; ask for a new one');
    return result;
  }

  /**
   * POST /users/me/email: the new address confirms, and so does the current one when it is
   * verified. Sessions stay; the pending address never logs in or receives a reset.
   */
  async requestEmailChange(
    caller: SessionPrincipal,
    newEmail: string,
    password: string,
    client: ClientInfo,
  ): Promise<{ pendingEmail: string; confirmationsRequired: Array<'new' | 'current'> }> {
    const user = await this.users.findById(caller.userId);
    if (!user) throw accountGone();
    await this.credentials.recheck(user, password, client, 'The password is wrong');
    if (user.emailKey === emailKey(newEmail))
      throw new AppError(ErrorCode.EMAIL_UNCHANGED, 'That is already the email address of the account');
    // Counted before the uniqueness check: it must not become an unlimited "is this address
    // registered?" lookup.
    await this.limiter.hit(`mail:id:user:${user.id}`, this.config.MAIL_RATE_LIMIT, HOUR_MS);
    if (await this.users.emailTaken(newEmail, user.id))
      throw new AppError(ErrorCode.EMAIL_TAKEN, 'That email is already in use');
    const confirmCurrent = Boolean(user.email && user.emailVerifiedAt);
    // Another new address than the one pending: both links are replaced at once, whatever the
    // mail frequency, so that a link approving one address can never approve another.
    const force = user.pendingEmailKey !== emailKey(newEmail);
    const ttl = this.config.EMAIL_CHANGE_TTL;
    const issued = await this.txHost.withTransaction(async () => {
      await this.users.setPendingEmail(user.id, newEmail);
      const forNew = await this.tokens.issue({
        userId: user.id,
        purpose: 'email_change_new',
        targetEmail: newEmail,
        ttlSeconds: ttl,
        ip: client.ip,
        force,
      });
      let forCurrent: string | null = null;
      if (confirmCurrent) {
        forCurrent = await this.tokens.issue({
          userId: user.id,
          purpose: 'email_change_current',
          targetEmail: user.email!,
          ttlSeconds: ttl,
          ip: client.ip,
          force,
        });
      } else {
        await this.tokens.revoke(user.id, ['email_change_current']);
      }
      await this.audit.record('email.change_requested', { userId: user.id, sessionId: caller.sessionId }, client, {
        newEmail,
      });
      return { forNew, forCurrent };
    });
    const minutes = Math.round(ttl / 60);
    if (issued.forNew) {
      const link = mailLink(this.config, 'verify', issued.forNew);
      this.mailer.send({
        ...mailTemplates.confirmNewEmail(link, minutes),
        to: { address: newEmail, name: user.displayName },
        userId: user.id,
        kind: 'email_change_new',
      });
    }
    if (issued.forCurrent) {
      const link = mailLink(this.config, 'verify', issued.forCurrent);
      this.mailer.send({
        ...mailTemplates.confirmEmailChange(link, newEmail, minutes),
        to: { address: user.email!, name: user.displayName },
        userId: user.id,
        kind: 'email_change_current',
      });
    }
    return { pendingEmail: newEmail, confirmationsRequired: confirmCurrent ? ['new', 'current'] : ['new'] };
  }

  /** DELETE /users/me/email/pending: idempotent; both confirmation links die. */
  async cancelEmailChange(caller: SessionPrincipal, client: ClientInfo): Promise<void> {
    await this.txHost.withTransaction(async () => {
      const had = await this.users.setPendingEmail(caller.userId, null);
      await this.tokens.revoke(caller.userId, ['email_change_new', 'email_change_current']);
      if (had)
        await this.audit.record(
          'email.change_cancelled',
          { userId: caller.userId, sessionId: caller.sessionId },
          client,
        );
    });
  }

  /** One confirmation of an email change; the change applies once every required one is in. */
  private async confirmEmailChange(
    user: UserRecord,
    consumed: Consumed,
    client: ClientInfo,
  ): Promise<VerifyStatus | ConsumeFailure> {
    const pending = user.pendingEmail;
    if (!pending) return 'invalid';
    // Thrown: the transaction rolls back and the link stays valid (as for a reset).
    if (user.disabled) throw new AppError(ErrorCode.ACCOUNT_DISABLED, 'This account is disabled');
    // The link must belong to the change now pending (a newer request replaced older links).
    const expected = consumed.purpose === 'email_change_new' ? pending : user.email;
    if (!expected || emailKey(expected) !== emailKey(consumed.targetEmail!)) return 'invalid';
    const newConfirmed =
      consumed.purpose === 'email_change_new' || (await this.tokens.isConsumed(user.id, 'email_change_new', pending));
    const currentRequired = await this.tokens.exists(user.id, 'email_change_current');
    const currentConfirmed =
      !currentRequired ||
      consumed.purpose === 'email_change_current' ||
      (user.email !== null && (await this.tokens.isConsumed(user.id, 'email_change_current', user.email)));
    if (!newConfirmed || !currentConfirmed) return 'awaiting_other_confirmation';
    // Uniqueness is checked again now: another account may have taken the address meanwhile.
    if (await this.users.emailTaken(pending, user.id))
      throw new AppError(ErrorCode.EMAIL_TAKEN, 'That email is already in use');
    await this.users.applyPendingEmail(user.id, pending, this.clock.now());
    await this.tokens.revoke(user.id, ['email_change_new', 'email_change_current', 'verify_email']);
    await this.audit.record('email.changed', { userId: user.id }, client, { from: user.email, to: pending });
    if (user.email && user.emailVerifiedAt) {
      this.accountMail.noticeEmailChanged({ id: user.id, email: user.email, displayName: user.displayName }, pending);
    }
    return 'email_changed';
  }

  /** The reset mail, built in the mail queue: the token is issued there (or skipped, within 60 s of the last). */
  private async resetMail(account: { id: string; email: string; displayName: string | null }, client: ClientInfo) {
    const ttl = this.config.PASSWORD_RESET_TTL;
    const token = await this.tokens.issue({
      userId: account.id,
      purpose: 'reset_password',
      targetEmail: account.email,
      ttlSeconds: ttl,
      ip: client.ip,
    });
    if (!token) return null;
    const link = mailLink(this.config, 'reset', token);
    return {
      ...mailTemplates.resetPassword(link, Math.round(ttl / 60)),
      to: { address: account.email, name: account.displayName },
      userId: account.id,
      kind: 'reset_password',
    };
  }

  private mayReceiveReset(user: UserRecord): boolean {
    return (
      user.kind !== 'service' &&
      !user.disabled &&
      user.email !== null &&
      (user.emailVerifiedAt !== null || this.config.PASSWORD_RESET_UNVERIFIED_EMAIL)
    );
  }

  /** Public mail requests: per address (MAIL_IP_RATE_LIMIT) and per identifier, known or not (MAIL_RATE_LIMIT), per hour. */
  private async limitMailRequest(identifier: string, client: ClientInfo): Promise<void> {
    await this.limiter.hit(`mail:ip:${client.ip ?? 'unknown'}`, this.config.MAIL_IP_RATE_LIMIT, HOUR_MS);
    await this.limiter.hit(`mail:id:${identifier}`, this.config.MAIL_RATE_LIMIT, HOUR_MS);
  }

  private async limitSubmission(client: ClientInfo): Promise<void> {
    await this.limiter.hit(`mail:submit:${client.ip ?? 'unknown'}`, SUBMISSIONS_PER_15_MIN, 15 * 60_000);
  }
}
