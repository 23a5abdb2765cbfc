import { createHash } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { Clock } from '../common/clock.js';
import { AppError, retryAfter } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { InjectRedis } from '../redis/redis.module.js';
import {
  MemoryAttemptStore,
  RedisAttemptStore,
  backoffWaitMs,
  type AttemptRecord,
  type AttemptStore,
  type BackoffPolicy,
  type Reservation,
} from './attempt-store.js';

/** Failures are remembered for 15 minutes after the last one. */
export const LOGIN_WINDOW_MS = 15 * 60 * 1000;
/** The longest wait ever imposed: throttling slows guessing, it never locks out for good. */
const MAX_WAIT_MS = LOGIN_WINDOW_MS;
const BACKOFF: BackoffPolicy = { windowMs: LOGIN_WINDOW_MS, maxWaitMs: MAX_WAIT_MS };

/** The 429 of the account's budget of wrong two-step codes (admitSecondFactor and the read before it). */
const tooManyWrongCodes = (waitMs: number): AppError =>
  new AppError(ErrorCode.TOO_MANY_ATTEMPTS, 'Too many wrong codes; retry later', retryAfter(waitMs / 1000));

/** The account-wide ceiling, across all sources, is this many times LOGIN_RATE_LIMIT. */
export const ACCOUNT_CEILING_FACTOR = 10;
/** The per-address ceiling of client-secret failures is this many times OAUTH_CLIENT_RATE_LIMIT. */
export const CLIENT_IP_FACTOR = 10;
/** How long a source that logged in to an account stays exempt from that account's ceiling. */
export const KNOWN_SOURCE_MS = 30 * 24 * 60 * 60 * 1000;

/**
 * The key an account is throttled under. An existing account is counted by its id, so that
 * its username and its email share one budget (a guess is a guess); a login naming no
 * account is counted by its canonical form, and is throttled exactly like an existing one.
 */
export const throttleAccountKey = (userId: string | null, canonicalLogin: string): string =>
  userId !== null ? `user:${userId}` : `login:${canonicalLogin}`;

/**
 * Password-guess throttling, for logins and for the password re-checks of
 * POST /users/me/password and DELETE /users/me (one budget: a guess is a guess).
 * (OWASP Authentication Cheat Sheet, "Login Throttling" / "Account Lockout".)
 *
 * Three counters, each of consecutive failures forgotten 15 minutes after the last one;
 * a request waits for the longest of their back-offs.
 *
 * An attempt takes its place in the budget before its password is verified: admit() checks
 * the three counters and, when none makes it wait, counts it as a failure on all three, in
 * one atomic step of the store (a synchronous read-modify-write in memory, one Lua script
 * in Redis). Concurrent attempts therefore cannot all pass a check made before any of them
 * is counted: a burst at one instant gets at most LOGIN_RATE_LIMIT password verifications
 * per (account, source). The right password then takes the attempt back out
 * (recordSuccess()); a wrong one needs nothing more.
 *
 * - per (account, source IP): LOGIN_RATE_LIMIT failures are free, then each failure doubles
 *   the wait before the next attempt (1 s, 2 s, 4 s ... capped at 15 minutes). A success
 *   clears it (attempts still in flight from there stay counted). Someone guessing from one
 *   address is slowed, and the owner, from any other address, is not: a stranger has no
 *   switch that keeps the owner out.
 * - per account across all sources: a ceiling of ACCOUNT_CEILING_FACTOR x LOGIN_RATE_LIMIT
 *   failures before the same back-off, so that guesses spread over many addresses are
 *   slow too. A success does not clear it (it is evidence of an attack elsewhere): it only
 *   takes its own attempt back out, so that successes never count. The ceiling's wait
 *   does not apply to a source that has logged in to the account within KNOWN_SOURCE_MS:
 *   even an attacker with many addresses who holds the ceiling's back-off does not keep the
 *   owner out of their usual places; only never-seen sources then wait (at most 15 minutes
 *   after each failure). Attempts from a known source are still counted on it.
 * - per source IP across all accounts: max(300, 30 x LOGIN_RATE_LIMIT) failures (one
 *   address may be a shared NAT), so that one address cannot spray accounts without end. A
 *   success takes its own attempt back out here too.
 */
@Injectable()
export class LoginThrottleService {
  private readonly logger = new Logger('Throttle');
  private readonly store: AttemptStore;
  private readonly pairLimit: number;
  private readonly accountLimit: number;
  private readonly ipLimit: number;
  private readonly secondFactorLimit: number;
  private readonly clientLimit: number;

