import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/config.schema.js';
import { SecretsService } from '../../src/config/secrets.service.js';
import { newRecoveryCode, normaliseRecoveryCode, recoveryCodeHash } from '../../src/mfa/recovery-codes.js';
import { SecretBox } from '../../src/mfa/secret-box.js';

const PEPPER = 'unit-pepper-0123456789-0123456789-01234';
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A SecretBox as the server builds it, on a DATA_DIR of its own (or the one given). */
function boxFor(env: Record<string, string>, dataDir?: string) {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'gatehouse-mfa-'));
  if (!dataDir) dirs.push(dir);
  const config = parseConfig({ PASSWORD_PEPPER: PEPPER, DATA_DIR: dir, ...env });
  return { box: new SecretBox(config, new SecretsService(config)), dir };
}

const hexKey = () => randomBytes(32).toString('hex');
const USER = '0a422200-b9d3-4201-b830-6c256e25e55e';
const OTHER = '1b533311-cae4-4312-c941-7d367f36f66f';

describe('SecretBox (TOTP secrets at rest, AES-256-GCM)', () => {
  const secret = new Uint8Array(randomBytes(20));

  it('opens what it sealed, and the ciphertext holds nothing of the secret', () => {
    const { box } = boxFor({ MFA_ENCRYPTION_KEYS: hexKey() });
    const { sealed, keyId } = box.seal(secret, USER);
    expect(Buffer.from(sealed).includes(Buffer.from(secret))).toBe(false);
    expect(sealed.length).toBe(12 + 16 + 20);
    expect(box.open(sealed, keyId, USER)).toEqual(secret);
    // A fresh IV each time: the same secret never seals to the same bytes.
    expect(Buffer.from(box.seal(secret, USER).sealed).equals(Buffer.from(sealed))).toBe(false);
  });

  it("refuses a ciphertext moved to another user's row, tampered with, or under an unknown key", () => {
    const { box } = boxFor({ MFA_ENCRYPTION_KEYS: hexKey() });
    const { sealed, keyId } = box.seal(secret, USER);
    expect(box.open(sealed, keyId, OTHER)).toBeNull();
    const flipped = new Uint8Array(sealed);
    flipped[flipped.length - 1]! ^= 1;
    expect(box.open(flipped, keyId, USER)).toBeNull();
    expect(box.open(sealed, 'not-a-key-id', USER)).toBeNull();
    expect(box.open(sealed.subarray(0, 10), keyId, USER)).toBeNull();
  });

  it('rotates: a new first key encrypts, the old one still decrypts; a removed key decrypts nothing', () => {
    const [oldKey, newKey] = [hexKey(), hexKey()];
    const before = boxFor({ MFA_ENCRYPTION_KEYS: oldKey }).box;
    const old = before.seal(secret, USER);
    const rotated = boxFor({ MFA_ENCRYPTION_KEYS: `${newKey}, ${oldKey}` }).box;
    expect(rotated.currentKeyId).not.toBe(old.keyId);
    expect(rotated.seal(secret, USER).keyId).toBe(rotated.currentKeyId);
    expect(rotated.open(old.sealed, old.keyId, USER)).toEqual(secret);
    expect(boxFor({ MFA_ENCRYPTION_KEYS: newKey }).box.open(old.sealed, old.keyId, USER)).toBeNull();
  });

  it('reads keys in hex or base64(url), all naming the same key the same way', () => {
    const raw = randomBytes(32);
    const ids = [raw.toString('hex'), raw.toString('base64'), raw.toString('base64url')].map(
      (k) => boxFor({ MFA_ENCRYPTION_KEYS: k }).box.currentKeyId,
    );
    expect(new Set(ids).size).toBe(1);
  });

  it('without MFA_ENCRYPTION_KEYS generates one key into DATA_DIR/secrets and keeps using it', () => {
    const { box, dir } = boxFor({});
    const file = join(dir, 'secrets', 'mfa-encryption-key');
    expect(readFileSync(file, 'utf8')).toMatch(/^[0-9a-f]{64}$/);
    const sealed = box.seal(secret, USER);
    const again = boxFor({}, dir).box;
    expect(again.currentKeyId).toBe(box.currentKeyId);
    // Configuring keys later loses nothing: the generated key still decrypts, after them.
    const configured = boxFor({ MFA_ENCRYPTION_KEYS: hexKey() }, dir).box;
    expect(configured.currentKeyId).not.toBe(box.currentKeyId);
    expect(configured.open(sealed.sealed, sealed.keyId, USER)).toEqual(secret);
  });

  it('in production without MFA_ENCRYPTION_KEYS derives the key from the pepper: the same on every instance', () => {
    const prod = { NODE_ENV: 'production', JWT_SECRETS: 'x'.repeat(40) };
    const a = boxFor(prod).box;
    const b = boxFor(prod).box; // another DATA_DIR: another instance
    const sealed = a.seal(secret, USER);
    expect(b.open(sealed.sealed, sealed.keyId, USER)).toEqual(secret);
    expect(boxFor({ ...prod, PASSWORD_PEPPER: `${PEPPER}-other` }).box.currentKeyId).not.toBe(a.currentKeyId);
    // Then configured keys: the derived key still decrypts what it sealed.
    expect(boxFor({ ...prod, MFA_ENCRYPTION_KEYS: hexKey() }).box.open(sealed.sealed, sealed.keyId, USER)).toEqual(
      secret,
    );
  });
});

