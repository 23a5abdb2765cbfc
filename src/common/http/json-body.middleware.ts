import { HttpStatus, Injectable, type NestMiddleware } from '@nestjs/common';
import bodyParser from 'body-parser';
import type { NextFunction, Request, Response } from 'express';
import typeis from 'type-is';
import { AppException } from '../errors/app.exception.js';
import { ErrorCode } from '../errors/error-codes.js';

/** Largest accepted body (contract: over 16 KiB → 413). */
export const BODY_LIMIT_BYTES = 16 * 1024;
/** Deepest accepted nesting. No route takes more than 2 levels; this leaves ample room. */
export const MAX_JSON_DEPTH = 32;

const parseJson = bodyParser.json({ limit: BODY_LIMIT_BYTES, strict: true, type: () => true });

/**
 * JSON in, and only JSON: a request that carries a body must say `application/json`
 * (415 otherwise), fit in 16 KiB (413), parse (400) and stay shallow (400: a deeply nested
 * body must never reach recursive code such as validation and overflow the stack).
 * Runs as a Nest middleware so that its failures go through the global error filter.
 */
@Injectable()
export class JsonBodyMiddleware implements NestMiddleware {
  async use(req: Request, res: Response, next: NextFunction): Promise<void> {
    // A request without a body (or an empty one, as fetch sends for a bare POST) needs no type.
    if (!typeis.hasBody(req) || req.headers['content-length'] === '0') return next();
    if (!typeis(req, ['application/json', 'application/*+json'])) {
      throw new AppException(
        HttpStatus.UNSUPPORTED_MEDIA_TYPE,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        'Request bodies must be application/json',
      );
    }
    await new Promise<void>((resolve, reject) => {
      parseJson(req, res, (err?: unknown) => (err ? reject(toHttpError(err)) : resolve()));
    });
    if (exceedsDepth(req.body, MAX_JSON_DEPTH)) {
      throw new AppException(HttpStatus.BAD_REQUEST, ErrorCode.MALFORMED_JSON, `JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
    }
    // class-transformer drops these keys before validation sees them, so `forbidNonWhitelisted`
    // would let them pass silently; they are unknown properties (and prototype-pollution bait).
    const forbidden = forbiddenKey(req.body);
    if (forbidden !== undefined) {
      throw new AppException(HttpStatus.BAD_REQUEST, ErrorCode.VALIDATION_FAILED, [`property ${forbidden} should not exist`]);
    }
    next();
  }
}

function toHttpError(err: unknown): AppException {
  const type = (err as { type?: string }).type;
  if (type === 'entity.too.large') {
    return new AppException(HttpStatus.PAYLOAD_TOO_LARGE, ErrorCode.PAYLOAD_TOO_LARGE, `Request body larger than ${BODY_LIMIT_BYTES} bytes`);
  }
  if (type === 'charset.unsupported' || type === 'encoding.unsupported') {
    return new AppException(HttpStatus.UNSUPPORTED_MEDIA_TYPE, ErrorCode.UNSUPPORTED_MEDIA_TYPE, 'Unsupported charset or content encoding');
  }
  return new AppException(HttpStatus.BAD_REQUEST, ErrorCode.MALFORMED_JSON, 'Malformed JSON body');
}

/** Iterative (no recursion, so no stack overflow) depth check of a parsed JSON value. */
export function exceedsDepth(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!;
    if (current === null || typeof current !== 'object') continue;
    if (depth > max) return true;
    for (const child of Object.values(current)) stack.push([child, depth + 1]);
  }
  return false;
}

const FORBIDDEN_KEYS = ['__proto__', 'constructor', 'prototype'];

/** The first own `__proto__`/`constructor`/`prototype` key anywhere in a parsed JSON value (iterative). */
export function forbiddenKey(value: unknown): string | undefined {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const current = stack.pop();
    if (current === null || typeof current !== 'object') continue;
    for (const key of FORBIDDEN_KEYS) if (Object.hasOwn(current, key)) return key;
    for (const child of Object.values(current)) stack.push(child);
  }
  return undefined;
}
