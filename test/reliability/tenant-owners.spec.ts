// Scenario 3b — tenants under concurrency (contract v2 §E), against one app on PostgreSQL:
// 20 owners of one tenant lose the owner role at once (leaving, demoting themselves, removed
// or demoted by a global admin), owners removing one another in a ring, 20 accepts of one
// invitation at once, one slug created 20 times at once, one user creating 20 tenants at once
// against TENANT_LIMIT_PER_USER, 25 members added at once against TENANT_MEMBER_LIMIT, and a
// burst of 120 changes on one tenant while another user works.
// Expected: never a 5xx; a tenant always keeps at least one owner, and a request refused for
// that reason gets 409 LAST_OWNER; an invitation is used exactly once; the limits hold.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseEnv, killAll, sharedSecrets, startApp, type AppProcess } from './support/app.js';
import { bearer, call, keepAliveAgent, type Outcome } from './support/http.js';
import { round, sleep } from './support/net.js';
import { freshSharedDatabase, queryDb } from './support/shared-db.js';
import { loginAccount, signupAccount, uniqueName, type Account } from './support/users.js';

const ADMIN = { username: 'tenant_admin', password: 'tenant admin password' };
/** Members a tenant may have here: the owners' scenario fills a tenant with 20, the limit's with 21. */
const MEMBER_LIMIT = 21;
const TENANTS_PER_USER = 10;
/**
 * Concurrent changes on one tenant in the burst scenario: a tenant admin's script adding or
 * changing members or roles in parallel. Changes to one tenant take turns on its row lock;
 * the others must wait without starving the instance's database connections.
 */
const BURST = 120;

let app: AppProcess;
let databaseUrl: string;
let outbox: string;

beforeAll(async () => {
  databaseUrl = await freshSharedDatabase('tenants');
  outbox = mkdtempSync(join(tmpdir(), 'gatehouse-rel-outbox-'));
  app = await startApp(
    baseEnv({
      DATABASE_URL: databaseUrl,
      MIGRATE_ON_START: 'true',
      ADMIN_USERNAME: ADMIN.username,
      ADMIN_PASSWORD: ADMIN.password,
      MAIL_OUTBOX_DIR: outbox,
      TENANT_MEMBER_LIMIT: String(MEMBER_LIMIT),
      TENANT_LIMIT_PER_USER: String(TENANTS_PER_USER),
      ...sharedSecrets(),
    }),
  );
});

afterAll(() => {
  killAll();
  app?.cleanup();
  if (outbox) rmSync(outbox, { recursive: true, force: true });
});

const tally = (list: Outcome[]) =>
  list.reduce<Record<string, number>>((acc, o) => {
    const k = `${o.status ?? o.error}${o.status !== undefined && o.status >= 400 ? ` ${codeOf(o)}` : ''}`;
    acc[k] = (acc[k] ?? 0) + 1;
    return acc;
  }, {});
const codeOf = (o: Outcome): string | undefined => (o.json as { code?: string } | undefined)?.code;
/** The failed requests (5xx, transport errors), with the server's log lines that explain them. */
function broken(list: Outcome[]): string[] {
  const bad = list.filter((r) => r.error || (r.status ?? 0) >= 500);
  if (bad.length === 0) return [];
  const log = app
    .output()
    .split('\n')
    .filter((line) => /database unavailable|Internal error|ERROR/i.test(line))
    .slice(-3);
  return [
    ...bad.map((r) => `${r.status ?? r.error} ${r.text.slice(0, 160)}`),
    ...log.map((l) => `log: ${l.slice(0, 300)}`),
  ];
}

/** Creates a tenant as `owner`; its id. */
async function createTenant(owner: Account, prefix: string): Promise<string> {
  const slug = `${prefix}-${uniqueName('t').slice(2).replace(/_/g, '-')}`;
  const res = await call(app.url, 'POST', '/tenants', {
    headers: bearer(owner.access),
    json: { name: `Tenant ${slug}`, slug },
  });
  if (res.status !== 201) throw new Error(`create tenant failed: ${res.status ?? res.error} ${res.text}`);
  return (res.json as { id: string }).id;
}

