// `npm run build:web`, after `tsc -p web/tsconfig.json` has compiled web/src into dist/web:
// copies the static files of the browser client (index.html, app.css) beside the modules,
// and the browser builds of the few packages the page imports (there is no bundler).
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const from = join(root, 'web');
const to = join(root, 'dist', 'web');

/**
 * dist/web path → package file. Each is a dependency-free ES module; web/src imports it by
 * that path (`./vendor/uqr.js`), typed by the .d.ts beside where it lands
 * (web/src/vendor/uqr.d.ts). `.js`, not `.mjs`: the server serves only the client's own
 * extensions (WEB_ASSET in src/app.setup.ts), and `.js` gets a JavaScript MIME type.
 */
const VENDOR = {
  'vendor/uqr.js': 'node_modules/uqr/dist/index.mjs',
};

mkdirSync(to, { recursive: true });
const copied = [];
for (const name of readdirSync(from)) {
  if (!/\.(html|css)$/.test(name)) continue;
  copyFileSync(join(from, name), join(to, name));
  copied.push(name);
}
// A module whose source was deleted must not linger in dist/web and keep being served
// (web/src has subfolders, e.g. views/: dist/web mirrors them). The vendored files have no
// source there: they are copied afresh below (and one dropped from VENDOR is removed here).
const vendored = new Set(Object.keys(VENDOR));
for (const entry of readdirSync(to, { recursive: true, withFileTypes: true })) {
  const source = /^(.*)\.js$/.exec(entry.name)?.[1];
  if (!entry.isFile() || source === undefined) continue;
  const path = join(entry.parentPath, entry.name);
  if (vendored.has(relative(to, path).split(sep).join('/'))) continue;
  if (!existsSync(join(from, 'src', relative(to, entry.parentPath), `${source}.ts`))) rmSync(path);
}
for (const [target, source] of Object.entries(VENDOR)) {
  const file = join(root, source);
  if (!existsSync(file)) {
    console.error(`build-web: ${source} is missing (npm install?)`);
    process.exit(1);
  }
  mkdirSync(dirname(join(to, target)), { recursive: true });
  copyFileSync(file, join(to, target));
  copied.push(target);
}
if (!copied.includes('index.html')) {
  console.error('build-web: web/index.html is missing');
  process.exit(1);
}
console.log(`build-web: ${copied.join(', ')} → dist/web`);
