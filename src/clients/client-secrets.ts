import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Client ids and secrets (contract v2 §C). A secret is 256 random bits, so its SHA-256 is
 * enough at rest (no stretching: bcrypt would cap the token endpoint near 5 requests a
 * second per core), and it is compared in constant time with every live secret of the client.
 */

/** RFC 4648 base32 alphabet. */
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
/** `c_` + 20 base32 characters (100 random bits). */
export const CLIENT_ID_PATTERN = /^c_[A-Z2-7]{20}$/;
/** `gcs_` + 43 base64url characters (32 random bytes); the prefix lets secret scanners find leaks. */
export const CLIENT_SECRET_PATTERN = /^gcs_[A-Za-z0-9_-]{43}$/;
/** How many leading characters of a secret are kept to recognise it (`gcs_` + 4). */
const PREFIX_LENGTH = 8;

/** A new public client id: `c_` + 20 characters A–Z2–7 from the CSPRNG. */
export function newClientId(): string {
  // 256 is a multiple of 32: the low 5 bits of a random byte are uniform.
  const bytes = randomBytes(20);
  let id = 'c_';
  for (const b of bytes) id += BASE32[b & 31];
  return id;
}

/** A new client secret: `gcs_` + 32 random bytes in base64url (43 characters). */
export function newClientSecret(): string {
  return `gcs_${randomBytes(32).toString('base64url')}`;
}

/** SHA-256 of the whole secret string (what is stored). */
export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** The first characters of a secret (`gcs_AbCd`): enough to recognise it, never to use it. */
export function secretPrefix(secret: string): string {
  return secret.slice(0, PREFIX_LENGTH);
}

/** Compared against when a client has no live secret (or does not exist): the same work either way. */
const DUMMY_HASH = hashSecret(newClientSecret());

/**
 * The index in `storedHashes` of the hash of `presented`, or -1. One SHA-256 and a
 * `timingSafeEqual` against every stored hash (no early exit), or against a dummy when
 * there is none, so an unknown client costs what a known one does.
 */
export function matchesSecret(presented: string, storedHashes: readonly Uint8Array[]): number {
  const hash = hashSecret(presented);
  const candidates = storedHashes.length > 0 ? storedHashes : [DUMMY_HASH];
  let found = -1;
  candidates.forEach((stored, i) => {
    const equal = stored.length === hash.length && timingSafeEqual(hash, stored);
    if (equal && found === -1 && storedHashes.length > 0) found = i;
  });
  return found;
}
