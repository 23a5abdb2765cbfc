import type { AppConfig } from '../config/config.schema.js';

/**
 * The links mails carry, built only from configuration (APP_URL, or the VERIFY_EMAIL_URL and
 * PASSWORD_RESET_URL templates), never from the request's Host or X-Forwarded-Host (OWASP
 * Forgot Password Cheat Sheet). The token sits in the URL fragment: no server log and no
 * Referer ever sees it, and the page POSTs it (a GET never consumes a token).
 */
export function mailLink(config: AppConfig, kind: 'verify' | 'reset' | 'invitation', token: string): string {
  if (kind === 'invitation') return `${config.APP_URL}/accept-invitation#token=${encodeURIComponent(token)}`;
  const template =
    kind === 'verify'
      ? (config.VERIFY_EMAIL_URL ?? `${config.APP_URL}/verify-email#token={token}`)
      : (config.PASSWORD_RESET_URL ?? `${config.APP_URL}/reset-password#token={token}`);
  return template.replace('{token}', encodeURIComponent(token));
}