  constructor(
    @InjectConfig() config: AppConfig,
    @InjectRedis() redis: Redis | null,
    private readonly clock: Clock,
  ) {
    this.store = redis ? new RedisAttemptStore(redis) : new MemoryAttemptStore();
    this.pairLimit = config.LOGIN_RATE_LIMIT;
    this.accountLimit = config.LOGIN_RATE_LIMIT * ACCOUNT_CEILING_FACTOR;
    this.ipLimit = Math.max(300, config.LOGIN_RATE_LIMIT * 30);
    this.secondFactorLimit = config.MFA_RATE_LIMIT;
    this.clientLimit = config.OAUTH_CLIENT_RATE_LIMIT;
  }

  /**
   * Client-secret guesses at the OAuth endpoints (contract v2 §C): CLIENT_IP_FACTOR ×
   * OAUTH_CLIENT_RATE_LIMIT failures per address (across client ids) and
   * OAUTH_CLIENT_RATE_LIMIT per client_id, existing or not (key `client:<client_id>`), per 15
   * minutes; then the login back-off, capped at 15 minutes (429 TOO_MANY_ATTEMPTS +
   * Retry-After). Counted before the secret is checked, like a password; releaseClient()
   * takes a right secret back out (a success never resets a counter: someone guessing would
   * otherwise start over with each of the real client's requests).
   *
   * The address's counter is a gate: past it, 429 before any check. The client's is not: a
   * client_id is public (every token carries it), so a gate there would let anyone lock a
   * service out with 20 wrong secrets. Past the client's limit the secret is still checked;
   * a right one (256 random bits: the answer is no oracle worth having) goes through, a wrong
   * one gets the 429 that `overLimit` holds.
   */
  async admitClient(clientId: string, ip: string): Promise<ClientAttempt> {
    const now = this.clock.nowMs();
    const address = await this.store.reserve(
      [{ key: `client-ip:${ip}`, limit: this.clientLimit * CLIENT_IP_FACTOR }],
      now,
      BACKOFF,
    );
    if (!address.admitted) throw tooManyClientFailures(address.waitMs);
    const client = await this.store.reserve([{ key: clientKey(clientId), limit: this.clientLimit }], now, BACKOFF);
    return client.admitted
      ? { reservations: [address.reservation, client.reservation], overLimit: null }
      : { reservations: [address.reservation], overLimit: tooManyClientFailures(client.waitMs) };
  }

  /** Takes an admitted client authentication back out (its secret was right). */
  async releaseClient(attempt: ClientAttempt): Promise<void> {
    await Promise.all(attempt.reservations.map((r) => this.store.release(r.counts, r.atMs)));
  }

  /**
   * Second-factor guesses of one account, across every login challenge and the
   * authenticated MFA routes (contract v2 §B, key `mfa:<userId>`): MFA_RATE_LIMIT failures
   * per 15 minutes are free, then the same doubling back-off as logins, capped at 15 minutes
   * (429 TOO_MANY_ATTEMPTS + Retry-After). Counted before the code is checked, like a
   * password; clearSecondFactor() after a right code starts it over. Without it, someone who
   * holds the password could open challenge after challenge and keep guessing.
   */
  async admitSecondFactor(userId: string): Promise<Reservation> {
    const outcome = await this.store.reserve(
      [{ key: secondFactorKey(userId), limit: this.secondFactorLimit }],
      this.clock.nowMs(),
      BACKOFF,
    );
    if (!outcome.admitted) throw tooManyWrongCodes(outcome.waitMs);
    return outcome.reservation;
  }

  /**
   * Takes a guess admitSecondFactor() counted back out, as if it had not come: it turned out
   * not to be a guess at all (its challenge had no place left for it, or was gone). Never
   * throws: should that fail, the account keeps one wrong code too many, which runs out by
   * itself.
   */
  async releaseSecondFactor(reservation: Reservation): Promise<void> {
    try {
      await this.store.release(reservation.counts, reservation.atMs);
    } catch (error) {
      this.logger.warn(`a second-factor guess was not taken back out of its counter: ${String(error)}`);
    }
  }

  /**
   * Throws what admitSecondFactor() would (429 TOO_MANY_ATTEMPTS with Retry-After) when the
   * account's wrong codes make the next one wait, without counting anything: the second step of
   * a login asks this before its challenge counts the guess, so that a throttled account's
   * guesses do not hold the challenge's places (see MfaService.completeLogin).
   */
  async refuseSecondFactorIfWaiting(userId: string): Promise<void> {
    const wait = this.waitMs(await this.store.get(secondFactorKey(userId)), this.secondFactorLimit);
    if (wait > 0) throw tooManyWrongCodes(wait);
  }

