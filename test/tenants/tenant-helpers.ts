import { randomBytes } from 'node:crypto';
import type { Response } from 'supertest';
import { expect } from 'vitest';
import type { TestApp } from '../support/test-app.js';
import type { SignedUp } from '../support/factories.js';

/** The fields of every Tenant object (contract v2 §E), sorted. */
export const TENANT_KEYS = ['createdAt', 'id', 'myRoles', 'name', 'slug'];
/** The fields of a member list item, sorted. */
export const MEMBER_KEYS = ['displayName', 'joinedAt', 'roles', 'userId', 'username'];

let counter = 0;

/** A slug no other test uses: 3–40 lower-case letters, digits and inner hyphens. */
export function uniqueSlug(prefix = 't'): string {
  counter += 1;
  return `${prefix}-${counter}-${randomBytes(3).toString('hex')}`;
}

export interface CreatedTenant {
  id: string;
  slug: string;
  name: string;
}

/** Creates a tenant as `owner` (201), who becomes its owner. */
export async function createTenant(
  t: TestApp,
  owner: Pick<SignedUp, 'auth'>,
  fields: { name?: string; slug?: string } = {},
): Promise<CreatedTenant> {
  const slug = fields.slug ?? uniqueSlug();
  const res = await t.http
    .post('/tenants')
    .set(owner.auth)
    .send({ name: fields.name ?? `Tenant ${slug}`, slug })
    .expect(201);
  return { id: res.body.id, slug: res.body.slug, name: res.body.name };
}

/** Adds an existing account to a tenant directly, with `roles` (201). */
export async function addMember(
  t: TestApp,
  tenantId: string,
  by: Pick<SignedUp, 'auth'>,
  member: Pick<SignedUp, 'username'>,
  roles: string[],
): Promise<void> {
  await t.http.post(`/tenants/${tenantId}/members`).set(by.auth).send({ username: member.username, roles }).expect(201);
}

/** The header that aims a request at a tenant. */
export function inTenant(tenantId: string): { 'X-Tenant-Id': string } {
  return { 'X-Tenant-Id': tenantId };
}

/** Defines (or redefines) a custom role of a tenant as `by` (200). */
export async function defineRole(
  t: TestApp,
  tenantId: string,
  by: Pick<SignedUp, 'auth'>,
  name: string,
  permissions: string[],
): Promise<void> {
  await t.http.put(`/tenants/${tenantId}/roles/${name}`).set(by.auth).send({ permissions }).expect(200);
}

/** A Resource object as the API answers it (contract v2 §E: with tenantId, ownerId may be null). */
export interface TenantResource {
  id: string;
  ownerId: string | null;
  tenantId: string | null;
  title: string;
  body: string;
  visibility: 'private' | 'public';
  createdAt: string;
  updatedAt: string;
}

/** POST /resources in a tenant (X-Tenant-Id) as this caller; answers the created Resource (201). */
export async function createTenantResource(
  t: TestApp,
  auth: { Authorization: string },
  tenantId: string,
  fields: { title?: string; body?: string; visibility?: 'private' | 'public' } = {},
): Promise<TenantResource> {
  const res = await t.http
    .post('/resources')
    .set(auth)
    .set(inTenant(tenantId))
    .send({ title: fields.title ?? `tenant resource ${uniqueSlug('r')}`, ...fields })
    .expect(201);
  return res.body as TenantResource;
}

/** The answer has this status and error code (its body is shown when it does not). */
export function expectError(res: Response, status: number, code: string): void {
  expect({ status: res.status, code: res.body?.code, body: res.status === status ? undefined : res.text }).toEqual({
    status,
    code,
    body: undefined,
  });
}

/** The answer has this status (its body is shown when it does not). */
export function expectOk(res: Response, status = 200): void {
  expect(res.status === status ? status : `${res.status}: ${res.text}`).toBe(status);
}
