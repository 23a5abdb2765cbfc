// Scenario — the audit log at depth. PostgreSQL of its own (auto_explain needs the cluster's
// log), 200,000 audit rows written straight in SQL (generate_series: half of them about one
// account, six in ten of the login.* family, three per second so that the id breaks ties).
// An admin reads GET /audit-events?userId=<account>&type=login.*&from=…&to=…&limit=20: the
// first page of the window, and a page nine tenths of the way down it (a cursor of the encoder's
// own form). Expected: the deep page holds exactly the events an OFFSET query finds there, and
// PostgreSQL's plan of the application's query (logged by auto_explain with the rows each node
// read) is a range of one of audit_events' indexes that reads about as many rows as the first
// page does: no sequential scan, no sort of the account's trail, nothing proportional to depth.
// Speed itself is the benchmark's business (bench/run.mjs, row audit_events).
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseEnv, killAll, sharedSecrets, startApp, type AppProcess } from './support/app.js';
import { bearer, call } from './support/http.js';
import { sleep } from './support/net.js';
import { PgCluster } from './support/postgres.js';
import { loginAccount, signupAccount, type Account } from './support/users.js';

const EVENTS = 200_000;
const LIMIT = 20;
const DB = 'gatehouse_audit_depth';
const ADMIN = { username: 'audit_admin', password: 'audit admin password' };
const INDEXES = [
  'audit_events_user_id_created_at_id_idx',
  'audit_events_actor_id_created_at_id_idx',
  'audit_events_created_at_id_idx',
];
/**
 * Rows a page may read from audit_events: its 21, what the type filter drops on the way (four
 * in ten of the account's events), what the other accounts' events add on a shared index:
 * a few dozen. Reading from the top of the window down to the cursor would be tens of thousands.
 */
const MAX_ROWS_READ = 1_000;
const TYPES = [
  'login.succeeded',
  'login.failed',
  'login.failed',
  'login.throttled',
  'login.mfa_succeeded',
  'login.failed',
  'logout',
  'session.revoked',
  'password.changed',
  'mfa.challenge_failed',
];

let cluster: PgCluster;
let app: AppProcess;
let admin: Account;
let target: Account;

const sql = <T extends Record<string, unknown>>(text: string, params: unknown[] = []) =>
  cluster.query<T>(text, params, DB);

beforeAll(async () => {
  cluster = await PgCluster.create('audit');
  await cluster.createDatabase(DB);
  // Every plan of every statement on this database goes to the cluster's log, as JSON, with
  // the rows each node returned and removed (timing off: the counts are what is checked).
  await sql("LOAD 'auto_explain'"); // fails here, and clearly, if the contrib module is missing
  for (const setting of [
    "session_preload_libraries = 'auto_explain'",
    'auto_explain.log_min_duration = 0',
    'auto_explain.log_analyze = on',
    'auto_explain.log_timing = off',
    "auto_explain.log_format = 'json'",
  ])
    await cluster.query(`ALTER DATABASE ${DB} SET ${setting}`);
  app = await startApp(
    baseEnv({
      DATABASE_URL: cluster.url(DB),
      MIGRATE_ON_START: 'true',
      ADMIN_USERNAME: ADMIN.username,
      ADMIN_PASSWORD: ADMIN.password,
      ...sharedSecrets(),
    }),
  );
  target = await signupAccount(app.url, 'audit_target');
  admin = await loginAccount(app.url, ADMIN.username, ADMIN.password);
  const types = `ARRAY[${TYPES.map((t) => `'${t}'`).join(', ')}]`;
  const subject = `CASE WHEN g % 2 = 0 THEN $1::uuid ELSE md5('audit-other-' || (g % 997))::uuid END`;
  await sql(
    `INSERT INTO audit_events (id, type, user_id, actor_id, ip, user_agent, request_id, details, created_at)
     SELECT gen_random_uuid(), (${types})[1 + (g / 2) % ${TYPES.length}], ${subject}, ${subject},
            '203.0.113.' || (g % 250), 'seed-agent', md5('req-' || g), jsonb_build_object('n', g),
            date_trunc('milliseconds', now()) - interval '1 minute' - (g / 3) * interval '1 second'
     FROM generate_series(1, ${EVENTS}) AS g`,
    [target.id],
  );
  await sql('VACUUM ANALYZE audit_events');
}, 120_000);

afterAll(async () => {
  killAll();
  app?.cleanup();
  await cluster?.destroy();
});

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  Plans?: PlanNode[];
}

function* nodes(plan: PlanNode): Generator<PlanNode> {
  yield plan;
  for (const child of plan.Plans ?? []) yield* nodes(child);
}

/** Rows the scans of audit_events produced or threw away (filter, recheck), over every loop. */
function rowsRead(plan: PlanNode): number {
  let n = 0;
  for (const node of nodes(plan)) {
    if (node['Relation Name'] !== 'audit_events') continue;
    const perLoop =
      (node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0);
    n += perLoop * (node['Actual Loops'] ?? 1);
  }
  return n;
}

const LOG = () => join(cluster.dir, 'server.log');

/** A statement reading audit_events, as Prisma writes it (`"public"."audit_events"`) or by hand. */
const AUDIT_EVENTS_READ = /\bFROM\s+(?:"public"\.)?"?audit_events"?(?:\s|$)/;

