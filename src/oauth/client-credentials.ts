import { invalidClient, invalidRequest } from './oauth-errors.js';
import type { OAuthForm } from './oauth-form.middleware.js';

/** What a client presented to authenticate itself, decoded. */
export interface PresentedCredentials {
  clientId: string;
  secret: string;
}

/** RFC 7617 credentials: `Basic` and a token68 (base64, optionally padded). */
const BASIC = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The client's credentials (RFC 6749 §2.3.1), by exactly one method:
 * - `client_secret_basic`: `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`,
 *   split at the first colon, each part form-url-decoded (`+` is a space, then `%XX`);
 * - `client_secret_post`: the `client_id` and `client_secret` parameters.
 *
 * Both at once: 400 invalid_request (§2.3: one method per request); the body may still name
 * the Basic client in `client_id`, but no other. No credentials, an Authorization header of
 * another scheme or one that does not decode: 401 invalid_client, the same bytes as a wrong
 * secret. `client_id` without `client_secret` goes on with an empty secret (a failure like any
 * other, counted and answered the same).
 */
export function presentedCredentials(form: OAuthForm, authorization: string | undefined): PresentedCredentials {
  const postId = form.client_id;
  const postSecret = form.client_secret;
  if (authorization !== undefined) {
    const basic = decodeBasic(authorization);
    if (postSecret !== undefined || (postId !== undefined && postId !== basic?.clientId)) {
      throw invalidRequest('Use one client authentication method: Basic or the client_id and client_secret parameters');
    }
    if (!basic) throw invalidClient();
    return basic;
  }
  if (postId === undefined) throw invalidClient();
  return { clientId: postId, secret: postSecret ?? '' };
}

/** The id and secret of a `Basic` Authorization header, or null when it is not one or does not decode. */
export function decodeBasic(header: string): PresentedCredentials | null {
  const token = BASIC.exec(header)?.[1];
  if (token === undefined) return null;
  const bytes = Buffer.from(token, 'base64');
  // Node decodes leniently: only canonical base64 is taken (no stray bits, right padding).
  if (bytes.toString('base64').replace(/=+$/, '') !== token.replace(/=+$/, '')) return null;
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return null;
  }
  const colon = text.indexOf(':');
  if (colon < 0) return null;
  const clientId = formDecode(text.slice(0, colon));
  const secret = formDecode(text.slice(colon + 1));
  return clientId === null || secret === null || clientId === '' ? null : { clientId, secret };
}

/** application/x-www-form-urlencoded decoding of one value: `+` is a space, then `%XX` (UTF-8). */
export function formDecode(value: string): string | null {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return null;
  }
}
