import { isDatabaseUnavailable, isTransactionExpired } from './database-errors.js';
import { ErrorCode } from './error-codes.js';
import { isRedisUnavailable } from './redis-errors.js';

/** A dependency out of reach: the answer is 503 with Retry-After, and the log a warning. */
export interface Unavailable {
  what: 'database' | 'redis';
  code: ErrorCode;
  message: string;
  /**
   * Logged as an error rather than a warning: nothing is out of reach, a transaction took too
   * long, which may be a fault of its own (a lock held too long, a slow statement).
   */
  logAsError?: true;
}

const DATABASE: Unavailable = {
  what: 'database',
  code: ErrorCode.DATABASE_UNAVAILABLE,
  message: 'The database is unavailable; retry shortly',
};
const DATABASE_BUSY: Unavailable = {
  what: 'database',
  code: ErrorCode.DATABASE_UNAVAILABLE,
  message: 'The database did not complete the request in time; retry shortly',
  logAsError: true,
};
// Redis is not named to clients: a throttle, a rate limit or an announcement could not be made.
const REDIS: Unavailable = {
  what: 'redis',
  code: ErrorCode.SERVICE_UNAVAILABLE,
  message: 'A service this request needs is unavailable; retry shortly',
};

/**
 * Which dependency `error` says is out of reach, or null. Redis fails closed: a request whose
 * throttle, rate limit or announcement cannot reach it is refused (see docs/deployment.md, Redis).
 */
export function unavailableDependency(error: unknown): Unavailable | null {
  if (isDatabaseUnavailable(error)) return DATABASE;
  // Rolled back after its time limit (waiting for a lock): its database changes undone, worth
  // retrying. What it announced before (revocations fail closed) may have taken effect.
  if (isTransactionExpired(error)) return DATABASE_BUSY;
  if (isRedisUnavailable(error)) return REDIS;
  return null;
}
