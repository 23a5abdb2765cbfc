import { Injectable, RequestMethod, type NestMiddleware } from '@nestjs/common';
import bodyParser from 'body-parser';
import type { NextFunction, Request, Response } from 'express';
import typeis from 'type-is';
import type { AppError } from '../common/errors/app-error.js';
import { NO_STORE, bodyTooLarge, invalidRequest } from './oauth-errors.js';

/** The OAuth endpoints that take form bodies (contract v2 §0.8), exempt from JsonBodyMiddleware. */
export const OAUTH_FORM_ROUTES = [
  { path: 'oauth/token', method: RequestMethod.POST },
  { path: 'oauth/introspect', method: RequestMethod.POST },
  { path: 'oauth/revoke', method: RequestMethod.POST },
] as const;

/** Largest accepted form body (over it: 413). */
export const FORM_LIMIT_BYTES = 16 * 1024;
/** Most parameters in one form (more: 400 invalid_request). */
export const FORM_PARAMETER_LIMIT = 20;

const FORM = 'application/x-www-form-urlencoded';
const parseForm = bodyParser.urlencoded({
  extended: false,
  limit: FORM_LIMIT_BYTES,
  parameterLimit: FORM_PARAMETER_LIMIT,
});

/** The parameters of an OAuth request: each at most once, never empty (RFC 6749 §3.1). */
export type OAuthForm = Readonly<Record<string, string>>;

/** A parameter name safe to repeat in an error_description. */
const PRINTABLE_NAME = /^[A-Za-z0-9_.:-]{1,40}$/;

/**
 * The body of /oauth/token, /oauth/introspect and /oauth/revoke (contract v2 §0.8, RFC 6749
 * §3.2): `application/x-www-form-urlencoded` only, at most 16 KiB (413) and 20 parameters;
 * any other type (JSON included), a repeated parameter or a body that does not parse is 400
 * `invalid_request`. Parameters without a value count as absent (RFC 6749 §3.1). The result
 * is a null-prototype record of strings on `req.body`. Every response of these endpoints,
 * errors included, is `Cache-Control: no-store` + `Pragma: no-cache` (RFC 6749 §5.1), set
 * here before anything can fail.
 */
@Injectable()
export class OAuthFormMiddleware implements NestMiddleware {
  async use(req: Request, res: Response, next: NextFunction): Promise<void> {
    for (const [name, value] of Object.entries(NO_STORE)) res.setHeader(name, value);
    const hasBody = typeis.hasBody(req) && req.headers['content-length'] !== '0';
    const type = req.headers['content-type'];
    // The declared type decides, body or not (type-is answers null for a request without a body).
    if ((hasBody || type !== undefined) && typeis.is(type ?? '', [FORM]) !== FORM) {
      throw invalidRequest(`The body must be ${FORM}`);
    }
    if (!hasBody) {
      req.body = Object.create(null) as OAuthForm;
      return next();
    }
    // A declared length over the limit is refused unread (body-parser would first wait for
    // the whole declared body); the connection closes after the 413.
    if (Number(req.headers['content-length']) > FORM_LIMIT_BYTES) {
      res.setHeader('Connection', 'close');
      throw bodyTooLarge(FORM_LIMIT_BYTES);
    }
    await new Promise<void>((resolve, reject) => {
      parseForm(req, res, (err?: unknown) => (err ? reject(toOAuthError(err)) : resolve()));
    });
    req.body = formOf(req.body);
    next();
  }
}

/**
 * The parsed body as a record of non-empty strings. With `extended: false` a repeated
 * parameter arrives as an array (and nothing else but a string can arrive): 400, as is a
 * NUL character anywhere.
 */
function formOf(parsed: unknown): OAuthForm {
  const form = Object.create(null) as Record<string, string>;
  if (parsed === null || typeof parsed !== 'object') return form;
  for (const [name, value] of Object.entries(parsed)) {
    if (typeof value !== 'string') {
      throw invalidRequest(
        PRINTABLE_NAME.test(name) ? `Parameter ${name} is repeated` : 'A parameter is repeated or malformed',
      );
    }
    // No OAuth parameter can hold a NUL (RFC 6749 Appendix A: printable characters at most);
    // PostgreSQL would refuse one in a text value.
    if (value.includes('\u0000') || name.includes('\u0000')) {
      throw invalidRequest(PRINTABLE_NAME.test(name) ? `Parameter ${name} holds a NUL character` : 'A NUL character');
    }
    if (value !== '') form[name] = value;
  }
  return form;
}

function toOAuthError(err: unknown): AppError {
  const type = (err as { type?: unknown }).type;
  if (type === 'entity.too.large') return bodyTooLarge(FORM_LIMIT_BYTES);
  if (type === 'parameters.too.many') return invalidRequest(`More than ${FORM_PARAMETER_LIMIT} parameters`);
  if (type === 'charset.unsupported' || type === 'encoding.unsupported') {
    return invalidRequest('Unsupported charset or content encoding');
  }
  return invalidRequest('Malformed form body');
}
