#!/usr/bin/env node
/**
 * Bundles the compiled server into one file:
 *
 *   node scripts/bundle-server.mjs [buildDir]     (default: dist)
 *
 * `tsc` writes `<buildDir>/main.js` and the modules it imports, one file each; this bundles them
 * and the packages they use into `<buildDir>/server.cjs`, and replaces `main.js` with a loader of
 * a few lines that runs it with V8's code cache (src/boot/run-bundle.ts). Starting the server is
 * then one file to read and compile instead of about 2,300 to resolve, read and link: on
 * PostgreSQL, spawn to the first 200 on /health went from 3.07 s to 1.64 s on a 2-core machine,
 * and the idle RSS from 172 to 148 MiB (bench: startup, memory_idle); the code cache took
 * another 0.2 s off (see run-bundle.ts). Whitespace and syntax are minified; identifiers are not,
 * so class and function names (which NestJS and the logs use) stay as written.
 *
 * Left outside, loaded from node_modules as before:
 * - packages loaded only when needed (the embedded database, Redis, SMTP), so that a server that
 *   does not use them neither parses nor holds them, and bcrypt (a native addon);
 * - optional packages of NestJS that are not installed (it catches their absence at run time).
 * Modules loaded with createRequire (prom-client, pino-pretty) are not followed by the bundler.
 *
 * The other files of the build (the CLI, the modules the benchmarks import) stay as `tsc` wrote
 * them (the loader imports two of them: runtime-flags.js and boot/run-bundle.js). Files the
 * server loads by name at run time (RUNTIME_FILES: bcrypt's worker threads) are copied from src/
 * beside the bundle, where its `import.meta.url` finds them. `tsc` rewrites main.js on every
 * build; a main.js that is already the loader is left alone.
 */
import { copyFileSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import ts from 'typescript';

const MARKER = '// gatehouse: bundled server';

const EXTERNAL = [
  // Loaded on demand (src/database/open-database.ts, src/redis, src/mail) or native.
  '@electric-sql/pglite',
  'pglite-prisma-adapter',
  'ioredis',
  'nodemailer',
  'bcrypt',
  // Loaded at the first login; it starts its worker threads from a file of its own package.
  'piscina',
  // Optional packages of NestJS and @nestjs/swagger, not installed.
  '@nestjs/microservices',
  '@nestjs/microservices/*',
  '@nestjs/platform-socket.io',
  '@fastify/static',
];

/** JavaScript files of src/ loaded by file name at run time, not imported: neither tsc nor esbuild copies them. */
const RUNTIME_FILES = ['accounts/bcrypt-worker.mjs'];

function copyRuntimeFiles(buildDir) {
  const src = fileURLToPath(new URL('../src/', import.meta.url));
  for (const file of RUNTIME_FILES) copyFileSync(join(src, file), join(resolve(buildDir), basename(file)));
}

/**
 * Prisma's query compiler is a WebAssembly module (3.4 MB). The generated client imports it, when
 * the first query needs it (at start-up), from a JavaScript module that holds it as one base64
 * string (4.5 MB), decodes it and compiles it. Bundled as it is, that string was 4.5 MB of the
 * 9.7 MB bundle: decoded from UTF-8 with the rest of the file and scanned by the parser at every
 * start, and kept in the heap as part of the script's source. This plugin writes the module's
 * bytes to a file of their own beside the bundle (`<module name>.wasm`) and has the generated
 * client compile that file instead, so that a start neither reads 4.5 MB of text into a string
 * nor decodes it, and the heap does not keep it. Spawn to the first 200 on /health on
 * PostgreSQL (medians of alternating starts): 1,028 to 962 ms with the string in a text file of
 * its own (10 starts each), then 887 to 862 ms with the bytes instead (15 starts each; the
 * server's CPU time to that answer 1,010 to 970 ms). The build fails if the
 * generated client no longer loads the compiler as this expects, or is not bundled under this
 * name (a new Prisma version is then looked at rather than bundled half-changed); the text file
 * of the builds before this one is removed. A file that is missing or cannot be read fails
 * the start with one line (the project's StartupError, as main.ts expects).
 */
const GENERATED_CLIENT = /[\\/]generated[\\/]prisma[\\/]internal[\\/]class\.js$/;
const COMPILER_IMPORT =
  /const \{ wasm \} = await import\("(@prisma\/client\/runtime\/(query_compiler_[\w.]+))\.wasm-base64\.mjs"\);\s*return await decodeBase64AsWasm\(wasm\);/g;

function queryCompilerBesideBundle(buildDir, applied) {
  return rewriteModule('query-compiler-beside-bundle', GENERATED_CLIENT, applied, async (source, path) => {
    const found = [...source.matchAll(COMPILER_IMPORT)];
    if (found.length !== 1) throw new Error(`${path} no longer loads the query compiler once from a base64 module`);
    const [call, specifier, name] = found[0];
    const base64 = createRequire(path).resolve(`${specifier}.wasm-base64.mjs`);
    const { wasm } = await import(pathToFileURL(base64).href);
    if (typeof wasm !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(wasm))
      throw new Error(`${base64} no longer exports the query compiler as a base64 string \`wasm\``);
    const bytes = Buffer.from(wasm, 'base64');
    if (!WebAssembly.validate(bytes)) throw new Error(`${base64} does not hold a valid WebAssembly module`);
    writeFileSync(join(buildDir, `${name}.wasm`), bytes);
    // What a build before this one wrote instead (the base64 text), so that it is not deployed.
    rmSync(join(buildDir, `${name}.wasm-base64.txt`), { force: true });
    const replaced = source.replace(call, `return ${QUERY_COMPILER_LOADER}(${JSON.stringify(`./${name}.wasm`)});`);
    return `${replaced}\n${queryCompilerLoader()}`;
  });
}

const QUERY_COMPILER_LOADER = '__gatehouseQueryCompiler';

/**
 * What the plugin appends to the generated client: a function that compiles the query compiler
 * from the file `path` names, relative to the bundle (the imports are hoisted: an ES module's
 * import declarations may stand anywhere at its top level; the project's StartupError is
 * imported relative to the generated client's place in the build, `generated/prisma/internal/`).
 */
function queryCompilerLoader() {
  return `import { readFileSync as __gatehouseReadFileSync } from 'node:fs';
import { fileURLToPath as __gatehouseFileURLToPath } from 'node:url';
import { StartupError as __gatehouseStartupError } from '../../../common/errors/startup-error.js';
function ${QUERY_COMPILER_LOADER}(path) {
  const file = __gatehouseFileURLToPath(new URL(path, import.meta.url));
  let bytes;
  try {
    bytes = __gatehouseReadFileSync(file);
  } catch (error) {
    const why = error?.code === 'ENOENT' ? 'is missing' : \`cannot be read (\${error?.code ?? error})\`;
    throw new __gatehouseStartupError(\`Prisma's query compiler file \${why}: \${file} (build with npm run build)\`);
  }
  return new WebAssembly.Module(bytes);
}
`;
}

/**
 * node-postgres picks its socket functions when its `lib/stream.js` is loaded, asking whether it
 * runs in Cloudflare Workers: without a global `navigator` (Node 20 has none), it constructs a
 * `Response`, and the first use of that global loads Node's whole fetch implementation (undici):
 * 35–50 ms on a 2-core machine, at every start of a server that only fetches when an external
 * issuer's keys are needed (spawn to the first 200 on /health on PostgreSQL: median of 15
 * alternating starts 920 to 887 ms). The bundle is built for Node (`platform: 'node'`), so this plugin
 * gives that module Node's socket functions without the probe. The build fails if the module no
 * longer has the call it replaces, or is not bundled at all, so that a new pg version is looked
 * at rather than bundled half-changed. (From Node 21 on, pg finds `navigator` and skips the
 * probe by itself.)
 */
const PG_STREAM = /[\\/]node_modules[\\/]pg[\\/]lib[\\/]stream\.js$/;
const PG_PROBE = 'if (isCloudflareRuntime()) {';

function pgWithoutRuntimeProbe(applied) {
  return rewriteModule('pg-without-runtime-probe', PG_STREAM, applied, (source, path) => {
    if (source.split(PG_PROBE).length !== 2)
      throw new Error(`${path} no longer calls isCloudflareRuntime() once as \`${PG_PROBE}\``);
    return source.replace(PG_PROBE, 'if (false) {');
  });
}

/**
 * An esbuild plugin that bundles the module `filter` matches as `rewrite(source, path)` returns
 * it (rewrite throws when the source is not what it expects), and adds its name to `applied`
 * once it has done so: bundleServer() fails the build for a plugin that rewrote nothing.
 */
function rewriteModule(name, filter, applied, rewrite) {
  return {
    name,
    setup(esbuild) {
      esbuild.onLoad({ filter }, async (args) => {
        const contents = await rewrite(readFileSync(args.path, 'utf8'), args.path);
        applied.add(name);
        return { loader: 'js', contents };
      });
    },
  };
}

/** The bundle's file name in the build directory; main.js becomes the loader that runs it. */
const BUNDLE = 'server.cjs';

/**
 * What the bundle's dynamic imports call instead of `import()` (importEdits): a script
 * compiled by `vm`, as the loader compiles the bundle, cannot use `import()` on Node.js 20
 * without an experimental flag. The loader passes its own `import()`; a bundle started
 * directly (`node dist/server.cjs`, without the cache) uses its own.
 */
const DYNAMIC_IMPORT = '__gatehouseImport';

/**
 * The first lines of the bundle: strict mode, which the ES modules it is made of ran in (esbuild's
 * own "use strict" comes after these lines, where it is no longer a directive); `import.meta.url`, which esbuild replaces
 * with the constant defined here: the bundle's own URL, in the build directory where every
 * module's relative paths were written to resolve, as they did from the ES module bundle; and
 * the function its dynamic imports call.
 */
const BUNDLE_BANNER = `"use strict";
const __gatehouseImportMetaUrl = require('node:url').pathToFileURL(__filename).href;
const ${DYNAMIC_IMPORT} = globalThis[Symbol.for('gatehouse.loader')]?.import ?? ((specifier, options) => import(specifier, options));
`;

/** dist/main.js: runs the bundle with V8's code cache (src/boot/run-bundle.ts). */
const LOADER = `${MARKER}: runs ${BUNDLE} (scripts/bundle-server.mjs, src/boot/run-bundle.ts)
import './runtime-flags.js';
import { runBundle } from './boot/run-bundle.js';
runBundle(new URL('./${BUNDLE}', import.meta.url), (specifier, options) => import(specifier, options));
`;

/**
 * Bundles `<buildDir>/main.js` (as tsc wrote it) into `<buildDir>/server.cjs`, a CommonJS module,
 * and replaces main.js with the loader that runs it; false when main.js already is that loader.
 * CommonJS because Node.js 20 can give V8's code cache only to a script it compiles with `vm`,
 * not to an ES module (src/boot/run-bundle.ts says what the cache saves).
 */
async function bundleServer(buildDir) {
  const dir = resolve(buildDir);
  const main = join(dir, 'main.js');
  if (readFileSync(main, 'utf8').startsWith(MARKER)) return false;
  const bundle = join(dir, BUNDLE);
  const applied = new Set(); // the names of the plugins that rewrote their module
  const plugins = [queryCompilerBesideBundle(dir, applied), pgWithoutRuntimeProbe(applied)];
  const { warnings } = await build({
    entryPoints: [main],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: EXTERNAL,
    plugins,
    define: { 'import.meta.url': '__gatehouseImportMetaUrl' },
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    logLevel: 'silent',
  });
  // esbuild warns of what it could not carry over to CommonJS (an `import.meta` other than its
  // url, which would be empty): such a bundle would fail at run time, so the build fails now.
  if (warnings.length > 0)
    throw new Error(`bundle-server: ${warnings.map((w) => `${w.location?.file ?? ''}: ${w.text}`).join('\n')}`);
  // A plugin whose module was not bundled at all (a package that moved its code) changed nothing.
  for (const { name } of plugins)
    if (!applied.has(name)) throw new Error(`bundle-server: the plugin ${name} found no module to change`);
  writeFileSync(bundle, BUNDLE_BANNER + finishBundle(readFileSync(bundle, 'utf8')));
  // The cache of the previous build's bundle is of no use to this one (run-bundle.ts would
  // replace it at the first start): not deployed.
  rmSync(`${bundle}.cache`, { force: true });
  // And the temporary files of a write that a crash cut short (`<bundle>.cache.<random>.tmp`).
  for (const name of readdirSync(dir))
    if (name.startsWith(`${BUNDLE}.cache.`) && name.endsWith('.tmp')) rmSync(join(dir, name), { force: true });
  writeFileSync(main, LOADER);
  return true;
}

/**
 * The bundle with every non-ASCII character of its regular expression literals written as a
 * `\uXXXX` escape (one per UTF-16 code unit). V8 keeps a script's source in memory for as
 * long as the script lives (its functions are compiled lazily, from that text), and stores it
 * with two bytes per character as soon as one character is beyond U+00FF: the 9.6 MB bundle
 * took 18.4 MB of the idle server's heap. esbuild writes strings, untagged template literals
 * and identifiers in ASCII already (its default `charset`), but leaves regular expression
 * literals as written, and a few packages (validator's alphabets, for one) hold Cyrillic,
 * Greek or Arabic ones. In a regular expression, with or without the `u` flag, `\uXXXX`
 * matches the character it names, a pair of escaped surrogates the code point they form, and
 * an identity escape (`\Я`, outside `u` mode) is the character itself. The literals are
 * found with TypeScript's parser (a regular expression cannot be told from a division
 * without one). Anything else left outside ASCII (a tagged template, whose raw text a
 * rewrite would change) stays as written, with a warning: the bundle then still works, at
 * twice the memory for its text.
 */
export function asciiOnly(code) {
  return applyEdits(code, asciiEdits(code, scanBundle(code).literals));
}

/** The bundle as asciiOnly and importEdits leave it, from one parse (about 1.3 s for 5 MB on a 2-core machine). */
function finishBundle(code) {
  const { literals, imports } = scanBundle(code);
  return applyEdits(code, [...asciiEdits(code, literals), ...importEdits(imports)]);
}

/**
 * One parse of the bundle: the [start, end) of each regular expression literal, and the start of
 * the `import` keyword of each dynamic import, both in the order of the text.
 */
function scanBundle(code) {
  const file = ts.createSourceFile('main.js', code, ts.ScriptTarget.Latest, false, ts.ScriptKind.JS);
  const literals = [];
  const imports = [];
  const visit = (node) => {
    if (node.kind === ts.SyntaxKind.RegularExpressionLiteral) {
      literals.push([node.getStart(file), node.end]);
      return;
    }
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword)
      imports.push(node.expression.getStart(file));
    ts.forEachChild(node, visit);
  };
  visit(file);
  literals.sort((a, b) => a[0] - b[0]);
  imports.sort((a, b) => a - b);
  return { literals, imports };
}

