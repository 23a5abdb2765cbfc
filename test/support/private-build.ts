import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Compiles the server (tsconfig.build.json) and bundles its main.js (scripts/bundle-server.mjs)
 * into `outDir` for tests that run it as a real process, without touching dist/ (which other
 * runs may be using). Generates the Prisma client first only when it is missing. Returns the
 * path of main.js.
 */
export function buildServerInto(outDir: string, timeoutMs = 240_000): string {
  if (!existsSync(join(PROJECT_ROOT, 'src', 'generated', 'prisma', 'client.ts'))) {
    const gen = spawnSync('npm', ['run', 'generate'], { cwd: PROJECT_ROOT, encoding: 'utf8' });
    if (gen.status !== 0) throw new Error(`npm run generate failed:\n${gen.stdout}\n${gen.stderr}`);
  }
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const build = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', outDir], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  if (build.status !== 0) throw new Error(`build failed:\n${build.stdout}\n${build.stderr}`);
  // As `npm run build` does: main.js becomes the one-file server that production starts.
  const bundle = spawnSync(process.execPath, [join(PROJECT_ROOT, 'scripts', 'bundle-server.mjs'), outDir], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  if (bundle.status !== 0) throw new Error(`bundling failed:\n${bundle.stdout}\n${bundle.stderr}`);
  return join(outDir, 'main.js');
}
