import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS, onPostgres } from '../support/env.js';
import { createResource, signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { addMember, createTenant, inTenant, type CreatedTenant } from './tenant-helpers.js';

const ENV = { ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000' };

interface Resource {
  id: string;
  ownerId: string | null;
  tenantId: string | null;
  title: string;
}

describe('account deletion and tenants (DELETE /users/me)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp(ENV);
  });
  afterAll(async () => t?.close());

  const deleteAccount = (who: SignedUp, password = who.password) =>
    t.http.delete('/users/me').set(who.auth).send({ password });
  const createIn = async (tenant: CreatedTenant, who: SignedUp, title: string): Promise<Resource> =>
    (await t.http.post('/resources').set(who.auth).set(inTenant(tenant.id)).send({ title }).expect(201)).body;
  const memberIds = async (tenant: CreatedTenant, by: SignedUp): Promise<string[]> =>
    (await t.http.get(`/tenants/${tenant.id}/members`).set(by.auth).query({ limit: 100 }).expect(200)).body.items.map(
      (m: { userId: string }) => m.userId,
    );

  it('answers the sole owner of a tenant 409 LAST_OWNER and deletes nothing', async () => {
    const owner = await signup(t);
    const member = await signup(t);
    const tenant = await createTenant(t, owner);
    await addMember(t, tenant.id, owner, member, ['admin']);
    const personal = await createResource(t, owner.auth);
    const shared = await createIn(tenant, owner, 'shared');

    const res = await deleteAccount(owner).expect(409);
    expect(res.body).toMatchObject({ statusCode: 409, code: 'LAST_OWNER' });

    expect(await t.prisma.user.count({ where: { id: owner.id } })).toBe(1);
    await t.http.get('/users/me').set(owner.auth).expect(200);
    await t.http.get(`/resources/${personal.id}`).set(owner.auth).expect(200);
    const kept = await t.http.get(`/resources/${shared.id}`).set(member.auth).expect(200);
    expect(kept.body.ownerId).toBe(owner.id);
    expect(await memberIds(tenant, member)).toContain(owner.id);
    expect((await t.http.get(`/tenants/${tenant.id}`).set(owner.auth).expect(200)).body.myRoles).toEqual(['owner']);
  });

  it('still answers 409 LAST_OWNER to an owner alone in their tenant, and 204 once the tenant is deleted', async () => {
    const owner = await signup(t);
    const tenant = await createTenant(t, owner);
    expect((await deleteAccount(owner).expect(409)).body.code).toBe('LAST_OWNER');
    await t.http.delete(`/tenants/${tenant.id}`).set(owner.auth).send({ confirm: tenant.slug }).expect(204);
    await deleteAccount(owner).expect(204);
    expect(await t.prisma.user.count({ where: { id: owner.id } })).toBe(0);
  });

  it('answers 409 LAST_OWNER when only one of several tenants has the caller as sole owner', async () => {
    const me = await signup(t);
    const partner = await signup(t);
    const shared = await createTenant(t, me);
    await addMember(t, shared.id, me, partner, ['owner']);
    const alone = await createTenant(t, me);
    expect((await deleteAccount(me).expect(409)).body.code).toBe('LAST_OWNER');
    expect(await t.prisma.tenantMembership.count({ where: { userId: me.id } })).toBe(2);

    await addMember(t, alone.id, me, partner, ['owner']);
    await deleteAccount(me).expect(204);
    for (const tenant of [shared, alone]) {
      expect(await memberIds(tenant, partner)).toEqual([partner.id]);
    }
  });

  it("keeps a member's tenant resources with ownerId null and deletes their personal ones", async () => {
    const owner = await signup(t);
    const member = await signup(t);
    const tenant = await createTenant(t, owner);
    const other = await createTenant(t, owner);
    await addMember(t, tenant.id, owner, member, ['member']);
    await addMember(t, other.id, owner, member, ['admin']);
    const inTenantRes = await createIn(tenant, member, 'member note');
    const inOtherRes = await createIn(other, member, 'member note elsewhere');
    const ownersRes = await createIn(tenant, owner, 'owner note');
    const personal = await createResource(t, member.auth, { title: 'private diary' });
    const personalPublic = await createResource(t, member.auth, { title: 'public post', visibility: 'public' });
    expect(inTenantRes).toMatchObject({ tenantId: tenant.id, ownerId: member.id });

    await deleteAccount(member).expect(204);

    for (const [tn, res] of [
      [tenant, inTenantRes],
      [other, inOtherRes],
    ] as const) {
      const read = await t.http.get(`/resources/${res.id}`).set(owner.auth).expect(200);
      expect(read.body).toMatchObject({ id: res.id, tenantId: tn.id, ownerId: null, title: res.title });
      const listed = await t.http.get('/resources').set(owner.auth).set(inTenant(tn.id)).expect(200);
      expect(listed.body.items.find((r: Resource) => r.id === res.id)).toMatchObject({ ownerId: null });
    }
    const untouched = await t.http.get(`/resources/${ownersRes.id}`).set(owner.auth).expect(200);
    expect(untouched.body.ownerId).toBe(owner.id);

    for (const gone of [personal, personalPublic]) {
      expect(await t.prisma.resource.count({ where: { id: gone.id } })).toBe(0);
      const res = await t.http.get(`/resources/${gone.id}`).set(owner.auth).expect(404);
      expect(res.body.code).toBe('RESOURCE_NOT_FOUND');
    }
    expect(await t.prisma.resource.count({ where: { ownerId: member.id } })).toBe(0);

    for (const tn of [tenant, other]) {
      const ids = await memberIds(tn, owner);
      expect(ids).not.toContain(member.id);
      expect(ids).toContain(owner.id);
    }
    expect(await t.prisma.tenantMembership.count({ where: { userId: member.id } })).toBe(0);
  });

  it('lets a member with resources:manage change an orphaned tenant resource; a plain member gets 403 NOT_OWNER', async () => {
    const owner = await signup(t);
    const leaver = await signup(t);
    const plain = await signup(t);
    const tenant = await createTenant(t, owner);
    await addMember(t, tenant.id, owner, leaver, ['member']);
    await addMember(t, tenant.id, owner, plain, ['member']);
    const orphan = await createIn(tenant, leaver, 'orphan');
    await deleteAccount(leaver).expect(204);

    const denied = await t.http.patch(`/resources/${orphan.id}`).set(plain.auth).send({ title: 'mine' }).expect(403);
    expect(denied.body.code).toBe('NOT_OWNER');
    const read = await t.http.get(`/resources/${orphan.id}`).set(plain.auth).expect(200);
    expect(read.body).toMatchObject({ ownerId: null, title: 'orphan' });
    const changed = await t.http
      .patch(`/resources/${orphan.id}`)
      .set(owner.auth)
      .send({ title: 'adopted' })
      .expect(200);
    expect(changed.body).toMatchObject({ ownerId: null, tenantId: tenant.id, title: 'adopted' });
  });

  it('lets one of two owners delete their account; the other stays the owner', async () => {
    const first = await signup(t);
    const second = await signup(t);
    const tenant = await createTenant(t, first);
    await addMember(t, tenant.id, first, second, ['owner']);
    await deleteAccount(first).expect(204);
    const members = await t.http.get(`/tenants/${tenant.id}/members`).set(second.auth).expect(200);
    expect(members.body.items.map((m: { userId: string; roles: string[] }) => [m.userId, m.roles])).toEqual([
      [second.id, ['owner']],
    ]);
    // Now the survivor is the last owner.
    expect((await deleteAccount(second).expect(409)).body.code).toBe('LAST_OWNER');
  });

  it('answers a wrong password 403 INVALID_PASSWORD, sole owner or not, and keeps account and memberships', async () => {
    const owner = await signup(t);
    const member = await signup(t);
    const tenant = await createTenant(t, owner);
    await addMember(t, tenant.id, owner, member, ['member']);
    for (const who of [member, owner]) {
      const res = await deleteAccount(who, 'not the password at all').expect(403);
      expect(res.body).toMatchObject({ statusCode: 403, code: 'INVALID_PASSWORD' });
      expect(await t.prisma.user.count({ where: { id: who.id } })).toBe(1);
    }
    expect((await memberIds(tenant, owner)).sort()).toEqual([owner.id, member.id].sort());
  });

  // PostgreSQL only: the test waits 11 s, which the embedded database would spend the same way.
  it.runIf(onPostgres)(
    'deletes an account whose resources take longer to detach than the usual 10 s; a change of its tenant waiting that long answers 503',
    async () => {
      const owner = await signup(t);
      const member = await signup(t);
      const other = await signup(t);
      const tenant = await createTenant(t, owner);
      await addMember(t, tenant.id, owner, member, ['member']);
      await addMember(t, tenant.id, owner, other, ['member']);
      const kept = await createIn(tenant, member, 'kept');
      // Detaching this member's resources takes 11 s (what hundreds of thousands of rows take).
      await t.prisma.$executeRawUnsafe(`
        CREATE FUNCTION slow_detach() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(11); RETURN NEW; END $$`);
      await t.prisma.$executeRawUnsafe(`
        CREATE TRIGGER slow_detach BEFORE UPDATE ON resources FOR EACH ROW
        WHEN (OLD.owner_id = '${member.id}' AND NEW.owner_id IS NULL) EXECUTE FUNCTION slow_detach()`);
      try {
        let deleted = false;
        const deletion = deleteAccount(member).then((res) => {
          deleted = true;
          return res;
        });
        await new Promise((resolve) => setTimeout(resolve, 500));
        // Another member's resource in the tenant is created meanwhile, without waiting.
        await t.http
          .post('/resources')
          .set(other.auth)
          .set(inTenant(tenant.id))
          .send({ title: 'meanwhile' })
          .expect(201);
        expect(deleted).toBe(false);
        // A change of the tenant's members waits for the deletion, past the 10 s of its own
        // transaction: rolled back, 503 with Retry-After.
        const change = await t.http
          .patch(`/tenants/${tenant.id}/members/${other.id}`)
          .set(owner.auth)
          .send({ roles: ['admin'] });
        expect(change.status).toBe(503);
        expect(change.body).toMatchObject({ statusCode: 503, code: 'DATABASE_UNAVAILABLE' });
        expect(change.headers['retry-after']).toBe('5');
        expect((await deletion).status).toBe(204);
      } finally {
        await t.prisma.$executeRawUnsafe('DROP TRIGGER slow_detach ON resources');
        await t.prisma.$executeRawUnsafe('DROP FUNCTION slow_detach()');
      }
      expect(await t.prisma.user.count({ where: { id: member.id } })).toBe(0);
      const found = await t.http.get(`/resources/${kept.id}`).set(owner.auth).set(inTenant(tenant.id)).expect(200);
      expect(found.body).toMatchObject({ id: kept.id, ownerId: null });
      const roles = await t.prisma.tenantMembership.findFirst({ where: { tenantId: tenant.id, userId: other.id } });
      expect(roles?.roles).toEqual(['member']);
    },
    30_000,
  );
});
