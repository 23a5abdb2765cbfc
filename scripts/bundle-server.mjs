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
 * them. `tsc` rewrites main.js on every build; a main.js that is already a bundle is left alone.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const MARKER = '// gatehouse: bundled server';

const EXTERNAL = [
  // Loaded on demand (src/database/open-database.ts, src/redis, src/mail) or native.
  '@electric-sql/pglite',
  'pglite-prisma-adapter',
  'ioredis',
  'nodemailer',
  'bcrypt',
  // Optional packages of NestJS and @nestjs/swagger, not installed.
  '@nestjs/microservices',
  '@nestjs/microservices/*',
  '@nestjs/platform-socket.io',
  '@fastify/static',
];

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
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    logLevel: 'error',
    // CommonJS packages inside an ES module bundle call require() for Node's built-ins.
    banner: {
      js: `${MARKER}\nimport { createRequire as __gatehouseCreateRequire } from 'node:module';\nconst require = __gatehouseCreateRequire(import.meta.url);`,
    },
  });
  return true;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dir = process.argv[2] ?? 'dist';
  const bundled = await bundleServer(dir);
  console.log(bundled ? `bundle-server: ${dir}/main.js bundled` : `bundle-server: ${dir}/main.js already bundled`);
}
