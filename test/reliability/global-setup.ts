// Builds the server once for the whole reliability suite and starts the PostgreSQL server
// that the scenarios share (the database-outage scenario has one of its own, since it stops it).
//
// The sources are compiled with tsconfig.build.json (what `npm run build` does for the server)
// into a private directory, so that the suite neither races other people's `dist/` nor runs a
// stale build. RELIABILITY_MAIN=dist/main.js runs an existing build instead.
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { buildServerInto } from '../support/private-build.js';
import { PgCluster } from './support/postgres.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUILD_DIR = join(ROOT, 'node_modules', '.cache', `gatehouse-reliability-${process.pid}`);

let cluster: PgCluster | undefined;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const t0 = performance.now();
  let main: string;
  if (process.env.RELIABILITY_MAIN) {
    main = resolve(ROOT, process.env.RELIABILITY_MAIN);
    if (!existsSync(main)) throw new Error(`RELIABILITY_MAIN=${process.env.RELIABILITY_MAIN}: no such file`);
  } else {
    main = buildServerInto(BUILD_DIR);
  }
  const built = performance.now();
  cluster = await PgCluster.create('shared');
  console.log(
    `[reliability] build ${((built - t0) / 1000).toFixed(1)} s, PostgreSQL on 127.0.0.1:${cluster.port} ready ${((performance.now() - built) / 1000).toFixed(1)} s later`,
  );
  project.provide('mainJs', main);
  project.provide('sharedPgUrl', cluster.url());
  return async () => {
    await cluster?.destroy();
    if (!process.env.RELIABILITY_MAIN) rmSync(BUILD_DIR, { recursive: true, force: true });
  };
}
