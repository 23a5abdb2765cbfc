import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { isAbsolute, relative, sep } from 'node:path';

/**
 * Makes `dir` a directory only its owner can enter: created (with any missing parents) with
 * mode 0700, and an existing one that lets group or others in is tightened to 0700 when this
 * process owns it (anyone else's directory is theirs to set, and chmod would fail anyway).
 * DATA_DIR holds the generated secrets and the embedded database, whose files would be
 * readable by every local user under the usual umask 022.
 *
 * When `dir` lies inside `parent` (DATA_DIR), `parent` gets the same treatment first.
 */
export function ensurePrivateDir(dir: string, parent?: string): void {
  if (parent !== undefined && isInside(dir, parent)) ensurePrivateDir(parent);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { mode, uid } = statSync(dir);
  if ((mode & 0o077) !== 0 && uid === process.getuid?.()) chmodSync(dir, 0o700);
}

function isInside(dir: string, parent: string): boolean {
  const path = relative(parent, dir);
  return path !== '' && path.split(sep)[0] !== '..' && !isAbsolute(path);
}
