import { createHmac, randomBytes } from 'node:crypto';
import { Secret, TOTP } from 'otpauth';

/**
 * TOTP as authenticator apps read it (RFC 6238 defaults): HMAC-SHA-1, 6 digits, 30-second
 * steps from T0 = 0, 20-byte secrets (RFC 4226 §4 recommends 160 bits). The arithmetic is
 * the `otpauth` package's; time always comes from the caller (the app's injectable clock).
 */
export const TOTP_ALGORITHM = 'SHA1';
export const TOTP_DIGITS = 6;
export const TOTP_PERIOD = 30;
const SECRET_BYTES = 20;

/** Node's HMAC instead of the package's portable one: same result, native speed. */
const hmac = (algorithm: string, key: Uint8Array, message: Uint8Array): Uint8Array =>
  createHmac(algorithm.toLowerCase().replace('-', ''), key).update(message).digest();

export function newTotpSecret(): Uint8Array {
  return new Uint8Array(randomBytes(SECRET_BYTES));
}

/** RFC 4648 base32 without padding, as in the otpauth:// URI and for manual entry. */
export function base32(secret: Uint8Array): string {
  return new Secret({ buffer: toArrayBuffer(secret) }).base32;
}

export function base32Decode(text: string): Uint8Array {
  return new Uint8Array(Secret.fromBase32(text).buffer);
}

/** The `otpauth://totp/<issuer>:<username>?…` URI an authenticator app scans. */
export function totpUri(secret: Uint8Array, opts: { issuer: string; username: string }): string {
  return new TOTP({
    issuer: opts.issuer,
    label: opts.username,
    algorithm: TOTP_ALGORITHM,
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD,
    secret: new Secret({ buffer: toArrayBuffer(secret) }),
  }).toString();
}

/** The time step (counter) of an instant. */
export function totpStepAt(nowMs: number): number {
  return Math.floor(nowMs / 1000 / TOTP_PERIOD);
}

/** The code of the step containing `nowMs` (tests, and the RFC 6238 vectors with 8 digits). */
export function totpCode(secret: Uint8Array, nowMs: number, digits = TOTP_DIGITS): string {
  return TOTP.generate({
    secret: new Secret({ buffer: toArrayBuffer(secret) }),
    algorithm: TOTP_ALGORITHM,
    digits,
    period: TOTP_PERIOD,
    timestamp: nowMs,
    hmac,
  });
}

/**
 * A TOTP code as typed, without its whitespace ("123 456" as some apps show it, a pasted
 * " 123456\n"), when six digits remain; null otherwise.
 */
export function totpCodeOf(typed: string): string | null {
  const code = typed.replace(/\s+/g, '');
  return /^\d{6}$/.test(code) ? code : null;
}

/**
 * The time step whose code `typed` is (whitespace ignored), within ±`window` steps of `nowMs`,
 * or null. The caller accepts it only if it is newer than the last step used (the replay rule).
 */
export function matchingStep(secret: Uint8Array, typed: string, nowMs: number, window: number): number | null {
  const code = totpCodeOf(typed);
  if (code === null) return null;
  const delta = TOTP.validate({
    token: code,
    secret: new Secret({ buffer: toArrayBuffer(secret) }),
    algorithm: TOTP_ALGORITHM,
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD,
    timestamp: nowMs,
    window,
    hmac,
  });
  return delta === null ? null : totpStepAt(nowMs) + delta;
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