  /** Never throws: see forget(). */
  async clearSecondFactor(userId: string): Promise<void> {
    await this.forget([secondFactorKey(userId)]);
  }

  /**
   * Takes this attempt's place in the budget, before its password is verified: throws 429
   * TOO_MANY_ATTEMPTS with Retry-After when this account from this address, the account as a
   * whole (unless the address is a known one) or the address must wait; otherwise counts the
   * attempt as a failure on all three counters, atomically, and answers it for
   * recordSuccess(). `accountKey` comes from throttleAccountKey().
   */
  async admit(
    accountKey: string,
    ip: string,
    message = 'Too many login attempts; retry later',
  ): Promise<AdmittedAttempt> {
    const outcome = await this.store.reserve(
      [
        { key: pairKey(accountKey, ip), limit: this.pairLimit },
        { key: `acct:${accountKey}`, limit: this.accountLimit, unlessMarked: knownKey(accountKey, ip) },
        { key: `ip:${ip}`, limit: this.ipLimit },
      ],
      this.clock.nowMs(),
      BACKOFF,
    );
    if (!outcome.admitted) throw new AppError(ErrorCode.TOO_MANY_ATTEMPTS, message, retryAfter(outcome.waitMs / 1000));
    return { accountKey, ip, reservation: outcome.reservation };
  }

  /**
   * The right password for an admitted attempt: its counter for the account from this address
   * starts over, the attempt is taken back out of the account-wide and per-address counters,
   * and the address becomes a known one.
   */
  async recordSuccess(attempt: AdmittedAttempt): Promise<void> {
    const { accountKey, ip, reservation } = attempt;
    const pair = pairKey(accountKey, ip);
    await Promise.all([
      this.store.reset(pair),
      this.store.release(
        reservation.counts.filter((c) => c.key !== pair),
        reservation.atMs,
      ),
      this.store.mark(knownKey(accountKey, ip), this.clock.nowMs(), KNOWN_SOURCE_MS),
    ]);
  }

  /**
   * After a password reset: the account-wide counter and this address's counter for the
   * account start over (guesses at the old password say nothing about the new one).
   */
  async clearAccount(accountKey: string, ip: string): Promise<void> {
    await this.forget([`acct:${accountKey}`, pairKey(accountKey, ip)]);
  }

  /**
   * Starts these counters over, and never throws: it follows a change already committed (a
   * login's session, an enrolment, a new password), whose answer must not be lost to a Redis
   * outage. Counters left as they were run out by themselves (15 minutes).
   */
  private async forget(keys: readonly string[]): Promise<void> {
    try {
      await Promise.all(keys.map((key) => this.store.reset(key)));
    } catch (error) {
      // The keys stay out of the log: they hold addresses and login names.
      this.logger.warn(`${keys.length} throttle counter(s) not reset after a change that succeeded: ${String(error)}`);
    }
  }

  /** Milliseconds still to wait before the next attempt under this record (0: go ahead). */
  waitMs(record: AttemptRecord | null, limit: number): number {
    return backoffWaitMs(record, limit, this.clock.nowMs(), BACKOFF);
  }
}

/** An attempt admit() let through, already counted as a failure until recordSuccess(). */
export interface AdmittedAttempt {
  readonly accountKey: string;
  readonly ip: string;
  readonly reservation: Reservation;
}

/** A client authentication admitClient() let through, counted as a failure until releaseClient(). */
export interface ClientAttempt {
  readonly reservations: readonly Reservation[];
  /** The 429 to answer if the secret proves wrong: the client_id is past its limit. */
  readonly overLimit: AppError | null;
}

const tooManyClientFailures = (waitMs: number): AppError =>
  new AppError(
    ErrorCode.TOO_MANY_ATTEMPTS,
    'Too many failed client authentications; retry later',
    retryAfter(waitMs / 1000),
  );
const secondFactorKey = (userId: string): string => `mfa:${userId}`;
/**
 * A presented client_id as it is counted: itself (every real one has 22 characters), or its
 * SHA-256 when it is long, so that made-up ids cannot fill the store with large keys.
 */
const clientKey = (clientId: string): string =>
  `client:${clientId.length <= 64 ? clientId : createHash('sha256').update(clientId).digest('hex')}`;
const pairKey = (accountKey: string, ip: string): string => `pair:${accountKey}|${ip}`;
const knownKey = (accountKey: string, ip: string): string => `known:${accountKey}|${ip}`;