/**
 * GET `path` as the admin, and the plan auto_explain logged for its read of audit_events (the
 * one statement of the request that selects from audit_events in order).
 */
async function pageWithPlan(path: string): Promise<{ items: Array<Record<string, string>>; plan: PlanNode }> {
  const from = statSync(LOG()).size;
  const res = await call(app.url, 'GET', path, { headers: bearer(admin.access), timeoutMs: 30_000 });
  if (res.status !== 200) throw new Error(`GET ${path} → ${res.status ?? res.error}: ${res.text.slice(0, 300)}`);
  const items = (res.json as { items: Array<Record<string, string>> }).items;
  for (let attempt = 0; attempt < 40; attempt++) {
    const plans = loggedPlans(readFileSync(LOG()).subarray(from).toString('utf8')).filter(
      (p) => AUDIT_EVENTS_READ.test(p['Query Text']) && p['Query Text'].includes('ORDER BY'),
    );
    if (plans.length > 1) throw new Error(`${plans.length} ordered reads of audit_events for one page of ${path}`);
    if (plans.length === 1) return { items, plan: plans[0]!.Plan };
    await sleep(50);
  }
  throw new Error(`no plan of the audit_events query in the log for ${path}`);
}

/** The JSON plans in a piece of the server log: `LOG:  duration: … plan:` and its tab-indented lines. */
function loggedPlans(text: string): Array<{ 'Query Text': string; Plan: PlanNode }> {
  const plans: Array<{ 'Query Text': string; Plan: PlanNode }> = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/LOG:\s+duration: [\d.]+ ms\s+plan:\s*$/.test(lines[i]!)) continue;
    const body: string[] = [];
    while (i + 1 < lines.length && lines[i + 1]!.startsWith('\t')) body.push(lines[++i]!.slice(1));
    plans.push(JSON.parse(body.join('\n')) as { 'Query Text': string; Plan: PlanNode });
  }
  return plans;
}

/** The cursor GET /audit-events hands out for a row: base64url of [createdAt ISO, id]. */
const cursorOf = (row: { at: string; id: string }) =>
  Buffer.from(JSON.stringify([row.at, row.id]), 'utf8').toString('base64url');

describe('the audit log at depth', () => {
  it('a deep page of a filtered window holds the right events and reads about as many rows as the first page', async () => {
    // The account's login.* events, newest first: the window drops the newest 5 % and the
    // oldest 3 %; the cursor is the event nine tenths of the way down.
    const where = `user_id = $1 AND type LIKE 'login.%'`;
    const [{ total }] = await sql<{ total: number }>(`SELECT count(*)::int AS total FROM audit_events WHERE ${where}`, [
      target.id,
    ]);
    expect(total).toBeGreaterThan(50_000);
    const at = async (offset: number) =>
      (
        await sql<{ at: string; id: string }>(
          `SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at, id::text AS id
             FROM audit_events WHERE ${where} ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1`,
          [target.id, offset],
        )
      )[0]!;
    const to = (await at(Math.floor(total * 0.05))).at;
    const from = (await at(Math.floor(total * 0.97))).at;
    const cursorRow = await at(Math.floor(total * 0.9));
    const query = `/audit-events?userId=${target.id}&type=login.*&from=${from}&to=${to}&limit=${LIMIT}`;

    const first = await pageWithPlan(query);
    const deep = await pageWithPlan(`${query}&cursor=${cursorOf(cursorRow)}`);

    // The deep page: exactly the 20 events after the cursor, as an OFFSET query finds them.
    const expected = await sql<{ id: string }>(
      `SELECT id::text AS id FROM audit_events
         WHERE ${where} AND created_at >= $2 AND created_at < $3 AND (created_at, id) < ($4::timestamptz, $5::uuid)
         ORDER BY created_at DESC, id DESC LIMIT ${LIMIT}`,
      [target.id, from, to, cursorRow.at, cursorRow.id],
    );
    expect(deep.items.map((e) => e.id)).toEqual(expected.map((r) => r.id));
    expect(first.items).toHaveLength(LIMIT);

    const summary = (plan: PlanNode) => ({
      rowsRead: rowsRead(plan),
      nodes: [...nodes(plan)].map((n) => `${n['Node Type']}${n['Index Name'] ? ` on ${n['Index Name']}` : ''}`),
    });
    const report = { matching: total, first: summary(first.plan), deep: summary(deep.plan) };
    console.log(`[audit-log] ${JSON.stringify(report)}`);
    const onAnIndex = (plan: PlanNode) => [...nodes(plan)].some((n) => INDEXES.includes(n['Index Name'] ?? ''));
    const seqScans = (plan: PlanNode) => [...nodes(plan)].filter((n) => n['Node Type'] === 'Seq Scan');
    expect([onAnIndex(first.plan), onAnIndex(deep.plan)]).toEqual([true, true]);
    expect([...seqScans(first.plan), ...seqScans(deep.plan)]).toEqual([]);
    expect(report.first.rowsRead).toBeLessThanOrEqual(MAX_ROWS_READ);
    // The deep page costs what the first costs: the cursor bounds the index range.
    expect(report.deep.rowsRead).toBeLessThanOrEqual(MAX_ROWS_READ);
  }, 60_000);
});
