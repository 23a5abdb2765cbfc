import { ParseUUIDPipe } from '@nestjs/common';
import { AppError } from '../errors/app-error.js';
import { ErrorCode } from '../errors/error-codes.js';

/** A path id that is not a UUID names nothing: 404, like an id that does not exist. */
export const uuidParam = (what: string, code: ErrorCode = ErrorCode.NOT_FOUND) =>
  new ParseUUIDPipe({ exceptionFactory: () => new AppError(code, `No such ${what}`) });
