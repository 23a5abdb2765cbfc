import { createCipheriv, createDecipheriv, createHash, createHmac } from 'node:crypto';
import { pooledRandomBytes } from '../common/random-pool.js';

/**
 * Refresh tokens: 32 random bytes (256 bits) in base64url, opaque to clients. The database
 * stores only their SHA-256 (a fast hash is right here: the input is high-entropy, so
 * there is nothing to brute-force; bcrypt would truncate and is pointlessly slow).
 */
const TOKEN_BYTES = 32;
const TOKEN_FORMAT = /^[A-Za-z0-9_-]{43}$/;
const SEAL_INFO = Buffer.from('gatehouse refresh successor v1');
/** HKDF-Expand's only block for a 32-byte key: T(1) = HMAC(PRK, info ‖ 0x01). */
const SEAL_INFO_BLOCK = Buffer.concat([SEAL_INFO, Buffer.from([1])]);
/** HKDF-Extract with no salt: a string of HashLen zeros (RFC 5869 §2.2). */
const NO_SALT = Buffer.alloc(32);

export function newRefreshToken(): string {
  return pooledRandomBytes(TOKEN_BYTES).toString('base64url');
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
  const iv = pooledRandomBytes(12);
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

/**
 * HKDF-SHA-256 (RFC 5869) of the token, no salt, SEAL_INFO, 32 bytes: exactly
 * `hkdfSync('sha256', token, '', SEAL_INFO, 32)`, written as its two HMACs because
 * hkdfSync costs about twice as much per call (it runs as a crypto job), on every refresh.
 */
function sealKey(token: string): Buffer {
  const prk = createHmac('sha256', NO_SALT).update(token, 'utf8').digest();
  return createHmac('sha256', prk).update(SEAL_INFO_BLOCK).digest();
}
