import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';

/**
 * Refresh tokens: 32 random bytes (256 bits) in base64url, opaque to clients. The database
 * stores only their SHA-256 (a fast hash is right here: the input is high-entropy, so
 * there is nothing to brute-force; bcrypt would truncate and is pointlessly slow).
 */
const TOKEN_BYTES = 32;
const TOKEN_FORMAT = /^[A-Za-z0-9_-]{43}$/;
const SEAL_INFO = Buffer.from('gatehouse refresh successor v1');

export function newRefreshToken(): string {
  return randomBytes(TOKEN_BYTES).toString('base64url');
}

export function isWellFormedRefreshToken(token: unknown): token is string {
  return typeof token === 'string' && TOKEN_FORMAT.test(token);
}

export function hashRefreshToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * Seals `successor` under a key derived (HKDF-SHA-256) from `previous`, which the server
 * does not keep: only a holder of the previous token can recover the successor. This is
 * what lets a client that presents the just-rotated token within the grace window receive
 * the very same successor (several tabs refreshing at once end with one cookie value).
 * AES-256-GCM with a random 96-bit IV.
 */
export function sealSuccessor(previous: string, successor: string): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', sealKey(previous), iv);
  const ciphertext = Buffer.concat([cipher.update(successor, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), ciphertext]);
}

/** The successor sealed by sealSuccessor, or null when the seal does not open with `previous`. */
export function openSuccessor(previous: string, sealed: Uint8Array): string | null {
  const buf = Buffer.from(sealed);
  if (buf.length < 12 + 16 + 1) return null;
  try {
    const decipher = createDecipheriv('aes-256-gcm', sealKey(previous), buf.subarray(0, 12));
    decipher.setAuthTag(buf.subarray(12, 28));
    return Buffer.concat([decipher.update(buf.subarray(28)), decipher.final()]).toString('utf8');
  } catch {
    return null;
  }
}

function sealKey(token: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(token, 'utf8'), Buffer.alloc(0), SEAL_INFO, 32));
}
