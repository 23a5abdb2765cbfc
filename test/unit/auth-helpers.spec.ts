import { createHmac } from 'node:crypto';
import bcrypt from 'bcrypt';
import { describe, expect, it } from 'vitest';
import { assertOriginAllowed } from '../../src/auth/auth.service.js';
import { passwordLength } from '../../src/common/account-rules.js';
import { PasswordHasher } from '../../src/accounts/password-hasher.service.js';
import { refreshCookie } from '../../src/auth/refresh-cookie.js';
import { parseConfig } from '../../src/config/config.schema.js';
import type { SecretsService } from '../../src/config/secrets.service.js';
import { AppError } from '../../src/common/errors/app-error.js';
import type { UsersRepository } from '../../src/accounts/users.repository.js';

describe('refreshCookie', () => {
  it('has exactly the attributes of the contract, in order', () => {
    const token = 'A'.repeat(43);
    expect(refreshCookie(token, 1209600, true)).toBe(
      `refresh_token=${token}; Max-Age=1209600; Path=/auth; HttpOnly; Secure; SameSite=Strict`,
    );
    expect(refreshCookie(token, 60, false)).toBe(
      `refresh_token=${token}; Max-Age=60; Path=/auth; HttpOnly; SameSite=Strict`,
    );
  });

  it('floors Max-Age to whole seconds and never goes below 0', () => {
    expect(refreshCookie('x', 59.9, true)).toContain('Max-Age=59;');
    expect(refreshCookie('', -5, true)).toBe(
      'refresh_token=; Max-Age=0; Path=/auth; HttpOnly; Secure; SameSite=Strict',
    );
  });
});

