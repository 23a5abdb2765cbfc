import bcrypt from 'bcrypt';
import { describe, expect, it } from 'vitest';
import { assertOriginAllowed } from '../../src/auth/auth.service.js';
import { passwordLength } from '../../src/auth/dto/password.validator.js';
import { PasswordHasher } from '../../src/auth/passwords/password-hasher.service.js';
import { refreshCookie } from '../../src/auth/sessions/refresh-cookie.js';
import type { AppConfig } from '../../src/config/config.schema.js';
import type { SecretsService } from '../../src/config/secrets.service.js';
import { AppException } from '../../src/common/errors/app.exception.js';

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
    expect(thrown).toBeInstanceOf(AppException);
    expect((thrown as AppException).getStatus()).toBe(403);
    expect((thrown as AppException).code).toBe('ORIGIN_NOT_ALLOWED');
  });
});

describe('passwordLength', () => {
  it('counts code points, not UTF-16 units or bytes', () => {
    expect(passwordLength('password')).toBe(8);
    expect(passwordLength('😀'.repeat(8))).toBe(8);
    expect(passwordLength('é')).toBe(1);
  });
});

describe('PasswordHasher', () => {
  const hasher = (cost: number) =>
    new PasswordHasher(
      { BCRYPT_COST: cost } as AppConfig,
      { passwordPepper: Buffer.from('p'.repeat(32)) } as SecretsService,
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
    await h.onModuleInit();
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
      { BCRYPT_COST: 4 } as AppConfig,
      { passwordPepper: Buffer.from('q'.repeat(32)) } as SecretsService,
    );
    const hash = await other.hash('some password');
    expect(await hasher(4).verify('some password', hash)).toBe(false);
    expect(await other.verify('some password', hash)).toBe(true);
  });
});
