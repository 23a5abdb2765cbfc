import { STATUS_CODES } from 'node:http';
import { ArgumentsHost, Catch, HttpException, HttpStatus, Logger, type ExceptionFilter } from '@nestjs/common';
import type { Request, Response } from 'express';
import { AppError } from './app-error.js';
import { ErrorCode } from './error-codes.js';
import { unavailableDependency, type Unavailable } from './unavailable.js';

export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string | string[];
  code: string;
}

const DEFAULT_CODES: Record<number, ErrorCode> = {
  400: ErrorCode.VALIDATION_FAILED,
  401: ErrorCode.UNAUTHORIZED,
  403: ErrorCode.FORBIDDEN,
  404: ErrorCode.NOT_FOUND,
  413: ErrorCode.PAYLOAD_TOO_LARGE,
  415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
  429: ErrorCode.TOO_MANY_REQUESTS,
  503: ErrorCode.SERVICE_UNAVAILABLE,
};

/**
 * The one place where failures become HTTP responses: domain exceptions, Nest's HTTP
 * exceptions, validation errors and anything unexpected all leave in the contract's shape
 * `{statusCode, error, message, code}`. Unexpected errors are logged with the request id and
 * answered with a generic 500 (503 when the database or Redis cannot be reached): no stack, no SQL.
 * The log line has the error (type, message, stack), the method and the path without its
 * query string (which may hold a token); never the request's body or headers.
 */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<Request>();
    const res = ctx.getResponse<Response>();
    const { body, headers } = this.toResponse(exception, req);
    if (res.headersSent) {
      res.end();
      return;
    }
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    res.status(body.statusCode).json(body);
  }

  private toResponse(exception: unknown, req: Request): { body: ErrorBody; headers: Record<string, string> } {
    if (exception instanceof AppError) {
      // A 503 is a known condition (a dependency away), said in one line where it is found;
      // any other 5xx is unexpected and logged with its stack.
      if (exception.status >= 500 && exception.status !== 503) this.logUnexpected(exception, req);
      return {
        body: {
          ...this.body(exception.status, exception.detail, exception.code),
          ...(exception.errorName === undefined ? {} : { error: exception.errorName }),
          ...exception.extra,
        },
        headers: { ...exception.headers },
      };
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const response = exception.getResponse();
      const message =
        typeof response === 'object' && response !== null && 'message' in response
          ? (response as { message: string | string[] }).message
          : exception.message;
      const code =
        typeof response === 'object' && response !== null && typeof (response as { code?: unknown }).code === 'string'
          ? (response as { code: string }).code
          : (DEFAULT_CODES[status] ?? (status >= 500 ? ErrorCode.INTERNAL_ERROR : 'ERROR'));
      if (status >= 500) this.logUnexpected(exception, req);
      // VALIDATION_FAILED's message is always a list (one entry per problem), also when the
      // framework said it in a sentence (e.g. the router's "Failed to decode param" for a
      // path whose percent-encoding is malformed).
      const said = code === ErrorCode.VALIDATION_FAILED && typeof message === 'string' ? [message] : message;
      return { body: this.body(status, said, code), headers: {} };
    }
    const requestId = req.id ?? 'unknown';
    // A dependency out of reach: 503 with Retry-After, logged as a warning.
    const away = unavailableDependency(exception);
    if (away) {
      this.logUnavailable(away, exception, req);
      return {
        body: this.body(HttpStatus.SERVICE_UNAVAILABLE, away.message, away.code),
        headers: { 'Retry-After': '5' },
      };
    }
    this.logUnexpected(exception, req);
    return {
      body: this.body(
        HttpStatus.INTERNAL_SERVER_ERROR,
        `Internal error (request id ${requestId})`,
        ErrorCode.INTERNAL_ERROR,
      ),
      headers: {},
    };
  }

  private body(statusCode: number, message: string | string[], code: string): ErrorBody {
    return { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message, code };
  }

  /**
   * A dependency out of reach, found in `exception`: one warning line, or the error's log with
   * its stack when the wait may be a fault of its own (an expired transaction, see Unavailable).
   */
  protected logUnavailable(away: Unavailable, exception: unknown, req: Request): void {
    if (away.logAsError) this.logUnexpected(exception, req);
    else this.logger.warn(`${away.what} unavailable: ${describe(exception)}`, { reqId: req.id ?? 'unknown' });
  }

  private logUnexpected(exception: unknown, req: Request): void {
    const url = req.originalUrl ?? req.url;
    const path = url.split('?', 1)[0];
    this.logger.error(`${req.method} ${path}: ${describe(exception)}`, { err: exception, reqId: req.id ?? 'unknown' });
  }
}

function describe(exception: unknown): string {
  return exception instanceof Error ? `${exception.name}: ${exception.message}` : String(exception);
}
