import { createHmac } from 'node:crypto';
import { Injectable, type OnModuleInit } from '@nestjs/common';
import bcrypt from 'bcrypt';
import { InjectConfig } from '../../config/config.token.js';
import type { AppConfig } from '../../config/config.schema.js';
import { SecretsService } from '../../config/secrets.service.js';

/**
 * Password hashing with bcrypt (native, asynchronous: the work runs on libuv's thread pool
 * and the event loop stays free).
 *
 * bcrypt reads only the first 72 bytes of its input, and the contract accepts passwords of
 * up to 128 characters (up to 512 bytes in UTF-8), so a password is never given to bcrypt
 * as is: it is first pre-hashed with HMAC-SHA-256 under a server-side pepper and
 * base64-encoded (44 ASCII bytes, no NUL), as OWASP's Password Storage Cheat Sheet describes
 * ("Pre-Hashing Passwords with Bcrypt"). Every byte of the password then counts, and the
 * keyed hash prevents "password shucking" with leaked unsalted hashes.
 */
@Injectable()
export class PasswordHasher implements OnModuleInit {
  private dummyHash = '';

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly secrets: SecretsService,
  ) {}

  async onModuleInit(): Promise<void> {
    // Verified against when the account does not exist, so that an unknown username costs
    // the same bcrypt work as a wrong password (no user enumeration by timing).
    this.dummyHash = await this.hash('gatehouse-dummy-password');
  }

  hash(password: string): Promise<string> {
    return bcrypt.hash(this.prehash(password), this.config.BCRYPT_COST);
  }

  /** Compares in constant time (bcrypt.compare); `hash` null means "no such user". */
  async verify(password: string, hash: string | null): Promise<boolean> {
    const ok = await bcrypt.compare(this.prehash(password), hash ?? this.dummyHash);
    return ok && hash !== null;
  }

  /** True when the hash was made at a lower cost than the configured one (never downgrade). */
  needsRehash(hash: string): boolean {
    return bcrypt.getRounds(hash) < this.config.BCRYPT_COST;
  }

  private prehash(password: string): string {
    return createHmac('sha256', this.secrets.passwordPepper).update(password, 'utf8').digest('base64');
  }
}