async function addMember(tenantId: string, by: Account, member: Account, roles: string[]): Promise<void> {
  const res = await call(app.url, 'POST', `/tenants/${tenantId}/members`, {
    headers: bearer(by.access),
    json: { username: member.username, roles },
  });
  if (res.status !== 201) throw new Error(`add member failed: ${res.status ?? res.error} ${res.text}`);
}

/** The members holding `owner`, from the database. */
async function ownersInDb(tenantId: string): Promise<string[]> {
  const rows = await queryDb<{ user_id: string }>(
    databaseUrl,
    `SELECT user_id FROM tenant_memberships WHERE tenant_id = $1 AND 'owner' = ANY (roles) ORDER BY user_id`,
    [tenantId],
  );
  return rows.map((r) => r.user_id);
}

/** A tenant whose 20 members are all owners (the first created it and added the others). */
async function tenantOfOwners(prefix: string, n = 20): Promise<{ tenantId: string; owners: Account[] }> {
  const owners: Account[] = [];
  for (let i = 0; i < n; i++) owners.push(await signupAccount(app.url, prefix));
  const tenantId = await createTenant(owners[0]!, prefix);
  for (const owner of owners.slice(1)) await addMember(tenantId, owners[0]!, owner, ['owner']);
  expect(await ownersInDb(tenantId)).toHaveLength(n);
  return { tenantId, owners };
}

/** One way of taking the owner role from `target` (an owner): by `by` (the target itself, or a global admin). */
interface Attempt {
  by: Account;
  target: Account;
  action: 'leave' | 'remove' | 'demote';
  roles?: string[];
}

function send(tenantId: string, a: Attempt, agent: ReturnType<typeof keepAliveAgent>): Promise<Outcome> {
  const path = `/tenants/${tenantId}/members/${a.target.id}`;
  return a.action === 'demote'
    ? call(app.url, 'PATCH', path, { headers: bearer(a.by.access), json: { roles: a.roles }, agent, timeoutMs: 30_000 })
    : call(app.url, 'DELETE', path, { headers: bearer(a.by.access), agent, timeoutMs: 30_000 });
}

/** POST /auth/signup with an email address; throws unless 201. */
async function signupWithEmail(email: string): Promise<Account> {
  const username = uniqueName('invitee');
  const password = `pw ${username}`;
  const res = await call(app.url, 'POST', '/auth/signup', { json: { username, password, email } });
  if (res.status !== 201) throw new Error(`signup failed: ${res.status ?? res.error} ${res.text}`);
  const body = res.json as { user: { id: string }; accessToken: string };
  return { id: body.user.id, username, password, access: body.accessToken, refresh: '' };
}

/** The invitation link's token in a mail to `address`, waiting for the mail to be written. */
async function invitationToken(address: string): Promise<string> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    for (const name of readdirSync(outbox).filter((f) => f.endsWith('.eml'))) {
      const parsed = await simpleParser(readFileSync(join(outbox, name)));
      const to = Array.isArray(parsed.to) ? parsed.to.flatMap((a) => a.value) : (parsed.to?.value ?? []);
      const token = /accept-invitation#token=([A-Za-z0-9_-]{43})/.exec(parsed.text ?? '')?.[1];
      if (token && to.some((a) => a.address === address)) return token;
    }
    await sleep(100);
  }
  throw new Error(`no invitation mail to ${address} in ${outbox}`);
}

