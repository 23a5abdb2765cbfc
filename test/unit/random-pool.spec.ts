import { describe, expect, it } from 'vitest';
import { pooledRandomBytes } from '../../src/common/random-pool.js';

describe('pooledRandomBytes', () => {
  it('gives the length asked for, pooled or drawn on its own', () => {
    for (const n of [1, 12, 32, 64, 65, 300]) expect(pooledRandomBytes(n)).toHaveLength(n);
  });

  it('never hands out the same bytes twice, across many blocks', () => {
    const seen = new Set<string>();
    // 2,000 × 32 bytes: about 16 blocks of 4 KiB.
    for (let i = 0; i < 2000; i++) seen.add(pooledRandomBytes(32).toString('hex'));
    expect(seen.size).toBe(2000);
  });

  it('never overwrites bytes already handed out', () => {
    const first = Array.from({ length: 50 }, () => pooledRandomBytes(32));
    const copies = first.map((b) => Buffer.from(b));
    for (let i = 0; i < 1000; i++) pooledRandomBytes(32);
    first.forEach((b, i) => expect(b.equals(copies[i]!)).toBe(true));
  });

  it('looks random: each bit value about half the time over 64 KiB', () => {
    let ones = 0;
    const total = 2048 * 32 * 8;
    for (let i = 0; i < 2048; i++)
      for (const byte of pooledRandomBytes(32)) for (let b = 0; b < 8; b++) ones += (byte >> b) & 1;
    // Binomial(524,288, ½): the standard deviation is 362 bits; 10 of them is never reached by chance.
    expect(Math.abs(ones - total / 2)).toBeLessThan(3620);
  });
});
