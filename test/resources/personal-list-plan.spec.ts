import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pageSql } from '../../src/resources/resources.repository.js';
import { createResource, signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

const TENANT_ROWS = 4_000;

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Actual Rows'?: number;
  'Rows Removed by Filter'?: number;
  Plans?: PlanNode[];
}

const nodesOf = (node: PlanNode): PlanNode[] => [node, ...(node.Plans ?? []).flatMap(nodesOf)];

/**
 * The personal list (GET /resources) of an owner who also wrote thousands of tenant resources:
 * its statement reads the owner's personal rows from their own index, in order, and never
 * walks the tenant rows (which an index on the owner over every row did, then threw away).
 */
describe('the personal list of an owner with many tenant resources', () => {
  let t: TestApp;
  let owner: SignedUp;
  let personal: string[];
  beforeAll(async () => {
    t = await startApp();
    owner = await signup(t);
    const tenant = await t.prisma.tenant.create({ data: { slug: `plan-${randomUUID().slice(0, 8)}`, name: 'Plan' } });
    // The tenant rows are the newest: a scan of the owner's rows in list order meets them first.
    const now = Date.now();
    await t.prisma.resource.createMany({
      data: Array.from({ length: TENANT_ROWS }, (_, i) => ({
        ownerId: owner.id,
        tenantId: tenant.id,
        title: `tenant ${i}`,
        createdAt: new Date(now + 60_000 + i),
      })),
    });
    personal = [];
    for (let i = 0; i < 3; i++) personal.push((await createResource(t, owner.auth)).id);
    // Other users' personal rows, so that "outside tenants" alone is not selective either.
    const others = await Promise.all([1, 2, 3].map(() => signup(t)));
    await t.prisma.resource.createMany({
      data: others.flatMap((u) => Array.from({ length: 500 }, (_, i) => ({ ownerId: u.id, title: `other ${i}` }))),
    });
    await t.prisma.$executeRawUnsafe('ANALYZE resources');
  });
  afterAll(async () => t?.close());

  it('answers the personal rows alone, newest first', async () => {
    const res = await t.http.get('/resources').query({ limit: 10 }).set(owner.auth).expect(200);
    expect(res.body.items.map((r: { id: string }) => r.id)).toEqual(personal.toReversed());
    expect(res.body.nextCursor).toBeNull();
  });

  it.each([
    ['the first page', undefined],
    ['a later page', { createdAt: new Date(Date.now() + 3_600_000), id: 'ffffffff-ffff-4fff-bfff-ffffffffffff' }],
  ])('%s reads the partial index in order: no sort, no tenant row read', async (_name, after) => {
    const statement = pageSql({ personal: owner.id }, 11, after);
    const [row] = await t.prisma.$queryRawUnsafe<Array<{ 'QUERY PLAN': unknown }>>(
      `EXPLAIN (ANALYZE, FORMAT JSON) ${statement.text}`,
      ...statement.values,
    );
    const plan = row!['QUERY PLAN'];
    const root = (typeof plan === 'string' ? JSON.parse(plan) : plan) as Array<{ Plan: PlanNode }>;
    const nodes = nodesOf(root[0]!.Plan);
    expect(nodes.map((n) => n['Node Type'])).not.toContain('Sort');
    const scans = nodes.filter((n) => n['Index Name'] !== undefined);
    expect(scans.map((n) => n['Index Name'])).toEqual(['resources_personal_idx']);
    expect(scans[0]!['Actual Rows']).toBe(3);
    expect(scans[0]!['Rows Removed by Filter'] ?? 0).toBe(0);
  });
});
