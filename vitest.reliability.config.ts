import { defineConfig } from 'vitest/config';

// `npm run test:reliability`: the application as real processes under outages, restarts,
// concurrency, several instances, hostile input at volume and slow clients.
// Files run one after another (timings are measured; the machine has two cores).
export default defineConfig({
  test: {
    include: ['test/reliability/**/*.spec.ts'],
    globalSetup: ['test/reliability/global-setup.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    reporters: ['default'],
  },
});