describe('assertOriginAllowed', () => {
  const own = 'https://api.example.com';
  const allowed = ['https://app.example.com'];
  const check = (origin: string | undefined) => () => assertOriginAllowed(origin, own, allowed);

  it('lets through a request without Origin, from the server itself, or from an allowed origin', () => {
    expect(check(undefined)).not.toThrow();
    expect(check(own)).not.toThrow();
    expect(check('https://app.example.com')).not.toThrow();
  });

  it.each([
    'https://evil.example',
    'https://app.example.com.evil.example',
    'http://app.example.com',
    'https://app.example.com:8443',
    'null',
    '',
  ])('refuses %j with 403 ORIGIN_NOT_ALLOWED', (origin) => {
    let thrown: unknown;
    try {
      check(origin)();
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(AppError);
    expect((thrown as AppError).status).toBe(403);
    expect((thrown as AppError).code).toBe('ORIGIN_NOT_ALLOWED');
  });
});

describe('passwordLength', () => {
  it('counts code points, not UTF-16 units or bytes', () => {
    expect(passwordLength('password')).toBe(8);
    expect(passwordLength('😀'.repeat(8))).toBe(8);
    expect(passwordLength('é')).toBe(1);
  });
});

/** Stored hashes whose most common cost is `cost` (null: no users). */
const storedCost = (cost: number | null | (() => Promise<number | null>)) =>
  ({ mostCommonPasswordCost: typeof cost === 'function' ? cost : async () => cost }) as unknown as UsersRepository;

describe('PasswordHasher', () => {
  const hasher = (cost: number, stored: number | null = null) =>
    new PasswordHasher(
      parseConfig({ BCRYPT_COST: String(cost) }),
      { passwordPepper: Buffer.from('p'.repeat(32)) } as SecretsService,
      storedCost(stored),
    );

  it('tells apart passwords that share their first 72 bytes', async () => {
    const h = hasher(4);
    const stem = '😀'.repeat(18); // 72 bytes of UTF-8
    const hash = await h.hash(`${stem}one`);
    expect(await h.verify(`${stem}one`, hash)).toBe(true);
    expect(await h.verify(`${stem}two`, hash)).toBe(false);
    expect(await h.verify(stem, hash)).toBe(false);
    // Plain bcrypt would not: this is what the pre-hash is for.
    const plain = await bcrypt.hash(`${stem}one`, 4);
    expect(await bcrypt.compare(`${stem}two`, plain)).toBe(true);
  });

  it('never verifies against "no such user", even after hashing the dummy', async () => {
    const h = hasher(4);
    await h.onApplicationBootstrap();
    expect(await h.verify('gatehouse-dummy-password', null)).toBe(false);
    expect(await h.verify('anything at all', null)).toBe(false);
  });

  it('needs a re-hash only when the stored cost is below the configured one', async () => {
    const low = await hasher(4).hash('some password');
    const high = await hasher(5).hash('some password');
    expect(hasher(5).needsRehash(low)).toBe(true);
    expect(hasher(5).needsRehash(high)).toBe(false);
    expect(hasher(4).needsRehash(high)).toBe(false);
  });

  it('depends on the pepper: a hash made under another pepper does not verify', async () => {
    const other = new PasswordHasher(
      parseConfig({ BCRYPT_COST: String(4) }),
      { passwordPepper: Buffer.from('q'.repeat(32)) } as SecretsService,
      storedCost(null),
    );
    const hash = await other.hash('some password');
    expect(await hasher(4).verify('some password', hash)).toBe(false);
    expect(await other.verify('some password', hash)).toBe(true);
  });
  it('makes the dummy hash at the cost most stored hashes have, BCRYPT_COST without users', async () => {
    const raised = hasher(10, 4); // users hashed at 4, then BCRYPT_COST raised to 10
    await raised.onApplicationBootstrap();
    expect(raised.dummyHashCost).toBe(4);
    const empty = hasher(5, null);
    await empty.onApplicationBootstrap();
    expect(empty.dummyHashCost).toBe(5);
    const unreadable = new PasswordHasher(
      parseConfig({ BCRYPT_COST: String(5) }),
      { passwordPepper: Buffer.from('p'.repeat(32)) } as SecretsService,
      storedCost(() => Promise.reject(new Error('database away'))),
    );
    await unreadable.onApplicationBootstrap();
    expect(unreadable.dummyHashCost).toBe(5);
  });

  it('makes the dummy hash again when the most common stored cost changes', async () => {
    let cost = 4;
    const h = new PasswordHasher(
      parseConfig({ BCRYPT_COST: String(6) }),
      { passwordPepper: Buffer.from('p'.repeat(32)) } as SecretsService,
      storedCost(async () => cost),
    );
    await h.onApplicationBootstrap();
    expect(h.dummyHashCost).toBe(4);
    cost = 6; // most hashes upgraded at login
    await h.refreshDummyHash();
    expect(h.dummyHashCost).toBe(6);
  });

  describe('Unicode normalisation (NFC)', () => {
    const composed = 'caf\u00e9 cr\u00e8me br\u00fbl\u00e9e';
    const decomposed = composed.normalize('NFD');

    it('treats the composed and decomposed forms as one password', async () => {
      expect(decomposed).not.toBe(composed);
      const h = hasher(4);
      for (const [stored, typed] of [
        [composed, decomposed],
        [decomposed, composed],
        [decomposed, decomposed],
      ] as const) {
        const hash = await h.hash(stored);
        expect(await h.verifyWithRehash(typed, hash)).toEqual({ ok: true, rehash: false });
      }
      expect(await h.verify('cafe cr\u00e8me br\u00fbl\u00e9e', await h.hash(composed))).toBe(false);
    });

    it('still verifies a hash made from the raw (pre-NFC) string, and asks for a rehash', async () => {
      const h = hasher(4);
      const pepper = Buffer.from('p'.repeat(32));
      const legacy = await bcrypt.hash(createHmac('sha256', pepper).update(decomposed, 'utf8').digest('base64'), 4);
      expect(await h.verifyWithRehash(decomposed, legacy)).toEqual({ ok: true, rehash: true });
      // Typed in another form than at sign-up, a pre-NFC hash cannot be matched (as before).
      expect(await h.verifyWithRehash(composed, legacy)).toEqual({ ok: false, rehash: false });
      expect(await h.verifyWithRehash('wrong password', legacy)).toEqual({ ok: false, rehash: false });
      // The rehash is made from the NFC form: both forms verify against it.
      const upgraded = await h.hash(decomposed);
      expect(await h.verify(composed, upgraded)).toBe(true);
    });

    it('reports a cost upgrade as a rehash too, and never a rehash for an unknown user', async () => {
      const low = await hasher(4).hash(composed);
      expect(await hasher(5).verifyWithRehash(composed, low)).toEqual({ ok: true, rehash: true });
      const h = hasher(4);
      await h.onApplicationBootstrap();
      expect(await h.verifyWithRehash(decomposed, null)).toEqual({ ok: false, rehash: false });
      expect(await h.verifyWithRehash('gatehouse-dummy-password', null)).toEqual({ ok: false, rehash: false });
    });
  });
});
