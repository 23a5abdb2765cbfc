import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/common/errors/app-error.js';
import {
  BUILT_IN_ROLES,
  CUSTOM_ROLE_PERMISSIONS,
  TENANT_PERMISSIONS,
  mayDefine,
  mayGrant,
  permissionsOf,
  type TenantPermission,
} from '../../src/tenants/permissions.js';
import { requestedTenant } from '../../src/tenants/tenant-access.service.js';

const NONE = new Map<string, readonly string[]>();
const sorted = (s: Iterable<string>) => [...s].sort();
const grantor = (isOwner: boolean, permissions: TenantPermission[]) => ({ isOwner, permissions: new Set(permissions) });

describe('permissionsOf', () => {
  it('gives the owner every permission, an admin all but tenant:delete, a member three', () => {
    expect(sorted(permissionsOf(['owner'], NONE))).toEqual(sorted(TENANT_PERMISSIONS));
    const admin = permissionsOf(['admin'], NONE);
    expect(admin.has('tenant:delete')).toBe(false);
    expect(admin.size).toBe(TENANT_PERMISSIONS.length - 1);
    expect(sorted(permissionsOf(['member'], NONE))).toEqual(['members:read', 'resources:read', 'resources:write']);
  });

  it('gives an empty role list nothing', () => {
    expect(permissionsOf([], NONE).size).toBe(0);
  });

  it('takes a custom role from its definition in this tenant, and unions several roles', () => {
    const custom = new Map([
      ['reader', ['resources:read']],
      ['recruiter', ['members:read', 'members:write']],
    ]);
    expect(sorted(permissionsOf(['reader'], custom))).toEqual(['resources:read']);
    expect(sorted(permissionsOf(['reader', 'recruiter'], custom))).toEqual([
      'members:read',
      'members:write',
      'resources:read',
    ]);
    expect(sorted(permissionsOf(['reader', 'member'], custom))).toEqual([
      'members:read',
      'resources:read',
      'resources:write',
    ]);
  });

  it('grants nothing for a role without a definition, and ignores unknown permission names in one', () => {
    expect(permissionsOf(['ghost'], NONE).size).toBe(0);
    const custom = new Map([['odd', ['resources:read', 'resources:destroy', 'RESOURCES:WRITE', '']]]);
    expect(sorted(permissionsOf(['odd', 'ghost'], custom))).toEqual(['resources:read']);
  });

  it('never lets a custom definition override a built-in role', () => {
    const custom = new Map([['member', ['tenant:delete']]]);
    expect(permissionsOf(['member'], custom).has('tenant:delete')).toBe(false);
  });

  it('never lists tenant:delete among the permissions a custom role may hold', () => {
    expect(CUSTOM_ROLE_PERMISSIONS).not.toContain('tenant:delete');
    expect(sorted([...CUSTOM_ROLE_PERMISSIONS, 'tenant:delete'])).toEqual(sorted(TENANT_PERMISSIONS));
    expect(sorted(BUILT_IN_ROLES.admin)).toEqual(sorted(CUSTOM_ROLE_PERMISSIONS));
  });
});

describe('mayGrant', () => {
  const custom = new Map([
    ['reader', ['resources:read']],
    ['recruiter', ['members:read', 'members:write']],
  ]);
  const admin = grantor(false, [...BUILT_IN_ROLES.admin]);

  it('lets an owner grant anything, owner included', () => {
    const owner = grantor(true, [...TENANT_PERMISSIONS]);
    expect(mayGrant(owner, ['owner'], custom)).toBe(true);
    expect(mayGrant(owner, ['owner', 'admin', 'reader'], custom)).toBe(true);
    expect(mayGrant(owner, [], custom)).toBe(true);
  });

  it('never lets a non-owner grant owner, even one holding every permission', () => {
    expect(mayGrant(admin, ['owner'], custom)).toBe(false);
    expect(mayGrant(admin, ['member', 'owner'], custom)).toBe(false);
    expect(mayGrant(grantor(false, [...TENANT_PERMISSIONS]), ['owner'], custom)).toBe(false);
  });

  it('lets an admin grant admin, member and custom roles', () => {
    expect(mayGrant(admin, ['admin'], custom)).toBe(true);
    expect(mayGrant(admin, ['member', 'reader', 'recruiter'], custom)).toBe(true);
  });

  it('lets a non-owner grant only roles whose permissions it holds', () => {
    const recruiter = grantor(false, ['members:read', 'members:write']);
    expect(mayGrant(recruiter, ['recruiter'], custom)).toBe(true);
    expect(mayGrant(recruiter, [], custom)).toBe(true);
    expect(mayGrant(recruiter, ['admin'], custom)).toBe(false);
    expect(mayGrant(recruiter, ['member'], custom)).toBe(false);
    expect(mayGrant(recruiter, ['reader'], custom)).toBe(false);
    expect(mayGrant(recruiter, ['recruiter', 'reader'], custom)).toBe(false);
  });

  it('treats an undefined custom role as granting nothing', () => {
    expect(mayGrant(grantor(false, []), ['ghost'], custom)).toBe(true);
  });
});

