import { ERROR_STATUS, type ErrorCode } from './error-codes.js';

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
}

export interface AppErrorOptions {
  /**
   * Only for a code the contract answers with two statuses (INVALID_MFA_CODE: 403 on
   * authenticated routes, 401 on the login step); everything else takes ERROR_STATUS.
   */
  status?: 401 | 403;
  extra?: Readonly<Record<string, unknown>>;
}

/** `Retry-After` in whole seconds (an integer, never an HTTP date), at least 1. */
export const retryAfter = (seconds: number): Record<string, string> => ({
  'Retry-After': String(Math.max(1, Math.ceil(seconds))),
});
