import { randomBytes } from 'node:crypto';
import { Secret } from 'otpauth';
import { describe, expect, it } from 'vitest';
import { base32Decode, matchingStep, newTotpSecret, totpCode } from '../../src/mfa/totp.js';

/** RFC 6238 Appendix B: the SHA-1 seed is the ASCII string "12345678901234567890". */
const RFC_SECRET = new Uint8Array(Buffer.from('12345678901234567890', 'ascii'));
const STEP = 30_000;

describe('TOTP (RFC 6238)', () => {
  it.each([
    [59, '94287082'],
    [1111111109, '07081804'],
    [1111111111, '14050471'],
    [1234567890, '89005924'],
    [2000000000, '69279037'],
    [20000000000, '65353130'],
  ])('Appendix B, SHA-1, 8 digits: T = %i s gives %s', (seconds, expected) => {
    expect(totpCode(RFC_SECRET, seconds * 1000, 8)).toBe(expected);
  });

  it('6 digits by default: the last 6 digits of the 8-digit value (same HOTP truncation)', () => {
    expect(totpCode(RFC_SECRET, 59_000)).toBe('287082');
    expect(totpCode(RFC_SECRET, 1_111_111_109_000)).toBe('081804');
    expect(totpCode(RFC_SECRET, 1_234_567_890_000)).toMatch(/^\d{6}$/);
  });

  it('a step is 30 s from T0 = 0: the code changes exactly at multiples of 30 s', () => {
    const start = 1_700_000_010 * 1000; // a multiple of 30 s
    expect(start % STEP).toBe(0);
    expect(totpCode(RFC_SECRET, start)).toBe(totpCode(RFC_SECRET, start + STEP - 1));
    expect(totpCode(RFC_SECRET, start)).not.toBe(totpCode(RFC_SECRET, start - 1));
    expect(totpCode(RFC_SECRET, start)).not.toBe(totpCode(RFC_SECRET, start + STEP));
  });

  it('new secrets are 20 random bytes', () => {
    const secrets = Array.from({ length: 50 }, newTotpSecret);
    for (const s of secrets) expect(s).toHaveLength(20);
    expect(new Set(secrets.map((s) => Buffer.from(s).toString('hex'))).size).toBe(50);
  });
});

describe('matchingStep', () => {
  // Mid-step, so that ±n steps are unambiguous.
  const now = 1_700_000_025_000;
  const step = Math.floor(now / STEP);

  it.each([0, 1, 2])('window %i: accepts every step within ±window and answers its number', (window) => {
    for (let d = -window; d <= window; d++) {
      const code = totpCode(RFC_SECRET, now + d * STEP);
      expect(matchingStep(RFC_SECRET, code, now, window), `offset ${d}`).toBe(step + d);
    }
  });

  it.each([0, 1, 2])('window %i: refuses the steps just outside, ±(window+1)', (window) => {
    for (const d of [-(window + 1), window + 1, -(window + 2), window + 2]) {
      const code = totpCode(RFC_SECRET, now + d * STEP);
      // (A code of a far step may equal a near one by chance; not for this fixed secret and time.)
      const near = Array.from({ length: 2 * window + 1 }, (_, i) => totpCode(RFC_SECRET, now + (i - window) * STEP));
      expect(near).not.toContain(code);
      expect(matchingStep(RFC_SECRET, code, now, window), `offset ${d}`).toBeNull();
    }
  });

  it('answers the same step number whatever instant of the step it is asked at', () => {
    const code = totpCode(RFC_SECRET, step * STEP);
    expect(matchingStep(RFC_SECRET, code, step * STEP, 0)).toBe(step);
    expect(matchingStep(RFC_SECRET, code, step * STEP + STEP - 1, 0)).toBe(step);
    expect(matchingStep(RFC_SECRET, code, (step + 1) * STEP, 1)).toBe(step);
    expect(matchingStep(RFC_SECRET, code, (step + 1) * STEP, 0)).toBeNull();
  });

  it('refuses a wrong code and anything not 6 digits', () => {
    const code = totpCode(RFC_SECRET, now);
    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
    expect(matchingStep(RFC_SECRET, wrong, now, 0)).toBeNull();
    const other = new Uint8Array(randomBytes(20));
    expect(matchingStep(other, code, now, 0) === null || totpCode(other, now) === code).toBe(true);
    const dashed = `${code.slice(0, 3)}-${code.slice(3)}`;
    for (const bad of ['', '12345', '1234567', `${code}0`, dashed, code.replace(/\d$/, 'a'), '１２３４５６']) {
      expect(matchingStep(RFC_SECRET, bad, now, 2), `input ${JSON.stringify(bad)}`).toBeNull();
    }
    // Whitespace is not part of a code: as an app shows it, or pasted with a line break.
    expect(matchingStep(RFC_SECRET, code, now, 0)).toBe(step);
    for (const typed of [`${code} `, ` ${code}`, `${code.slice(0, 3)} ${code.slice(3)}`, `\t${code}\r\n`]) {
      expect(matchingStep(RFC_SECRET, typed, now, 0), `input ${JSON.stringify(typed)}`).toBe(step);
    }
    // The 8-digit value of the step is not a 6-digit code.
    expect(matchingStep(RFC_SECRET, totpCode(RFC_SECRET, now, 8), now, 1)).toBeNull();
  });
});

describe('base32 (RFC 4648, as in the otpauth URI)', () => {
  it('decodes the RFC 4648 vectors and the RFC 6238 seed', () => {
    expect(Buffer.from(base32Decode('MZXW6YTBOI')).toString('ascii')).toBe('foobar');
    expect(Buffer.from(base32Decode('MZXW6')).toString('ascii')).toBe('foo');
    expect(Buffer.from(base32Decode('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'))).toEqual(Buffer.from(RFC_SECRET));
  });

  it('round-trips random secrets: 20 bytes are 32 characters without padding', () => {
    for (let i = 0; i < 50; i++) {
      const bytes = newTotpSecret();
      const text = new Secret({ buffer: Uint8Array.from(bytes).buffer }).base32;
      expect(text).toMatch(/^[A-Z2-7]{32}$/);
      expect(Buffer.from(base32Decode(text))).toEqual(Buffer.from(bytes));
      // Codes from the decoded secret are the codes of the original.
      expect(totpCode(base32Decode(text), 1_700_000_000_000)).toBe(totpCode(bytes, 1_700_000_000_000));
    }
  });
});
