import { Catch, type ArgumentsHost } from '@nestjs/common';
import type { Request } from 'express';
import { AllExceptionsFilter } from '../common/errors/all-exceptions.filter.js';
import { AppError, retryAfter } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { unavailableDependency } from '../common/errors/unavailable.js';

/**
 * The OAuth form endpoints' errors (contract v2 §0.8): RFC 6749 §5.2's body merged with v1's,
 * `{statusCode, error, message, code, error_description}`, where `error` is the OAuth error
 * code (the only place it is not the HTTP reason phrase) and `message` = `error_description`.
 */

/** RFC 6749 §5.2, RFC 6750 §3.1 and the contract's non-standard `too_many_requests`. */
export type OAuthErrorName =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_scope'
  | 'unsupported_grant_type'
  | 'unauthorized_client'
  | 'insufficient_scope'
  | 'too_many_requests'
  | 'temporarily_unavailable'
  | 'server_error';

/** The v1 `code` of each OAuth error (UPPER_SNAKE of it, but for 429). */
const CODE_OF: Record<Exclude<OAuthErrorName, 'temporarily_unavailable' | 'server_error'>, ErrorCode> = {
  invalid_request: ErrorCode.INVALID_REQUEST,
  invalid_client: ErrorCode.INVALID_CLIENT,
  invalid_scope: ErrorCode.INVALID_SCOPE,
  unsupported_grant_type: ErrorCode.UNSUPPORTED_GRANT_TYPE,
  unauthorized_client: ErrorCode.UNAUTHORIZED_CLIENT,
  insufficient_scope: ErrorCode.INSUFFICIENT_SCOPE,
  too_many_requests: ErrorCode.TOO_MANY_ATTEMPTS,
};

/** On every response of the form endpoints, errors included (RFC 6749 §5.1). */
export const NO_STORE: Readonly<Record<string, string>> = { 'Cache-Control': 'no-store', Pragma: 'no-cache' };

/** The client-authentication challenge of a 401 invalid_client (RFC 6749 §5.2, RFC 7617). */
export const BASIC_CHALLENGE = 'Basic realm="gatehouse"';

/**
 * An OAuth error. `description` must stay within RFC 6749's error_description characters
 * (printable ASCII without `"` and `\`): it never carries what the caller sent unchecked.
 */
export function oauthError(
  error: Exclude<OAuthErrorName, 'temporarily_unavailable' | 'server_error'>,
  description: string,
  opts: { code?: ErrorCode; headers?: Record<string, string> } = {},
): AppError {
  return new AppError(
    opts.code ?? CODE_OF[error],
    description,
    { ...NO_STORE, ...opts.headers },
    { error, extra: { error_description: description } },
  );
}

export const invalidRequest = (description: string): AppError => oauthError('invalid_request', description);

/**
 * 401 invalid_client: the same bytes and headers for every cause (no credentials, malformed
 * ones, unknown client, wrong, expired or revoked secret, disabled client or service user).
 */
export const invalidClient = (): AppError =>
  oauthError('invalid_client', 'Client authentication failed', { headers: { 'WWW-Authenticate': BASIC_CHALLENGE } });

/** 413 for a body over the limit: `error` stays an OAuth code, `code` is v1's. */
export const bodyTooLarge = (limitBytes: number): AppError =>
  oauthError('invalid_request', `Request body larger than ${limitBytes} bytes`, { code: ErrorCode.PAYLOAD_TOO_LARGE });

/**
 * Whatever else fails on an OAuth endpoint leaves in the OAuth shape too: the throttle's 429
 * becomes `too_many_requests`, an unavailable database `temporarily_unavailable` (503 with
 * Retry-After, as everywhere). An unexpected error keeps the global filter's generic 500 (it is
 * logged there with its stack).
 */
export function asOAuthError(exception: unknown): unknown {
  if (exception instanceof AppError) {
    if (exception.errorName !== undefined) return exception;
    const status = exception.status;
    const error: OAuthErrorName =
      status === 429
        ? 'too_many_requests'
        : status === 503
          ? 'temporarily_unavailable'
          : status >= 500
            ? 'server_error'
            : status === 401
              ? 'invalid_client'
              : status === 403
                ? 'insufficient_scope'
                : 'invalid_request';
    return new AppError(
      exception.code,
      exception.detail,
      { ...NO_STORE, ...exception.headers },
      {
        ...(status === 401 || status === 403 ? { status } : {}),
        error,
        extra: { error_description: exception.message, ...exception.extra },
      },
    );
  }
  const away = unavailableDependency(exception);
  if (away) {
    return new AppError(
      away.code,
      away.message,
      { ...NO_STORE, ...retryAfter(5) },
      { error: 'temporarily_unavailable', extra: { error_description: away.message } },
    );
  }
  return exception;
}

/**
 * The global filter, with asOAuthError() first: on the OAuth form endpoints' controller. A
 * dependency out of reach is logged here, as the global filter logs it elsewhere: once it is
 * an OAuth error, the global filter sees an answer, not the failure behind it.
 */
@Catch()
export class OAuthExceptionFilter extends AllExceptionsFilter {
  override catch(exception: unknown, host: ArgumentsHost): void {
    const away = unavailableDependency(exception);
    if (away) this.logUnavailable(away, exception, host.switchToHttp().getRequest<Request>());
    super.catch(asOAuthError(exception), host);
  }
}
