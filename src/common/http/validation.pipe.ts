import { ValidationPipe, type ValidationError } from '@nestjs/common';
import { badRequest } from '../errors/app.exception.js';
import { ErrorCode } from '../errors/error-codes.js';

/**
 * Strict validation of every body, query and param DTO: unknown properties are refused
 * (no mass assignment), types are checked and converted.
 */
export function validationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    transform: true,
    transformOptions: { enableImplicitConversion: false },
    validationError: { target: false, value: false },
    exceptionFactory: (errors: ValidationError[]) => badRequest(ErrorCode.VALIDATION_FAILED, flatten(errors)),
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
