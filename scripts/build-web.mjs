// `npm run build:web`, after `tsc -p web/tsconfig.json` has compiled web/src into dist/web:
// copies the static files of the browser client (index.html, app.css) beside the modules.
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const from = join(root, 'web');
const to = join(root, 'dist', 'web');

mkdirSync(to, { recursive: true });
const copied = [];
for (const name of readdirSync(from)) {
  if (!/\.(html|css)$/.test(name)) continue;
  copyFileSync(join(from, name), join(to, name));
  copied.push(name);
}
// A module whose source was deleted must not linger in dist/web and keep being served
// (web/src has subfolders, e.g. views/: dist/web mirrors them).
for (const entry of readdirSync(to, { recursive: true, withFileTypes: true })) {
  const source = /^(.*)\.js$/.exec(entry.name)?.[1];
  if (!entry.isFile() || source === undefined) continue;
  const path = join(entry.parentPath, entry.name);
  if (!existsSync(join(from, 'src', relative(to, entry.parentPath), `${source}.ts`))) rmSync(path);
}
if (!copied.includes('index.html')) {
  console.error('build-web: web/index.html is missing');
  process.exit(1);
}
console.log(`build-web: ${copied.join(', ')} → dist/web`);
