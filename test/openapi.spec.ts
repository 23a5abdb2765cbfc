import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type TestApp } from './support/test-app.js';
import { USER_KEYS } from './support/factories.js';

type Operation = {
  security?: Array<Record<string, string[]>>;
  parameters?: Array<{ name: string; in: string }>;
  responses?: Record<string, unknown>;
  requestBody?: { content?: Record<string, { schema?: { $ref?: string } }> };
};
type Doc = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: {
    securitySchemes: Record<string, Record<string, string>>;
    schemas: Record<string, { properties?: Record<string, unknown>; required?: string[] }>;
  };
};

/** Every call of the HTTP contract (docs/API.md), as [method, OpenAPI path]. */
const CONTRACT: Array<[string, string]> = [
  ['post', '/auth/signup'],
  ['post', '/auth/login'],
  ['post', '/auth/refresh'],
  ['post', '/auth/logout'],
  ['post', '/auth/logout-all'],
  ['get', '/auth/sessions'],
  ['delete', '/auth/sessions/{id}'],
  ['get', '/users/me'],
  ['patch', '/users/me'],
  ['post', '/users/me/password'],
  ['delete', '/users/me'],
  ['get', '/users'],
  ['patch', '/users/{id}'],
  ['post', '/resources'],
  ['get', '/resources'],
  ['get', '/resources/{id}'],
  ['patch', '/resources/{id}'],
  ['delete', '/resources/{id}'],
  ['get', '/health'],
  ['get', '/.well-known/jwks.json'],
  // tenants (contract v2 §E)
  ['post', '/tenants'],
  ['get', '/tenants'],
  ['post', '/tenants/invitations/accept'],
  ['get', '/tenants/{id}'],
  ['patch', '/tenants/{id}'],
  ['delete', '/tenants/{id}'],
  ['get', '/tenants/{id}/members'],
  ['post', '/tenants/{id}/members'],
  ['patch', '/tenants/{id}/members/{userId}'],
  ['delete', '/tenants/{id}/members/{userId}'],
  ['post', '/tenants/{id}/invitations'],
  ['get', '/tenants/{id}/invitations'],
  ['delete', '/tenants/{id}/invitations/{invitationId}'],
  ['get', '/tenants/{id}/roles'],
  ['put', '/tenants/{id}/roles/{name}'],
  ['delete', '/tenants/{id}/roles/{name}'],
  ['post', '/auth/tenant'],
  // federation (contract v2 §D)
  ['post', '/auth/federated/session'],
  ['get', '/users/me/identities'],
  ['post', '/users/me/identities'],
  ['delete', '/users/me/identities/{identityId}'],
  ['post', '/users/{id}/identities'],
  ['delete', '/users/{id}/identities/{identityId}'],
];

/**
 * The error statuses each tenant call documents (docs/api.md, Tenants): 401 and 403
 * (scope, tenant permission) everywhere, 404 TENANT_NOT_FOUND wherever a tenant is named,
 * 409 for the slug, limits, ALREADY_MEMBER, LAST_OWNER and ROLE_IN_USE, 429 for invitations.
 */
const TENANT_ERRORS: Record<string, number[]> = {
  'post /tenants': [400, 401, 403, 409],
  'get /tenants': [400, 401, 403],
  'post /tenants/invitations/accept': [400, 401, 403, 409, 429],
  'get /tenants/{id}': [401, 403, 404],
  'patch /tenants/{id}': [400, 401, 403, 404],
  'delete /tenants/{id}': [400, 401, 403, 404],
  'get /tenants/{id}/members': [400, 401, 403, 404],
  'post /tenants/{id}/members': [400, 401, 403, 404, 409],
  'patch /tenants/{id}/members/{userId}': [400, 401, 403, 404, 409],
  'delete /tenants/{id}/members/{userId}': [401, 403, 404, 409],
  'post /tenants/{id}/invitations': [400, 401, 403, 404, 409, 429],
  'get /tenants/{id}/invitations': [400, 401, 403, 404],
  'delete /tenants/{id}/invitations/{invitationId}': [401, 403, 404],
  'get /tenants/{id}/roles': [401, 403, 404],
  'put /tenants/{id}/roles/{name}': [400, 401, 403, 404, 409],
  'delete /tenants/{id}/roles/{name}': [400, 401, 403, 404, 409],
  'post /auth/tenant': [400, 401, 403, 404],
};

