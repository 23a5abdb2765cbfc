import { Injectable, type NestMiddleware } from '@nestjs/common';
import bodyParser from 'body-parser';
import type { NextFunction, Request, Response } from 'express';
import typeis from 'type-is';
import { AppError } from '../errors/app-error.js';
import { ErrorCode } from '../errors/error-codes.js';

/** Largest accepted body (contract: over 16 KiB → 413). */
export const BODY_LIMIT_BYTES = 16 * 1024;
/**
 * Bodies are read up to this size so that a deeply nested one is recognised as such (400)
 * even when it is also too large (10,000 levels take 20–60 KB): nesting is the more precise
 * diagnosis. Anything larger is refused unread with 413.
 */
const READ_LIMIT_BYTES = 64 * 1024;
/** Deepest accepted nesting. No route takes more than 2 levels; this leaves ample room. */
export const MAX_JSON_DEPTH = 32;

const readBody = bodyParser.raw({ limit: READ_LIMIT_BYTES, type: () => true });

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
      throw new AppError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, 'Request bodies must be application/json');
    }
    const charset = charsetOf(req);
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      throw new AppError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, 'JSON must be UTF-8');
    }
    // A declared length over the read limit is refused at once, unread: body-parser would
    // first read off (and wait for) the whole declared body, so that a client announcing
    // gigabytes held the connection until requestTimeout. The connection closes after the 413.
    if (Number(req.headers['content-length']) > READ_LIMIT_BYTES) {
      res.setHeader('Connection', 'close');
      throw new AppError(ErrorCode.PAYLOAD_TOO_LARGE, `Request body larger than ${BODY_LIMIT_BYTES} bytes`);
    }
    await new Promise<void>((resolve, reject) => {
      readBody(req, res, (err?: unknown) => (err ? reject(toHttpError(err)) : resolve()));
    });
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    // Scanned before parsing: a deep body never reaches JSON.parse or any recursive code.
    if (nestingExceeds(raw, MAX_JSON_DEPTH)) {
      throw new AppError(ErrorCode.MALFORMED_JSON, `JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
    }
    if (raw.length > BODY_LIMIT_BYTES) {
      throw new AppError(ErrorCode.PAYLOAD_TOO_LARGE, `Request body larger than ${BODY_LIMIT_BYTES} bytes`);
    }
    req.body = parseStrict(raw.toString('utf8'));
    // class-transformer drops these keys before validation sees them, so `forbidNonWhitelisted`
    // would let them pass silently; they are unknown properties (and prototype-pollution bait).
    const forbidden = forbiddenKey(req.body);
    if (forbidden !== undefined) {
      throw new AppError(ErrorCode.VALIDATION_FAILED, [`${forbidden}: property ${forbidden} should not exist`]);
    }
    next();
  }
}

function toHttpError(err: unknown): AppError {
  const type = (err as { type?: string }).type;
  if (type === 'entity.too.large') {
    return new AppError(ErrorCode.PAYLOAD_TOO_LARGE, `Request body larger than ${BODY_LIMIT_BYTES} bytes`);
  }
  if (type === 'charset.unsupported' || type === 'encoding.unsupported') {
    return new AppError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, 'Unsupported charset or content encoding');
  }
  return new AppError(ErrorCode.MALFORMED_JSON, 'Malformed JSON body');
}

/** Only an object or an array at the top (as body-parser's `strict`); 400 otherwise. */
function parseStrict(text: string): unknown {
  const first = text.trimStart()[0];
  if (first === '{' || first === '[') {
    try {
      return JSON.parse(text);
    } catch {
      // fall through
    }
  }
  throw new AppError(ErrorCode.MALFORMED_JSON, 'Malformed JSON body');
}

function charsetOf(req: Request): string | undefined {
  const match = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(req.headers['content-type'] ?? '');
  return match?.[1]?.toLowerCase();
}

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * True when the JSON text nests objects/arrays deeper than `max` (a linear scan that skips
 * strings; it does not validate — JSON.parse does that afterwards).
 */
export function nestingExceeds(json: Uint8Array, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > max) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
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
