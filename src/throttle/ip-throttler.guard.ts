import { Injectable, type ExecutionContext } from '@nestjs/common';
import { ThrottlerGuard, type ThrottlerLimitDetail } from '@nestjs/throttler';
import { AppError, retryAfter } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';

/**
 * @nestjs/throttler per client IP (req.ip: X-Forwarded-For only as TRUST_PROXY allows),
 * answering in the contract's shape with Retry-After.
 */
@Injectable()
export class IpThrottlerGuard extends ThrottlerGuard {
  protected override async throwThrottlingException(
    _context: ExecutionContext,
    detail: ThrottlerLimitDetail,
  ): Promise<void> {
    throw new AppError(
      ErrorCode.TOO_MANY_REQUESTS,
      'Too many requests; retry later',
      retryAfter(detail.timeToBlockExpire),
    );
  }
}
