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
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
