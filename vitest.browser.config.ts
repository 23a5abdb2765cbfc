import { defineConfig } from 'vitest/config';

// `npm run test:browser`: the browser client in Chromium against the real server
// (test/browser/harness.ts builds the app and starts `node dist/main.js`).
export default defineConfig({
  test: {
    include: ['test/browser/**/*.spec.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 300_000,
  },
});
