import { createHmac, randomBytes } from 'node:crypto';

/**
 * Recovery codes: 10 characters of Crockford's base32 (50 random bits), shown once as
 * `XXXXX-XXXXX`. Stored as HMAC-SHA-256 under the pepper, not bcrypt: ten checks at
 * bcrypt cost would take seconds, and 50 random bits need no stretching.
 */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const LENGTH = 10;

export function newRecoveryCode(): string {
  // 32 symbols: each random byte's low 5 bits pick one without bias (256 is a multiple of 32).
  const bytes = randomBytes(LENGTH);
  let code = '';
  for (const b of bytes) code += ALPHABET[b & 31];
  return `${code.slice(0, 5)}-${code.slice(5)}`;
}

/**
 * The canonical form of a typed code, or null when it cannot be one: case ignored, hyphens
 * and spaces dropped, and the letters people confuse with digits read as those digits
 * (O→0, I and L→1, as Crockford's alphabet intends).
 */
export function normaliseRecoveryCode(input: string): string | null {
  const code = input.toUpperCase().replace(/[\s-]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1');
  if (code.length !== LENGTH) return null;
  for (const c of code) if (!ALPHABET.includes(c)) return null;
  return code;
}

/** What is stored for a user's (normalised) code; bound to the user, so equal codes of two users differ. */
export function recoveryCodeHash(pepper: Buffer, userId: string, normalised: string): Buffer {
  return createHmac('sha256', pepper).update(`gatehouse:recovery-code:${userId}:${normalised}`).digest();
}
