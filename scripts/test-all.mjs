// `npm test`: the whole suite on in-memory PGlite, then again on PostgreSQL when
// TEST_DATABASE_URL is set (each test file creates its own database on that server).
// The Redis-backed stores are tested whenever Redis answers: TEST_REDIS_URL, or a Redis on
// 127.0.0.1:6379 found here. Prints how many tests were skipped and why.
// Extra arguments go to vitest (e.g. `npm test -- test/auth`).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);

/** True when a Redis server answers PING at host:port within a second. */
function redisAnswers(host, port) {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}
if (!process.env.TEST_REDIS_URL && (await redisAnswers('127.0.0.1', 6379))) {
  process.env.TEST_REDIS_URL = 'redis://127.0.0.1:6379';
}
console.log(
  process.env.TEST_REDIS_URL
    ? `Redis-backed stores: tested on ${process.env.TEST_REDIS_URL}`
    : 'Redis-backed stores: not tested (no TEST_REDIS_URL, and no Redis on 127.0.0.1:6379)',
);
const runs = [{ name: 'PGlite (in memory)', env: { TEST_DATABASE_URL: '' } }];
if (process.env.TEST_DATABASE_URL) {
  runs.push({ name: `PostgreSQL (${new URL(process.env.TEST_DATABASE_URL).host})`, env: {} });
}

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-test-'));
let passed = 0;
let failed = 0;
let skipped = 0;
let ok = true;
for (const [i, run] of runs.entries()) {
  console.log(`\n=== ${run.name} ===`);
  const report = join(dir, `report-${i}.json`);
  const result = spawnSync(
    process.execPath,
    [
      'node_modules/vitest/vitest.mjs',
      'run',
      '--reporter=default',
      '--reporter=json',
      `--outputFile.json=${report}`,
      ...args,
    ],
    { stdio: 'inherit', env: { ...process.env, ...run.env } },
  );
  if (result.status !== 0) ok = false;
  try {
    const json = JSON.parse(readFileSync(report, 'utf8'));
    passed += json.numPassedTests;
    failed += json.numFailedTests + (json.numRuntimeErrorTestSuites ?? 0);
    const runSkipped = (json.numPendingTests ?? 0) + (json.numTodoTests ?? 0);
    skipped += runSkipped;
    console.log(`${run.name}: ${json.numPassedTests} passed, ${json.numFailedTests} failed, ${runSkipped} skipped`);
    if (runSkipped > 0) {
      console.log(
        run.env.TEST_DATABASE_URL === ''
          ? '  skipped: the tests that need a PostgreSQL server (several instances on one database, outages, ' +
              'concurrent connections); they run in the PostgreSQL pass when TEST_DATABASE_URL is set'
          : '  skipped: the tests that only apply to the embedded database',
      );
    }
  } catch {
    ok = false;
    failed += 1;
  }
}
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(ok && failed === 0 ? 0 : 1);