describe('MFA_ENCRYPTION_KEYS validation', () => {
  it.each([
    ['too short', 'abcd'],
    ['31 bytes of hex', 'ab'.repeat(31)],
    ['not hex nor base64', 'z'.repeat(64)],
    ['a bad second key', `${'ab'.repeat(32)},nope`],
  ])('refuses %s, naming the variable and the key', (_name, value) => {
    let caught: unknown;
    try {
      parseConfig({ MFA_ENCRYPTION_KEYS: value });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).problems).toEqual([
      expect.stringMatching(/^MFA_ENCRYPTION_KEYS: key \d is not 32 bytes/),
    ]);
  });

  it('refuses an MFA_ISSUER with a colon, and MFA_TOTP_WINDOW beyond 2', () => {
    expect(() => parseConfig({ MFA_ISSUER: 'Acme: prod' })).toThrow(/MFA_ISSUER/);
    expect(() => parseConfig({ MFA_TOTP_WINDOW: '3' })).toThrow(/MFA_TOTP_WINDOW/);
  });
});

describe('recovery codes', () => {
  it('are XXXXX-XXXXX in Crockford base32, and differ', () => {
    const codes = Array.from({ length: 200 }, newRecoveryCode);
    for (const c of codes) expect(c).toMatch(/^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$/);
    expect(new Set(codes).size).toBe(codes.length);
  });

  it('use every symbol of the alphabet (no bias towards a subset)', () => {
    const seen = new Set(Array.from({ length: 400 }, newRecoveryCode).join('').replace(/-/g, ''));
    expect(seen.size).toBe(32);
  });

  it.each([
    ['K3V9Q-7XM2D', 'K3V9Q7XM2D'],
    ['k3v9q7xm2d', 'K3V9Q7XM2D'],
    [' k3v9q 7xm2d ', 'K3V9Q7XM2D'],
    ['O0IL1-ABCDE', '00111ABCDE'],
    ['oiloi-abcde', '01101ABCDE'],
  ])('normalise %j to %j', (input, expected) => {
    expect(normaliseRecoveryCode(input)).toBe(expected);
  });

  it.each([['K3V9Q-7XM2'], ['K3V9Q-7XM2DD'], ['K3V9Q-7XM2U'], ['K3V9Q–7XM2D'], ['ＫＳＶ９Ｑ７ＸＭ２Ｄ'], ['']])(
    'refuse %j (wrong length or a character outside the alphabet)',
    (input) => {
      expect(normaliseRecoveryCode(input)).toBeNull();
    },
  );

  it('hash per user and per pepper: the same code of two users, or under two peppers, differs', () => {
    const pepper = Buffer.from(PEPPER);
    const a = recoveryCodeHash(pepper, USER, 'K3V9Q7XM2D');
    expect(a).toHaveLength(32);
    expect(recoveryCodeHash(pepper, USER, 'K3V9Q7XM2D').equals(a)).toBe(true);
    expect(recoveryCodeHash(pepper, OTHER, 'K3V9Q7XM2D').equals(a)).toBe(false);
    expect(recoveryCodeHash(Buffer.from(`${PEPPER}x`), USER, 'K3V9Q7XM2D').equals(a)).toBe(false);
  });
});
