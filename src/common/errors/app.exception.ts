import { HttpException, HttpStatus } from '@nestjs/common';
import { ErrorCode } from './error-codes.js';

/**
 * A failure the client is told about: HTTP status + stable code + message.
 * The global filter renders it as `{statusCode, error, message, code}`.
 */
export class AppException extends HttpException {
  constructor(
    status: HttpStatus,
    readonly code: ErrorCode,
    message: string | string[],
    readonly headers: Record<string, string> = {},
  ) {
    super({ message, code }, status);
  }
}

export const badRequest = (code: ErrorCode, message: string | string[]) =>
  new AppException(HttpStatus.BAD_REQUEST, code, message);
export const unauthorized = (code: ErrorCode, message: string) =>
  new AppException(HttpStatus.UNAUTHORIZED, code, message);
export const forbidden = (code: ErrorCode, message: string) =>
  new AppException(HttpStatus.FORBIDDEN, code, message);
export const notFound = (code: ErrorCode, message: string) =>
  new AppException(HttpStatus.NOT_FOUND, code, message);
export const conflict = (code: ErrorCode, message: string) =>
  new AppException(HttpStatus.CONFLICT, code, message);
export const tooManyRequests = (code: ErrorCode, message: string, retryAfterSeconds: number) =>
  new AppException(HttpStatus.TOO_MANY_REQUESTS, code, message, {
    'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))),
  });
