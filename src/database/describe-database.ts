import type { DatabaseTarget } from '../config/config.schema.js';

/**
 * The database in words, for logs and one-line errors: "PostgreSQL at host:5432/name" (never the
 * user or password) or "the embedded database (PGlite) in <dir>". Kept free of driver imports so
 * that main.ts can use it before the application is loaded.
 */
export function describeDatabase(target: DatabaseTarget): string {
  if (target.kind === 'pglite') {
    return target.dataDir === undefined
      ? 'the in-memory embedded database (PGlite)'
      : `the embedded database (PGlite) in ${target.dataDir}`;
  }
  const url = new URL(target.url);
  // postgresql:///name?host=/run/postgresql names a Unix socket directory instead of a host.
  const host = url.hostname || url.searchParams.get('host') || 'localhost';
  return `PostgreSQL at ${host}:${url.port || 5432}${url.pathname}`;
}
