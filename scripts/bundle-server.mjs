#!/usr/bin/env node
/**
 * Bundles the compiled server into one file, in place:
 *
 *   node scripts/bundle-server.mjs [buildDir]     (default: dist)
 *
 * `tsc` writes `<buildDir>/main.js` and the modules it imports, one file each; this replaces
 * `main.js` with a single ES module holding them and the packages they use. Starting the server
 * is then one file to read and compile instead of about 2,300 to resolve, read and link: on
 * PostgreSQL, spawn to the first 200 on /health went from 3.07 s to 1.64 s on a 2-core machine,
 * and the idle RSS from 172 to 148 MiB (bench: startup, memory_idle). Whitespace and
 * syntax are minified; identifiers are not, so class and function names (which NestJS and the
 * logs use) stay as written.
 *
 * Left outside, loaded from node_modules as before:
 * - packages loaded only when needed (the embedded database, Redis, SMTP), so that a server that
 *   does not use them neither parses nor holds them, and bcrypt (a native addon);
 * - optional packages of NestJS that are not installed (it catches their absence at run time).
 * Modules loaded with createRequire (prom-client, pino-pretty) are not followed by the bundler.
 *
 * The other files of the build (the CLI, the modules the benchmarks import) stay as `tsc` wrote
 * them. Files the server loads by name at run time (RUNTIME_FILES: bcrypt's worker threads) are
 * copied from src/ beside the bundle, where its `import.meta.url` finds them. `tsc` rewrites
 * main.js on every build; a main.js that is already a bundle is left alone.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
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
 * Prisma's query compiler is a WebAssembly module (3.4 MB) that the generated client imports
 * from a JavaScript module holding it as one base64 string: 4.5 MB of the 9.7 MB bundle. Bundled
 * as it is, that string is decoded from UTF-8 with the rest of the file and scanned by the
 * parser at every start, and stays part of the script's source, which V8 keeps in the heap. This
 * plugin writes the string to a file of its own beside the bundle (`<module name>.txt`, ASCII)
 * and bundles in place of the module one that reads that file when it is first imported, when
 * the first query needs the compiler (the string itself is then kept by the module's export, as
 * Prisma's module kept it): spawn to the first 200 on /health went from 1,028 to 962 ms (median
 * of 10 alternating starts each on PostgreSQL). A file that is missing or cannot be read fails
 * the start with one line (a StartupError, by name, as main.ts expects).
 */
const QUERY_COMPILER = /[\\/]@prisma[\\/]client[\\/]runtime[\\/]query_compiler_[\w.]+\.wasm-base64\.mjs$/;

function queryCompilerBesideBundle(buildDir) {
  return {
    name: 'query-compiler-beside-bundle',
    setup(esbuild) {
      esbuild.onLoad({ filter: QUERY_COMPILER }, async (args) => {
        const { wasm } = await import(pathToFileURL(args.path).href);
        if (typeof wasm !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(wasm))
          throw new Error(`${args.path} no longer exports the query compiler as a base64 string \`wasm\``);
        const name = `${basename(args.path, '.mjs')}.txt`;
        writeFileSync(join(buildDir, name), wasm, 'latin1');
        return { loader: 'js', contents: queryCompilerModule(name) };
      });
    },
  };
}

/** The module bundled in place of Prisma's: `wasm`, the same base64 string, read from `name` beside the bundle. */
export function queryCompilerModule(name) {
  return `import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const file = fileURLToPath(new URL(${JSON.stringify(`./${name}`)}, import.meta.url));
let text;
try {
  text = readFileSync(file, 'latin1');
} catch (error) {
  const why = error?.code === 'ENOENT' ? 'is missing' : \`cannot be read (\${error?.code ?? error})\`;
  const failed = new Error(\`Prisma's query compiler file \${why}: \${file} (build with npm run build)\`);
  failed.name = 'StartupError';
  throw failed;
}
export const wasm = text;
`;
}

/** Bundles `<buildDir>/main.js` in place; false when it already is a bundle. */
async function bundleServer(buildDir) {
  const main = join(resolve(buildDir), 'main.js');
  if (readFileSync(main, 'utf8').startsWith(MARKER)) return false;
  await build({
    entryPoints: [main],
    outfile: main,
    allowOverwrite: true,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: EXTERNAL,
    plugins: [queryCompilerBesideBundle(resolve(buildDir))],
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    logLevel: 'error',
    // CommonJS packages inside an ES module bundle call require() for Node's built-ins.
    banner: {
      js: `${MARKER}\nimport { createRequire as __gatehouseCreateRequire } from 'node:module';\nconst require = __gatehouseCreateRequire(import.meta.url);`,
    },
  });
  writeFileSync(main, asciiOnly(readFileSync(main, 'utf8')));
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
  const file = ts.createSourceFile('main.js', code, ts.ScriptTarget.Latest, false, ts.ScriptKind.JS);
  const literals = [];
  const visit = (node) => {
    if (node.kind === ts.SyntaxKind.RegularExpressionLiteral) literals.push([node.getStart(file), node.end]);
    else ts.forEachChild(node, visit);
  };
  visit(file);
  literals.sort((a, b) => a[0] - b[0]);
  let out = '';
  let copied = 0;
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
    out += `${code.slice(copied, from)}\\u${code.charCodeAt(i).toString(16).padStart(4, '0')}`;
    copied = i + 1;
  }
  if (left > 0) console.warn(`bundle-server: ${left} non-ASCII characters outside regular expressions left as written`);
  return out + code.slice(copied);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dir = process.argv[2] ?? 'dist';
  copyRuntimeFiles(dir);
  const bundled = await bundleServer(dir);
  console.log(bundled ? `bundle-server: ${dir}/main.js bundled` : `bundle-server: ${dir}/main.js already bundled`);
}
