import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Injectable, Logger } from '@nestjs/common';
import { InjectConfig } from './config.token.js';
import type { AppConfig } from './config.schema.js';
import { ensurePrivateDir } from './private-dir.js';

/**
 * Secrets that Gatehouse can make for itself when none is configured: generated once and
 * kept in DATA_DIR/secrets (mode 0600) so that a restart keeps passwords verifiable and
 * tokens valid. With an in-memory database nothing persists, so neither do these.
 * Production must configure them (PASSWORD_PEPPER, JWT_KEYS): the config refuses to start
 * without them there, since every instance would otherwise make its own.
 */
@Injectable()
export class SecretsService {
  private readonly logger = new Logger('Secrets');
  readonly passwordPepper: Buffer;

  constructor(@InjectConfig() private readonly config: AppConfig) {
    this.passwordPepper = config.PASSWORD_PEPPER
      ? Buffer.from(config.PASSWORD_PEPPER, 'utf8')
      : Buffer.from(
          this.generated('password-pepper', () => randomBytes(32).toString('base64url')),
          'utf8',
        );
  }

  /** With an in-memory database nothing persists, so neither do generated secrets. */
  private get persistent(): boolean {
    return !(this.config.database.kind === 'pglite' && this.config.database.dataDir === undefined);
  }

  /** The secret stored under `name` if one was generated before (nothing is created). */
  existing(name: string): string | undefined {
    const file = join(this.config.DATA_DIR, 'secrets', name);
    return this.persistent && existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  }

  /** Returns the secret stored under `name`, generating and storing it the first time. */
  generated(name: string, make: () => string): string {
    if (!this.persistent) return make();
    const dir = join(this.config.DATA_DIR, 'secrets');
    const file = join(dir, name);
    // Also tightens a DATA_DIR made before (or by hand) that others can read.
    ensurePrivateDir(dir, this.config.DATA_DIR);
    if (existsSync(file)) return readFileSync(file, 'utf8');
    const value = make();
    try {
      writeFileSync(file, value, { mode: 0o600, flag: 'wx' });
    } catch (error) {
      // Another process started at the same moment and wrote it first: use theirs.
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(file, 'utf8');
      throw error;
    }
    chmodSync(file, 0o600);
    this.logger.warn(
      `generated ${name} in ${file}: fine for development; in production configure it (see README, "Configuration")`,
    );
    return value;
  }
}
