import { randomUUID } from 'node:crypto';
import type { Response } from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import {
  bearer,
  createResource,
  decodeJwt,
  login,
  refresh,
  refreshCookieOf,
  setCookiesOf,
  signup,
} from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { ADMIN, FORM, GRANT, basic, form, type Created } from '../clients/oauth-helpers.js';
import {
  addMember,
  createTenant,
  createTenantResource,
  expectError,
  expectOk,
  inTenant,
  type TenantResource,
} from './tenant-helpers.js';

/**
 * Contract v2 §E test 5: the selected tenant (`POST /auth/tenant`, claim `tid`), kept by
 * refresh while the user is a member, dropped once they are not; the tenant context of the
 * resources routes (X-Tenant-Id, else `tid`) and its 400s; client tokens; and the optional
 * `tenant_roles` snapshot (TENANT_ROLES_IN_TOKEN).
 */

const ENV = { ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', ...ADMIN };

/** POST /auth/tenant as this access token. */
const selectTenant = (t: TestApp, accessToken: string, tenantId: unknown) =>
  t.http.post('/auth/tenant').set(bearer(accessToken)).send({ tenantId });

/** The access token of a successful POST /auth/tenant, after checking the TokenResponse. */
async function selected(t: TestApp, accessToken: string, tenantId: string | null): Promise<string> {
  const res = await selectTenant(t, accessToken, tenantId);
  expectOk(res);
  expect(Object.keys(res.body as object).sort()).toEqual(['accessToken', 'expiresIn', 'tokenType']);
  expect(res.body.tokenType).toBe('Bearer');
  expect(res.body.expiresIn).toBe(t.config.ACCESS_TOKEN_TTL);
  // The refresh cookie is not touched.
  expect(setCookiesOf(res).filter((c) => c.startsWith('refresh_token='))).toEqual([]);
  return res.body.accessToken as string;
}

describe('the selected tenant (tid) and the tenant context', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp(ENV);
  });
  afterAll(async () => t?.close());

  const ids = (res: Response): string[] => (res.body.items as TenantResource[]).map((r) => r.id);

  it('POST /auth/tenant puts tid in a token of the same session; without a header, that token works in the tenant', async () => {
    const owner = await signup(t);
    const member = await signup(t);
    const tenant = await createTenant(t, owner);
    const other = await createTenant(t, owner);
    await addMember(t, tenant.id, owner, member, ['member']);
    await addMember(t, other.id, owner, member, ['member']);
    const ownersResource = await createTenantResource(t, owner.auth, tenant.id);
    const personal = await createResource(t, member.auth, { title: 'personal' });

    const token = await selected(t, member.accessToken, tenant.id);
    const before = decodeJwt(member.accessToken).payload;
    const claims = decodeJwt(token).payload;
    expect(claims.tid).toBe(tenant.id);
    expect(claims.sid).toBe(before.sid);
    expect(claims.sub).toBe(member.id);
    expect(claims.scope).toBe(before.scope);
    expect(claims).not.toHaveProperty('tenant_roles'); // TENANT_ROLES_IN_TOKEN is false
    expect(before).not.toHaveProperty('tid');

    // No header: the token's tenant is the context.
    const created = await t.http.post('/resources').set(bearer(token)).send({ title: 'via tid' });
    expectOk(created, 201);
    expect(created.body).toMatchObject({ tenantId: tenant.id, ownerId: member.id, title: 'via tid' });
    const list = await t.http.get('/resources?limit=100').set(bearer(token));
    expectOk(list);
    expect(new Set(ids(list))).toEqual(new Set([ownersResource.id, created.body.id as string]));
    // The same header as tid (in any letter case) agrees with it.
    for (const header of [tenant.id, tenant.id.toUpperCase()]) {
      const same = await t.http.get('/resources?limit=100').set(bearer(token)).set(inTenant(header));
      expectOk(same);
      expect(new Set(ids(same))).toEqual(new Set([ownersResource.id, created.body.id as string]));
    }
    // The token without tid is still personal.
    const mine = await t.http.get('/resources?limit=100').set(member.auth);
    expectOk(mine);
    expect(ids(mine)).toEqual([personal.id]);

    // A header naming another tenant (even one the member is in) conflicts with tid: 400.
    for (const header of [other.id, randomUUID()]) {
      expectError(await t.http.get('/resources').set(bearer(token)).set(inTenant(header)), 400, 'TENANT_MISMATCH');
      expectError(
        await t.http.post('/resources').set(bearer(token)).set(inTenant(header)).send({ title: 'x' }),
        400,
        'TENANT_MISMATCH',
      );
      expectError(
        await t.http.get(`/resources/${ownersResource.id}`).set(bearer(token)).set(inTenant(header)),
        400,
        'TENANT_MISMATCH',
      );
      expectError(
        await t.http
          .patch(`/resources/${created.body.id as string}`)
          .set(bearer(token))
          .set(inTenant(header))
          .send({ title: 'y' }),
        400,
        'TENANT_MISMATCH',
      );
      expectError(
        await t.http
          .delete(`/resources/${created.body.id as string}`)
          .set(bearer(token))
          .set(inTenant(header)),
        400,
        'TENANT_MISMATCH',
      );
    }
    // Nothing was created by the refused requests.
    const still = await t.http.get('/resources?limit=100').set(bearer(token));
    expect(still.body.items).toHaveLength(2);
    const otherList = await t.http.get('/resources?limit=100').set(member.auth).set(inTenant(other.id));
    expectOk(otherList);
    expect(otherList.body.items).toEqual([]);

    // Selecting a tenant by an upper-case id gives the canonical (lower-case) tid.
    const upper = await selected(t, member.accessToken, other.id.toUpperCase());
    expect(decodeJwt(upper).payload.tid).toBe(other.id);
  });

  it('refresh keeps tid; after a removal the next refresh has none; {tenantId:null} removes it', async () => {
    const owner = await signup(t);
    const member = await signup(t);
    const tenant = await createTenant(t, owner);
    await addMember(t, tenant.id, owner, member, ['member']);
    const r = await createTenantResource(t, owner.auth, tenant.id);

    const withTid = await selected(t, member.accessToken, tenant.id);
    expect(decodeJwt(withTid).payload.tid).toBe(tenant.id);
    const first = await refresh(t, member.refreshToken);
    expectOk(first);
    expect(decodeJwt(first.body.accessToken as string).payload.tid).toBe(tenant.id);
    expect(decodeJwt(first.body.accessToken as string).payload.sid).toBe(decodeJwt(withTid).payload.sid);
    const second = await refresh(t, refreshCookieOf(first)!);
    expectOk(second);
    const kept = second.body.accessToken as string;
    expect(decodeJwt(kept).payload.tid).toBe(tenant.id);
    const list = await t.http.get('/resources').set(bearer(kept));
    expectOk(list);
    expect(ids(list)).toEqual([r.id]);

    // Removed: the token's tid no longer opens the tenant (404), and the next refresh drops it.
    await t.http.delete(`/tenants/${tenant.id}/members/${member.id}`).set(owner.auth).expect(204);
    expectError(await t.http.get('/resources').set(bearer(kept)), 404, 'TENANT_NOT_FOUND');
    expectError(await t.http.post('/resources').set(bearer(kept)).send({ title: 'x' }), 404, 'TENANT_NOT_FOUND');
    const third = await refresh(t, refreshCookieOf(second)!);
    expectOk(third);
    const dropped = third.body.accessToken as string;
    expect(decodeJwt(dropped).payload).not.toHaveProperty('tid');
    const personal = await t.http.get('/resources').set(bearer(dropped));
    expectOk(personal);
    expect(personal.body.items).toEqual([]);
    // Selecting it again is refused while not a member.
    expectError(await selectTenant(t, dropped, tenant.id), 404, 'TENANT_NOT_FOUND');

    // Back in: the session does not slip back into the tenant by itself (the removal
    // dropped the selection); selecting again works, then {tenantId: null} removes tid.
    await addMember(t, tenant.id, owner, member, ['member']);
    const reAdded = await refresh(t, refreshCookieOf(third)!);
    expectOk(reAdded);
    expect(decodeJwt(reAdded.body.accessToken as string).payload).not.toHaveProperty('tid');
    const again = await selected(t, dropped, tenant.id);
    expect(decodeJwt(again).payload.tid).toBe(tenant.id);
    const cleared = await selected(t, again, null);
    expect(decodeJwt(cleared).payload).not.toHaveProperty('tid');
    const personalAgain = await t.http.get('/resources').set(bearer(cleared));
    expectOk(personalAgain);
    expect(personalAgain.body.items).toEqual([]);
    const fourth = await refresh(t, refreshCookieOf(reAdded)!);
    expectOk(fourth);
    expect(decodeJwt(fourth.body.accessToken as string).payload).not.toHaveProperty('tid');
  });

  it('POST /auth/tenant: 404 TENANT_NOT_FOUND for a tenant the caller is not in, 400 for a malformed id', async () => {
    const owner = await signup(t);
    const outsider = await signup(t);
    const tenant = await createTenant(t, owner);

    const foreign = await selectTenant(t, outsider.accessToken, tenant.id);
    expectError(foreign, 404, 'TENANT_NOT_FOUND');
    const unknown = await selectTenant(t, outsider.accessToken, randomUUID());
    expectError(unknown, 404, 'TENANT_NOT_FOUND');
    expect(foreign.text).toBe(unknown.text);

    for (const bad of ['not-a-uuid', `${tenant.id}x`, tenant.id.replace(/-/g, ''), '', 42, true, [tenant.id], {}]) {
      expectError(await selectTenant(t, outsider.accessToken, bad), 400, 'VALIDATION_FAILED');
    }
    const missing = await t.http.post('/auth/tenant').set(outsider.auth).send({});
    expectError(missing, 400, 'VALIDATION_FAILED');
    const extra = await t.http
      .post('/auth/tenant')
      .set(owner.auth)
      .send({ tenantId: tenant.id, roles: ['owner'] });
    expectError(extra, 400, 'VALIDATION_FAILED');
    expectError(await t.http.post('/auth/tenant').send({ tenantId: tenant.id }), 401, 'UNAUTHORIZED');

    // The outsider's session got no tid from the refused attempts.
    const next = await refresh(t, outsider.refreshToken);
    expectOk(next);
    expect(decodeJwt(next.body.accessToken as string).payload).not.toHaveProperty('tid');
  });

  it('a malformed or repeated X-Tenant-Id gets 400 TENANT_HEADER_INVALID on the resources routes', async () => {
    const owner = await signup(t);
    const tenant = await createTenant(t, owner);
    const r = await createTenantResource(t, owner.auth, tenant.id);
    // (Surrounding spaces are not part of a header value: HTTP strips them.)
    const malformed = [
      'not-a-uuid',
      '',
      `${tenant.id}0`,
      `{${tenant.id}}`,
      tenant.id.replace(/-/g, ''),
      `${tenant.id},`,
    ];
    const send = (headers: Record<string, string | string[]>) => [
      t.http.get('/resources').set(owner.auth).set(headers),
      t.http.post('/resources').set(owner.auth).set(headers).send({ title: 'x' }),
      t.http.get(`/resources/${r.id}`).set(owner.auth).set(headers),
      t.http.patch(`/resources/${r.id}`).set(owner.auth).set(headers).send({ title: 'changed' }),
      t.http.delete(`/resources/${r.id}`).set(owner.auth).set(headers),
    ];
    for (const value of malformed) {
      for (const req of send({ 'X-Tenant-Id': value })) expectError(await req, 400, 'TENANT_HEADER_INVALID');
    }
    // Repeated, even with the same valid id twice, or with two ids.
    const other = await createTenant(t, owner);
    for (const values of [
      [tenant.id, tenant.id],
      [tenant.id, other.id],
    ]) {
      for (const req of send({ 'X-Tenant-Id': values })) expectError(await req, 400, 'TENANT_HEADER_INVALID');
    }
    // Untouched, and nothing created.
    const list = await t.http.get('/resources').set(owner.auth).set(inTenant(tenant.id));
    expectOk(list);
    expect(list.body.items).toEqual([r]);
  });

  it('GET /resources?scope=memberships checks X-Tenant-Id as every resources route does (400 invalid, 400 mismatch)', async () => {
    // Contract v2 §E "Tenant context": a malformed header is 400 TENANT_HEADER_INVALID and a
    // header differing from tid 400 TENANT_MISMATCH, with no exception for scope=memberships
    // (GET /resources/:id, whose read rule does not depend on the context either, checks them).
    const owner = await signup(t);
    const a = await createTenant(t, owner);
    const b = await createTenant(t, owner);
    for (const value of ['not-a-uuid', '', `${a.id}0`]) {
      const res = await t.http.get('/resources?scope=memberships').set(owner.auth).set('X-Tenant-Id', value);
      expectError(res, 400, 'TENANT_HEADER_INVALID');
    }
    const withTid = await selected(t, owner.accessToken, a.id);
    const res = await t.http.get('/resources?scope=memberships').set(bearer(withTid)).set(inTenant(b.id));
    expectError(res, 400, 'TENANT_MISMATCH');
    // Well-formed and agreeing: the cross-tenant list.
    const ok = await t.http.get('/resources?scope=memberships').set(bearer(withTid)).set(inTenant(a.id));
    expectOk(ok);
  });

  it('a machine client token gets 403 USER_SESSION_REQUIRED on POST /auth/tenant, even as a member', async () => {
    const root = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
    const created = await t.http
      .post('/oauth/clients')
      .set(root.auth)
      .send({ name: 'tenant context', allowedScopes: ['resources:read', 'tenants:read', 'tenants:write'] })
      .expect(201);
    const c = created.body as Created;
    const owner = await signup(t);
    const tenant = await createTenant(t, owner);
    await addMember(t, tenant.id, owner, { username: `svc.${c.client.clientId}` }, ['member']);
    const res = await t.http
      .post('/oauth/token')
      .set('Content-Type', FORM)
      .set(basic(c.client.clientId, c.secret.value))
      .send(form({ ...GRANT }));
    expectOk(res);
    const clientToken = res.body.access_token as string;
    expect(decodeJwt(clientToken).payload.sub).toBe(c.client.serviceUserId);

    for (const tenantId of [tenant.id, null]) {
      const refused = await selectTenant(t, clientToken, tenantId);
      expectError(refused, 403, 'USER_SESSION_REQUIRED');
      expect(refused.body).not.toHaveProperty('accessToken');
    }
    // The client still works in the tenant through the header.
    const list = await t.http.get('/resources').set(bearer(clientToken)).set(inTenant(tenant.id));
    expectOk(list);
  });
});

