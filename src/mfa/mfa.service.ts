import { createHash, randomBytes } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import { AuditService } from '../audit/audit.service.js';
import { Clock } from '../common/clock.js';
import { AppError, userNotFound } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import type { ClientInfo } from '../common/http/client-info.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { SecretsService } from '../config/secrets.service.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { mailTemplates } from '../mail/mail-templates.js';
import { MailerService } from '../mail/mailer.service.js';
import { CredentialsService, requireLocalPassword } from '../accounts/credentials.service.js';
import { UsersRepository, type PublicUserFields, type UserRecord } from '../accounts/users.repository.js';
import { SessionsService, type IssuedSession, type SessionAuth } from '../sessions/sessions.service.js';
import { LoginThrottleService } from '../throttle/login-throttle.service.js';
import { BoundedMap } from '../common/bounded-map.js';
import { MfaRepository, type ConfirmedFactor, type CountedAttempt, type TotpLoginOutcome } from './mfa.repository.js';
import { newRecoveryCode, normaliseRecoveryCode, recoveryCodeHash } from './recovery-codes.js';
import { SecretBox } from './secret-box.js';
import {
  TOTP_ALGORITHM,
  TOTP_DIGITS,
  TOTP_PERIOD,
  base32,
  matchingStep,
  newTotpSecret,
  totpCodeOf,
  totpUri,
} from './totp.js';

/** A pending enrolment must be confirmed within this time. */
export const ENROLMENT_TTL_MS = 10 * 60 * 1000;
/** The `mfaToken` of a login challenge: 32 random bytes, base64url. */
const MFA_TOKEN = /^[A-Za-z0-9_-]{43}$/;

/** RFC 8176 method references of the ways a session reaches aal2. */
export const TOTP_AUTH = { amr: ['pwd', 'otp', 'mfa'], acr: 'aal2' } as const;
export const RECOVERY_CODE_AUTH = { amr: ['pwd', 'lookup_secret', 'mfa'], acr: 'aal2' } as const;

export interface MfaStatus {
  enabled: boolean;
  totp: { confirmedAt: string; lastUsedAt: string | null } | null;
  recoveryCodesRemaining: number;
}

export interface Enrolment {
  secret: string;
  otpauthUri: string;
  algorithm: typeof TOTP_ALGORITHM;
  digits: number;
  period: number;
  expiresAt: string;
}

/** A second factor as presented: a TOTP code or a recovery code. */
export type SecondFactor = { code: string } | { recoveryCode: string };

export interface MfaLogin {
  user: PublicUserFields;
  session: IssuedSession;
  /** Present when a recovery code was used. */
  recoveryCodesRemaining?: number;
}

const hashToken = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/**
 * How many open login challenges an instance keeps for their second step (see HeldChallenge):
 * about 1 KB of heap each, so at most some 10 MB (enough for 33 first steps a second held
 * for MFA_CHALLENGE_TTL's default 300 s); beyond that the oldest go, and their second steps
 * take the path that reads the challenge first (as on any other instance).
 */
export const HELD_CHALLENGES = 10_000;

/**
 * What the instance that opened a login challenge keeps of it until it expires or completes:
 * the user, the password hash verified in the first step and the user's confirmed factor
 * (its secret stays sealed). A right code can then be checked before any statement, and the
 * login completed in one (MfaRepository.completeTotpLogin with countGuess). The database
 * stays the judge: the statement re-checks every part of this against the rows.
 */
interface HeldChallenge {
  userId: string;
  passwordHash: string;
  factor: ConfirmedFactor;
  expiresAtMs: number;
  /** A second step on this challenge is on its way through MfaService.completeHeld. */
  busy: boolean;
  /** Second steps with a TOTP code on this challenge that reached this instance. */
  arrivals: number;
}

