/**
 * Runs the bundled server (dist/server.cjs, see scripts/bundle-server.mjs) with V8's code cache.
 *
 * A start compiled the 5 MB bundle from its text every time: the parse of the whole script, then
 * the full compilation of each function the start runs (NestJS, Prisma's client, the modules'
 * bodies), about 240 ms of a 2-core machine's 0.9 s start in a CPU profile. V8 can serialise what
 * it compiled (`script.createCachedData()`) and, given those bytes back with the same source,
 * skip both. This is what Node.js 22 does for its own module loader when asked
 * (`module.enableCompileCache()`); Gatehouse runs on Node.js 20, whose module loader has no such
 * option, so this loader compiles the bundle itself with `vm.Script` and a cache file of its own,
 * `<bundle>.cache`, beside the bundle. Spawn to the first 200 on /health on PostgreSQL, medians
 * of alternating starts: see docs/deployment.md ("The code cache").
 *
 * - The cache is written once the server serves (main.ts calls `save()`), a second later, so that
 *   it holds every function the start compiled; then only when a start could not use it. The
 *   write goes to a temporary file renamed over the old one: servers started together from one
 *   build never read half a file. A directory the server may not write to (a read-only image)
 *   leaves it without a cache: it then starts as before, compiling from the text.
 * - V8 drops the bytecode of functions that have not run for a few major garbage collections
 *   ("bytecode flushing"), and a cache holds only the bytecode still there: a start on the
 *   embedded database, whose migrations take seconds of collections, wrote a cache of 2 MB
 *   instead of 4.8 MB, and the starts that used it were hardly faster than without one. So
 *   flushing is off from the loader's start until the cache is written (or, when it was used,
 *   until the server serves), then on again for the life of the process. The flag is part of
 *   what V8 checks (below): the cache is made and read with the same setting.
 * - V8 checks that a cache was made by the same V8 version with the same flags, and for a
 *   source of the same length, but not that the source's contents or the cache's own bytes are
 *   those it was made from; bytes that pass its checks are trusted. So the file starts with a
 *   header of its own, a CRC-32 of the source it was made for and one of the bytes that follow,
 *   and a cache whose header does not match is not given to V8 (it is replaced once the server
 *   serves).
 */
import { isAscii } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { createRequire, Module } from 'node:module';
import { dirname } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { Script } from 'node:vm';
import { crc32 } from 'node:zlib';
import { LOADER_STATE, type CodeCacheStatus, type LoaderState } from './loader-state.js';

/** After the server starts serving, before the cache is written (what the start compiled is then in it). */
export const SAVE_DELAY_MS = 1_000;

/** The end of the name of a cache being written (`<bundle>.cache.<random>.tmp`); the build removes any left behind. */
const TEMPORARY_SUFFIX = '.tmp';

const MAGIC = Buffer.from('GHCC0001', 'latin1');
const HEADER_BYTES = MAGIC.length + 8;

/** A cache file: MAGIC, the CRC-32 of the source it was made for, the CRC-32 of V8's bytes, V8's bytes. */
export function encodeCodeCache(sourceCrc: number, data: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header);
  header.writeUInt32BE(sourceCrc, MAGIC.length);
  header.writeUInt32BE(crc32(data), MAGIC.length + 4);
  return Buffer.concat([header, data]);
}

/** V8's bytes from a cache file made for the source whose CRC-32 is `sourceCrc`, or why there are none. */
export function decodeCodeCache(file: Buffer, sourceCrc: number): Buffer | 'stale' | 'damaged' {
  if (file.length <= HEADER_BYTES || !file.subarray(0, MAGIC.length).equals(MAGIC)) return 'damaged';
  const data = file.subarray(HEADER_BYTES);
  if (file.readUInt32BE(MAGIC.length + 4) !== crc32(data)) return 'damaged';
  if (file.readUInt32BE(MAGIC.length) !== sourceCrc) return 'stale';
  return data;
}

/**
 * Compiles and runs the CommonJS bundle at `bundle`, with its code cache when there is a usable
 * one. `importModule` is `import()` in the caller's module: the bundle's dynamic imports are
 * routed to it (bundle-server.mjs), since `import()` inside a script compiled by `vm` needs an
 * experimental flag on Node.js 20.
 */
export function runBundle(
  bundle: URL,
  importModule: (specifier: string, options?: ImportCallOptions) => Promise<unknown>,
): void {
  // Left off after the cache is written when whoever started Node turned it off.
  const flushing = !process.execArgv.some((arg) => /^--no[-_]flush[-_]bytecode$/.test(arg));
  setFlagsFromString('--no-flush-bytecode');
  const file = fileURLToPath(bundle);
  const cacheFile = `${file}.cache`;
  const bytes = readFileSync(file);
  // The build writes the bundle in ASCII, which latin1 decodes exactly, faster than UTF-8 and
  // into the one-byte string V8 keeps as the script's source.
  const source = isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
  const sourceCrc = crc32(bytes);

  let status: CodeCacheStatus;
  let cachedData: Buffer | undefined;
  try {
    const decoded = decodeCodeCache(readFileSync(cacheFile), sourceCrc);
    if (typeof decoded === 'string') status = decoded;
    else [status, cachedData] = ['used', decoded];
  } catch {
    status = 'absent'; // missing or unreadable: the start compiles from the text, as without a cache
  }
  // Named by its URL in stack traces, as the ES module bundle was: Prisma reads the file a stack
  // frame names to quote the code around a failed query, and would quote the bundle's minified
  // lines (hundreds of KB) into its error messages.
  const script = new Script(Module.wrap(source), { filename: bundle.href, cachedData });
  if (cachedData !== undefined && script.cachedDataRejected === true) status = 'rejected';

  let saved: Promise<string> | undefined;
  const state: LoaderState = {
    import: importModule,
    codeCache: {
      status,
      save: () =>
        (saved ??= (status === 'used' ? Promise.resolve('kept') : writeCache(script, cacheFile, sourceCrc)).finally(
          () => {
            if (flushing) setFlagsFromString('--flush-bytecode');
          },
        )),
    },
  };
  (globalThis as { [LOADER_STATE]?: LoaderState })[LOADER_STATE] = state;

  const module = { exports: {}, filename: file, id: file };
  const run = script.runInThisContext() as (...args: unknown[]) => void;
  run.call(module.exports, module.exports, createRequire(file), module, file, dirname(file));
}

/**
 * Writes the cache through a temporary file of this process (a random name, created exclusively:
 * servers sharing one build, or containers all running as pid 1, never write the same file),
 * renamed over the old cache. The file is created before V8 serialises anything (about 60 ms on
 * the event loop), so that a directory the server may not write to costs nothing.
 */
async function writeCache(script: Script, cacheFile: string, sourceCrc: number): Promise<string> {
  await delay(SAVE_DELAY_MS, undefined, { ref: false });
  const temporary = `${cacheFile}.${randomBytes(6).toString('hex')}${TEMPORARY_SUFFIX}`;
  let handle: FileHandle;
  try {
    handle = await open(temporary, 'wx');
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
  try {
    await handle.writeFile(encodeCodeCache(sourceCrc, script.createCachedData()));
    await handle.close();
    await rename(temporary, cacheFile);
    return 'written';
  } catch (error) {
    await handle.close().catch(() => undefined);
    await rm(temporary, { force: true }).catch(() => undefined);
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}