describe('TENANT_ROLES_IN_TOKEN=true', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ENV, TENANT_ROLES_IN_TOKEN: 'true' });
  });
  afterAll(async () => t?.close());

  it('adds the tenant_roles snapshot next to tid, renewed by refresh; Gatehouse itself still looks the roles up', async () => {
    const owner = await signup(t);
    const member = await signup(t);
    const tenant = await createTenant(t, owner);
    await t.http
      .put(`/tenants/${tenant.id}/roles/reader`)
      .set(owner.auth)
      .send({ permissions: ['resources:read'] })
      .expect(200);
    await addMember(t, tenant.id, owner, member, ['reader', 'member']);

    const token = await selected(t, member.accessToken, tenant.id);
    const claims = decodeJwt(token).payload;
    expect(claims.tid).toBe(tenant.id);
    expect(claims.tenant_roles).toEqual(['member', 'reader']);
    const ownerToken = await selected(t, owner.accessToken, tenant.id);
    expect(decodeJwt(ownerToken).payload.tenant_roles).toEqual(['owner']);
    // Without a selected tenant, no snapshot.
    expect(decodeJwt(member.accessToken).payload).not.toHaveProperty('tenant_roles');

    // Downgraded: the snapshot in the token is stale, but Gatehouse refuses at once.
    await t.http
      .patch(`/tenants/${tenant.id}/members/${member.id}`)
      .set(owner.auth)
      .send({ roles: ['reader'] })
      .expect(200);
    expectError(
      await t.http.post('/resources').set(bearer(token)).send({ title: 'x' }),
      403,
      'INSUFFICIENT_TENANT_PERMISSION',
    );
    expectOk(await t.http.get('/resources').set(bearer(token)));
    // The next refresh brings the new roles.
    const next = await refresh(t, member.refreshToken);
    expectOk(next);
    const renewed = decodeJwt(next.body.accessToken as string).payload;
    expect(renewed.tid).toBe(tenant.id);
    expect(renewed.tenant_roles).toEqual(['reader']);

    // An empty role list is an empty snapshot; clearing the tenant removes both claims.
    await t.http.patch(`/tenants/${tenant.id}/members/${member.id}`).set(owner.auth).send({ roles: [] }).expect(200);
    const emptied = await selected(t, next.body.accessToken as string, tenant.id);
    expect(decodeJwt(emptied).payload.tenant_roles).toEqual([]);
    const cleared = decodeJwt(await selected(t, emptied, null)).payload;
    expect(cleared).not.toHaveProperty('tid');
    expect(cleared).not.toHaveProperty('tenant_roles');
  });
});
