import { randomBytes, randomFillSync } from 'node:crypto';

/** Bytes drawn from the CSPRNG at a time. */
const BLOCK_BYTES = 4096;
/** Larger requests are drawn on their own. */
const MAX_POOLED = 64;

let block = Buffer.alloc(0);
let used = 0;

/**
 * `n` bytes from node:crypto's CSPRNG, as randomBytes(n) gives, taken from a block drawn
 * 4 KiB at a time: one call into OpenSSL per 128 refresh tokens instead of one per token
 * (about 5 µs each, twice per refresh). Node's own randomUUID() buffers its randomness the
 * same way. A block is used once and then dropped, never filled again, so the bytes handed
 * out are never overwritten nor handed out twice.
 */
export function pooledRandomBytes(n: number): Buffer {
  if (n > MAX_POOLED) return randomBytes(n);
  if (used + n > block.length) {
    block = randomFillSync(Buffer.allocUnsafe(BLOCK_BYTES));
    used = 0;
  }
  const bytes = block.subarray(used, used + n);
  used += n;
  return bytes;
}
