import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';
// SWC compiles the TypeScript so that decorator metadata is emitted (NestJS DI needs it).
export default defineConfig({
    plugins: [swc.vite({ module: { type: 'es6' } })],
    test: {
        include: ['test/**/*.spec.ts', 'src/**/*.spec.ts'],
        pool: 'forks',
        testTimeout: 30_000,
        hookTimeout: 60_000,
    },
});
//# sourceMappingURL=vitest.config.js.map