import { defineConfig } from 'prisma/config';

// The CLI is used only for `prisma generate` (see scripts/prisma-generate.mjs); migrations are
// applied by the project's own runner on the WebAssembly schema engine (src/cli/db.ts).
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
});
