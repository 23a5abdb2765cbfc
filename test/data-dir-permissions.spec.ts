import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signup } from './support/factories.js';
import { startApp } from './support/test-app.js';

/**
 * Security finding 12a: DATA_DIR, its secrets/ and the embedded database directory were
 * created under the process umask (022: world-readable), so every local user could read the
 * generated signing key's directory listing and the database files. They are now 0700 when
 * created, and an existing one that is more open is tightened at start-up.
 */

const modeOf = (path: string) => statSync(path).mode & 0o777;
const octal = (mode: number) => mode.toString(8).padStart(3, '0');

describe.runIf(process.platform !== 'win32')('DATA_DIR and the embedded database directory', () => {
  let root: string;
  let savedUmask: number;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'gatehouse-perms-'));
    // The usual umask, whatever this machine's is: under it, directories come out 0755.
    savedUmask = process.umask(0o022);
  });
  afterAll(() => {
    process.umask(savedUmask);
    rmSync(root, { recursive: true, force: true });
  });

  /** An app on the embedded database in `databaseUrl`, used once (signup), then closed. */
  async function runApp(dataDir: string, databaseUrl: string): Promise<void> {
    const t = await startApp({ DATA_DIR: dataDir }, { databaseUrl });
    try {
      await signup(t);
    } finally {
      await t.close();
    }
  }

  it('creates DATA_DIR, DATA_DIR/secrets and DATA_DIR/pglite with mode 0700 (file: database, umask 022)', async () => {
    const dataDir = join(root, 'fresh', 'data');
    await runApp(dataDir, 'file:');
    const modes = Object.fromEntries(
      [dataDir, join(dataDir, 'secrets'), join(dataDir, 'pglite')].map((p) => [p, octal(modeOf(p))]),
    );
    expect(modes).toEqual({ [dataDir]: '700', [join(dataDir, 'secrets')]: '700', [join(dataDir, 'pglite')]: '700' });
    for (const name of readdirSync(join(dataDir, 'secrets'))) {
      expect(octal(modeOf(join(dataDir, 'secrets', name)))).toBe('600');
    }
  });

  it('tightens an existing world-readable DATA_DIR and its subfolders to 0700 at start-up', async () => {
    const dataDir = join(root, 'existing');
    mkdirSync(join(dataDir, 'secrets'), { recursive: true });
    mkdirSync(join(dataDir, 'db'), { recursive: true });
    for (const dir of [dataDir, join(dataDir, 'secrets'), join(dataDir, 'db')]) chmodSync(dir, 0o755);
    writeFileSync(join(dataDir, 'notes.txt'), 'kept');

    await runApp(dataDir, `file:${join(dataDir, 'db')}`);
    expect(octal(modeOf(dataDir))).toBe('700');
    expect(octal(modeOf(join(dataDir, 'secrets')))).toBe('700');
    expect(octal(modeOf(join(dataDir, 'db')))).toBe('700');
    expect(readdirSync(dataDir).sort()).toEqual(['db', 'notes.txt', 'secrets']);
  });

  it('makes a database directory outside DATA_DIR 0700 as well, parents included', async () => {
    const dataDir = join(root, 'outside-data');
    const dbDir = join(root, 'elsewhere', 'nested', 'db');
    await runApp(dataDir, `file:${dbDir}`);
    expect(octal(modeOf(dbDir))).toBe('700');
    expect(octal(modeOf(join(root, 'elsewhere')))).toBe('700');
    expect(octal(modeOf(dataDir))).toBe('700'); // the generated signing key lives there
  });
});
