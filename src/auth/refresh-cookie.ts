import type { Response } from 'express';

export const REFRESH_COOKIE = 'refresh_token';
/** Sent only to the refresh/logout endpoints, never to the rest of the API. */
export const REFRESH_COOKIE_PATH = '/auth';

/**
 * The one cookie Gatehouse sets, exactly as the contract says:
 * `refresh_token=<token>; Max-Age=<s>; Path=/auth; HttpOnly; Secure; SameSite=Strict`.
 * HttpOnly keeps it from scripts, SameSite=Strict from cross-site requests (OWASP Session
 * Management Cheat Sheet). `Secure` can be dropped with COOKIE_SECURE=false for plain-http
 * development away from localhost. The token is base64url, so it needs no encoding.
 */
export function refreshCookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return [
    `${REFRESH_COOKIE}=${value}`,
    `Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}`,
    `Path=${REFRESH_COOKIE_PATH}`,
    'HttpOnly',
    ...(secure ? ['Secure'] : []),
    'SameSite=Strict',
  ].join('; ');
}

export function setRefreshCookie(res: Response, token: string, maxAgeSeconds: number, secure: boolean): void {
  res.setHeader('Set-Cookie', refreshCookie(token, maxAgeSeconds, secure));
}

export function clearRefreshCookie(res: Response, secure: boolean): void {
  res.setHeader('Set-Cookie', refreshCookie('', 0, secure));
}

/**
 * A response that opens or renews a session: the rotated refresh cookie, and no caching of
 * the access token in the body (login, signup, refresh, the login's second step).
 */
export function sendSessionCookie(res: Response, token: string, maxAgeSeconds: number, secure: boolean): void {
  setRefreshCookie(res, token, maxAgeSeconds, secure);
  res.setHeader('Cache-Control', 'no-store');
}
