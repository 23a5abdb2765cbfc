import { ERROR_STATUS, ErrorCode } from './error-codes.js';

/**
 * A failure the client is told about, by stable code (the contract's `code`) and message.
 * Whoever throws it names the code only: the HTTP status comes from ERROR_STATUS, in the
 * global filter, which renders `{statusCode, error, message, code}` plus these headers.
 */
export class AppError extends Error {
  override name = 'AppError';

  constructor(
    readonly code: ErrorCode,
    readonly detail: string | string[],
    readonly headers: Readonly<Record<string, string>> = {},
    private readonly options: AppErrorOptions = {},
  ) {
    super(Array.isArray(detail) ? detail.join('; ') : detail);
  }

  get status(): number {
    return this.options.status ?? ERROR_STATUS[this.code];
  }

  /** Fields the body carries beside the contract's four (e.g. MFA_REQUIRED's `mfaToken`). */
  get extra(): Readonly<Record<string, unknown>> {
    return this.options.extra ?? {};
  }

  /** The body's `error` when it is not the HTTP reason phrase (see AppErrorOptions.error). */
  get errorName(): string | undefined {
    return this.options.error;
  }
}

export interface AppErrorOptions {
  /**
   * Only for a code the contract answers with two statuses (INVALID_MFA_CODE: 403 on
   * authenticated routes, 401 on the login step); everything else takes ERROR_STATUS.
   */
  status?: 401 | 403;
  extra?: Readonly<Record<string, unknown>>;
  /**
   * The body's `error` in place of the HTTP reason phrase: only the OAuth form endpoints,
   * whose `error` is the RFC 6749 §5.2 error code (contract v2 §0.8).
   */
  error?: string;
}

/** `Retry-After` in whole seconds (an integer, never an HTTP date), at least 1. */
export const retryAfter = (seconds: number): Record<string, string> => ({
  'Retry-After': String(Math.max(1, Math.ceil(seconds))),
});

/** 401: the caller's account was deleted while its access token was still valid. */
export const accountGone = (): AppError => new AppError(ErrorCode.UNAUTHORIZED, 'The account no longer exists');

/** 404 USER_NOT_FOUND: no account with that id (routes that name a user). */
export const userNotFound = (): AppError => new AppError(ErrorCode.USER_NOT_FOUND, 'No such user');
