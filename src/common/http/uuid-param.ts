import { ParseUUIDPipe, type ArgumentMetadata } from '@nestjs/common';
import { AppError } from '../errors/app-error.js';
import { ErrorCode } from '../errors/error-codes.js';

/**
 * A UUID path parameter, in its canonical lower-case form: the same id written in upper
 * case must name the same thing everywhere (cache keys, comparisons with a caller's id).
 */
class CanonicalUuidPipe extends ParseUUIDPipe {
  override async transform(value: string, metadata: ArgumentMetadata): Promise<string> {
    const id: unknown = await super.transform(value, metadata);
    return typeof id === 'string' ? id.toLowerCase() : value;
  }
}

/** A path id that is not a UUID names nothing: 404, like an id that does not exist. */
export const uuidParam = (what: string, code: ErrorCode = ErrorCode.NOT_FOUND) =>
  new CanonicalUuidPipe({ exceptionFactory: () => new AppError(code, `No such ${what}`) });
