import { randomUUID } from 'node:crypto';
import type { Response } from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { createResource, signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import {
  addMember,
  createTenant,
  createTenantResource,
  defineRole,
  expectError,
  expectOk,
  inTenant,
  type TenantResource,
} from './tenant-helpers.js';

/**
 * Contract v2 §E test 4 (isolation) and the `scope=memberships` half of test 8: tenant
 * resources are seen by members only, a forged X-Tenant-Id gets 404, a removal acts on the
 * very next request, change rights follow the tenant roles, a body never moves a resource,
 * personal lists stay personal, and the cross-tenant list is exactly the readable union.
 */

/** The body of every 404 TENANT_NOT_FOUND (identical for unknown and foreign tenants). */
const TENANT_NOT_FOUND = {
  statusCode: 404,
  error: 'Not Found',
  message: 'No such tenant',
  code: 'TENANT_NOT_FOUND',
};

/** Status and error code, with the body shown when the status is not the expected one. */

describe('tenant isolation of resources', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000' });
  });
  afterAll(async () => t?.close());
  afterEach(() => t.clock.unfreeze());

  const getResource = (who: Pick<SignedUp, 'auth'>, id: string, headers: Record<string, string> = {}) =>
    t.http.get(`/resources/${id}`).set(who.auth).set(headers);
  const listIn = (who: Pick<SignedUp, 'auth'>, tenantId: string, query = '') =>
    t.http.get(`/resources${query}`).set(who.auth).set(inTenant(tenantId));
  const patch = (who: Pick<SignedUp, 'auth'>, id: string, body: object, headers: Record<string, string> = {}) =>
    t.http.patch(`/resources/${id}`).set(who.auth).set(headers).send(body);
  const del = (who: Pick<SignedUp, 'auth'>, id: string, headers: Record<string, string> = {}) =>
    t.http.delete(`/resources/${id}`).set(who.auth).set(headers);
  const removeMember = (tenantId: string, by: Pick<SignedUp, 'auth'>, memberId: string) =>
    t.http.delete(`/tenants/${tenantId}/members/${memberId}`).set(by.auth).expect(204);
  const setRoles = (tenantId: string, by: Pick<SignedUp, 'auth'>, memberId: string, roles: string[]) =>
    t.http.patch(`/tenants/${tenantId}/members/${memberId}`).set(by.auth).send({ roles }).expect(200);
  /** Every id of the tenant list as `who` sees it (expects 200; the lists here are short). */
  const idsIn = async (who: Pick<SignedUp, 'auth'>, tenantId: string): Promise<string[]> => {
    const res = await listIn(who, tenantId, '?limit=100');
    expectOk(res);
    expect(res.body.nextCursor).toBeNull();
    return (res.body.items as TenantResource[]).map((r) => r.id);
  };

  it('a tenant resource is visible to every member with resources:read; 404 RESOURCE_NOT_FOUND for anyone else', async () => {
    const owner = await signup(t);
    const member = await signup(t);
    const admin = await signup(t);
    const reader = await signup(t);
    const empty = await signup(t);
    const outsider = await signup(t);
    const tenant = await createTenant(t, owner);
    await defineRole(t, tenant.id, owner, 'reader', ['resources:read']);
    await addMember(t, tenant.id, owner, member, ['member']);
    await addMember(t, tenant.id, owner, admin, ['admin']);
    await addMember(t, tenant.id, owner, reader, ['reader']);
    await addMember(t, tenant.id, owner, empty, []);

    const r = await createTenantResource(t, owner.auth, tenant.id, { title: 'shared plan' });
    expect(r).toMatchObject({ tenantId: tenant.id, ownerId: owner.id, title: 'shared plan', visibility: 'private' });
    const byMember = await createTenantResource(t, member.auth, tenant.id);
    expect(byMember).toMatchObject({ tenantId: tenant.id, ownerId: member.id });

    for (const who of [owner, member, admin, reader]) {
      // Without the header and with it: the read rule does not depend on the context.
      for (const headers of [{}, inTenant(tenant.id)]) {
        const res = await getResource(who, r.id, headers);
        expectOk(res);
        expect(res.body).toEqual(r);
      }
      expect(new Set(await idsIn(who, tenant.id))).toEqual(new Set([r.id, byMember.id]));
    }

    // A member whose role list is empty sees the tenant but not its resources: 403, not 404.
    expectError(await getResource(empty, r.id), 403, 'INSUFFICIENT_TENANT_PERMISSION');
    expectError(await listIn(empty, tenant.id), 403, 'INSUFFICIENT_TENANT_PERMISSION');

    // Anyone else: the resource does not exist for them, exactly as a random id.
    const notFound = await getResource(outsider, r.id);
    expectError(notFound, 404, 'RESOURCE_NOT_FOUND');
    const random = await getResource(outsider, randomUUID());
    expect(notFound.text).toBe(random.text);
    expectError(await patch(outsider, r.id, { title: 'mine now' }), 404, 'RESOURCE_NOT_FOUND');
    expectError(await del(outsider, r.id), 404, 'RESOURCE_NOT_FOUND');
    expectError(await t.http.get(`/resources/${r.id}`), 404, 'RESOURCE_NOT_FOUND'); // anonymous
    const list = await listIn(outsider, tenant.id);
    expectError(list, 404, 'TENANT_NOT_FOUND');
    expect(list.body).toEqual(TENANT_NOT_FOUND);
    // Nothing changed.
    const after = await getResource(owner, r.id);
    expectOk(after);
    expect(after.body).toEqual(r);
  });

  it('a member of tenant B forging X-Tenant-Id of tenant A gets 404 TENANT_NOT_FOUND on every resources route', async () => {
    const ownerA = await signup(t);
    const ownerB = await signup(t);
    const intruder = await signup(t);
    const a = await createTenant(t, ownerA);
    const b = await createTenant(t, ownerB);
    await addMember(t, b.id, ownerB, intruder, ['admin']);
    const inA = await createTenantResource(t, ownerA.auth, a.id, { title: 'secret of A' });
    const inB = await createTenantResource(t, intruder.auth, b.id, { title: 'of B' });
    const personal = await createResource(t, intruder.auth, { title: 'personal' });
    const forged = inTenant(a.id);
    const unknown = inTenant(randomUUID());

    const answers: Response[] = [
      await t.http.get('/resources').set(intruder.auth).set(forged),
      await t.http.get('/resources?limit=1').set(intruder.auth).set(forged),
      await t.http.post('/resources').set(intruder.auth).set(forged).send({ title: 'planted' }),
      await patch(intruder, inA.id, { title: 'defaced' }, forged),
      await del(intruder, inA.id, forged),
      // Even on resources the intruder may change, the forged context is refused.
      await patch(intruder, inB.id, { title: 'moved?' }, forged),
      await patch(intruder, personal.id, { title: 'moved?' }, forged),
      await del(intruder, inB.id, forged),
      await getResource(intruder, inB.id, forged),
    ];
    for (const res of answers) {
      expectError(res, 404, 'TENANT_NOT_FOUND');
      expect(res.body).toEqual(TENANT_NOT_FOUND);
    }
    // Byte for byte the answer of a tenant that does not exist.
    const none = await t.http.get('/resources').set(intruder.auth).set(unknown);
    expectError(none, 404, 'TENANT_NOT_FOUND');
    for (const res of answers) expect(res.text).toBe(none.text);

    // A's resource is untouched and nothing was planted in A; B's are intact.
    const stillA = await getResource(ownerA, inA.id);
    expectOk(stillA);
    expect(stillA.body).toEqual(inA);
    expect(await idsIn(ownerA, a.id)).toEqual([inA.id]);
    expect(await idsIn(ownerB, b.id)).toEqual([inB.id]);
    const own = await getResource(intruder, personal.id);
    expectOk(own);
    expect(own.body.title).toBe('personal');
    // Without the forged header, A's resource is simply not found for the intruder.
    expectError(await getResource(intruder, inA.id), 404, 'RESOURCE_NOT_FOUND');
    expectError(await patch(intruder, inA.id, { title: 'defaced' }), 404, 'RESOURCE_NOT_FOUND');
    expectError(await del(intruder, inA.id), 404, 'RESOURCE_NOT_FOUND');
  });

  it("after a member's removal their very next request gets 404 (no stale membership)", async () => {
    const owner = await signup(t);
    const member = await signup(t);
    const tenant = await createTenant(t, owner);
    await addMember(t, tenant.id, owner, member, ['member']);
    const r = await createTenantResource(t, owner.auth, tenant.id);
    const own = await createTenantResource(t, member.auth, tenant.id);
    // Warm every path: list, read, change.
    expect(new Set(await idsIn(member, tenant.id))).toEqual(new Set([r.id, own.id]));
    expectOk(await getResource(member, r.id));
    expectOk(await getResource(member, r.id, inTenant(tenant.id)));
    expectOk(await patch(member, own.id, { title: 'still mine' }, inTenant(tenant.id)));

    await removeMember(tenant.id, owner, member.id);

    expectError(await listIn(member, tenant.id), 404, 'TENANT_NOT_FOUND');
    expectError(await getResource(member, r.id), 404, 'RESOURCE_NOT_FOUND');
    expectError(await getResource(member, r.id, inTenant(tenant.id)), 404, 'TENANT_NOT_FOUND');
    // Their own resource stays the tenant's: they can no longer see or change it.
    expectError(await getResource(member, own.id), 404, 'RESOURCE_NOT_FOUND');
    expectError(await patch(member, own.id, { title: 'taken along' }), 404, 'RESOURCE_NOT_FOUND');
    expectError(await del(member, own.id), 404, 'RESOURCE_NOT_FOUND');
    expectError(
      await t.http.post('/resources').set(member.auth).set(inTenant(tenant.id)).send({ title: 'x' }),
      404,
      'TENANT_NOT_FOUND',
    );
    const across = await t.http.get('/resources?scope=memberships&limit=100').set(member.auth);
    expectOk(across);
    expect(across.body.items).toEqual([]);
    // The owner still sees both, unchanged.
    expect(new Set(await idsIn(owner, tenant.id))).toEqual(new Set([r.id, own.id]));
    const kept = await getResource(owner, own.id);
    expect(kept.body).toMatchObject({ title: 'still mine', tenantId: tenant.id, ownerId: member.id });

    // A downgrade acts at once as well: back in with `member`, then an empty role list.
    await addMember(t, tenant.id, owner, member, ['member']);
    expectOk(await getResource(member, r.id));
    expectOk(await listIn(member, tenant.id));
    await setRoles(tenant.id, owner, member.id, []);
    expectError(await getResource(member, r.id), 403, 'INSUFFICIENT_TENANT_PERMISSION');
    expectError(await listIn(member, tenant.id), 403, 'INSUFFICIENT_TENANT_PERMISSION');
    expectError(await patch(member, own.id, { title: 'no' }), 403, 'NOT_OWNER');
  });

  it("a plain member may not change another member's resource (403 NOT_OWNER); the author and tenant admins may", async () => {
    const owner = await signup(t);
    const author = await signup(t);
    const other = await signup(t);
    const admin = await signup(t);
    const manager = await signup(t);
    const tenant = await createTenant(t, owner);
    await defineRole(t, tenant.id, owner, 'manager', ['resources:read', 'resources:manage']);
    await defineRole(t, tenant.id, owner, 'viewer', ['resources:read']);
    await addMember(t, tenant.id, owner, author, ['member']);
    await addMember(t, tenant.id, owner, other, ['member']);
    await addMember(t, tenant.id, owner, admin, ['admin']);
    await addMember(t, tenant.id, owner, manager, ['manager']);
    const r = await createTenantResource(t, author.auth, tenant.id, { title: 'draft' });

    // Another plain member: sees it, may not change or delete it (with or without the header).
    expectOk(await getResource(other, r.id));
    for (const headers of [{}, inTenant(tenant.id)]) {
      expectError(await patch(other, r.id, { title: 'hijacked' }, headers), 403, 'NOT_OWNER');
      expectError(await del(other, r.id, headers), 403, 'NOT_OWNER');
    }
    expect((await getResource(author, r.id)).body.title).toBe('draft');

    // The author, a member with resources:write: 200.
    const byAuthor = await patch(author, r.id, { title: 'by author' }, inTenant(tenant.id));
    expectOk(byAuthor);
    expect(byAuthor.body).toMatchObject({ id: r.id, title: 'by author', tenantId: tenant.id, ownerId: author.id });
    // A tenant admin (resources:manage): 200, the resource stays the author's.
    const byAdmin = await patch(admin, r.id, { title: 'by admin', visibility: 'private' });
    expectOk(byAdmin);
    expect(byAdmin.body).toMatchObject({ title: 'by admin', tenantId: tenant.id, ownerId: author.id });
    // A custom role with resources:manage, and the tenant owner: 200.
    const byManager = await patch(manager, r.id, { body: 'managed' }, inTenant(tenant.id));
    expectOk(byManager);
    expect(byManager.body).toMatchObject({ title: 'by admin', body: 'managed', ownerId: author.id });
    const byOwner = await patch(owner, r.id, { title: 'by owner' });
    expectOk(byOwner);
    expect(byOwner.body).toMatchObject({ title: 'by owner', ownerId: author.id });

    // The author downgraded to a role without resources:write: no longer their own to change.
    await setRoles(tenant.id, owner, author.id, ['viewer']);
    expectOk(await getResource(author, r.id));
    expectError(await patch(author, r.id, { title: 'not any more' }), 403, 'NOT_OWNER');
    expectError(await del(author, r.id), 403, 'NOT_OWNER');
    expect((await getResource(owner, r.id)).body.title).toBe('by owner');

    // The admin deletes it.
    const gone = await del(admin, r.id);
    expectOk(gone, 204);
    expectError(await getResource(owner, r.id), 404, 'RESOURCE_NOT_FOUND');
  });

  it('tenantId in a POST or PATCH body gets 400 VALIDATION_FAILED: no creating elsewhere, no moving', async () => {
    const owner = await signup(t);
    const a = await createTenant(t, owner);
    const b = await createTenant(t, owner);
    const r = await createTenantResource(t, owner.auth, a.id, { title: 'stays in A' });
    const personal = await createResource(t, owner.auth, { title: 'stays personal' });

    const refused: Response[] = [
      await t.http.post('/resources').set(owner.auth).send({ title: 'x', tenantId: a.id }),
      await t.http.post('/resources').set(owner.auth).set(inTenant(a.id)).send({ title: 'x', tenantId: b.id }),
      await t.http.post('/resources').set(owner.auth).set(inTenant(a.id)).send({ title: 'x', tenantId: a.id }),
      await t.http.post('/resources').set(owner.auth).set(inTenant(a.id)).send({ title: 'x', tenantId: null }),
      await patch(owner, r.id, { tenantId: b.id }),
      await patch(owner, r.id, { title: 'moved', tenantId: b.id }, inTenant(a.id)),
      await patch(owner, r.id, { tenantId: null }),
      await patch(owner, personal.id, { tenantId: a.id }),
    ];
    for (const res of refused) expectError(res, 400, 'VALIDATION_FAILED');

    expect(await idsIn(owner, a.id)).toEqual([r.id]);
    expect(await idsIn(owner, b.id)).toEqual([]);
    const stayed = await getResource(owner, r.id);
    expect(stayed.body).toEqual(r);
    const mine = await t.http.get('/resources?limit=100').set(owner.auth);
    expectOk(mine);
    expect((mine.body.items as TenantResource[]).map((x) => x.id)).toEqual([personal.id]);
    expect(mine.body.items[0]).toMatchObject({ title: 'stays personal', tenantId: null });
  });

  it('the personal list (no header, no tid) never shows tenant resources, not even those the caller created', async () => {
    const owner = await signup(t);
    const member = await signup(t);
    const tenant = await createTenant(t, owner);
    await addMember(t, tenant.id, owner, member, ['member']);
    const mine = [
      await createResource(t, member.auth, { title: 'p1' }),
      await createResource(t, member.auth, { title: 'p2', visibility: 'public' }),
    ];
    const inTenantByMember = await createTenantResource(t, member.auth, tenant.id, { visibility: 'public' });
    const inTenantByOwner = await createTenantResource(t, owner.auth, tenant.id);
    expect(inTenantByMember.tenantId).toBe(tenant.id);

    const personalIds = async (who: SignedUp): Promise<string[]> => {
      const ids: string[] = [];
      let cursor: string | null = null;
      do {
        const res: Response = await t.http
          .get(`/resources?limit=1${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)
          .set(who.auth);
        expectOk(res);
        for (const item of res.body.items as TenantResource[]) {
          expect(item.tenantId).toBeNull();
          expect(item.ownerId).toBe(who.id);
          ids.push(item.id);
        }
        cursor = res.body.nextCursor as string | null;
      } while (cursor);
      return ids;
    };
    expect(new Set(await personalIds(member))).toEqual(new Set(mine.map((r) => r.id)));
    expect(await personalIds(owner)).toEqual([]);
    // The tenant list has both tenant resources and none of the personal ones.
    expect(new Set(await idsIn(member, tenant.id))).toEqual(new Set([inTenantByMember.id, inTenantByOwner.id]));
  });

  it('scope=memberships pages (limit=3) return exactly personal + readable tenants, no duplicates, no gaps', async () => {
    const user = await signup(t);
    const owner = await signup(t);
    const stranger = await signup(t);
    const readable = await createTenant(t, owner); // user: member
    const customReader = await createTenant(t, owner); // user: custom role with resources:read
    const noRead = await createTenant(t, owner); // user: custom role WITHOUT resources:read
    const emptyRoles = await createTenant(t, owner); // user: empty role list
    const foreign = await createTenant(t, owner); // user: not a member
    const own = await createTenant(t, user); // user: owner
    await defineRole(t, customReader.id, owner, 'reader', ['resources:read']);
    await defineRole(t, noRead.id, owner, 'auditor', ['members:read', 'invitations:write']);
    // The same role name in another tenant, with resources:read, must not leak into `noRead`.
    await defineRole(t, foreign.id, owner, 'auditor', ['resources:read']);
    await addMember(t, readable.id, owner, user, ['member']);
    await addMember(t, customReader.id, owner, user, ['reader']);
    await addMember(t, noRead.id, owner, user, ['auditor']);
    await addMember(t, emptyRoles.id, owner, user, []);

    // Many rows share one instant (frozen clock): the keyset must break ties by id.
    t.clock.freeze();
    const expected = new Set<string>();
    const excluded = new Set<string>();
    for (let i = 0; i < 3; i += 1) {
      expected.add((await createResource(t, user.auth, { title: `personal ${i}` })).id);
      expected.add((await createTenantResource(t, owner.auth, readable.id)).id);
      excluded.add((await createTenantResource(t, owner.auth, noRead.id)).id);
      if (i % 2 === 0) t.clock.advance(0.001);
    }
    expected.add((await createTenantResource(t, user.auth, readable.id)).id);
    expected.add((await createTenantResource(t, owner.auth, customReader.id)).id);
    expected.add((await createTenantResource(t, owner.auth, customReader.id, { visibility: 'public' })).id);
    expected.add((await createTenantResource(t, user.auth, own.id)).id);
    t.clock.advance(0.001);
    for (let i = 0; i < 2; i += 1) {
      excluded.add((await createTenantResource(t, owner.auth, emptyRoles.id)).id);
      excluded.add((await createTenantResource(t, owner.auth, foreign.id)).id);
      excluded.add((await createTenantResource(t, owner.auth, foreign.id, { visibility: 'public' })).id);
      excluded.add((await createResource(t, owner.auth, { visibility: 'public' })).id);
      excluded.add((await createResource(t, stranger.auth)).id);
      expected.add((await createResource(t, user.auth)).id);
    }
    t.clock.unfreeze();
    expect(expected.size).toBe(12);

    // The excluded tenants really are unreadable for the user.
    expectError(await listIn(user, noRead.id), 403, 'INSUFFICIENT_TENANT_PERMISSION');
    expectError(await listIn(user, emptyRoles.id), 403, 'INSUFFICIENT_TENANT_PERMISSION');
    expectError(await listIn(user, foreign.id), 404, 'TENANT_NOT_FOUND');

    const seen: TenantResource[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: Response = await t.http
        .get(`/resources?scope=memberships&limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)
        .set(user.auth);
      expectOk(res);
      const items = res.body.items as TenantResource[];
      expect(items.length).toBeLessThanOrEqual(3);
      expect(items.length === 3 || res.body.nextCursor === null).toBe(true);
      seen.push(...items);
      cursor = res.body.nextCursor as string | null;
      pages += 1;
      expect(pages).toBeLessThan(20);
    } while (cursor);

    const ids = seen.map((r) => r.id);
    expect(ids.length).toBe(new Set(ids).size); // no duplicates
    expect(new Set(ids)).toEqual(expected); // no gaps, nothing else
    for (const id of ids) expect(excluded.has(id)).toBe(false);
    expect(pages).toBe(Math.ceil(expected.size / 3));
    // Newest first throughout.
    for (let i = 1; i < seen.length; i += 1) {
      expect(Date.parse(seen[i]!.createdAt)).toBeLessThanOrEqual(Date.parse(seen[i - 1]!.createdAt));
    }
    // Every item is personal and the user's, or of a tenant they may read.
    const readableTenants = new Set([readable.id, customReader.id, own.id]);
    for (const r of seen) {
      expect(r.tenantId === null ? r.ownerId === user.id : readableTenants.has(r.tenantId)).toBe(true);
    }

    // The stranger's view across memberships holds only their own.
    const strangers = await t.http.get('/resources?scope=memberships&limit=100').set(stranger.auth);
    expectOk(strangers);
    for (const r of strangers.body.items as TenantResource[]) {
      expect(r).toMatchObject({ tenantId: null, ownerId: stranger.id });
    }
    expect(strangers.body.items).toHaveLength(2);
  });
});
