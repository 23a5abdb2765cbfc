/**
 * Recognises "Redis cannot be reached" among the errors of ioredis, so that a request that
 * needs Redis (a throttle, a rate limit, a revocation's announcement) answers 503 instead of
 * 500 while it is away:
 * - a command sent while the client is not connected (no offline queue: redis.module.ts);
 * - a command whose connection closed before its reply;
 * - a command that waited through its reconnection attempts (maxRetriesPerRequest);
 * - a command without a reply in time (REDIS_COMMAND_TIMEOUT_MS);
 * - a Redis that cannot take writes now: a read-only replica (after a failover, or a stale
 *   endpoint), one still loading its data, one whose master is down, one out of memory
 *   (maxmemory with noeviction) or one refusing writes because its snapshots fail (MISCONF).
 */
const UNAVAILABLE_MESSAGES =
  /^(Stream isn't writeable and enableOfflineQueue options is false|Connection is closed\.|Command timed out)$|^(READONLY|LOADING|MASTERDOWN|OOM|MISCONF) /;

export function isRedisUnavailable(error: unknown, depth = 0): boolean {
  if (depth > 5 || !(error instanceof Error)) return false;
  if (error.name === 'MaxRetriesPerRequestError') return true;
  if (UNAVAILABLE_MESSAGES.test(error.message)) return true;
  return isRedisUnavailable(error.cause, depth + 1);
}
