import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type TestApp } from './support/test-app.js';
import { USER_KEYS } from './support/factories.js';

type Operation = { security?: Array<Record<string, string[]>>; parameters?: Array<{ name: string; in: string }> };
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
];

/** Calls that need `Authorization: Bearer` (401 without it). */
const BEARER_ONLY = CONTRACT.filter(
  ([, path]) =>
    path.startsWith('/users') ||
    path.startsWith('/resources') ||
    ['/auth/logout-all', '/auth/sessions', '/auth/sessions/{id}'].includes(path),
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
