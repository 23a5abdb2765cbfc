import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import { InjectConfig } from '../config/config.token.js';
import { parseMfaKey, type AppConfig } from '../config/config.schema.js';
import { SecretsService } from '../config/secrets.service.js';

const IV_BYTES = 12; // NIST SP 800-38D: 96-bit IVs for GCM
const TAG_BYTES = 16;
const GENERATED = 'mfa-encryption-key';

interface Key {
  id: string;
  key: Buffer;
}

/**
 * TOTP secrets at rest: AES-256-GCM under MFA_ENCRYPTION_KEYS, the first key encrypting and
 * every key decrypting (rotation: put a new key first, keep the old ones until every secret
 * has been re-encrypted, which happens when it is next used). The key id is stored beside
 * the ciphertext; the user id is the additional data, so a ciphertext copied to another
 * user's row does not decrypt.
 *
 * Without MFA_ENCRYPTION_KEYS a key is generated into DATA_DIR/secrets (development); in
 * production it is derived from PASSWORD_PEPPER (HKDF-SHA-256, RFC 5869), which every
 * instance shares, and a warning says to configure a key of its own. Once keys are
 * configured, that earlier key still decrypts (after them), so nothing enrolled is lost.
 */
@Injectable()
export class SecretBox {
  private readonly logger = new Logger('Mfa');
  private readonly keys: Key[];

  constructor(@InjectConfig() config: AppConfig, secrets: SecretsService) {
    const configured = config.MFA_ENCRYPTION_KEYS?.split(',')
      .map((k) => k.trim())
      .filter(Boolean)
      .map((k) => parseMfaKey(k)!);
    // The key used while MFA_ENCRYPTION_KEYS was unset: the last resort for decrypting, so
    // that configuring keys later loses no enrolment (secrets move to the first key when used).
    const fallback = config.isProduction
      ? Buffer.from(hkdfSync('sha256', secrets.passwordPepper, '', 'gatehouse mfa encryption v1', 32))
      : undefined;
    let raw: Buffer[];
    if (configured?.length) {
      const generated = secrets.existing(GENERATED);
      raw = [...configured, ...(fallback ? [fallback] : []), ...(generated ? [parseMfaKey(generated.trim())!] : [])];
    } else if (fallback) {
      this.logger.warn(
        'MFA_ENCRYPTION_KEYS is not set: TOTP secrets are encrypted under a key derived from PASSWORD_PEPPER; ' +
          'configure a key of its own (`npm run keys` prints one) so that it can be rotated',
      );
      raw = [fallback];
    } else {
      raw = [parseMfaKey(secrets.generated(GENERATED, () => randomBytes(32).toString('hex')).trim())!];
    }
    const ids = new Set<string>();
    this.keys = raw
      .map((key) => ({ id: createHash('sha256').update(key).digest('hex').slice(0, 16), key }))
      .filter((k) => !ids.has(k.id) && ids.add(k.id));
  }

  /** The id of the key that encrypts now. */
  get currentKeyId(): string {
    return this.keys[0]!.id;
  }

  seal(plain: Uint8Array, userId: string): { sealed: Uint8Array<ArrayBuffer>; keyId: string } {
    const { id, key } = this.keys[0]!;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(Buffer.from(userId, 'utf8'));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return { sealed: new Uint8Array(Buffer.concat([iv, cipher.getAuthTag(), body])), keyId: id };
  }

  /** The plaintext, or null when no configured key opens it (the key was removed, or the row tampered with). */
  open(sealed: Uint8Array, keyId: string, userId: string): Uint8Array | null {
    const key = this.keys.find((k) => k.id === keyId);
    if (!key || sealed.length < IV_BYTES + TAG_BYTES) return null;
    const bytes = Buffer.from(sealed);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key.key, bytes.subarray(0, IV_BYTES))
        .setAAD(Buffer.from(userId, 'utf8'))
        .setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return new Uint8Array(Buffer.concat([decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]));
    } catch {
      return null;
    }
  }
}