/**
 * The error statuses each federation call documents (docs/api.md, Federation): 503 wherever a
 * provider's keys may be needed, 409 for IDENTITY_ALREADY_LINKED and LAST_LOGIN_METHOD, 429 for
 * the exchange's per-address limit and the password recheck.
 */
const FEDERATION_ERRORS: Record<string, number[]> = {
  'post /auth/federated/session': [400, 401, 403, 429, 503],
  'get /users/me/identities': [401, 403],
  'post /users/me/identities': [400, 401, 403, 409, 429, 503],
  'delete /users/me/identities/{identityId}': [401, 403, 404, 409],
  'post /users/{id}/identities': [400, 401, 403, 404, 409],
  'delete /users/{id}/identities/{identityId}': [401, 403, 404, 409],
};

/** Calls that need `Authorization: Bearer` (401 without it). */
const BEARER_ONLY = CONTRACT.filter(
  ([, path]) =>
    path.startsWith('/users') ||
    path.startsWith('/resources') ||
    path.startsWith('/tenants') ||
    ['/auth/logout-all', '/auth/sessions', '/auth/sessions/{id}', '/auth/tenant'].includes(path),
).filter(([method, path]) => !(method === 'get' && path === '/resources/{id}'));

describe('OpenAPI document and UI', () => {
  let t: TestApp;
  let doc: Doc;
  beforeAll(async () => {
    t = await startApp();
    doc = (
      await t.http
        .get('/docs-json')
        .expect(200)
        .expect('Content-Type', /application\/json/)
    ).body;
  });
  afterAll(async () => t?.close());

  const bearerSchemes = () =>
    Object.entries(doc.components.securitySchemes)
      .filter(([, s]) => s.type === 'http' && s.scheme?.toLowerCase() === 'bearer')
      .map(([name]) => name);
  const cookieSchemes = () =>
    Object.entries(doc.components.securitySchemes)
      .filter(([, s]) => s.type === 'apiKey' && s.in === 'cookie' && s.name === 'refresh_token')
      .map(([name]) => name);
  const requirementNames = (op: Operation) => (op.security ?? []).flatMap((r) => Object.keys(r));

  it('GET /docs-json is a valid OpenAPI 3 document', async () => {
    expect(doc.openapi).toMatch(/^3\./);
    await expect(SwaggerParser.validate(structuredClone(doc) as never)).resolves.toBeTruthy();
  });

  it.each(CONTRACT)('documents %s %s', (method, path) => {
    expect(Object.keys(doc.paths)).toContain(path);
    expect(Object.keys(doc.paths[path]!)).toContain(method);
  });

  it('documents path parameters of the routes that take an id', () => {
    for (const [method, path] of CONTRACT.filter(([, p]) => p.endsWith('{id}'))) {
      const params = doc.paths[path]![method]!.parameters ?? [];
      expect(params).toContainEqual(expect.objectContaining({ name: 'id', in: 'path' }));
    }
  });

  it('documents every path parameter of every call', () => {
    for (const [method, path] of CONTRACT) {
      const params = doc.paths[path]![method]!.parameters ?? [];
      for (const [, name] of path.matchAll(/\{([^}]+)\}/g)) {
        expect(params, `${method} ${path}`).toContainEqual(expect.objectContaining({ name, in: 'path' }));
      }
    }
  });

  it.each(Object.entries(TENANT_ERRORS))('documents the error statuses of %s', (call, statuses) => {
    const [method, path] = call.split(' ') as [string, string];
    const documented = Object.keys(doc.paths[path]![method]!.responses ?? {})
      .map(Number)
      .filter((status) => status >= 400)
      .sort((a, b) => a - b);
    expect(documented).toEqual(statuses);
  });

  it.each(Object.entries(FEDERATION_ERRORS))('documents the error statuses of %s', (call, statuses) => {
    const [method, path] = call.split(' ') as [string, string];
    const documented = Object.keys(doc.paths[path]![method]!.responses ?? {})
      .map(Number)
      .filter((status) => status >= 400)
      .sort((a, b) => a - b);
    expect(documented).toEqual(statuses);
  });

  it('documents POST /auth/federated/session as public (the external token is in the body)', () => {
    const names = requirementNames(doc.paths['/auth/federated/session']!.post!);
    expect(names.filter((n) => bearerSchemes().includes(n))).toEqual([]);
  });

  it('describes the bearer security scheme and the protected routes use it', () => {
    const bearer = bearerSchemes();
    expect(bearer.length).toBeGreaterThan(0);
    for (const [method, path] of BEARER_ONLY) {
      const names = requirementNames(doc.paths[path]![method]!);
      expect(
        names.some((n) => bearer.includes(n)),
        `${method} ${path} lists the bearer scheme`,
      ).toBe(true);
    }
  });

  it('describes the refresh cookie and /auth/refresh uses it', () => {
    const cookie = cookieSchemes();
    expect(cookie.length).toBeGreaterThan(0);
    expect(requirementNames(doc.paths['/auth/refresh']!.post!).some((n) => cookie.includes(n))).toBe(true);
    expect(requirementNames(doc.paths['/auth/logout']!.post!).some((n) => cookie.includes(n))).toBe(true);
  });

  it('documents GET /resources/{id} as callable without a token', () => {
    const security = doc.paths['/resources/{id}']!.get!.security;
    // An empty requirement object makes authentication optional (OpenAPI 3.0 §4.7.30).
    expect(security === undefined || security.some((r) => Object.keys(r).length === 0)).toBe(true);
  });

  it('never puts a password hash or token field in the User schema', () => {
    const user = Object.entries(doc.components.schemas).find(([name]) => /^User(Dto)?$/.test(name));
    expect(user).toBeDefined();
    expect(Object.keys(user![1].properties ?? {}).sort()).toEqual(USER_KEYS);
  });

  it('documents the 254-character bound of every email address a request body takes', () => {
    // isEmail refuses an address over 254 characters (RFC 5321 §4.5.3.1.3): a client
    // generated from the document must learn the bound that the server answers 400 for.
    const bodies = new Set(
      Object.values(doc.paths)
        .flatMap((operations) => Object.values(operations))
        .flatMap((op) => Object.values(op.requestBody?.content ?? {}))
        .map((media) => media.schema?.$ref?.replace('#/components/schemas/', '')),
    );
    const emails = Object.entries(doc.components.schemas)
      .filter(([name]) => bodies.has(name))
      .flatMap(([name, schema]) =>
        Object.entries(schema.properties ?? {})
          .filter(([property]) => /^(e|newE)mail$/.test(property))
          .map(([property, p]) => [`${name}.${property}`, (p as { maxLength?: number }).maxLength] as const),
      );
    expect(emails.length).toBeGreaterThan(3);
    expect(emails.filter(([, max]) => max !== 254)).toEqual([]);
  });

  it('GET /docs serves the UI as HTML, with its assets', async () => {
    const res = await t.http.get('/docs').expect(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.text).toMatch(/<html/i);
    expect(res.text).toMatch(/swagger/i);
    const assets = [...res.text.matchAll(/(?:src|href)="\.\/docs\/([^"]+\.(?:js|css))"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThan(0);
    for (const asset of assets) await t.http.get(`/docs/${asset}`).expect(200);
  });
});