describe('mayDefine', () => {
  it('lets an owner define any permission list', () => {
    expect(mayDefine(grantor(true, []), [...CUSTOM_ROLE_PERMISSIONS])).toBe(true);
  });

  it('lets anyone else define only a subset of what they hold', () => {
    const smith = grantor(false, ['roles:write', 'members:read']);
    expect(mayDefine(smith, [])).toBe(true);
    expect(mayDefine(smith, ['members:read'])).toBe(true);
    expect(mayDefine(smith, ['members:read', 'roles:write'])).toBe(true);
    expect(mayDefine(smith, ['members:write'])).toBe(false);
    expect(mayDefine(smith, ['members:read', 'members:write'])).toBe(false);
    expect(mayDefine(grantor(false, [...BUILT_IN_ROLES.admin]), ['tenant:delete'])).toBe(false);
  });
});

describe('requestedTenant', () => {
  const A = '3b241101-e2bb-4255-8caf-4136c566a962';
  const B = '9f1c2d3e-4a5b-4c6d-8e7f-0123456789ab';
  const code = (f: () => unknown): string | undefined => {
    try {
      f();
    } catch (error) {
      expect(error).toBeInstanceOf(AppError);
      return (error as AppError).code;
    }
    return undefined;
  };

  it('is null without a header or tid (personal), and the tid without a header', () => {
    expect(requestedTenant({ tenantId: null }, undefined)).toBeNull();
    expect(requestedTenant({ tenantId: A }, undefined)).toBe(A);
  });

  it('is the header when there is no tid, or the same one', () => {
    expect(requestedTenant({ tenantId: null }, A)).toBe(A);
    expect(requestedTenant({ tenantId: A }, A)).toBe(A);
  });

  it('reads the header case-insensitively, answering the canonical lower-case id', () => {
    expect(requestedTenant({ tenantId: null }, A.toUpperCase())).toBe(A);
    expect(requestedTenant({ tenantId: A }, A.toUpperCase())).toBe(A);
    expect(requestedTenant({ tenantId: B }, '9F1c2D3e-4A5b-4C6d-8E7f-0123456789aB')).toBe(B);
  });

  it('refuses a header that differs from the tid: 400 TENANT_MISMATCH', () => {
    expect(code(() => requestedTenant({ tenantId: A }, B))).toBe('TENANT_MISMATCH');
    expect(code(() => requestedTenant({ tenantId: B }, A.toUpperCase()))).toBe('TENANT_MISMATCH');
  });

  const malformed: Array<[string, string | string[]]> = [
    ['an empty header', ''],
    ['a word', 'acme'],
    ['a slug', 'my-tenant'],
    ['a UUID one character short', A.slice(0, -1)],
    ['a UUID with a character too many', `${A}0`],
    ['a UUID without hyphens', A.replace(/-/g, '')],
    ['a UUID in braces', `{${A}}`],
    ['a UUID with spaces around', ` ${A} `],
    ['a UUID with a non-hex digit', `${A.slice(0, -1)}g`],
    ['two UUIDs in one header', `${A},${B}`],
    ['a repeated header (array)', [A, B]],
    ['a repeated header with one value twice', [A, A]],
    ['an array of one', [A]],
  ];
  it.each(malformed)('refuses %s: 400 TENANT_HEADER_INVALID, with or without a tid', (_name, header) => {
    expect(code(() => requestedTenant({ tenantId: null }, header))).toBe('TENANT_HEADER_INVALID');
    expect(code(() => requestedTenant({ tenantId: A }, header))).toBe('TENANT_HEADER_INVALID');
  });

  it('answers 400 for both errors', () => {
    for (const f of [() => requestedTenant({ tenantId: A }, B), () => requestedTenant({ tenantId: null }, 'x')]) {
      expect(f).toThrow(AppError);
      expect(statusOf(f)).toBe(400);
    }
  });
});

/** The HTTP status of the AppError `f` throws (undefined when it throws something else). */
function statusOf(f: () => unknown): number | undefined {
  try {
    f();
  } catch (error) {
    return error instanceof AppError ? error.status : undefined;
  }
  return undefined;
}
