import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { addMember, createTenant, inTenant, MEMBER_KEYS, type CreatedTenant } from './tenant-helpers.js';

const ENV = { ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000' };
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const BUILT_IN = {
  owner: [
    'tenant:update',
    'tenant:delete',
    'members:read',
    'members:write',
    'invitations:write',
    'roles:write',
    'resources:read',
    'resources:write',
    'resources:manage',
  ],
  member: ['members:read', 'resources:read', 'resources:write'],
};

interface Member {
  userId: string;
  username: string;
  displayName: string | null;
  roles: string[];
  joinedAt: string;
}

describe('/tenants/:id/members and /tenants/:id/roles', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp(ENV);
  });
  afterAll(async () => t?.close());

  /** A tenant with a fresh owner. */
  const team = async (): Promise<{ owner: SignedUp; tenant: CreatedTenant }> => {
    const owner = await signup(t);
    return { owner, tenant: await createTenant(t, owner) };
  };
  /** A fresh user added to the tenant with `roles` by `by`. */
  const joined = async (tenant: CreatedTenant, by: SignedUp, roles: string[]): Promise<SignedUp> => {
    const user = await signup(t);
    await addMember(t, tenant.id, by, user, roles);
    return user;
  };
  const rolesInDb = async (tenantId: string, userId: string): Promise<string[] | null> =>
    (await t.prisma.tenantMembership.findUnique({ where: { tenantId_userId: { tenantId, userId } } }))?.roles ?? null;
  const put = (tenant: CreatedTenant, by: SignedUp, name: string, permissions: unknown) =>
    t.http.put(`/tenants/${tenant.id}/roles/${name}`).set(by.auth).send({ permissions });
  const setRoles = (tenant: CreatedTenant, by: SignedUp, userId: string, roles: unknown) =>
    t.http.patch(`/tenants/${tenant.id}/members/${userId}`).set(by.auth).send({ roles });
  const remove = (tenant: CreatedTenant, by: SignedUp, userId: string) =>
    t.http.delete(`/tenants/${tenant.id}/members/${userId}`).set(by.auth);
  const expectCode = (res: { status: number; body: { code?: string } }, status: number, code: string) => {
    expect({ status: res.status, code: res.body.code }).toEqual({ status, code });
  };

  describe('adding members', () => {
    it('answers 201 with the member object to the owner', async () => {
      const { owner, tenant } = await team();
      const user = await signup(t);
      const res = await t.http
        .post(`/tenants/${tenant.id}/members`)
        .set(owner.auth)
        .send({ username: user.username, roles: ['member'] })
        .expect(201);
      expect(Object.keys(res.body).sort()).toEqual(MEMBER_KEYS);
      expect(res.body).toMatchObject({ userId: user.id, username: user.username, roles: ['member'] });
      expect(res.body.joinedAt).toMatch(ISO);
      expect(await rolesInDb(tenant.id, user.id)).toEqual(['member']);
      const seen = await t.http.get(`/tenants/${tenant.id}`).set(user.auth).expect(200);
      expect(seen.body.myRoles).toEqual(['member']);
    });

    it('answers a plain member 403 INSUFFICIENT_TENANT_PERMISSION and adds nobody', async () => {
      const { owner, tenant } = await team();
      const member = await joined(tenant, owner, ['member']);
      const target = await signup(t);
      for (const roles of [['member'], []]) {
        const res = await t.http
          .post(`/tenants/${tenant.id}/members`)
          .set(member.auth)
          .send({ username: target.username, roles })
          .expect(403);
        expectCode(res, 403, 'INSUFFICIENT_TENANT_PERMISSION');
      }
      expect(await rolesInDb(tenant.id, target.id)).toBeNull();
    });

    it('lets a tenant admin add members and admins, but answers 403 to granting owner', async () => {
      const { owner, tenant } = await team();
      const admin = await joined(tenant, owner, ['admin']);
      const m = await joined(tenant, admin, ['member']);
      const a = await joined(tenant, admin, ['admin']);
      expect(await rolesInDb(tenant.id, m.id)).toEqual(['member']);
      expect(await rolesInDb(tenant.id, a.id)).toEqual(['admin']);

      const target = await signup(t);
      for (const roles of [['owner'], ['member', 'owner']]) {
        const res = await t.http
          .post(`/tenants/${tenant.id}/members`)
          .set(admin.auth)
          .send({ username: target.username, roles })
          .expect(403);
        expectCode(res, 403, 'INSUFFICIENT_TENANT_PERMISSION');
      }
      expect(await rolesInDb(tenant.id, target.id)).toBeNull();
      // Nor by changing an existing member's roles, their own included.
      expectCode(await setRoles(tenant, admin, m.id, ['owner']), 403, 'INSUFFICIENT_TENANT_PERMISSION');
      expectCode(await setRoles(tenant, admin, admin.id, ['admin', 'owner']), 403, 'INSUFFICIENT_TENANT_PERMISSION');
      expect(await rolesInDb(tenant.id, m.id)).toEqual(['member']);
      expect(await rolesInDb(tenant.id, admin.id)).toEqual(['admin']);
    });

    it('answers 409 ALREADY_MEMBER to adding a member again, and keeps their roles', async () => {
      const { owner, tenant } = await team();
      const member = await joined(tenant, owner, ['member']);
      const res = await t.http
        .post(`/tenants/${tenant.id}/members`)
        .set(owner.auth)
        .send({ username: member.username, roles: ['admin'] })
        .expect(409);
      expectCode(res, 409, 'ALREADY_MEMBER');
      expect(await rolesInDb(tenant.id, member.id)).toEqual(['member']);
      const self = await t.http
        .post(`/tenants/${tenant.id}/members`)
        .set(owner.auth)
        .send({ username: owner.username, roles: ['member'] })
        .expect(409);
      expectCode(self, 409, 'ALREADY_MEMBER');
      expect(await rolesInDb(tenant.id, owner.id)).toEqual(['owner']);
    });

    it('answers 404 USER_NOT_FOUND to an unknown username', async () => {
      const { owner, tenant } = await team();
      const res = await t.http
        .post(`/tenants/${tenant.id}/members`)
        .set(owner.auth)
        .send({ username: `nobody_${randomUUID().slice(0, 8)}`, roles: ['member'] })
        .expect(404);
      expectCode(res, 404, 'USER_NOT_FOUND');
      expect(await t.prisma.tenantMembership.count({ where: { tenantId: tenant.id } })).toBe(1);
    });

    const badRoleLists: Array<[string, unknown]> = [
      ['an unknown role', ['superuser']],
      ['a role defined in another tenant only', ['elsewhere']],
      ['a role name in upper case', ['Member']],
      ['a role that is not a string', [7]],
      ['the same role twice', ['member', 'member']],
      ['11 roles', ['owner', 'admin', 'member', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8']],
      ['roles that are not a list', 'member'],
      ['no roles at all', undefined],
    ];
    it.each(badRoleLists)('answers 400 VALIDATION_FAILED to %s and adds nobody', async (_name, roles) => {
      const { owner, tenant } = await team();
      const other = await team();
      await put(other.tenant, other.owner, 'elsewhere', ['resources:read']).expect(200);
      const user = await signup(t);
      const res = await t.http
        .post(`/tenants/${tenant.id}/members`)
        .set(owner.auth)
        .send({ username: user.username, roles })
        .expect(400);
      expectCode(res, 400, 'VALIDATION_FAILED');
      expect(await rolesInDb(tenant.id, user.id)).toBeNull();
      // The same list on a PATCH changes nothing either.
      const member = await joined(tenant, owner, ['member']);
      expectCode(await setRoles(tenant, owner, member.id, roles), 400, 'VALIDATION_FAILED');
      expect(await rolesInDb(tenant.id, member.id)).toEqual(['member']);
    });

    it('answers a non-member 404 TENANT_NOT_FOUND', async () => {
      const { tenant } = await team();
      const outsider = await signup(t);
      const user = await signup(t);
      const res = await t.http
        .post(`/tenants/${tenant.id}/members`)
        .set(outsider.auth)
        .send({ username: user.username, roles: [] })
        .expect(404);
      expectCode(res, 404, 'TENANT_NOT_FOUND');
      expect(await rolesInDb(tenant.id, user.id)).toBeNull();
    });
  });

  describe('owners', () => {
    it('answers a tenant admin 403 to changing or removing an owner', async () => {
      const { owner, tenant } = await team();
      const second = await joined(tenant, owner, ['owner']);
      const admin = await joined(tenant, owner, ['admin']);
      for (const target of [owner, second]) {
        expectCode(await setRoles(tenant, admin, target.id, ['member']), 403, 'INSUFFICIENT_TENANT_PERMISSION');
        expectCode(
          await setRoles(tenant, admin, target.id, ['owner', 'member']),
          403,
          'INSUFFICIENT_TENANT_PERMISSION',
        );
        expectCode(await remove(tenant, admin, target.id), 403, 'INSUFFICIENT_TENANT_PERMISSION');
        expect(await rolesInDb(tenant.id, target.id)).toEqual(['owner']);
      }
      // What an admin may do: remove a plain member.
      const member = await joined(tenant, admin, ['member']);
      await remove(tenant, admin, member.id).expect(204);
      expect(await rolesInDb(tenant.id, member.id)).toBeNull();
    });

    it('answers the last owner 409 LAST_OWNER to leaving or demoting themselves; after a transfer, leaving is 204', async () => {
      const { owner, tenant } = await team();
      const heir = await joined(tenant, owner, ['member']);
      expectCode(await remove(tenant, owner, owner.id), 409, 'LAST_OWNER');
      for (const roles of [['admin'], [], ['member']]) {
        expectCode(await setRoles(tenant, owner, owner.id, roles), 409, 'LAST_OWNER');
      }
      expect(await rolesInDb(tenant.id, owner.id)).toEqual(['owner']);

      const promoted = await setRoles(tenant, owner, heir.id, ['owner']).expect(200);
      expect(Object.keys(promoted.body).sort()).toEqual(MEMBER_KEYS);
      expect(promoted.body).toMatchObject({ userId: heir.id, roles: ['owner'] });
      await remove(tenant, owner, owner.id).expect(204);

      expect(await rolesInDb(tenant.id, owner.id)).toBeNull();
      expectCode(await t.http.get(`/tenants/${tenant.id}`).set(owner.auth), 404, 'TENANT_NOT_FOUND');
      const members = await t.http.get(`/tenants/${tenant.id}/members`).set(heir.auth).expect(200);
      expect(members.body.items.map((m: Member) => [m.userId, m.roles])).toEqual([[heir.id, ['owner']]]);
      // Now the heir is the last owner.
      expectCode(await remove(tenant, heir, heir.id), 409, 'LAST_OWNER');
    });

    it('lets one of two owners demote themselves, or remove the other, but never the last one', async () => {
      const { owner, tenant } = await team();
      const second = await joined(tenant, owner, ['owner']);
      const res = await setRoles(tenant, second, second.id, ['admin']).expect(200);
      expect(res.body.roles).toEqual(['admin']);
      await setRoles(tenant, owner, second.id, ['owner']).expect(200);
      await remove(tenant, second, owner.id).expect(204);
      expect(await rolesInDb(tenant.id, owner.id)).toBeNull();
      expectCode(await setRoles(tenant, second, second.id, ['member']), 409, 'LAST_OWNER');
      expect(await rolesInDb(tenant.id, second.id)).toEqual(['owner']);
    });

    it('lets a non-owner leave without any permission (204), and answers 404 to an unknown member', async () => {
      const { owner, tenant } = await team();
      const idle = await joined(tenant, owner, []);
      await remove(tenant, idle, idle.id).expect(204);
      expect(await rolesInDb(tenant.id, idle.id)).toBeNull();
      expectCode(await t.http.get(`/tenants/${tenant.id}`).set(idle.auth), 404, 'TENANT_NOT_FOUND');

      const stranger = await signup(t);
      for (const id of [randomUUID(), stranger.id, 'not-a-uuid']) {
        expectCode(await remove(tenant, owner, id), 404, 'USER_NOT_FOUND');
        expectCode(await setRoles(tenant, owner, id, ['member']), 404, 'USER_NOT_FOUND');
      }
    });
  });

  describe('GET /tenants/:id/members', () => {
    it('pages through 5 members 2 at a time, newest first, each once, with exactly the member keys', async () => {
      const { owner, tenant } = await team();
      const expected = new Map<string, string[]>([[owner.id, ['owner']]]);
      for (const roles of [['member'], ['admin'], [], ['admin', 'member']]) {
        const user = await joined(tenant, owner, roles);
        expected.set(user.id, [...roles].sort());
      }
      const outsider = await team();
      await joined(outsider.tenant, outsider.owner, ['member']);

      const pages: Member[][] = [];
      let cursor: string | null = null;
      do {
        const res: { body: { items: Member[]; nextCursor: string | null } } = await t.http
          .get(`/tenants/${tenant.id}/members`)
          .set(owner.auth)
          .query({ limit: 2, ...(cursor ? { cursor } : {}) })
          .expect(200);
        expect(Object.keys(res.body).sort()).toEqual(['items', 'nextCursor']);
        pages.push(res.body.items);
        cursor = res.body.nextCursor;
      } while (cursor !== null && pages.length < 10);
      expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
      const items = pages.flat();
      expect(new Set(items.map((m) => m.userId)).size).toBe(5);
      expect(items.map((m) => m.userId).sort()).toEqual([...expected.keys()].sort());
      for (const m of items) {
        expect(Object.keys(m).sort()).toEqual(MEMBER_KEYS);
        expect(m.roles).toEqual(expected.get(m.userId));
        expect(m.joinedAt).toMatch(ISO);
        expect(typeof m.username).toBe('string');
      }
      const joinedAt = items.map((m) => m.joinedAt);
      expect(joinedAt).toEqual([...joinedAt].sort().toReversed());
      expect(items[items.length - 1]!.userId).toBe(owner.id);

      const all = await t.http.get(`/tenants/${tenant.id}/members`).set(owner.auth).expect(200);
      expect(all.body.nextCursor).toBeNull();
      expect(all.body.items.map((m: Member) => m.userId)).toEqual(items.map((m) => m.userId));
    });

    it('answers a plain member 200 (members:read) and a non-member 404', async () => {
      const { owner, tenant } = await team();
      const member = await joined(tenant, owner, ['member']);
      const res = await t.http.get(`/tenants/${tenant.id}/members`).set(member.auth).expect(200);
      expect(res.body.items).toHaveLength(2);
      const outsider = await signup(t);
      expectCode(await t.http.get(`/tenants/${tenant.id}/members`).set(outsider.auth), 404, 'TENANT_NOT_FOUND');
    });
  });

  describe('custom roles', () => {
    it('lists the built-in roles, then custom ones', async () => {
      const { owner, tenant } = await team();
      const defined = await put(tenant, owner, 'reader', ['resources:read', 'members:read']).expect(200);
      expect(defined.body).toEqual({ name: 'reader', builtIn: false, permissions: ['members:read', 'resources:read'] });
      const res = await t.http.get(`/tenants/${tenant.id}/roles`).set(owner.auth).expect(200);
      expect(res.body.map((r: { name: string }) => r.name)).toEqual(['owner', 'admin', 'member', 'reader']);
      expect(res.body[0]).toEqual({ name: 'owner', builtIn: true, permissions: BUILT_IN.owner });
      expect(res.body[2]).toEqual({ name: 'member', builtIn: true, permissions: BUILT_IN.member });
      expect(res.body[3]).toEqual(defined.body);
    });

    it('a read-only custom role lists the tenant resources but gets 403 on creating one', async () => {
      const { owner, tenant } = await team();
      await put(tenant, owner, 'reader', ['members:read', 'resources:read']).expect(200);
      const reader = await joined(tenant, owner, ['reader']);
      const created = await t.http
        .post('/resources')
        .set(owner.auth)
        .set(inTenant(tenant.id))
        .send({ title: 'shared doc' })
        .expect(201);

      const list = await t.http.get('/resources').set(reader.auth).set(inTenant(tenant.id)).expect(200);
      expect(list.body.items.map((r: { id: string }) => r.id)).toEqual([created.body.id]);
      await t.http.get(`/resources/${created.body.id}`).set(reader.auth).expect(200);
      await t.http.get(`/tenants/${tenant.id}/members`).set(reader.auth).expect(200);

      const before = await t.prisma.resource.count({ where: { tenantId: tenant.id } });
      const res = await t.http
        .post('/resources')
        .set(reader.auth)
        .set(inTenant(tenant.id))
        .send({ title: 'not allowed' })
        .expect(403);
      expectCode(res, 403, 'INSUFFICIENT_TENANT_PERMISSION');
      expect(await t.prisma.resource.count({ where: { tenantId: tenant.id } })).toBe(before);
      expectCode(
        await t.http.patch(`/resources/${created.body.id}`).set(reader.auth).send({ title: 'changed' }),
        403,
        'NOT_OWNER',
      );
      // Personal resources are not the tenant's business.
      await t.http.post('/resources').set(reader.auth).send({ title: 'mine' }).expect(201);
    });

    it('a roles:write holder cannot define a role with members:write it lacks (403), but can within its own', async () => {
      const { owner, tenant } = await team();
      await put(tenant, owner, 'rolesmith', ['roles:write', 'members:read']).expect(200);
      await put(tenant, owner, 'reader', ['resources:read']).expect(200);
      const smith = await joined(tenant, owner, ['rolesmith']);

      for (const permissions of [['members:write'], ['members:read', 'members:write'], ['resources:read']]) {
        const res = await put(tenant, smith, 'escalate', permissions).expect(403);
        expectCode(res, 403, 'INSUFFICIENT_TENANT_PERMISSION');
      }
      expect(await t.prisma.tenantRole.count({ where: { tenantId: tenant.id, name: 'escalate' } })).toBe(0);
      // Nor redefine a role that holds more than it does, nor delete one.
      expectCode(await put(tenant, smith, 'reader', ['members:read']), 403, 'INSUFFICIENT_TENANT_PERMISSION');
      expectCode(
        await t.http.delete(`/tenants/${tenant.id}/roles/reader`).set(smith.auth),
        403,
        'INSUFFICIENT_TENANT_PERMISSION',
      );
      const reader = await t.prisma.tenantRole.findUniqueOrThrow({
        where: { tenantId_name: { tenantId: tenant.id, name: 'reader' } },
      });
      expect(reader.permissions).toEqual(['resources:read']);

      const ok = await put(tenant, smith, 'viewer', ['members:read']).expect(200);
      expect(ok.body).toEqual({ name: 'viewer', builtIn: false, permissions: ['members:read'] });
      const both = await put(tenant, smith, 'smith-copy', ['roles:write', 'members:read']).expect(200);
      expect(both.body.permissions).toEqual(['members:read', 'roles:write']);
      const roles = await t.http.get(`/tenants/${tenant.id}/roles`).set(smith.auth).expect(200);
      expect(roles.body.map((r: { name: string }) => r.name)).toEqual(
        expect.arrayContaining(['viewer', 'smith-copy', 'reader', 'rolesmith']),
      );
      // A plain member holds no roles:write.
      const member = await joined(tenant, owner, ['member']);
      expectCode(await put(tenant, member, 'another', ['resources:read']), 403, 'INSUFFICIENT_TENANT_PERMISSION');
    });

    const badNames = ['owner', 'admin', 'member', 'X', 'a', 'Reader', '1role', '-role', 'role.name', 'r'.repeat(33)];
    it.each(badNames)('answers 400 VALIDATION_FAILED to the role name %j', async (name) => {
      const { owner, tenant } = await team();
      expectCode(await put(tenant, owner, name, ['resources:read']), 400, 'VALIDATION_FAILED');
      expect(await t.prisma.tenantRole.count({ where: { tenantId: tenant.id } })).toBe(0);
    });

    const badPermissions: Array<[string, unknown]> = [
      ['an unknown permission', ['resources:destroy']],
      ['tenant:delete', ['tenant:delete']],
      ['tenant:delete beside valid ones', ['resources:read', 'tenant:delete']],
      ['a permission in upper case', ['RESOURCES:READ']],
      ['the same permission twice', ['resources:read', 'resources:read']],
      ['a string instead of a list', 'resources:read'],
      ['no permissions field', undefined],
    ];
    it.each(badPermissions)('answers the owner 400 VALIDATION_FAILED to %s', async (_name, permissions) => {
      const { owner, tenant } = await team();
      expectCode(await put(tenant, owner, 'custom', permissions), 400, 'VALIDATION_FAILED');
      expect(await t.prisma.tenantRole.count({ where: { tenantId: tenant.id } })).toBe(0);
    });

    it('answers 409 ROLE_IN_USE to deleting a role a member holds; 204 once unused; 404 when unknown', async () => {
      const { owner, tenant } = await team();
      await put(tenant, owner, 'auditor', ['resources:read']).expect(200);
      await put(tenant, owner, 'unused', ['members:read']).expect(200);
      const auditor = await joined(tenant, owner, ['auditor', 'member']);

      expectCode(await t.http.delete(`/tenants/${tenant.id}/roles/auditor`).set(owner.auth), 409, 'ROLE_IN_USE');
      expect(await t.prisma.tenantRole.count({ where: { tenantId: tenant.id, name: 'auditor' } })).toBe(1);
      await t.http.delete(`/tenants/${tenant.id}/roles/unused`).set(owner.auth).expect(204);

      await setRoles(tenant, owner, auditor.id, ['member']).expect(200);
      await t.http.delete(`/tenants/${tenant.id}/roles/auditor`).set(owner.auth).expect(204);
      const roles = await t.http.get(`/tenants/${tenant.id}/roles`).set(owner.auth).expect(200);
      expect(roles.body.map((r: { name: string }) => r.name)).toEqual(['owner', 'admin', 'member']);

      expectCode(await t.http.delete(`/tenants/${tenant.id}/roles/auditor`).set(owner.auth), 404, 'NOT_FOUND');
      expectCode(await t.http.delete(`/tenants/${tenant.id}/roles/member`).set(owner.auth), 400, 'VALIDATION_FAILED');
      // A deleted role can no longer be granted.
      expectCode(await setRoles(tenant, owner, auditor.id, ['auditor']), 400, 'VALIDATION_FAILED');
    });

    it('a redefinition acts on the very next request of those holding the role', async () => {
      const { owner, tenant } = await team();
      await put(tenant, owner, 'writer', ['resources:read', 'resources:write']).expect(200);
      const writer = await joined(tenant, owner, ['writer']);
      await t.http.post('/resources').set(writer.auth).set(inTenant(tenant.id)).send({ title: 'a' }).expect(201);
      await put(tenant, owner, 'writer', ['resources:read']).expect(200);
      expectCode(
        await t.http.post('/resources').set(writer.auth).set(inTenant(tenant.id)).send({ title: 'b' }),
        403,
        'INSUFFICIENT_TENANT_PERMISSION',
      );
      await t.http.get('/resources').set(writer.auth).set(inTenant(tenant.id)).expect(200);
    });
  });

  describe('an empty role list', () => {
    it('sees the tenant (myRoles []) and nothing more: members, roles and resources get 403', async () => {
      const { owner, tenant } = await team();
      const added = await t.http
        .post(`/tenants/${tenant.id}/members`)
        .set(owner.auth)
        .send({ username: (await signup(t, {})).username, roles: [] })
        .expect(201);
      expect(added.body.roles).toEqual([]);
      const idle = await joined(tenant, owner, []);
      const doc = await t.http
        .post('/resources')
        .set(owner.auth)
        .set(inTenant(tenant.id))
        .send({ title: 'tenant doc' })
        .expect(201);

      const seen = await t.http.get(`/tenants/${tenant.id}`).set(idle.auth).expect(200);
      expect(seen.body).toMatchObject({ id: tenant.id, slug: tenant.slug, myRoles: [] });
      const listed = await t.http.get('/tenants').set(idle.auth).expect(200);
      expect(listed.body.items).toEqual([seen.body]);

      expectCode(
        await t.http.get(`/tenants/${tenant.id}/members`).set(idle.auth),
        403,
        'INSUFFICIENT_TENANT_PERMISSION',
      );
      expectCode(await t.http.get(`/tenants/${tenant.id}/roles`).set(idle.auth), 403, 'INSUFFICIENT_TENANT_PERMISSION');
      expectCode(
        await t.http.get('/resources').set(idle.auth).set(inTenant(tenant.id)),
        403,
        'INSUFFICIENT_TENANT_PERMISSION',
      );
      expectCode(
        await t.http.post('/resources').set(idle.auth).set(inTenant(tenant.id)).send({ title: 'x' }),
        403,
        'INSUFFICIENT_TENANT_PERMISSION',
      );
      expectCode(await t.http.get(`/resources/${doc.body.id}`).set(idle.auth), 403, 'INSUFFICIENT_TENANT_PERMISSION');
      expectCode(
        await t.http.patch(`/tenants/${tenant.id}`).set(idle.auth).send({ name: 'mine now' }),
        403,
        'INSUFFICIENT_TENANT_PERMISSION',
      );
    });
  });

  describe('granting', () => {
    it('a members:write holder cannot grant roles beyond its own permissions, itself included (403)', async () => {
      const { owner, tenant } = await team();
      await put(tenant, owner, 'recruiter', ['members:read', 'members:write']).expect(200);
      const recruiter = await joined(tenant, owner, ['recruiter']);
      const target = await signup(t);

      for (const roles of [['admin'], ['member'], ['owner'], ['recruiter', 'member']]) {
        const res = await t.http
          .post(`/tenants/${tenant.id}/members`)
          .set(recruiter.auth)
          .send({ username: target.username, roles })
          .expect(403);
        expectCode(res, 403, 'INSUFFICIENT_TENANT_PERMISSION');
      }
      expect(await rolesInDb(tenant.id, target.id)).toBeNull();
      for (const roles of [['admin'], ['recruiter', 'admin'], ['member']]) {
        expectCode(await setRoles(tenant, recruiter, recruiter.id, roles), 403, 'INSUFFICIENT_TENANT_PERMISSION');
      }
      expect(await rolesInDb(tenant.id, recruiter.id)).toEqual(['recruiter']);

      // Within its own permissions it may.
      const fellow = await joined(tenant, recruiter, ['recruiter']);
      const idle = await joined(tenant, recruiter, []);
      expect(await rolesInDb(tenant.id, fellow.id)).toEqual(['recruiter']);
      // And it may not touch a member holding more than it does.
      const member = await joined(tenant, owner, ['member']);
      expectCode(await remove(tenant, recruiter, member.id), 403, 'INSUFFICIENT_TENANT_PERMISSION');
      expectCode(await setRoles(tenant, recruiter, member.id, []), 403, 'INSUFFICIENT_TENANT_PERMISSION');
      expect(await rolesInDb(tenant.id, member.id)).toEqual(['member']);
      await remove(tenant, recruiter, idle.id).expect(204);
    });
  });

  describe('changes act on the very next request', () => {
    it('after PATCH roles to [], the member cannot create in the tenant; restoring the role lets them again', async () => {
      const { owner, tenant } = await team();
      const member = await joined(tenant, owner, ['member']);
      const post = () =>
        t.http.post('/resources').set(member.auth).set(inTenant(tenant.id)).send({ title: 'next request' });
      expect((await post()).status).toBe(201);
      await t.http.get('/resources').set(member.auth).set(inTenant(tenant.id)).expect(200);

      const res = await setRoles(tenant, owner, member.id, []).expect(200);
      expect(res.body).toMatchObject({ userId: member.id, roles: [] });
      expectCode(await post(), 403, 'INSUFFICIENT_TENANT_PERMISSION');
      expectCode(
        await t.http.get('/resources').set(member.auth).set(inTenant(tenant.id)),
        403,
        'INSUFFICIENT_TENANT_PERMISSION',
      );

      await setRoles(tenant, owner, member.id, ['member']).expect(200);
      expect((await post()).status).toBe(201);
    });

    it('after a removal the next request gets 404, on the tenant routes and in the tenant context', async () => {
      const { owner, tenant } = await team();
      const member = await joined(tenant, owner, ['member']);
      await t.http.get(`/tenants/${tenant.id}/members`).set(member.auth).expect(200);
      await t.http.get('/resources').set(member.auth).set(inTenant(tenant.id)).expect(200);
      await remove(tenant, owner, member.id).expect(204);
      expectCode(await t.http.get(`/tenants/${tenant.id}`).set(member.auth), 404, 'TENANT_NOT_FOUND');
      expectCode(await t.http.get(`/tenants/${tenant.id}/members`).set(member.auth), 404, 'TENANT_NOT_FOUND');
      expectCode(await t.http.get('/resources').set(member.auth).set(inTenant(tenant.id)), 404, 'TENANT_NOT_FOUND');
    });

    // A UUID is the same id in either case: the membership cache must not tell them apart.
    it('a downgrade through the tenant id in upper case acts at once in the tenant context too', async () => {
      const { owner, tenant } = await team();
      const member = await joined(tenant, owner, ['member']);
      const post = () => t.http.post('/resources').set(member.auth).set(inTenant(tenant.id)).send({ title: 'case' });
      expect((await post()).status).toBe(201);
      await t.http
        .patch(`/tenants/${tenant.id.toUpperCase()}/members/${member.id}`)
        .set(owner.auth)
        .send({ roles: [] })
        .expect(200);
      expect(await rolesInDb(tenant.id, member.id)).toEqual([]);
      expectCode(await post(), 403, 'INSUFFICIENT_TENANT_PERMISSION');
    });

    it('a removal through the member id in upper case acts at once in the tenant context', async () => {
      const { owner, tenant } = await team();
      const member = await joined(tenant, owner, ['member']);
      await t.http.get('/resources').set(member.auth).set(inTenant(tenant.id)).expect(200);
      await t.http.delete(`/tenants/${tenant.id}/members/${member.id.toUpperCase()}`).set(owner.auth).expect(204);
      expect(await rolesInDb(tenant.id, member.id)).toBeNull();
      expectCode(await t.http.get('/resources').set(member.auth).set(inTenant(tenant.id)), 404, 'TENANT_NOT_FOUND');
    });

    it('a member leaving with their own id in upper case leaves (204), as with the lower-case id', async () => {
      const { owner, tenant } = await team();
      const member = await joined(tenant, owner, ['member']);
      await t.http.delete(`/tenants/${tenant.id}/members/${member.id.toUpperCase()}`).set(member.auth).expect(204);
      expect(await rolesInDb(tenant.id, member.id)).toBeNull();
    });

    it('a removal acts at once on the tenant routes whatever the case of the tenant id', async () => {
      const { owner, tenant } = await team();
      const member = await joined(tenant, owner, ['member']);
      const upper = tenant.id.toUpperCase();
      await t.http.get(`/tenants/${upper}/members`).set(member.auth).expect(200);
      await remove(tenant, owner, member.id).expect(204);
      expect(await rolesInDb(tenant.id, member.id)).toBeNull();
      expectCode(await t.http.get(`/tenants/${upper}/members`).set(member.auth), 404, 'TENANT_NOT_FOUND');
      expectCode(await t.http.get(`/tenants/${upper}`).set(member.auth), 404, 'TENANT_NOT_FOUND');
    });
  });
});