/**
 * Two-step sign-in (contract v2 §B): TOTP enrolment and confirmation, recovery codes, the
 * login challenge between the password and the code, disabling, the admin reset.
 *
 * Every guess at a code is counted before it is checked: against the account (across
 * challenges and routes, LoginThrottleService.admitSecondFactor) and, on the login step,
 * against the challenge (MFA_MAX_ATTEMPTS, one conditional UPDATE). A TOTP code works once:
 * its time step must be newer than the last one used.
 */
@Injectable()
export class MfaService {
  private readonly logger = new Logger('Mfa');
  private readonly pepper: Buffer;
  /** The login challenges this instance opened, by their token's hash (base64), oldest first. */
  private readonly held = new BoundedMap<string, HeldChallenge>(HELD_CHALLENGES);

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly repo: MfaRepository,
    private readonly box: SecretBox,
    private readonly users: UsersRepository,
    private readonly credentials: CredentialsService,
    private readonly sessions: SessionsService,
    private readonly throttle: LoginThrottleService,
    private readonly audit: AuditService,
    private readonly mailer: MailerService,
    private readonly clock: Clock,
    private readonly txHost: TransactionHost<PrismaTx>,
    secrets: SecretsService,
  ) {
    this.pepper = secrets.passwordPepper;
  }

  isEnabled(userId: string): Promise<boolean> {
    return this.repo.isEnabled(userId);
  }

  async status(userId: string): Promise<MfaStatus> {
    const totp = await this.repo.findTotp(userId);
    const confirmedAt = totp?.confirmedAt ?? null;
    return {
      enabled: confirmedAt !== null,
      totp: confirmedAt ? { confirmedAt: confirmedAt.toISOString(), lastUsedAt: iso(totp?.lastUsedAt ?? null) } : null,
      recoveryCodesRemaining: confirmedAt ? await this.repo.remainingRecoveryCodes(userId) : 0,
    };
  }

  /**
   * Starts (or restarts) an enrolment: the password first (re-checked and throttled like a
   * login), then a new secret, stored encrypted and pending for ENROLMENT_TTL_MS.
   */
  async startEnrolment(user: UserRecord, password: string, client: ClientInfo): Promise<Enrolment> {
    await this.credentials.recheck(user, password, client, 'The password is wrong');
    const secret = newTotpSecret();
    const now = this.clock.now();
    const expiresAt = new Date(now.getTime() + ENROLMENT_TTL_MS);
    const { sealed, keyId } = this.box.seal(secret, user.id);
    if (!(await this.repo.putPending({ userId: user.id, sealed, keyId, now, expiresAt }))) {
      throw new AppError(ErrorCode.MFA_ALREADY_ENABLED, 'Two-step sign-in is already on');
    }
    return {
      secret: base32(secret),
      otpauthUri: totpUri(secret, { issuer: this.config.MFA_ISSUER, username: user.username }),
      algorithm: TOTP_ALGORITHM,
      digits: TOTP_DIGITS,
      period: TOTP_PERIOD,
      expiresAt: expiresAt.toISOString(),
    };
  }

  /**
   * Confirms the pending enrolment with a first code: the factor is on, a first set of
   * recovery codes is made, this session becomes aal2 and every other session of the user
   * ends (they were opened with the password alone). Returns the codes (shown once) and the
   * session's new assurance.
   */
  async confirmEnrolment(
    caller: { userId: string; sessionId: string },
    code: string,
    client: ClientInfo,
  ): Promise<{ recoveryCodes: string[]; auth: SessionAuth }> {
    const { userId, sessionId } = caller;
    const now = this.clock.now();
    const pending = await this.repo.findTotp(userId);
    if (!pending || pending.confirmedAt || !pending.enrolExpiresAt || pending.enrolExpiresAt <= now) {
      throw new AppError(ErrorCode.MFA_ENROLLMENT_NOT_FOUND, 'No enrolment is waiting for a code: start again');
    }
    await this.throttle.admitSecondFactor(userId);
    const secret = this.box.open(pending.secretEnc, pending.secretKeyId, userId);
    const step = secret ? matchingStep(secret, code, now.getTime(), this.config.MFA_TOTP_WINDOW) : null;
    const auth: SessionAuth = { ...TOTP_AUTH, amr: [...TOTP_AUTH.amr], authTime: now };
    const codes = this.newRecoveryCodes();
    const confirmed = await this.txHost.withTransaction(async () => {
      if (step === null || !(await this.repo.lockUser(userId, 'update'))) return false;
      if (!(await this.repo.confirm(userId, pending.secretEnc, step, now))) return false;
      await this.repo.replaceRecoveryCodes(userId, codes.hashes(userId), now);
      // The session ended meanwhile: thrown, so that the confirmation rolls back.
      if (!(await this.sessions.elevate(sessionId, auth)))
        throw new AppError(ErrorCode.UNAUTHORIZED, 'This session has ended; sign in again');
      await this.sessions.revokeAllOf(userId, 'mfa_enabled', sessionId);
      await this.repo.deleteChallenges(userId);
      await this.audit.record('mfa.enrolled', { userId, sessionId }, client);
      return true;
    });
    if (!confirmed) throw wrongCode(403);
    await this.throttle.clearSecondFactor(userId);
    await this.notify(userId, mailTemplates.mfaEnabled(), 'mfa_enabled');
    return { recoveryCodes: codes.plain, auth };
  }

  /** A new set of recovery codes, for a current TOTP code; the old set dies. */
  async regenerateRecoveryCodes(caller: { userId: string; sessionId: string }, code: string, client: ClientInfo) {
    const { userId } = caller;
    if (!(await this.repo.isEnabled(userId))) throw notEnabled();
    await this.throttle.admitSecondFactor(userId);
    const codes = this.newRecoveryCodes();
    const done = await this.txHost.withTransaction(async () => {
      await this.repo.lockUser(userId, 'update');
      if (!(await this.useTotp(userId, code))) return false;
      await this.repo.replaceRecoveryCodes(userId, codes.hashes(userId), this.clock.now());
      await this.audit.record('mfa.recovery_codes_regenerated', { userId, sessionId: caller.sessionId }, client);
      return true;
    });
    if (!done) throw wrongCode(403);
    await this.throttle.clearSecondFactor(userId);
    return { recoveryCodes: codes.plain };
  }

  /**
   * Turns two-step sign-in off: the password and a code (TOTP or recovery) are both needed;
   * every other session ends and the owner is told by mail.
   */
  async disable(
    caller: { userId: string; sessionId: string },
    user: UserRecord,
    password: string,
    code: string,
    client: ClientInfo,
  ): Promise<void> {
    const { userId, sessionId } = caller;
    // Before "not enabled": the route needs a password, which this account cannot give.
    requireLocalPassword(user);
    if (!(await this.repo.isEnabled(userId))) throw notEnabled();
    await this.credentials.recheck(user, password, client, 'The password is wrong');
    await this.throttle.admitSecondFactor(userId);
    const factor: SecondFactor = totpCodeOf(code) !== null ? { code } : { recoveryCode: code };
    const done = await this.txHost.withTransaction(async () => {
      await this.repo.lockUser(userId, 'update');
      if (!(await this.useFactor(userId, factor))) return 'wrong';
      // Removed meanwhile by a concurrent request: thrown, so that the code's use rolls back.
      if (!(await this.repo.removeFactors(userId))) throw notEnabled();
      await this.sessions.revokeAllOf(userId, 'mfa_disabled', sessionId);
      // This session stays, as a password session from now on: its next access token is aal1
      // (so it no longer passes step-up without a second factor).
      await this.sessions.elevate(sessionId, { amr: ['pwd'], acr: 'aal1', authTime: this.clock.now() });
      await this.audit.record('mfa.disabled', { userId, sessionId }, client);
      return 'done';
    });
    if (done === 'wrong') throw wrongCode(403);
    await this.throttle.clearSecondFactor(userId);
    await this.notify(userId, mailTemplates.mfaDisabled(), 'mfa_disabled');
  }

  /**
   * An admin removes a user's second factor (a lost phone and no recovery code): every
   * session of the user ends, the user is told by mail, the actor is audited.
   */
  async adminReset(admin: { userId: string; sessionId: string | null }, targetId: string, client: ClientInfo) {
    if (admin.userId === targetId) {
      throw new AppError(
        ErrorCode.CANNOT_TARGET_SELF,
        'Reset your own two-step sign-in with DELETE /auth/mfa (password and code)',
      );
    }
    const outcome = await this.txHost.withTransaction(async () => {
      if (!(await this.repo.lockUser(targetId, 'update'))) return 'not_found';
      if (!(await this.repo.removeFactors(targetId))) return 'not_enabled';
      await this.sessions.revokeAllOf(targetId, 'mfa_reset');
      await this.audit.record('mfa.reset_by_admin', { userId: targetId, sessionId: admin.sessionId }, client, {
        by: admin.userId,
      });
      return 'done';
    });
    if (outcome === 'not_found') throw userNotFound();
    if (outcome === 'not_enabled') throw notEnabled();
    await this.throttle.clearSecondFactor(targetId);
    await this.notify(targetId, mailTemplates.mfaResetByAdmin(), 'mfa_reset');
  }

  /** Ends the user's open login challenges (the account was disabled: none may complete later). */
  endChallenges(userId: string): Promise<void> {
    return this.repo.deleteChallenges(userId);
  }

  /**
   * The password step of a login succeeded for an account with two-step sign-in: a
   * challenge for the second step, bound to the password hash just verified.
   */
  async openChallenge(user: UserRecord, passwordHash: string, client: ClientInfo) {
    const token = randomBytes(32).toString('base64url');
    const now = this.clock.now();
    const tokenHash = hashToken(token);
    const expiresAt = new Date(now.getTime() + this.config.MFA_CHALLENGE_TTL * 1000);
    const factor = await this.repo.createChallenge({
      userId: user.id,
      tokenHash,
      passwordHash,
      now,
      expiresAt,
      ip: client.ip,
      userAgent: client.userAgent?.slice(0, 512) ?? null,
    });
    if (factor) {
      this.dropExpiredHeld(now.getTime());
      this.held.set(tokenHash.toString('base64'), {
        userId: user.id,
        passwordHash,
        // A copy: the driver's bytes may be a slice of a larger buffer, which would stay alive with it.
        factor: { ...factor, secretEnc: new Uint8Array(factor.secretEnc) },
        expiresAtMs: expiresAt.getTime(),
        busy: false,
        arrivals: 0,
      });
    }
    await this.audit.record('login.mfa_required', { userId: user.id }, client);
    return { mfaToken: token, expiresIn: this.config.MFA_CHALLENGE_TTL };
  }

  /**
   * The second step of a login. In this order:
   * 1. the guess is counted against the challenge, atomically, in the statement that finds it
   *    (401 MFA_TOKEN_INVALID when it is unknown, consumed or expired; when its guesses are
   *    all counted, 429 TOO_MANY_ATTEMPTS if the account is waiting out its wrong codes, a
   *    read that counts nothing, else 401 MFA_TOKEN_INVALID: the account is not charged);
   * 2. then against the account (429 when the account must wait, and the challenge is given
   *    its guess back, as no code is checked);
   * 3. the code is checked (401 INVALID_MFA_CODE).
   * The challenge counts before the account so that a burst on one challenge takes at most
   * MFA_MAX_ATTEMPTS places of the account's budget: counted the other way round, every guess
   * in flight held a place in the account's budget until its challenge refused it, and a
   * burst larger than MFA_RATE_LIMIT drew a 429 for a challenge that had simply run out. A
   * throttled account's guesses hold the challenge's places only between 1 and 2 (they all get
   * the 429, and so does any guess the challenge turns away meanwhile): one statement less on
   * every second step than reading the account's wait before counting.
   * When the account's budget runs out during a burst, the challenge's places are briefly
   * held by guesses that 2 refuses: a guess the challenge turns away then asks the account
   * again, and gets the 429 once the account must wait, so that a live challenge is not
   * answered MFA_TOKEN_INVALID (which sends the user back to the password). On success, all
   * or nothing (one statement for a TOTP code, one transaction for a recovery code): the code
   * is used, the challenge consumed, and the session opened only while the password verified
   * in the first step is still current and the account enabled; when any of it fails, the
   * code stays usable.
   */
  async completeLogin(mfaToken: string, factor: SecondFactor, client: ClientInfo): Promise<MfaLogin> {
    if (!MFA_TOKEN.test(mfaToken)) throw tokenInvalid();
    const tokenHash = hashToken(mfaToken);
    if ('code' in factor) {
      const done = await this.completeHeld(tokenHash, factor.code, client);
      if (done) return done;
    }
    const max = this.config.MFA_MAX_ATTEMPTS;
    const guess = await this.repo.countAttempt(tokenHash, this.clock.now(), max);
    if (!guess) throw tokenInvalid();
    const { attempt } = guess;
    if (!attempt) {
      await this.throttle.refuseSecondFactorIfWaiting(guess.userId);
      throw tokenInvalid();
    }
    try {
      await this.throttle.admitSecondFactor(attempt.userId);
    } catch (error) {
      // A throttled account's guess is not checked, so the challenge does not keep it. Should
      // that fail, the challenge keeps one guess too many, and the answer is still the 429.
      await this.repo.uncountAttempt(attempt.id).catch((uncount: unknown) => {
        this.logger.warn(`challenge ${attempt.id} keeps a guess that was not checked: ${String(uncount)}`);
      });
      throw error;
    }
    const outcome =
      'code' in factor
        ? await this.completeWithTotp(attempt, tokenHash, factor.code, client)
        : await this.completeWithRecoveryCode(attempt, factor.recoveryCode, client);
    if (outcome === 'wrong_code') {
      await this.audit.record('mfa.challenge_failed', { userId: attempt.userId }, client, {
        method: 'code' in factor ? 'totp' : 'recovery_code',
      });
      throw wrongCode(401);
    }
    this.held.delete(tokenHash.toString('base64'));
    await this.throttle.clearSecondFactor(attempt.userId);
    if ('user' in outcome) return outcome;
    const user = await this.users.findById(attempt.userId);
    if (!user) throw tokenInvalid();
    return { user, session: outcome, recoveryCodesRemaining: await this.repo.remainingRecoveryCodes(user.id) };
  }

  /**
   * The code is checked here against the secret read with the guess, then one statement
   * (MfaRepository.completeTotpLogin) uses its step, consumes the challenge and opens the
   * session, all or nothing.
   */
  private async completeWithTotp(
    attempt: CountedAttempt,
    tokenHash: Buffer,
    code: string,
    client: ClientInfo,
  ): Promise<MfaLogin | 'wrong_code'> {
    const { secretEnc, secretKeyId, confirmedAt } = attempt;
    if (secretEnc === null || secretKeyId === null || confirmedAt === null) return 'wrong_code';
    const secret = this.openSecret(attempt.userId, secretEnc, secretKeyId);
    if (!secret) return 'wrong_code';
    const now = this.clock.now();
    const step = matchingStep(secret, code, now.getTime(), this.config.MFA_TOTP_WINDOW);
    if (step === null) return 'wrong_code';
    const { userId, passwordHash } = attempt;
    const done = await this.finishTotpLogin(
      { userId, passwordHash, factor: { secretEnc, secretKeyId, confirmedAt } },
      {
        tokenHash,
        secret,
        step,
        now,
        countGuess: false,
        client,
      },
    );
    if (done.kind === 'opened') return done.login;
    // A factor removed or enrolled again since the guess was counted: the code was not its.
    if (done.kind === 'step_used' || done.kind === 'factor_changed') return 'wrong_code';
    throw tokenInvalid();
  }

  /**
   * The second step with a TOTP code on the instance that opened the challenge (HeldChallenge):
   * the guess is counted against the account, the code checked, then the guess counted against
   * the challenge and the login completed, in one statement. Null when the usual path
   * (completeLogin) must answer instead, whatever the code: the challenge is not held here, or
   * expired; it has a guess of this path in flight, or more codes than MFA_MAX_ATTEMPTS came
   * for it (so a burst on one challenge holds at most one place of the account's budget that
   * the challenge then refuses, for a moment: on the usual path the challenge counts first,
   * and a burst on a spent challenge is answered 401, not 429); the factor changed since the
   * challenge was opened.
   * The answers are those of the usual path. Every code, right or wrong, is counted against
   * the account before it is checked (429 when the account must wait, as there), so that
   * simultaneous codes get no more checks than the account's budget; a success clears the
   * count, a guess its challenge had no place for is taken back out and answered by the usual
   * path, and a wrong code keeps it. A wrong code goes through the same statement
   * as a right one (it only counts the guess), which neither locks nor writes a challenge
   * without a guess left: where neither may succeed, a right code and a wrong one cost the
   * same work, so the time of an answer does not tell them apart.
   */
  private async completeHeld(tokenHash: Buffer, code: string, client: ClientInfo): Promise<MfaLogin | null> {
    const key = tokenHash.toString('base64');
    const held = this.held.get(key);
    if (!held) return null;
    held.arrivals += 1;
    if (held.busy || held.arrivals > this.config.MFA_MAX_ATTEMPTS) return null;
    const now = this.clock.now();
    if (held.expiresAtMs <= now.getTime()) {
      this.held.delete(key);
      return null;
    }
    held.busy = true;
    try {
      return await this.completeHeldGuess(key, held, tokenHash, code, now, client);
    } finally {
      held.busy = false;
    }
  }

  private async completeHeldGuess(
    key: string,
    held: HeldChallenge,
    tokenHash: Buffer,
    code: string,
    now: Date,
    client: ClientInfo,
  ): Promise<MfaLogin | null> {
    const { userId } = held;
    const reservation = await this.throttle.admitSecondFactor(userId);
    const secret = this.box.open(held.factor.secretEnc, held.factor.secretKeyId, userId);
    if (!secret) {
      // The usual path answers (and logs it), and counts the guess itself.
      await this.throttle.releaseSecondFactor(reservation);
      return null;
    }
    const step = matchingStep(secret, code, now.getTime(), this.config.MFA_TOTP_WINDOW);
    let done: Awaited<ReturnType<MfaService['finishTotpLogin']>>;
    try {
      done = await this.finishTotpLogin(held, { tokenHash, secret, step, now, countGuess: true, client });
    } catch (error) {
      // Nothing was counted against the challenge: neither is it against the account.
      await this.throttle.releaseSecondFactor(reservation);
      throw error;
    }
    switch (done.kind) {
      case 'opened':
        return done.login;
      case 'step_used':
        // A wrong code, or a used step: counted against the challenge and the account.
        await this.audit.record('mfa.challenge_failed', { userId }, client, { method: 'totp' });
        throw wrongCode(401);
      case 'factor_changed':
        // The usual path counts it, against both.
        await this.throttle.releaseSecondFactor(reservation);
        this.held.delete(key);
        return null;
      case 'no_guess_left':
        // The challenge refused the guess: it was not one for the account either, and the
        // usual path answers it (429 while the account waits, else 401), as it would have,
        // after the same work for a right code and a wrong one. Its places may be held by
        // guesses the account is about to turn away (429) and give back; answering 401 here
        // would send a live challenge back to the password.
        await this.throttle.releaseSecondFactor(reservation);
        return null;
    }
    // challenge_gone: consumed or expired meanwhile, or the account changed since the first step.
    await this.throttle.releaseSecondFactor(reservation);
    this.held.delete(key);
    throw tokenInvalid();
  }

  /**
   * The statement of a second step with a TOTP code (MfaRepository.completeTotpLogin; `step`
   * null for a code that matched none, which it only counts), and what follows an opened
   * session: the challenge is no longer held, the account's wrong codes are cleared, the secret
   * re-sealed under the current key.
   */
  private async finishTotpLogin(
    held: Pick<HeldChallenge, 'userId' | 'passwordHash' | 'factor'>,
    c: {
      tokenHash: Buffer;
      secret: Uint8Array;
      /** Null: a wrong code, only counted (with countGuess). */
      step: number | null;
      now: Date;
      countGuess: boolean;
      client: ClientInfo;
    },
  ): Promise<{ kind: 'opened'; login: MfaLogin } | Exclude<TotpLoginOutcome, { kind: 'opened' }>> {
    const { userId } = held;
    const prepared = this.sessions.prepareOpen(userId, c.client, { amr: [...TOTP_AUTH.amr], acr: TOTP_AUTH.acr });
    const auditRow = this.audit.row('login.mfa_succeeded', { userId, sessionId: prepared.id }, c.client, {
      method: 'totp',
    });
    const done = await this.repo.completeTotpLogin({
      tokenHash: c.tokenHash,
      userId,
      passwordHash: held.passwordHash,
      confirmedAt: held.factor.confirmedAt,
      step: c.step,
      now: c.now,
      countGuess: c.countGuess ? { maxAttempts: this.config.MFA_MAX_ATTEMPTS } : null,
      session: prepared,
      audit: auditRow,
      keep: this.config.MAX_SESSIONS_PER_USER,
    });
    if (done.kind !== 'opened') return done;
    this.audit.written(auditRow.type);
    this.held.delete(c.tokenHash.toString('base64'));
    // The session is open and the code spent: what follows must not fail the answer.
    // The usual path (without countGuess) clears the account's wrong codes itself.
    if (c.countGuess) await this.throttle.clearSecondFactor(userId);
    try {
      await this.resealIfOld(userId, c.secret, held.factor.secretKeyId);
    } catch (error) {
      this.logger.warn(`the TOTP secret of user ${userId} stays under its old key until next used: ${String(error)}`);
    }
    return {
      kind: 'opened',
      login: { user: done.user, session: await this.sessions.opened(prepared, done.user.roles, done.withinCap) },
    };
  }

  /** Forgets held challenges that have expired (the oldest first: they expire in the order they were opened). */
  private dropExpiredHeld(nowMs: number): void {
    for (const [key, held] of this.held) {
      if (held.expiresAtMs > nowMs) return;
      this.held.delete(key);
    }
  }

  /**
   * In one transaction: the code is used, the challenge consumed, and the session opened
   * only while the password verified in the first step is still current and the account
   * enabled; any failure there rolls the code's use back.
   */
  private async completeWithRecoveryCode(
    attempt: CountedAttempt,
    recoveryCode: string,
    client: ClientInfo,
  ): Promise<IssuedSession | 'wrong_code'> {
    return this.txHost.withTransaction(async () => {
      // FOR UPDATE, not FOR SHARE: logins of this user racing this one wait for its commit, so
      // that the cap on sessions per user, applied inside this transaction, sees theirs
      // (SessionsService.evictBeyondLimit).
      if (!(await this.repo.lockUser(attempt.userId, 'update'))) throw tokenInvalid();
      if (!(await this.useRecoveryCode(attempt.userId, recoveryCode))) return 'wrong_code' as const;
      // From here a failure is thrown, not returned: the transaction rolls back and the
      // code stays usable (a concurrent success consumed the challenge; the password changed
      // or the account was disabled since the first step).
      if (!(await this.repo.consumeChallenge(attempt.id, this.clock.now()))) throw tokenInvalid();
      const session = await this.sessions.openIfCredentialsCurrent(
        { id: attempt.userId, passwordHash: attempt.passwordHash },
        client,
        { amr: [...RECOVERY_CODE_AUTH.amr], acr: RECOVERY_CODE_AUTH.acr },
      );
      if (!session) throw tokenInvalid();
      const who = { userId: attempt.userId, sessionId: session.sessionId };
      await this.audit.record('login.mfa_succeeded', who, client, { method: 'recovery_code' });
      await this.audit.record('mfa.recovery_code_used', who, client);
      return session;
    });
  }

  /** Uses a TOTP code or a recovery code of the user's confirmed factor; false when wrong or already used. */
  private useFactor(userId: string, factor: SecondFactor): Promise<boolean> {
    return 'code' in factor ? this.useTotp(userId, factor.code) : this.useRecoveryCode(userId, factor.recoveryCode);
  }

  private async useTotp(userId: string, code: string): Promise<boolean> {
    const totp = await this.repo.findTotp(userId);
    if (!totp?.confirmedAt) return false;
    const secret = this.openSecret(userId, totp.secretEnc, totp.secretKeyId);
    if (!secret) return false;
    const now = this.clock.now();
    const step = matchingStep(secret, code, now.getTime(), this.config.MFA_TOTP_WINDOW);
    if (step === null || !(await this.repo.useStep(userId, step, now))) return false;
    await this.resealIfOld(userId, secret, totp.secretKeyId);
    return true;
  }

  /** The TOTP secret of `userId`, decrypted; null (and logged) when it does not decrypt. */
  private openSecret(userId: string, sealed: Uint8Array, keyId: string): Uint8Array | null {
    const secret = this.box.open(sealed, keyId, userId);
    if (!secret) {
      this.logger.error(`the TOTP secret of user ${userId} does not decrypt: is its key still in MFA_ENCRYPTION_KEYS?`);
    }
    return secret;
  }

  /** Key rotation: a secret under an older key (`keyId`) moves to the current one when next used. */
  private async resealIfOld(userId: string, secret: Uint8Array, keyId: string): Promise<void> {
    if (keyId === this.box.currentKeyId) return;
    const resealed = this.box.seal(secret, userId);
    await this.repo.reseal(userId, keyId, resealed.sealed, resealed.keyId);
  }

  private async useRecoveryCode(userId: string, input: string): Promise<boolean> {
    const normalised = normaliseRecoveryCode(input);
    if (normalised === null || !(await this.repo.isEnabled(userId))) return false;
    return this.repo.useRecoveryCode(userId, recoveryCodeHash(this.pepper, userId, normalised), this.clock.now());
  }

  private newRecoveryCodes() {
    const plain = Array.from({ length: this.config.MFA_RECOVERY_CODES }, newRecoveryCode);
    // Ten codes of 50 random bits colliding is practically impossible; a set is still unique.
    const unique = [...new Set(plain)];
    return {
      plain: unique,
      hashes: (userId: string) => unique.map((c) => recoveryCodeHash(this.pepper, userId, normaliseRecoveryCode(c)!)),
    };
  }

  private async notify(userId: string, content: ReturnType<typeof mailTemplates.mfaEnabled>, kind: string) {
    try {
      const user = await this.users.findById(userId);
      if (!user?.email) return;
      this.mailer.send({ ...content, to: { address: user.email, name: user.displayName }, userId, kind });
    } catch (error) {
      this.logger.warn(`${kind} notice not queued: ${String(error)}`);
    }
  }
}

function iso(d: Date | null): string | null {
  return d ? d.toISOString() : null;
}

function wrongCode(status: 401 | 403): AppError {
  return new AppError(ErrorCode.INVALID_MFA_CODE, 'The code is wrong or was already used', {}, { status });
}

function tokenInvalid(): AppError {
  return new AppError(
    ErrorCode.MFA_TOKEN_INVALID,
    'This sign-in attempt is no longer valid (expired, used or out of tries): sign in with your password again',
  );
}

function notEnabled(): AppError {
  return new AppError(ErrorCode.MFA_NOT_ENABLED, 'Two-step sign-in is not on');
}
