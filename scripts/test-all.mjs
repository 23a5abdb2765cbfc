// `npm test`: the whole suite on in-memory PGlite, then again on PostgreSQL when
// TEST_DATABASE_URL is set (each test file creates its own database on that server).
// Extra arguments go to vitest (e.g. `npm test -- test/auth`).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const runs = [{ name: 'PGlite (in memory)', env: { TEST_DATABASE_URL: '' } }];
if (process.env.TEST_DATABASE_URL) {
  runs.push({ name: `PostgreSQL (${new URL(process.env.TEST_DATABASE_URL).host})`, env: {} });
}

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-test-'));
let passed = 0;
let failed = 0;
let ok = true;
for (const [i, run] of runs.entries()) {
  console.log(`\n=== ${run.name} ===`);
  const report = join(dir, `report-${i}.json`);
  const result = spawnSync(
    process.execPath,
    ['node_modules/vitest/vitest.mjs', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...args],
    { stdio: 'inherit', env: { ...process.env, ...run.env } },
  );
  if (result.status !== 0) ok = false;
  try {
    const json = JSON.parse(readFileSync(report, 'utf8'));
    passed += json.numPassedTests;
    failed += json.numFailedTests + (json.numRuntimeErrorTestSuites ?? 0);
    console.log(`${run.name}: ${json.numPassedTests} passed, ${json.numFailedTests} failed`);
  } catch {
    ok = false;
    failed += 1;
  }
}
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(ok && failed === 0 ? 0 : 1);
