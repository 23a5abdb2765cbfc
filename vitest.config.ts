import swc from 'unplugin-swc';
import { configDefaults, defineConfig } from 'vitest/config';

// SWC compiles the TypeScript so that decorator metadata is emitted (NestJS DI needs it).
export default defineConfig({
  plugins: [swc.vite({ module: { type: 'es6' } })],
  test: {
    include: ['test/**/*.spec.ts', 'src/**/*.spec.ts'],
    // Browser and reliability suites have their own commands (npm run test:browser / test:reliability).
    exclude: [...configDefaults.exclude, 'test/browser/**', 'test/reliability/**'],
    pool: 'forks',
    // One module graph per worker for all its files: the application's modules (NestJS, Prisma,
    // PGlite) are loaded once instead of once per file, which was a fifth of the suite's time.
    // The files share no state but what they create: each starts its own app and database,
    // mocks nothing at module level and restores what it spies on.
    isolate: false,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
