import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';

let loaded: typeof PromClient | undefined;

/**
 * prom-client, loaded on first use: the metrics' classes are imported by the application
 * module and its set-up whether or not METRICS_PORT is set, and a server without metrics
 * must not hold the library (a CommonJS package, so it loads synchronously here).
 */
export function promClient(): typeof PromClient {
  return (loaded ??= createRequire(import.meta.url)('prom-client') as typeof PromClient);
}
