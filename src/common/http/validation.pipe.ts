import { ValidationPipe, type ArgumentMetadata, type ValidationError } from '@nestjs/common';
import { AppError } from '../errors/app-error.js';
import { ErrorCode } from '../errors/error-codes.js';

/**
 * Strict validation of every body, query and param DTO: unknown properties are refused
 * (no mass assignment), types are checked and converted.
 */
export function validationPipe(): ValidationPipe {
  return new TextSafeValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    transform: true,
    transformOptions: { enableImplicitConversion: false },
    validationError: { target: false, value: false },
    exceptionFactory: (errors: ValidationError[]) => new AppError(ErrorCode.VALIDATION_FAILED, flatten(errors)),
  });
}

function flatten(errors: ValidationError[], prefix = ''): string[] {
  const out: string[] = [];
  for (const e of errors) {
    const path = prefix ? `${prefix}.${e.property}` : e.property;
    for (const message of Object.values(e.constraints ?? {})) {
      out.push(message.startsWith(e.property) ? message.replace(e.property, path) : `${path}: ${message}`);
    }
    if (e.children?.length) out.push(...flatten(e.children, path));
  }
  return out;
}

/** A UTF-16 surrogate without its pair. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** NUL, or a lone surrogate: text no database column or validator accepts. */
const unsafeText = (s: string): boolean => s.includes('\0') || LONE_SURROGATE.test(s);

/**
 * Refuses (400) request text that is not storable Unicode before it reaches a validator or the
 * database: PostgreSQL rejects NUL in text (22021) and validator's isEmail throws URIError on
 * a lone surrogate, and both used to come out as 500.
 */
class TextSafeValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type !== 'custom') {
      const where = unsafeTextAt(value, metadata.type === 'body' ? '' : (metadata.data ?? metadata.type));
      if (where !== undefined) {
        throw new AppError(ErrorCode.VALIDATION_FAILED, [
          `${where || 'body'} must not contain NUL characters or unpaired surrogates`,
        ]);
      }
    }
    return super.transform(value, metadata);
  }
}

/** Path of the first string (value or key) with unsafe text, iteratively; undefined when none. */
function unsafeTextAt(value: unknown, root: string): string | undefined {
  const stack: Array<[unknown, string]> = [[value, root]];
  while (stack.length > 0) {
    const [current, path] = stack.pop()!;
    if (typeof current === 'string') {
      if (unsafeText(current)) return path;
    } else if (current !== null && typeof current === 'object') {
      for (const [key, child] of Object.entries(current)) {
        const childPath = path ? `${path}.${key}` : key;
        if (unsafeText(key)) return path || 'body';
        stack.push([child, childPath]);
      }
    }
  }
  return undefined;
}