/** The edits asciiOnly makes: each non-ASCII character of a regular expression literal as `\uXXXX`. */
function asciiEdits(code, literals) {
  const edits = [];
  let left = 0;
  let literal = 0;
  for (let i = 0; i < code.length; i++) {
    if (code.charCodeAt(i) <= 0x7f) continue;
    while (literal < literals.length && literals[literal][1] <= i) literal++;
    if (literal === literals.length || literals[literal][0] > i) {
      left++;
      continue;
    }
    let backslashes = 0;
    for (let k = i - 1; code[k] === '\\'; k--) backslashes++;
    // An identity escape: the backslash goes, the escape below says the same.
    const from = backslashes % 2 === 1 ? i - 1 : i;
    edits.push({ from, to: i + 1, text: `\\u${code.charCodeAt(i).toString(16).padStart(4, '0')}` });
  }
  if (left > 0) console.warn(`bundle-server: ${left} non-ASCII characters outside regular expressions left as written`);
  return edits;
}

/**
 * Each dynamic import's `import` keyword written as DYNAMIC_IMPORT (found with TypeScript's parser,
 * as in asciiOnly: the text `import(` also occurs in strings and comments). They load the packages
 * left outside the bundle when needed (the embedded database, Redis, SMTP, bcrypt's pool) and the
 * optional packages NestJS probes for.
 */
function importEdits(imports) {
  return imports.map((start) => ({ from: start, to: start + 'import'.length, text: DYNAMIC_IMPORT }));
}

/** `code` with each of `edits` (non-overlapping { from, to, text }) replacing the text from `from` to `to`. */
function applyEdits(code, edits) {
  edits.sort((a, b) => a.from - b.from);
  let out = '';
  let copied = 0;
  for (const { from, to, text } of edits) {
    out += code.slice(copied, from) + text;
    copied = to;
  }
  return out + code.slice(copied);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dir = process.argv[2] ?? 'dist';
  copyRuntimeFiles(dir);
  const bundled = await bundleServer(dir);
  console.log(bundled ? `bundle-server: ${dir}/main.js bundled` : `bundle-server: ${dir}/main.js already bundled`);
}
