/**
 * The audit_events scenario's data: a large audit trail written straight in SQL
 * (INSERT … SELECT generate_series; never through the API), and the cursor of its deepest page.
 */

/** The types the seed cycles through: six of ten are in the `login.*` family. */
export const SEED_TYPES = [
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

/**
 * Inserts `events` audit rows and `users` accounts. Every other event is about `targetId` (a
 * real account: an account under a password-guessing run, the case where deep pages matter),
 * the rest about the seeded accounts; each account is also its events' actor. Creation times
 * go back one second per three events (ties exercise the id tie-break of the keyset), so the
 * newest rows are the live server's own. As in `seed` (db.mjs), the secondary indexes of
 * audit_events are dropped during the load and rebuilt from their catalog definitions, then
 * VACUUM ANALYZE. Returns the seconds taken and how many rows match the scenario's filter.
 */
export async function seedAuditEvents(exec, { events, users, targetId }) {
  const started = Date.now();
  const n = Number(events);
  const u = Number(users);
  const indexes = await exec(`
    SELECT indexname AS name, indexdef AS def FROM pg_indexes
    WHERE schemaname = current_schema() AND tablename = 'audit_events'
      AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'audit_events'::regclass)`);
  await exec("SET maintenance_work_mem = '256MB'");
  for (const ix of indexes) await exec(`DROP INDEX "${ix.name}"`);
  await exec(`
    INSERT INTO users (id, username, username_key, password_hash, created_at, updated_at)
    SELECT md5('audit-user-' || g)::uuid, 'audit_' || g, 'audit_' || g, '$2b$12$' || repeat('.', 53),
           now() - interval '30 days' + g * interval '1 second', now()
    FROM generate_series(1, ${u}) AS g`);
  const types = `ARRAY[${SEED_TYPES.map((t) => `'${t}'`).join(', ')}]`;
  const subject = `CASE WHEN g % 2 = 0 THEN '${targetId}'::uuid ELSE md5('audit-user-' || (1 + (g / 2) % ${u}))::uuid END`;
  await exec(`
    INSERT INTO audit_events (id, type, user_id, actor_id, session_id, ip, user_agent, request_id, details, created_at)
    SELECT gen_random_uuid(), (${types})[1 + (g / 2) % ${SEED_TYPES.length}], ${subject}, ${subject},
           NULL, '203.0.113.' || (g % 250), 'bench-agent/' || (g % 7), md5('req-' || g),
           jsonb_build_object('seeded', true, 'n', g),
           date_trunc('milliseconds', now()) - interval '1 minute' - (g / 3) * interval '1 second'
    FROM generate_series(1, ${n}) AS g`);
  for (const ix of indexes) await exec(ix.def);
  await exec('VACUUM ANALYZE users');
  await exec('VACUUM ANALYZE audit_events');
  const [{ count }] = await exec(
    `SELECT count(*)::int AS count FROM audit_events WHERE user_id = '${targetId}'::uuid AND type LIKE 'login.%'`,
  );
  return { seconds: (Date.now() - started) / 1000, matching: count };
}

/**
 * Cursors (as GET /audit-events hands them out: base64url of [createdAt ISO, id]) into the
 * events about `userId` in the `family` (`login` for `login.*`), newest first: for each
 * fraction of `depths` (0.9: nine tenths down), the cursor that opens the page after that
 * many events; `1` opens the last full page of `limit` events, the deepest a client can walk to.
 */
export async function cursorsAt(exec, { userId, family, limit, depths }) {
  const where = `user_id = '${userId}'::uuid AND type LIKE '${family}.%'`;
  const [{ total }] = await exec(`SELECT count(*)::int AS total FROM audit_events WHERE ${where}`);
  if (total <= 2 * limit) throw new Error(`only ${total} events match: no page is deep`);
  const cursors = {};
  for (const depth of depths) {
    const skip = Math.min(Math.floor(total * depth), total - limit) - 1;
    const [row] = await exec(`
      SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at, id::text AS id
      FROM audit_events WHERE ${where} ORDER BY created_at DESC, id DESC OFFSET ${skip} LIMIT 1`);
    cursors[depth] = {
      cursor: Buffer.from(JSON.stringify([row.at, row.id]), 'utf8').toString('base64url'),
      skip: skip + 1,
    };
  }
  return { total, cursors };
}
