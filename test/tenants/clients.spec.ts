import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { bearer, decodeJwt, login, signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { ADMIN, FORM, GRANT, basic, form, type Created } from '../clients/oauth-helpers.js';
import {
  addMember,
  createTenant,
  createTenantResource,
  defineRole,
  expectError,
  expectOk,
  inTenant,
  MEMBER_KEYS,
  type TenantResource,
} from './tenant-helpers.js';

/**
 * Contract v2 §E test 8, first half: a machine client's service user (`svc.<client_id>`)
 * may be a tenant member, and its client tokens act there with the permissions of its roles
 * intersected with the token's scopes (scope checked first: 403 INSUFFICIENT_SCOPE; then the
 * role: 403 INSUFFICIENT_TENANT_PERMISSION).
 */

const SCOPES = ['resources:read', 'resources:write', 'tenants:read'];

describe("a machine client's service user as a tenant member", () => {
  let t: TestApp;
  let root: SignedUp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', ...ADMIN });
    root = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
  });
  afterAll(async () => t?.close());

  async function machineClient(allowedScopes: string[] = SCOPES): Promise<Created> {
    const res = await t.http.post('/oauth/clients').set(root.auth).send({ name: 'tenant worker', allowedScopes });
    expectOk(res, 201);
    return res.body as Created;
  }
  /** A client-credentials token with exactly these scopes (from the token endpoint). */
  async function clientToken(c: Created, scopes: string[]): Promise<{ Authorization: string }> {
    const res = await t.http
      .post('/oauth/token')
      .set('Content-Type', FORM)
      .set(basic(c.client.clientId, c.secret.value))
      .send(form({ ...GRANT, scope: scopes.join(' ') }));
    expectOk(res);
    expect((res.body.scope as string).split(' ').sort()).toEqual([...scopes].sort());
    const claims = decodeJwt(res.body.access_token as string).payload;
    expect(claims.sub).toBe(c.client.serviceUserId);
    return bearer(res.body.access_token as string);
  }
  const serviceUser = (c: Created) => ({ username: `svc.${c.client.clientId}` });
  const list = (auth: { Authorization: string }, tenantId: string) =>
    t.http.get('/resources?limit=100').set(auth).set(inTenant(tenantId));
  const post = (auth: { Authorization: string }, tenantId: string, title = 'by the client') =>
    t.http.post('/resources').set(auth).set(inTenant(tenantId)).send({ title });

  it('its service user (svc.<client_id>) is added as member; a resources:read token reads but cannot write (403 INSUFFICIENT_SCOPE)', async () => {
    const owner = await signup(t);
    const tenant = await createTenant(t, owner);
    const r = await createTenantResource(t, owner.auth, tenant.id);
    const c = await machineClient();

    const added = await t.http
      .post(`/tenants/${tenant.id}/members`)
      .set(owner.auth)
      .send({ username: serviceUser(c).username, roles: ['member'] });
    expectOk(added, 201);
    expect(Object.keys(added.body as object).sort()).toEqual(MEMBER_KEYS);
    expect(added.body).toMatchObject({
      userId: c.client.serviceUserId,
      username: serviceUser(c).username,
      roles: ['member'],
    });

    const readOnly = await clientToken(c, ['resources:read']);
    const listed = await list(readOnly, tenant.id);
    expectOk(listed);
    expect((listed.body.items as TenantResource[]).map((x) => x.id)).toEqual([r.id]);
    const one = await t.http.get(`/resources/${r.id}`).set(readOnly);
    expectOk(one);
    expect(one.body).toEqual(r);

    const refused = await post(readOnly, tenant.id);
    expectError(refused, 403, 'INSUFFICIENT_SCOPE');
    expect(refused.headers['www-authenticate']).toContain('insufficient_scope');
    expectError(
      await t.http.patch(`/resources/${r.id}`).set(readOnly).set(inTenant(tenant.id)).send({ title: 'x' }),
      403,
      'INSUFFICIENT_SCOPE',
    );
    expectError(await t.http.delete(`/resources/${r.id}`).set(readOnly), 403, 'INSUFFICIENT_SCOPE');
    // Nothing was created.
    expect((await list(owner.auth, tenant.id)).body.items).toHaveLength(1);
  });

  it('with resources:write and role member it creates in the tenant; it changes its own resources only', async () => {
    const owner = await signup(t);
    const tenant = await createTenant(t, owner);
    const ownersResource = await createTenantResource(t, owner.auth, tenant.id);
    const c = await machineClient();
    await addMember(t, tenant.id, owner, serviceUser(c), ['member']);
    const rw = await clientToken(c, ['resources:read', 'resources:write']);

    const created = await post(rw, tenant.id);
    expectOk(created, 201);
    expect(created.body).toMatchObject({
      tenantId: tenant.id,
      ownerId: c.client.serviceUserId,
      title: 'by the client',
    });
    const id = created.body.id as string;
    // Every member sees it.
    const seen = await t.http.get(`/resources/${id}`).set(owner.auth);
    expectOk(seen);
    expect(seen.body).toEqual(created.body);

    expectOk(await t.http.patch(`/resources/${id}`).set(rw).send({ title: 'renamed by the client' }));
    expectError(await t.http.patch(`/resources/${ownersResource.id}`).set(rw).send({ title: 'x' }), 403, 'NOT_OWNER');
    // The owner (resources:manage) may change the client's resource.
    expectOk(await t.http.patch(`/resources/${id}`).set(owner.auth).send({ title: 'by owner' }));
    expectOk(await t.http.delete(`/resources/${id}`).set(rw), 204);

    // Outside a tenant it is a member of: 404, as for anyone.
    const foreign = await createTenant(t, owner);
    expectError(await post(rw, foreign.id), 404, 'TENANT_NOT_FOUND');
    expectError(await list(rw, foreign.id), 404, 'TENANT_NOT_FOUND');
  });

  it('with a role lacking resources:write it gets 403 INSUFFICIENT_TENANT_PERMISSION, even with the scope', async () => {
    const owner = await signup(t);
    const tenant = await createTenant(t, owner);
    await defineRole(t, tenant.id, owner, 'reader', ['resources:read']);
    const r = await createTenantResource(t, owner.auth, tenant.id);
    const c = await machineClient();
    await addMember(t, tenant.id, owner, serviceUser(c), ['reader']);
    const rw = await clientToken(c, ['resources:read', 'resources:write']);

    expectError(await post(rw, tenant.id), 403, 'INSUFFICIENT_TENANT_PERMISSION');
    expectOk(await list(rw, tenant.id));

    // Role member: creating works; the role changed back: refused at once, same token.
    await t.http
      .patch(`/tenants/${tenant.id}/members/${c.client.serviceUserId}`)
      .set(owner.auth)
      .send({ roles: ['member'] })
      .expect(200);
    const ok = await post(rw, tenant.id);
    expectOk(ok, 201);
    await t.http
      .patch(`/tenants/${tenant.id}/members/${c.client.serviceUserId}`)
      .set(owner.auth)
      .send({ roles: ['reader'] })
      .expect(200);
    expectError(await post(rw, tenant.id), 403, 'INSUFFICIENT_TENANT_PERMISSION');
    expectError(
      await t.http
        .patch(`/resources/${ok.body.id as string}`)
        .set(rw)
        .send({ title: 'x' }),
      403,
      'NOT_OWNER',
    );

    // An empty role list: reading is refused too.
    await t.http
      .patch(`/tenants/${tenant.id}/members/${c.client.serviceUserId}`)
      .set(owner.auth)
      .send({ roles: [] })
      .expect(200);
    expectError(await list(rw, tenant.id), 403, 'INSUFFICIENT_TENANT_PERMISSION');
    expectError(await t.http.get(`/resources/${r.id}`).set(rw), 403, 'INSUFFICIENT_TENANT_PERMISSION');
  });

  it('as tenant admin with only resources:read in its token it still cannot change anything (role ∩ scope)', async () => {
    const owner = await signup(t);
    const tenant = await createTenant(t, owner);
    const r = await createTenantResource(t, owner.auth, tenant.id, { title: 'kept' });
    const c = await machineClient();
    await addMember(t, tenant.id, owner, serviceUser(c), ['admin']);
    const readOnly = await clientToken(c, ['resources:read']);

    expectError(await t.http.patch(`/resources/${r.id}`).set(readOnly).send({ title: 'x' }), 403, 'INSUFFICIENT_SCOPE');
    expectError(await t.http.delete(`/resources/${r.id}`).set(readOnly), 403, 'INSUFFICIENT_SCOPE');
    expectError(await post(readOnly, tenant.id), 403, 'INSUFFICIENT_SCOPE');
    // The same client with resources:write may manage the owner's resource as admin.
    const rw = await clientToken(c, ['resources:read', 'resources:write']);
    expectOk(await t.http.patch(`/resources/${r.id}`).set(rw).send({ title: 'managed' }));
    const now = await t.http.get(`/resources/${r.id}`).set(owner.auth);
    expect(now.body).toMatchObject({ title: 'managed', ownerId: owner.id, tenantId: tenant.id });
  });

  it('scope=memberships for a client: its personal resources plus those of its readable tenants, nothing else', async () => {
    const owner = await signup(t);
    const readable = await createTenant(t, owner);
    const foreign = await createTenant(t, owner);
    const c = await machineClient();
    await addMember(t, readable.id, owner, serviceUser(c), ['member']);
    const rw = await clientToken(c, ['resources:read', 'resources:write']);
    const expected = new Set<string>([
      (await createTenantResource(t, owner.auth, readable.id)).id,
      (await createTenantResource(t, rw, readable.id)).id,
    ]);
    const personal = await t.http.post('/resources').set(rw).send({ title: 'personal of the client' });
    expectOk(personal, 201);
    expect(personal.body.tenantId).toBeNull();
    expected.add(personal.body.id as string);
    await createTenantResource(t, owner.auth, foreign.id);

    const res = await t.http.get('/resources?scope=memberships&limit=100').set(rw);
    expectOk(res);
    const ids = (res.body.items as TenantResource[]).map((x) => x.id);
    expect(ids).toHaveLength(expected.size);
    expect(new Set(ids)).toEqual(expected);
  });
});
