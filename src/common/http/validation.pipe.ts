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
    for (const message of worthReading(e.constraints ?? {})) {
      out.push(message.startsWith(e.property) ? message.replace(e.property, path) : `${path}: ${message}`);
    }
    if (e.children?.length) out.push(...flatten(e.children, path));
  }
  return out;
}

/**
 * The failed checks of one property that tell the client something. A value of the wrong type
 * fails every check of its text as well (`{"username": 5}` was also "shorter than or equal to
 * 254 characters" and "longer than or equal to 1 characters"): the type is said alone, and so
 * is a list that is not one (`{"roles": 5}`). (Email fields carry no length rule of their own:
 * validator's isEmail refuses an address over 254 characters, RFC 5321 §4.5.3.1.3, so
 * `{"email": null}` gets one message.)
 */
function worthReading(constraints: Record<string, string>): string[] {
  // Not a list where one is expected: its items' rules (`each`) were tried on the value itself.
  if (constraints.isArray !== undefined) return [constraints.isArray];
  // A list's items each have their own problems: all of them are said (class-validator words
  // an `each` rule's default message "each value in <property> …").
  if (constraints.isString !== undefined && !constraints.isString.startsWith('each value in '))
    return [constraints.isString];
  return Object.values(constraints);
}

/** A UTF-16 surrogate without its pair. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** NUL, or a lone surrogate: text no database column or validator accepts. */
const unsafeText = (s: string): boolean => s.includes('\0') || LONE_SURROGATE.test(s);

/**
 * Names that every object inherits (`toString`, `hasOwnProperty`, `__proto__`, …) and
 * `prototype`: class-validator's whitelist looks a property up in a plain object of known
 * names, where these are always found, so `{"toString": 1}` or `?valueOf=1` passed as
 * known properties. Refused here as unknown ones, anywhere in a body or query.
 */
const INHERITED_NAMES = new Set([...Object.getOwnPropertyNames(Object.prototype), 'prototype']);

/**
 * Refuses (400) request text that is not storable Unicode before it reaches a validator or the
 * database: PostgreSQL rejects NUL in text (22021) and validator's isEmail throws URIError on
 * a lone surrogate, and both used to come out as 500. Also refuses the inherited names above.
 */
class TextSafeValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type !== 'custom') {
      const problem = refusedAt(value, metadata.type === 'body' ? '' : (metadata.data ?? metadata.type));
      if (problem !== undefined) throw new AppError(ErrorCode.VALIDATION_FAILED, [problem]);
    }
    return super.transform(value, metadata);
  }
}

/**
 * The first problem with a string (value or key) or a key, iteratively; undefined when none.
 * `root` names the value in the message about text; a refused key is named by its path in the
 * DTO, as class-validator names an unknown property.
 */
function refusedAt(value: unknown, root: string): string | undefined {
  const unsafe = (where: string) => `${where || 'body'} must not contain NUL characters or unpaired surrogates`;
  const stack: Array<[unknown, string, string]> = [[value, root, '']];
  while (stack.length > 0) {
    const [current, path, field] = stack.pop()!;
    if (typeof current === 'string') {
      if (unsafeText(current)) return unsafe(path);
    } else if (current !== null && typeof current === 'object') {
      const list = Array.isArray(current);
      for (const [key, child] of Object.entries(current)) {
        if (unsafeText(key)) return unsafe(path);
        const childField = field ? `${field}.${key}` : key;
        if (!list && INHERITED_NAMES.has(key)) return `${childField}: property ${key} should not exist`;
        stack.push([child, path ? `${path}.${key}` : key, childField]);
      }
    }
  }
  return undefined;
}