describe('tenants under concurrency', () => {
  it('20 owners lose the owner role at once, by every route: exactly one owner remains, the refused one got 409 LAST_OWNER', async () => {
    const admin = await loginAccount(app.url, ADMIN.username, ADMIN.password);
    // Each round: 20 attempts on 20 distinct owners, so that the only possible refusal is the
    // last owner's. Round 1: every owner acts on themselves (leave, or demote to member or
    // admin); round 2: half themselves, half a global admin (remove or demote); round 3: all
    // the global admin.
    const plans: Array<(owners: Account[], i: number) => Attempt> = [
      (o, i) =>
        i % 2 === 0
          ? { by: o[i]!, target: o[i]!, action: 'leave' }
          : { by: o[i]!, target: o[i]!, action: 'demote', roles: i % 4 === 1 ? ['member'] : ['admin'] },
      (o, i) =>
        i < 10
          ? i % 2 === 0
            ? { by: o[i]!, target: o[i]!, action: 'leave' }
            : { by: o[i]!, target: o[i]!, action: 'demote', roles: ['member'] }
          : i % 2 === 0
            ? { by: admin, target: o[i]!, action: 'remove' }
            : { by: admin, target: o[i]!, action: 'demote', roles: [] },
      (o, i) =>
        i % 2 === 0
          ? { by: admin, target: o[i]!, action: 'remove' }
          : { by: admin, target: o[i]!, action: 'demote', roles: ['admin', 'member'] },
    ];
    for (const [round_, plan] of plans.entries()) {
      const { tenantId, owners } = await tenantOfOwners(`own${round_}`);
      const attempts = owners.map((_, i) => plan(owners, i));
      const agent = keepAliveAgent(20);
      const results = await Promise.all(attempts.map((a) => send(tenantId, a, agent)));
      agent.destroy();
      const refused = results.map((r, i) => ({ r, a: attempts[i]! })).filter(({ r }) => (r.status ?? 0) >= 300);
      const wrong = results
        .map((r, i) => ({ r, a: attempts[i]! }))
        .filter(({ r, a }) => r.status !== (a.action === 'demote' ? 200 : 204) && r.status !== 409)
        .map(({ r, a }) => `${a.action}: ${r.status ?? r.error} ${r.text.slice(0, 160)}`);
      const remaining = await ownersInDb(tenantId);
      // The last owner can still see and administer the tenant.
      const lastOwner = owners.find((o) => o.id === remaining[0]);
      const members = lastOwner
        ? await call(app.url, 'GET', `/tenants/${tenantId}/members?limit=100`, { headers: bearer(lastOwner.access) })
        : undefined;
      const ownersListed = (
        (members?.json as { items?: Array<{ userId: string; roles: string[] }> } | undefined)?.items ?? []
      ).filter((m) => m.roles.includes('owner'));
      console.log(
        `[tenants/last-owner round ${round_ + 1}] ${JSON.stringify({ requests: 20, outcomes: tally(results), owners_left: remaining.length, longest_ms: round(Math.max(...results.map((r) => r.ms))) })}`,
      );
      expect(broken(results)).toEqual([]);
      expect(wrong).toEqual([]);
      expect(refused).toHaveLength(1);
      expect(refused[0]!.r.status).toBe(409);
      expect(codeOf(refused[0]!.r)).toBe('LAST_OWNER');
      expect(remaining).toEqual([refused[0]!.a.target.id]);
      expect(members?.status).toBe(200);
      expect(ownersListed.map((m) => m.userId)).toEqual(remaining);
    }
  });

  it('20 owners removing one another in a ring at once: never no owner, never a 5xx', async () => {
    const { tenantId, owners } = await tenantOfOwners('ring');
    const agent = keepAliveAgent(20);
    const results = await Promise.all(
      owners.map((by, i) => send(tenantId, { by, target: owners[(i + 1) % owners.length]!, action: 'remove' }, agent)),
    );
    agent.destroy();
    const remaining = await ownersInDb(tenantId);
    const removed = results.filter((r) => r.status === 204).length;
    console.log(
      `[tenants/ring] ${JSON.stringify({ requests: 20, outcomes: tally(results), owners_left: remaining.length })}`,
    );
    expect(broken(results)).toEqual([]);
    // A remover that was removed first is no longer a member: 404, as for any non-member.
    for (const r of results.filter((o) => o.status !== 204)) {
      expect(r.status).toBe(404);
      expect(codeOf(r)).toBe('TENANT_NOT_FOUND');
    }
    expect(remaining.length).toBeGreaterThanOrEqual(1);
    expect(remaining.length + removed).toBe(20);
  });

  it('20 accepts of one invitation at once: exactly one 200, one membership, the invitation used once', async () => {
    const owner = await signupAccount(app.url, 'inv');
    const tenantId = await createTenant(owner, 'inv');
    const email = `${uniqueName('invitee')}@example.com`;
    const invitee = await signupWithEmail(email);
    // The invitee's address, verified (the verification flow has its own tests).
    await queryDb(databaseUrl, 'UPDATE users SET email_verified_at = now() WHERE id = $1', [invitee.id]);
    const invited = await call(app.url, 'POST', `/tenants/${tenantId}/invitations`, {
      headers: bearer(owner.access),
      json: { email, roles: ['member'] },
    });
    expect(invited.status).toBe(201);
    const token = await invitationToken(email);
    // Several tabs of the invitee: 4 sessions, 5 requests each.
    const sessions = [invitee];
    for (let i = 0; i < 3; i++) sessions.push(await loginAccount(app.url, invitee.username, invitee.password));
    const agent = keepAliveAgent(20);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        call(app.url, 'POST', '/tenants/invitations/accept', {
          headers: bearer(sessions[i % sessions.length]!.access),
          json: { token },
          agent,
          timeoutMs: 30_000,
        }),
      ),
    );
    agent.destroy();
    const memberships = await queryDb<{ n: number }>(
      databaseUrl,
      'SELECT count(*)::int AS n FROM tenant_memberships WHERE tenant_id = $1 AND user_id = $2',
      [tenantId, invitee.id],
    );
    const invitation = await queryDb<{ accepted_by: string | null; pending_email_key: string | null }>(
      databaseUrl,
      'SELECT accepted_by, pending_email_key FROM tenant_invitations WHERE tenant_id = $1',
      [tenantId],
    );
    // No longer pending (a 21st accept would meet the per-user limit of 20 in 15 minutes).
    const pending = await call(app.url, 'GET', `/tenants/${tenantId}/invitations`, { headers: bearer(owner.access) });
    console.log(
      `[tenants/accept] ${JSON.stringify({ requests: 20, outcomes: tally(results), memberships: memberships[0]?.n, longest_ms: round(Math.max(...results.map((r) => r.ms))) })}`,
    );
    expect(broken(results)).toEqual([]);
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    const ok = results.find((r) => r.status === 200)!.json as {
      tenant: { id: string; myRoles: string[] };
      roles: string[];
    };
    expect(ok.tenant.id).toBe(tenantId);
    expect(ok.roles).toEqual(['member']);
    // Every loser: the invitation was used (400 INVITATION_INVALID) or the invitee had just joined (409 ALREADY_MEMBER).
    for (const r of results.filter((o) => o.status !== 200)) {
      expect(`${r.status} ${codeOf(r)}`).toMatch(/^(400 INVITATION_INVALID|409 ALREADY_MEMBER)$/);
    }
    expect(memberships[0]?.n).toBe(1);
    expect(invitation).toEqual([{ accepted_by: invitee.id, pending_email_key: null }]);
    expect(pending.status).toBe(200);
    expect((pending.json as { items: unknown[] }).items).toEqual([]);
  });

  it('one slug created 20 times at once: exactly one 201, the rest 409 TENANT_SLUG_TAKEN', async () => {
    const slug = `race-${uniqueName('s').slice(2).replace(/_/g, '-')}`;
    const creators: Account[] = [];
    for (let i = 0; i < 20; i++) creators.push(await signupAccount(app.url, 'slug'));
    const agent = keepAliveAgent(20);
    const results = await Promise.all(
      creators.map((c, i) =>
        call(app.url, 'POST', '/tenants', {
          headers: bearer(c.access),
          json: { name: `Race ${i}`, slug },
          agent,
          timeoutMs: 30_000,
        }),
      ),
    );
    agent.destroy();
    const rows = await queryDb<{ n: number }>(databaseUrl, 'SELECT count(*)::int AS n FROM tenants WHERE slug = $1', [
      slug,
    ]);
    console.log(`[tenants/slug] ${JSON.stringify({ requests: 20, outcomes: tally(results), tenants: rows[0]?.n })}`);
    expect(broken(results)).toEqual([]);
    expect(tally(results)).toEqual({ 201: 1, '409 TENANT_SLUG_TAKEN': 19 });
    expect(rows[0]?.n).toBe(1);
  });

  it(`one user creating 20 tenants at once: exactly ${TENANTS_PER_USER} (TENANT_LIMIT_PER_USER), the rest 409 TENANT_LIMIT_REACHED`, async () => {
    const user = await signupAccount(app.url, 'many');
    const agent = keepAliveAgent(20);
    const prefix = uniqueName('m').slice(2).replace(/_/g, '-');
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        call(app.url, 'POST', '/tenants', {
          headers: bearer(user.access),
          json: { name: `Many ${i}`, slug: `many-${prefix}-${i}` },
          agent,
          timeoutMs: 30_000,
        }),
      ),
    );
    agent.destroy();
    const owned = await queryDb<{ n: number }>(
      databaseUrl,
      `SELECT count(*)::int AS n FROM tenant_memberships WHERE user_id = $1 AND 'owner' = ANY (roles)`,
      [user.id],
    );
    console.log(`[tenants/limit] ${JSON.stringify({ requests: 20, outcomes: tally(results), owned: owned[0]?.n })}`);
    expect(broken(results)).toEqual([]);
    expect(tally(results)).toEqual({ 201: TENANTS_PER_USER, '409 TENANT_LIMIT_REACHED': 20 - TENANTS_PER_USER });
    expect(owned[0]?.n).toBe(TENANTS_PER_USER);
  });

  it(`25 members added at once: the tenant stops at TENANT_MEMBER_LIMIT (${MEMBER_LIMIT})`, async () => {
    const owner = await signupAccount(app.url, 'full');
    const tenantId = await createTenant(owner, 'full');
    const candidates: Account[] = [];
    for (let i = 0; i < 25; i++) candidates.push(await signupAccount(app.url, 'cand'));
    const agent = keepAliveAgent(25);
    const results = await Promise.all(
      candidates.map((c) =>
        call(app.url, 'POST', `/tenants/${tenantId}/members`, {
          headers: bearer(owner.access),
          json: { username: c.username, roles: ['member'] },
          agent,
          timeoutMs: 30_000,
        }),
      ),
    );
    agent.destroy();
    const members = await queryDb<{ n: number }>(
      databaseUrl,
      'SELECT count(*)::int AS n FROM tenant_memberships WHERE tenant_id = $1',
      [tenantId],
    );
    console.log(
      `[tenants/members] ${JSON.stringify({ requests: 25, outcomes: tally(results), members: members[0]?.n })}`,
    );
    expect(broken(results)).toEqual([]);
    expect(tally(results)).toEqual({
      201: MEMBER_LIMIT - 1,
      '409 TENANT_LIMIT_REACHED': 25 - (MEMBER_LIMIT - 1),
    });
    expect(members[0]?.n).toBe(MEMBER_LIMIT);
  });
  it(`a burst of ${BURST} changes on one tenant: no 5xx, neither for it nor for anyone else meanwhile`, async () => {
    // Each change to a tenant runs in a transaction that locks the tenant's row, so a burst on
    // one tenant is served one change at a time. Waiting for that lock must not hold the
    // instance's database connections until every other request times out (503).
    const owner = await signupAccount(app.url, 'burst');
    const tenantId = await createTenant(owner, 'burst');
    const bystander = await signupAccount(app.url, 'bystander');
    const agent = keepAliveAgent(BURST + 20);
    const burst = Array.from({ length: BURST }, (_, i) =>
      call(app.url, 'PUT', `/tenants/${tenantId}/roles/burst_${i % 10}`, {
        headers: bearer(owner.access),
        json: { permissions: i % 2 === 0 ? ['resources:read'] : ['members:read', 'resources:read'] },
        agent,
        timeoutMs: 60_000,
      }),
    );
    await sleep(200);
    const others = await Promise.all(
      Array.from({ length: 10 }, () =>
        call(app.url, 'GET', '/resources', { headers: bearer(bystander.access), agent, timeoutMs: 60_000 }),
      ),
    );
    const results = await Promise.all(burst);
    agent.destroy();
    console.log(
      `[tenants/burst] ${JSON.stringify({ requests: BURST, outcomes: tally(results), bystander: tally(others), longest_ms: round(Math.max(...results.map((r) => r.ms))), bystander_longest_ms: round(Math.max(...others.map((r) => r.ms))) })}`,
    );
    expect(broken(others)).toEqual([]);
    expect(broken(results)).toEqual([]);
    expect(tally(results)).toEqual({ 200: BURST });
  });
});
