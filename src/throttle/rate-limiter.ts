import { Injectable } from '@nestjs/common';
import { InjectThrottlerStorage, type ThrottlerStorage } from '@nestjs/throttler';
import { AppError, retryAfter } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';

/**
 * Fixed-window request limits on arbitrary keys (mail requests per identifier or address,
 * token submissions per address ...), on the same storage as the per-IP request limits:
 * this process, or Redis so that every instance counts the same requests.
 */
@Injectable()
export class RateLimiter {
  constructor(@InjectThrottlerStorage() private readonly storage: ThrottlerStorage) {}

  /** Counts one request under `key`; 429 TOO_MANY_REQUESTS + Retry-After beyond `limit` per window. */
  async hit(key: string, limit: number, windowMs: number): Promise<void> {
    const record = await this.storage.increment(key, windowMs, limit, windowMs, 'limit');
    if (record.totalHits > limit) {
      throw new AppError(
        ErrorCode.TOO_MANY_REQUESTS,
        'Too many requests; retry later',
        retryAfter(record.timeToExpire),
      );
    }
  }
}
