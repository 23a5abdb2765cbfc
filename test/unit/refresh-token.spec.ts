import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  hashRefreshToken,
  isWellFormedRefreshToken,
  newRefreshToken,
  openSuccessor,
  sealSuccessor,
} from '../../src/sessions/refresh-token.js';

describe('refresh tokens', () => {
  it('are 43 base64url characters (256 random bits), never repeating', () => {
    const tokens = Array.from({ length: 200 }, newRefreshToken);
    for (const t of tokens) {
      expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(t, 'base64url')).toHaveLength(32);
    }
    expect(new Set(tokens).size).toBe(tokens.length);
  });

  it('are recognised as well-formed only in that exact shape', () => {
    expect(isWellFormedRefreshToken(newRefreshToken())).toBe(true);
    for (const bad of [
      '',
      'short',
      'A'.repeat(42),
      'A'.repeat(44),
      `${'A'.repeat(42)}=`,
      `${'A'.repeat(42)}+`,
      undefined,
      42,
      null,
    ]) {
      expect(isWellFormedRefreshToken(bad)).toBe(false);
    }
  });

  it('are hashed with SHA-256 of their text', () => {
    const t = newRefreshToken();
    expect(hashRefreshToken(t).equals(createHash('sha256').update(t).digest())).toBe(true);
    expect(hashRefreshToken(t)).toHaveLength(32);
  });
});

describe('sealSuccessor / openSuccessor', () => {
  it('opens with the previous token and gives back the successor', () => {
    const previous = newRefreshToken();
    const successor = newRefreshToken();
    expect(openSuccessor(previous, sealSuccessor(previous, successor))).toBe(successor);
  });

  it('does not contain the successor in any readable form and differs every time (random IV)', () => {
    const previous = newRefreshToken();
    const successor = newRefreshToken();
    const a = sealSuccessor(previous, successor);
    const b = sealSuccessor(previous, successor);
    expect(a.equals(b)).toBe(false);
    for (const form of [Buffer.from(successor), Buffer.from(successor, 'base64url')])
      expect(a.includes(form)).toBe(false);
    expect(openSuccessor(previous, b)).toBe(successor);
  });

  it('does not open with any other token', () => {
    const sealed = sealSuccessor(newRefreshToken(), newRefreshToken());
    expect(openSuccessor(newRefreshToken(), sealed)).toBeNull();
  });

  it('does not open once tampered with (IV, tag or ciphertext), nor when truncated', () => {
    const previous = newRefreshToken();
    const sealed = sealSuccessor(previous, newRefreshToken());
    for (const index of [0, 11, 12, 27, 28, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[index]! ^= 0x01;
      expect(openSuccessor(previous, bad), `byte ${index}`).toBeNull();
    }
    expect(openSuccessor(previous, sealed.subarray(0, 28))).toBeNull();
    expect(openSuccessor(previous, new Uint8Array(0))).toBeNull();
  });

  it('accepts the sealed value as a plain Uint8Array (as the database returns it)', () => {
    const previous = newRefreshToken();
    const successor = newRefreshToken();
    const sealed = new Uint8Array(sealSuccessor(previous, successor));
    expect(openSuccessor(previous, sealed)).toBe(successor);
  });
});

describe('the successor seal key', () => {
  it('is HKDF-SHA-256 as hkdfSync derives it: seals made with that key open, and the reverse', async () => {
    const { createCipheriv, hkdfSync, randomBytes } = await import('node:crypto');
    const info = Buffer.from('gatehouse refresh successor v1');
    for (let i = 0; i < 20; i++) {
      const previous = newRefreshToken();
      const successor = newRefreshToken();
      const key = Buffer.from(hkdfSync('sha256', Buffer.from(previous, 'utf8'), Buffer.alloc(0), info, 32));
      // A seal made with the reference key (as the code before stored them) opens.
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const ciphertext = Buffer.concat([cipher.update(successor, 'utf8'), cipher.final()]);
      expect(openSuccessor(previous, Buffer.concat([iv, cipher.getAuthTag(), ciphertext]))).toBe(successor);
      // And one made now opens with the reference key.
      const sealed = sealSuccessor(previous, successor);
      const { createDecipheriv } = await import('node:crypto');
      const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
      decipher.setAuthTag(sealed.subarray(12, 28));
      expect(Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()]).toString('utf8')).toBe(successor);
    }
  });
});
