/** What the machine-client tests share: form encoding, client authentication, fixtures. */

export const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
export const FORM = 'application/x-www-form-urlencoded';
export const GRANT = { grant_type: 'client_credentials' };

/** The answer of POST /oauth/clients. */
export interface Created {
  client: { id: string; clientId: string; serviceUserId: string; allowedScopes: string[] };
  secret: { id: string; value: string; expiresAt: string | null };
}

/** application/x-www-form-urlencoded encoding of one value (RFC 6749 Appendix B): space as `+`. */
export const formEncode = (value: string): string =>
  encodeURIComponent(value)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');

/** `Authorization: Basic` of the form-encoded id and secret (RFC 6749 §2.3.1). */
export const basic = (id: string, secret: string, encode: (s: string) => string = formEncode) => ({
  Authorization: `Basic ${Buffer.from(`${encode(id)}:${encode(secret)}`, 'utf8').toString('base64')}`,
});

/** A form body, in the order given (a repeated name stays repeated). */
export const form = (fields: Array<[string, string]> | Record<string, string>): string =>
  (Array.isArray(fields) ? fields : Object.entries(fields))
    .map(([k, v]) => `${formEncode(k)}=${formEncode(v)}`)
    .join('&');
