// Scenario 5 — hostile input at volume. Property-based fuzzing (fast-check) of every route's
// body, query, path and headers — random JSON values, wrong types, huge strings, unicode
// (lone surrogates, NUL), prototype keys, bad content types, random Authorization headers,
// malformed cookies, hostile X-Tenant-Id headers (repeated, huge, not UUIDs, other tenants'
// ids) — plus token attacks (alg none, HS256 keyed with the public key,
// tampered payloads, expired, wrong kid/iss/aud/typ) and malformed HTTP on raw sockets:
// more than 20,000 requests over keep-alive connections at modest concurrency.
// Expected: no 5xx, no dropped connection, every error in the contract's shape without a
// stack trace, the process alive, and its memory back near where it was after warm-up.
// The tenant routes (contract v2 §E) are fuzzed the same way, against a tenant of the batch's
// user (with a member, a custom role and a pending invitation) and one of a stranger; before
// the fuzz, contract probes check the exact status and code of hostile tenant contexts.
// RELIABILITY_SEED=<n> replays a run (the seed is printed).
import { createPrivateKey, randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signEs256, signHs256, unsignedJwt, es256KeyPair } from '../support/jwt.js';
import { baseEnv, killAll, sharedSecrets, startApp, type AppProcess } from './support/app.js';
import { bearer, call, keepAliveAgent, type Outcome } from './support/http.js';
import { percentile, round, sleep } from './support/net.js';
import { rawRequest, type RawResult } from './support/raw.js';
import { freshSharedDatabase } from './support/shared-db.js';
import { createResource, loginAccount, signupAccount, type Account } from './support/users.js';

const TOTAL = Number(process.env.RELIABILITY_FUZZ_REQUESTS ?? 20_000);
const WARMUP = 4_000; // the baseline for memory: V8 has sized its heap by then
const BATCH = 400;
const CONCURRENCY = 12;
const SEED = Number(process.env.RELIABILITY_SEED ?? Math.floor(Math.random() * 2 ** 31));
const ADMIN = { username: 'fuzz_admin', password: 'fuzz admin password' };
const ALLOWED_ORIGIN = 'http://app.fuzz.test';
const CLEAN_IP = { 'x-forwarded-for': '198.51.100.7' }; // the harness's own logins: never throttled by the fuzz

let app: AppProcess;
let secrets: ReturnType<typeof sharedSecrets>;

beforeAll(async () => {
  const databaseUrl = await freshSharedDatabase('fuzz');
  secrets = sharedSecrets();
  app = await startApp(
    baseEnv({
      DATABASE_URL: databaseUrl,
      MIGRATE_ON_START: 'true',
      ADMIN_USERNAME: ADMIN.username,
      ADMIN_PASSWORD: ADMIN.password,
      CORS_ORIGINS: ALLOWED_ORIGIN,
      TRUST_PROXY: '1',
      LOGIN_RATE_LIMIT: '10',
      LOG_LEVEL: 'log',
      ...secrets,
    }),
  );
});

afterAll(() => {
  killAll();
  app?.cleanup();
});

// --- What a batch of fuzzed requests may refer to ------------------------------------------
interface Context {
  user: Account;
  admin: Account;
  resourceId: string;
  sessionId: string;
  attacks: string[];
  /** A machine client (allowed every scope it may have) and one of its access tokens. */
  client: FuzzClient;
  tenant: FuzzTenant;
  /** Tokens signed with the deployment's own key, with hostile `tid` / `tenant_roles` claims. */
  forged: string[];
}

/** The batch user's tenant and what the tenant routes may name. */
interface FuzzTenant {
  id: string;
  slug: string;
  /** A tenant of a stranger: the batch user is not a member (its id must answer 404). */
  otherId: string;
  /** The stranger, owner of `otherId` and member of nothing else. */
  stranger: Account;
  /** A member the batch user added (role `member`). */
  member: Account;
  /** A pending invitation's id. */
  invitationId: string;
  /** An access token of the batch user's session with this tenant selected (`tid`). */
  tidAccess: string;
}

/** The custom role every batch tenant defines. */
const FUZZ_ROLE = 'fuzz_role';

interface FuzzClient {
  clientId: string;
  secret: string;
  access: string;
}

const ROUTES: Array<[string, string]> = [
  ['GET', '/health'],
  ['GET', '/.well-known/jwks.json'],
  ['GET', '/docs-json'],
  ['POST', '/auth/signup'],
  ['POST', '/auth/login'],
  ['POST', '/auth/refresh'],
  ['POST', '/auth/logout'],
  ['POST', '/auth/logout-all'],
  ['GET', '/auth/sessions'],
  ['DELETE', '/auth/sessions/:id'],
  ['GET', '/users/me'],
  ['PATCH', '/users/me'],
  ['POST', '/users/me/password'],
  ['DELETE', '/users/me'],
  ['GET', '/users'],
  ['PATCH', '/users/:id'],
  ['POST', '/resources'],
  ['GET', '/resources'],
  ['GET', '/resources/:id'],
  ['PATCH', '/resources/:id'],
  ['DELETE', '/resources/:id'],
  // account recovery and verification
  ['POST', '/auth/email/verify-request'],
  ['POST', '/auth/email/verify'],
  ['POST', '/auth/password/forgot'],
  ['POST', '/auth/password/reset'],
  ['POST', '/users/me/email'],
  ['DELETE', '/users/me/email/pending'],
  // two-step sign-in (MFA)
  ['GET', '/auth/mfa'],
  ['POST', '/auth/mfa/totp'],
  ['POST', '/auth/mfa/totp/confirm'],
  ['POST', '/auth/login/mfa'],
  ['POST', '/auth/mfa/recovery-codes'],
  ['DELETE', '/auth/mfa'],
  ['DELETE', '/users/:id/mfa'],
  // machine clients: the OAuth form endpoints and the metadata
  ['POST', '/oauth/token'],
  ['POST', '/oauth/introspect'],
  ['POST', '/oauth/revoke'],
  ['GET', '/.well-known/oauth-authorization-server'],
  // tenants (contract v2 §E)
  ['POST', '/tenants'],
  ['GET', '/tenants'],
  ['POST', '/tenants/invitations/accept'],
  ['GET', '/tenants/:id'],
  ['PATCH', '/tenants/:id'],
  ['DELETE', '/tenants/:id'],
  ['GET', '/tenants/:id/members'],
  ['POST', '/tenants/:id/members'],
  ['PATCH', '/tenants/:id/members/:userId'],
  ['DELETE', '/tenants/:id/members/:userId'],
  ['POST', '/tenants/:id/invitations'],
  ['GET', '/tenants/:id/invitations'],
  ['DELETE', '/tenants/:id/invitations/:invitationId'],
  ['GET', '/tenants/:id/roles'],
  ['PUT', '/tenants/:id/roles/:name'],
  ['DELETE', '/tenants/:id/roles/:name'],
  ['POST', '/auth/tenant'],
];
const FIELDS = [
  'username',
  'password',
  'email',
  'displayName',
  'currentPassword',
  'newPassword',
  'title',
  'body',
  'visibility',
  'roles',
  'disabled',
  'id',
  'ownerId',
  'createdAt',
  'login',
  'token',
  'newEmail',
  'code',
  'recoveryCode',
  'mfaToken',
  'name',
  'slug',
  'confirm',
  'permissions',
  'tenantId',
];

const printable = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  maxLength: 80,
});
const nasty = fc.constantFrom(
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff\ud800',
  '💥'.repeat(40),
  'Ω≈ç√∫',
  '\u202e\u200b\ufeff',
  '${jndi:ldap://x}',
  "' OR 1=1 --",
  '<script>alert(1)</script>',
  '../../../etc/passwd',
  '%00',
  'NaN',
  '-1',
  '1e309',
  'true',
  'null',
  '__proto__',
  'constructor',
);
/** Percent-encodes the UTF-8 bytes of any string (lone surrogates included, as U+FFFD). */
function pct(s: string): string {
  return [...Buffer.from(s, 'utf8')]
    .map((b) =>
      /[A-Za-z0-9\-_.~]/.test(String.fromCharCode(b))
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
    )
    .join('');
}
const hugeString = fc.integer({ min: 1_000, max: 20_000 }).map((n) => 'x'.repeat(n));
const anyString = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 3, arbitrary: nasty },
  { weight: 1, arbitrary: hugeString },
);
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 5, arbitrary: anyString },
  { weight: 2, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.array(anyString, { maxLength: 5 }) },
  { weight: 1, arbitrary: fc.constantFrom(['user', 'admin'], ['admin'], ['root'], 'admin', { admin: true }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      ['owner'],
      ['owner', 'owner'],
      ['tenant:delete'],
      ['resources:manage', 'roles:write'],
      [FUZZ_ROLE],
      ['no_such_role'],
      Array.from({ length: 11 }, (_, i) => `role_${i}`),
      '$TENANT',
      '$OTHER_TENANT',
    ),
  },
);

/** Parameters of the OAuth form endpoints, and values that reach their code paths. */
const FORM_FIELDS = ['grant_type', 'scope', 'client_id', 'client_secret', 'token', 'token_type_hint'];
const formValue = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('$CLIENT_ID', '$SECRET', '$USER_TOKEN', '$CLIENT_TOKEN') },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'client_credentials',
      'password',
      'refresh_token',
      'urn:ietf:params:oauth:grant-type:token-exchange',
      'resources:read',
      'resources:read resources:write',
      'offline_access',
      'introspection profile',
      'access_token',
      'c_\u0000',
      'gcs_\u0000',
      '',
    ),
  },
  { weight: 4, arbitrary: anyString },
);
/** A form body: encoded properly (mostly) or sent raw; fields may repeat; Basic or not. */
const formSpec = fc.record({
  fields: fc.array(fc.tuple(fc.oneof(fc.constantFrom(...FORM_FIELDS), fc.string({ maxLength: 12 })), formValue), {
    maxLength: 6,
  }),
  encoded: fc.nat(9).map((n) => n < 8),
  basic: fc.constantFrom('none', 'none', 'valid', 'wrong', 'unencoded') as fc.Arbitrary<
    'none' | 'valid' | 'wrong' | 'unencoded'
  >,
  typed: fc.nat(9).map((n) => n > 0),
});

type BodySpec =
  | { kind: 'none' }
  /** An OAuth form body (application/x-www-form-urlencoded unless `typed` is false). */
  | ({ kind: 'form' } & (typeof formSpec extends fc.Arbitrary<infer F> ? F : never))
  | { kind: 'json'; value: unknown }
  | { kind: 'fields'; fields: Record<string, unknown>; poison?: string }
  | { kind: 'raw'; text: string }
  | { kind: 'deep'; depth: number }
  /** The route's valid body with one field replaced (or none, when `keep`). */
  | { kind: 'shaped'; field: number; value: unknown; keep: boolean };
const bodySpec: fc.Arbitrary<BodySpec> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((value) => ({ kind: 'json' as const, value })) },
  {
    weight: 8,
    arbitrary: fc
      .record({
        fields: fc.dictionary(fc.oneof(fc.constantFrom(...FIELDS), fc.string({ maxLength: 12 })), anyValue, {
          maxKeys: 5,
        }),
        poison: fc.option(fc.constantFrom('__proto__', 'constructor', 'prototype'), { nil: undefined, freq: 6 }),
      })
      .map(({ fields, poison }) => ({ kind: 'fields' as const, fields, poison })),
  },
  {
    weight: 2,
    arbitrary: fc
      .oneof(
        fc.string({ maxLength: 60 }),
        fc.constantFrom(
          '{',
          '{"a":',
          '[1,2',
          '{"title":"x",}',
          'null',
          '"str"',
          '123',
          'true',
          '{"a":1}{"b":2}',
          '\u0000',
          '\ufeff{}',
        ),
      )
      .map((text) => ({ kind: 'raw' as const, text })),
  },
  { weight: 1, arbitrary: fc.integer({ min: 30, max: 3_000 }).map((depth) => ({ kind: 'deep' as const, depth })) },
  { weight: 4, arbitrary: formSpec.map((f) => ({ kind: 'form' as const, ...f })) },
  {
    weight: 10,
    arbitrary: fc
      .record({ field: fc.nat(), value: anyValue, keep: fc.boolean() })
      .map(({ field, value, keep }) => ({ kind: 'shaped' as const, field, value, keep: keep && field % 4 === 0 })),
  },
);

let signupCounter = 0;
/** A valid body for the route (the fuzz then breaks one field of it). */
function validBody(route: string, ctx: Context): Record<string, unknown> {
  switch (route) {
    case 'POST /auth/signup':
      return {
        username: `fz${Date.now().toString(36)}${(signupCounter += 1)}`,
        password: 'fuzz password 1',
        email: `fz${signupCounter}@example.com`,
        displayName: 'Fuzz',
      };
    case 'POST /auth/login':
      return { username: ctx.user.username, password: ctx.user.password };
    case 'PATCH /users/me':
      return { displayName: 'Fuzzed name', email: `me${(signupCounter += 1)}@example.com` };
    case 'POST /users/me/password':
      return { currentPassword: 'not the password', newPassword: 'new fuzz password' };
    case 'DELETE /users/me':
      return { password: 'not the password' };
    case 'PATCH /users/:id':
      return { roles: ['user'], disabled: false };
    case 'POST /auth/mfa/totp':
      return { password: ctx.user.password };
    case 'POST /auth/mfa/totp/confirm':
    case 'POST /auth/mfa/recovery-codes':
      return { code: '123456' };
    case 'POST /auth/login/mfa':
      return { mfaToken: 'A'.repeat(43), code: '123456' };
    case 'DELETE /auth/mfa':
      return { password: 'not the password', code: 'ABCDE-FGH12' };
    case 'PATCH /resources/:id':
      return { title: 'renamed', body: 'new body', visibility: 'private' };
    case 'POST /tenants':
      return { name: 'Fuzz tenant', slug: `fz-t-${Date.now().toString(36)}-${(signupCounter += 1)}` };
    case 'PATCH /tenants/:id':
      return { name: 'Renamed fuzz tenant' };
    case 'DELETE /tenants/:id':
      return { confirm: ctx.tenant.slug };
    case 'POST /tenants/:id/members':
      return { username: ctx.tenant.member.username, roles: ['member'] };
    case 'PATCH /tenants/:id/members/:userId':
      return { roles: ['admin', FUZZ_ROLE] };
    case 'POST /tenants/:id/invitations':
      return { email: `fz-invite-${(signupCounter += 1)}@example.com`, roles: ['member'] };
    case 'POST /tenants/invitations/accept':
      return { token: 'A'.repeat(43) };
    case 'PUT /tenants/:id/roles/:name':
      return { permissions: ['members:read', 'resources:read'] };
    case 'POST /auth/tenant':
      return { tenantId: ctx.tenant.id };
    default:
      return { title: 'fuzz resource', body: 'body', visibility: 'public' };
  }
}

type AuthSpec =
  | { kind: 'none' }
  | { kind: 'valid' }
  | { kind: 'admin' }
  /** The batch user's token with the tenant selected (`tid`), or the member's, or the client's. */
  | { kind: 'tid' }
  | { kind: 'member' }
  | { kind: 'client' }
  /** A token signed with the real key whose `tid` / `tenant_roles` are hostile. */
  | { kind: 'forged'; i: number }
  | { kind: 'attack'; i: number }
  | { kind: 'raw'; value: string };
const authSpec: fc.Arbitrary<AuthSpec> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 5, arbitrary: fc.constant({ kind: 'valid' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'admin' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'tid' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'member' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'client' as const }) },
  { weight: 1, arbitrary: fc.nat().map((i) => ({ kind: 'forged' as const, i })) },
  { weight: 3, arbitrary: fc.nat().map((i) => ({ kind: 'attack' as const, i })) },
  {
    weight: 2,
    arbitrary: fc
      .oneof(
        printable,
        printable.map((s) => `Bearer ${s}`),
        fc.constantFrom(
          'Bearer',
          'Bearer ',
          'bearer x.y.z',
          'Basic YWRtaW46YWRtaW4=',
          'Bearer a.b',
          'Bearer ..',
          `Bearer ${'A'.repeat(9000)}`,
          'Bearer e30.e30.',
          'Digest x',
        ),
      )
      .map((value) => ({ kind: 'raw' as const, value })),
  },
);
const cookieSpec = fc.oneof(
  { weight: 5, arbitrary: fc.constant<string | undefined>(undefined) },
  { weight: 2, arbitrary: fc.constant<string | undefined>('VALID') },
  { weight: 3, arbitrary: printable.map((s) => `refresh_token=${s}`) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'refresh_token=',
      'refresh_token=%E0%A4%A',
      'refresh_token="unterminated',
      'refresh_token=a; refresh_token=b',
      'refresh_token=j:{"a":1}',
      '=; ; ;=',
      `refresh_token=${'A'.repeat(43)}`,
      `refresh_token=${'x'.repeat(6000)}`,
      '__proto__=1; constructor=2',
    ),
  },
);
const contentType = fc.oneof(
  { weight: 24, arbitrary: fc.constant<string | undefined>('application/json') },
  { weight: 3, arbitrary: fc.constant<string | undefined>(undefined) },
  {
    weight: 4,
    arbitrary: fc.constantFrom<string | undefined>(
      'application/json; charset=utf-8',
      'application/json; charset=latin1',
      'application/json; charset=utf-16',
      'application/vnd.api+json',
      'text/plain',
      'text/html',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=----x',
      'application/xml',
      '*/*',
      'application/json, text/plain',
      '',
    ),
  },
  { weight: 1, arbitrary: printable.map((s): string | undefined => s) },
);
const pathParam = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('RESOURCE', 'SESSION', 'USER', 'ADMIN') },
  { weight: 2, arbitrary: fc.uuid() },
  { weight: 3, arbitrary: anyString.map((s) => pct(s.slice(0, 3000))) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '%',
      '%zz',
      '%E0%A4%A',
      '%00',
      '..%2f..',
      '%2e%2e',
      '.',
      '..',
      '~',
      'null',
      'undefined',
      '0',
      '-1',
      '9'.repeat(400),
    ),
  },
);
/** The `:id` of a /tenants/:id route: mostly the batch's tenant, or another's, or anything. */
const tenantParam = fc.oneof(
  { weight: 6, arbitrary: fc.constant('TENANT') },
  { weight: 2, arbitrary: fc.constantFrom('OTHER_TENANT', 'TENANT_UPPER') },
  { weight: 3, arbitrary: pathParam },
);
/** The second path parameter (member, invitation or role): real ones, built-in roles, or anything. */
const subParam = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('MEMBER', 'USER', 'ADMIN', 'INVITATION', 'ROLE') },
  { weight: 2, arbitrary: fc.constantFrom('owner', 'admin', 'member', 'Fuzz_Role', 'ab', 'a'.repeat(33)) },
  { weight: 3, arbitrary: pathParam },
);
/**
 * The longest X-Tenant-Id the fuzz sends (after the ids are put in): with the longest
 * Authorization and Cookie values it stays under Node's 16 KiB header limit, beyond which
 * Node answers 431 and resets the connection before Gatehouse sees the request. The probes
 * send a longer one alone.
 */
const TENANT_HEADER_MAX = 1_000;
/**
 * The X-Tenant-Id header: the batch's tenant, another's, a random UUID, repeated header lines
 * (an array), huge values, printable junk, near-UUIDs. TENANT / OTHER_TENANT / TENANT_UPPER
 * inside a value are replaced by the ids. Header values stay printable (Node refuses to send
 * control characters).
 */
const tenantHeader = fc.option(
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom<string | string[]>('TENANT', 'OTHER_TENANT', 'TENANT_UPPER') },
    { weight: 2, arbitrary: fc.uuid().map((u): string | string[] => u) },
    {
      weight: 2,
      arbitrary: fc.constantFrom<string | string[]>(
        ['TENANT', 'OTHER_TENANT'],
        ['TENANT', 'TENANT'],
        ['OTHER_TENANT', 'TENANT'],
        ['TENANT', ''],
      ),
    },
    { weight: 2, arbitrary: printable.map((s): string | string[] => s) },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 37, max: TENANT_HEADER_MAX })
        .chain((n) =>
          fc.constantFrom('a', '0', 'TENANT,').map((c): string | string[] => c.repeat(Math.ceil(n / c.length))),
        ),
    },
    {
      weight: 2,
      arbitrary: fc.constantFrom<string | string[]>(
        '',
        ' ',
        'null',
        'undefined',
        '[]',
        '{TENANT}',
        ' TENANT ',
        'TENANT,TENANT',
        'TENANT, OTHER_TENANT',
        'TENANTx',
        'urn:uuid:TENANT',
        '00000000-0000-0000-0000-000000000000',
        'ffffffff-ffff-ffff-ffff-ffffffffffff',
        'g0000000-0000-0000-0000-000000000000',
        '%00',
        '__proto__',
        "' OR 1=1 --",
      ),
    },
  ),
  { nil: undefined, freq: 2 },
);
const query = fc.array(
  fc.tuple(
    fc.oneof(
      fc.constantFrom(
        'limit',
        'cursor',
        'scope',
        'limit[]',
        'limit[a]',
        '__proto__',
        'constructor[prototype]',
        'scope[]',
        'all',
        'all[]',
      ),
      fc.string({ maxLength: 10 }),
    ),
    fc.oneof(
      fc.constantFrom(
        '0',
        '1',
        '100',
        '101',
        '-5',
        '1.5',
        '1e3',
        'all',
        'ALL',
        'memberships',
        'true',
        'false',
        'NaN',
        '',
        'eyJ4IjoxfQ',
        'W10',
        'WyIyMDIwIiwiYSJd',
      ),
      anyString.map((s) => s.slice(0, 500)),
    ),
  ),
  { maxLength: 4 },
);
const requestSpec = fc.record({
  route: fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom(...ROUTES) },
    {
      weight: 1,
      arbitrary: fc.tuple(
        fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'),
        fc.constantFrom(
          '/',
          '/auth',
          '/users/me/x',
          '/resources/a/b',
          '/.well-known/',
          '/docs',
          '/%2e%2e/etc',
          '/users/me/password/extra',
          '/tenants/invitations',
          '/tenants/invitations/accept/x',
          '/auth/tenant/x',
        ),
      ),
    },
  ),
  param: pathParam,
  tenant: tenantParam,
  sub: subParam,
  tenantHeader,
  query,
  body: bodySpec,
  contentType,
  auth: authSpec,
  cookie: cookieSpec,
  origin: fc.option(fc.oneof(fc.constantFrom(ALLOWED_ORIGIN, 'null', 'http://evil.test', 'file://'), printable), {
    nil: undefined,
    freq: 3,
  }),
  forwardedFor: fc.option(fc.oneof(fc.ipV4(), fc.ipV6(), printable), { nil: undefined, freq: 4 }),
  requestId: fc.option(printable, { nil: undefined, freq: 4 }),
  encoding: fc.option(fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x-bogus'), { nil: undefined, freq: 12 }),
});
type RequestSpec = typeof requestSpec extends fc.Arbitrary<infer T> ? T : never;

function materialize(
  spec: RequestSpec,
  ctx: Context,
): { method: string; path: string; headers: Record<string, string | string[]>; payload?: string } {
  const [method, template] = spec.route;
  const ids = new Map<string, string>([
    ['RESOURCE', ctx.resourceId],
    ['SESSION', ctx.sessionId],
    ['USER', ctx.user.id],
    ['ADMIN', ctx.admin.id],
    ['TENANT', ctx.tenant.id],
    ['OTHER_TENANT', ctx.tenant.otherId],
    ['TENANT_UPPER', ctx.tenant.id.toUpperCase()],
    ['MEMBER', ctx.tenant.member.id],
    ['INVITATION', ctx.tenant.invitationId],
    ['ROLE', FUZZ_ROLE],
  ]);
  // A Map, not an object: a fuzzed 'constructor' or 'hasOwnProperty' must stay a plain string.
  const named = (value: string): string => ids.get(value) ?? value;
  let path = template.startsWith('/tenants/:id')
    ? template.replace(':id', named(spec.tenant))
    : template.replace(':id', named(spec.param));
  path = path.replace(/:userId|:invitationId|:name/, named(spec.sub));
  if (spec.query.length > 0) path += `?${spec.query.map(([k, v]) => `${pct(k)}=${pct(v)}`).join('&')}`;
  const headers: Record<string, string | string[]> = {};
  if (spec.tenantHeader !== undefined) {
    const withIds = (v: string) =>
      v.replace(/OTHER_TENANT|TENANT_UPPER|TENANT/g, (m) => named(m)).slice(0, TENANT_HEADER_MAX);
    headers['x-tenant-id'] = Array.isArray(spec.tenantHeader)
      ? spec.tenantHeader.map(withIds)
      : withIds(spec.tenantHeader);
  }
  if (spec.auth.kind === 'valid') headers.authorization = `Bearer ${ctx.user.access}`;
  if (spec.auth.kind === 'admin') headers.authorization = `Bearer ${ctx.admin.access}`;
  if (spec.auth.kind === 'tid') headers.authorization = `Bearer ${ctx.tenant.tidAccess}`;
  if (spec.auth.kind === 'member') headers.authorization = `Bearer ${ctx.tenant.member.access}`;
  if (spec.auth.kind === 'client') headers.authorization = `Bearer ${ctx.client.access}`;
  if (spec.auth.kind === 'forged') headers.authorization = `Bearer ${ctx.forged[spec.auth.i % ctx.forged.length]}`;
  if (spec.auth.kind === 'attack') headers.authorization = `Bearer ${ctx.attacks[spec.auth.i % ctx.attacks.length]}`;
  if (spec.auth.kind === 'raw') headers.authorization = spec.auth.value;
  if (spec.cookie !== undefined)
    headers.cookie = spec.cookie === 'VALID' ? `refresh_token=${ctx.user.refresh}` : spec.cookie;
  if (spec.origin !== undefined) headers.origin = spec.origin;
  if (spec.forwardedFor !== undefined) headers['x-forwarded-for'] = spec.forwardedFor;
  if (spec.requestId !== undefined) headers['x-request-id'] = spec.requestId;
  if (spec.encoding !== undefined) headers['content-encoding'] = spec.encoding;
  let payload: string | undefined;
  const b = spec.body;
  if (b.kind === 'json') payload = JSON.stringify(b.value);
  if (b.kind === 'raw') payload = b.text;
  if (b.kind === 'shaped') {
    const body = validBody(`${method} ${template}`, ctx);
    const keys = Object.keys(body);
    if (!b.keep)
      body[keys[b.field % keys.length]!] =
        b.value === '$TENANT' ? ctx.tenant.id : b.value === '$OTHER_TENANT' ? ctx.tenant.otherId : b.value;
    payload = JSON.stringify(body);
  }
  if (b.kind === 'deep') payload = '['.repeat(b.depth) + ']'.repeat(b.depth);
  let formType = false;
  if (b.kind === 'form') {
    const placeholders = new Map([
      ['$CLIENT_ID', ctx.client.clientId],
      ['$SECRET', ctx.client.secret],
      ['$USER_TOKEN', ctx.user.access],
      ['$CLIENT_TOKEN', ctx.client.access],
    ]);
    const value = (v: string) => placeholders.get(v) ?? v;
    const enc = (v: string) => (b.encoded ? pct(v) : v);
    payload = b.fields.map(([k, v]) => `${enc(k)}=${enc(value(v))}`).join('&');
    formType = b.typed;
    const basicOf = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
    if (b.basic === 'valid') headers.authorization = basicOf(ctx.client.clientId, ctx.client.secret);
    if (b.basic === 'wrong') headers.authorization = basicOf(ctx.client.clientId, 'not-the-secret');
    if (b.basic === 'unencoded') headers.authorization = basicOf('c_%zz+:', '%:+ é');
  }
  if (b.kind === 'fields') {
    payload = JSON.stringify(b.fields);
    // JSON.stringify drops a "__proto__" own key set by assignment; splice it in as text.
    if (b.poison)
      payload = payload.replace(
        /^\{/,
        `{"${b.poison}":{"roles":["admin"],"isAdmin":true}${payload === '{}' ? '' : ','}`,
      );
  }
  if (payload !== undefined && spec.contentType !== undefined) headers['content-type'] = spec.contentType;
  if (formType) headers['content-type'] = 'application/x-www-form-urlencoded';
  return { method, path, headers, payload };
}

/** Token attacks against this deployment's key and a real session (all must get 401). */
function tokenAttacks(ctx: { user: Account }): string[] {
  const real = ctx.user.access;
  const [h, p] = real.split('.');
  const header = JSON.parse(Buffer.from(h!, 'base64url').toString()) as Record<string, unknown>;
  const payload = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
  const key = createPrivateKey(secrets.JWT_KEYS);
  const now = Math.floor(Date.now() / 1000);
  const stranger = es256KeyPair();
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const sig = real.split('.')[2]!;
  return [
    `${unsignedJwt({ ...header, alg: 'none' }, payload)}.`,
    `${unsignedJwt({ alg: 'none', typ: 'at+jwt' }, { ...payload, roles: ['user', 'admin'] })}.`,
    signHs256({ ...header, alg: 'HS256' }, payload, secrets.publicPem),
    signHs256({ ...header, alg: 'HS256' }, payload, Buffer.from(secrets.publicPem.replace(/\n$/, ''))),
    `${b64(header)}.${b64({ ...payload, roles: ['user', 'admin'] })}.${sig}`,
    `${b64(header)}.${b64({ ...payload, sub: randomUUID() })}.${sig}`,
    `${b64(header)}.${b64({ ...payload, exp: now + 86_400 * 365 })}.${sig}`,
    `${h}.${p}.${sig.slice(0, -2)}AA`,
    `${h}.${p}`,
    `${h}.${p}.${sig}.extra`,
    signEs256({ ...header }, { ...payload, iat: now - 7200, exp: now - 3600 }, key),
    signEs256({ ...header, kid: 'not-a-key' }, payload, key),
    signEs256({ ...header }, payload, stranger.privateKey),
    signEs256({ ...header }, { ...payload, iss: 'someone-else' }, key),
    signEs256({ ...header }, { ...payload, aud: 'someone-else' }, key),
    signEs256({ ...header, typ: 'JWT' }, payload, key),
    signEs256({ ...header }, (({ exp: _exp, ...rest }) => rest)(payload), key),
    signEs256({ ...header }, { ...payload, roles: ['superuser'] }, key),
    signEs256({ ...header, alg: 'RS256' }, payload, key),
    `${b64({ ...header, kid: '../../../../dev/null' })}.${p}.${sig}`,
    `${b64({ ...header, jku: 'http://127.0.0.1:1/jwks', x5u: 'http://127.0.0.1:1/x' })}.${p}.${sig}`,
    `${b64('not an object')}.${p}.${sig}`,
    `${Buffer.from('{"alg":"ES256",').toString('base64url')}.${p}.${sig}`,
  ];
}

/**
 * Tokens signed with this deployment's key (so they verify) whose tenant claims are hostile:
 * another's tenant, not a UUID, not a string, with made-up `tenant_roles`. Gatehouse must
 * look the membership up and never trust these claims: 404, 400 or the personal context.
 */
function forgedTenantTokens(user: Account, tenant: { id: string; otherId: string }): string[] {
  const [h, p] = user.access.split('.');
  const header = JSON.parse(Buffer.from(h!, 'base64url').toString()) as Record<string, unknown>;
  const payload = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
  const key = createPrivateKey(secrets.JWT_KEYS);
  return [
    { tid: tenant.otherId },
    { tid: tenant.otherId, tenant_roles: ['owner'] },
    { tid: tenant.id.toUpperCase(), tenant_roles: ['owner', 'admin'] },
    { tid: 'not-a-uuid' },
    { tid: 12345 },
    { tid: [tenant.id] },
    { tid: { id: tenant.id } },
    { tid: null },
    { tid: '' },
    { tid: 'x'.repeat(3000) },
    { tid: randomUUID(), tenant_roles: 'owner' },
  ].map((claims) => signEs256({ ...header }, { ...payload, ...claims, jti: randomUUID() }, key));
}

/** Creates a tenant as `owner` (201); its id and slug. */
async function createFuzzTenant(owner: Account, label: string): Promise<{ id: string; slug: string }> {
  const slug = `fz-${label}-${randomUUID().slice(0, 8)}`;
  const res = await call(app.url, 'POST', '/tenants', {
    headers: { ...bearer(owner.access), ...CLEAN_IP },
    json: { name: `Fuzz ${label}`, slug },
  });
  if (res.status !== 201) throw new Error(`create tenant failed: ${res.status ?? res.error} ${res.text}`);
  return { id: (res.json as { id: string }).id, slug };
}

/** The batch user's tenant with a member, a custom role, a pending invitation, and a stranger's tenant. */
async function newFuzzTenant(user: Account): Promise<FuzzTenant> {
  const own = await createFuzzTenant(user, 'own');
  const stranger = await signupAccount(app.url, 'fzs', undefined, CLEAN_IP);
  const other = await createFuzzTenant(stranger, 'other');
  const member = await signupAccount(app.url, 'fzm', undefined, CLEAN_IP);
  const owner = { ...bearer(user.access), ...CLEAN_IP };
  const steps = [
    await call(app.url, 'POST', `/tenants/${own.id}/members`, {
      headers: owner,
      json: { username: member.username, roles: ['member'] },
    }),
    await call(app.url, 'PUT', `/tenants/${own.id}/roles/${FUZZ_ROLE}`, {
      headers: owner,
      json: { permissions: ['members:read', 'resources:read'] },
    }),
  ];
  const invited = await call(app.url, 'POST', `/tenants/${own.id}/invitations`, {
    headers: owner,
    json: { email: `${user.username}.invitee@example.com`, roles: [FUZZ_ROLE] },
  });
  const selected = await call(app.url, 'POST', '/auth/tenant', { headers: owner, json: { tenantId: own.id } });
  for (const [what, o, status] of [
    ['add member', steps[0]!, 201],
    ['define role', steps[1]!, 200],
    ['invite', invited, 201],
    ['select tenant', selected, 200],
  ] as const) {
    if (o.status !== status) throw new Error(`${what} failed: ${o.status ?? o.error} ${o.text}`);
  }
  return {
    ...own,
    otherId: other.id,
    stranger,
    member,
    invitationId: (invited.json as { id: string }).id,
    tidAccess: (selected.json as { accessToken: string }).accessToken,
  };
}

async function newContext(admin: Account): Promise<Context> {
  const user = await signupAccount(app.url, 'fz', undefined, CLEAN_IP);
  const resourceId = await createResource(app.url, user, 'fuzz target');
  const sessions = await call(app.url, 'GET', '/auth/sessions', { headers: bearer(user.access) });
  const sessionId = (sessions.json as Array<{ id: string }>)[0]!.id;
  const tenant = await newFuzzTenant(user);
  return {
    user,
    admin,
    resourceId,
    sessionId,
    attacks: tokenAttacks({ user }),
    client: await newClient(),
    tenant,
    forged: forgedTenantTokens(user, { id: tenant.id, otherId: tenant.otherId }),
  };
}

/** The fuzz's machine client (created once, by a fresh admin session: the fuzz may end the others). */
let fuzzClient: { clientId: string; secret: string } | undefined;

/** The machine client with every scope but the admin ones, and a new token of it (from the token endpoint). */
async function newClient(): Promise<FuzzClient> {
  if (!fuzzClient) {
    const admin = await loginAccount(app.url, ADMIN.username, ADMIN.password, undefined, CLEAN_IP);
    const created = await call(app.url, 'POST', '/oauth/clients', {
      headers: { ...bearer(admin.access), ...CLEAN_IP },
      json: { name: 'fuzz client', allowedScopes: ['introspection', 'profile', 'resources:read', 'resources:write'] },
    });
    expect(created.status).toBe(201);
    const { client, secret } = created.json as { client: { clientId: string }; secret: { value: string } };
    fuzzClient = { clientId: client.clientId, secret: secret.value };
  }
  const { clientId, secret } = fuzzClient;
  const token = await call(app.url, 'POST', '/oauth/token', {
    headers: {
      ...CLEAN_IP,
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`,
    },
    raw: 'grant_type=client_credentials',
  });
  expect(token.status).toBe(200);
  return { clientId, secret, access: (token.json as { access_token: string }).access_token };
}

interface Probe {
  what: string;
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  json?: unknown;
  status: number;
  code?: string;
  /** The exact body, when it must not differ (404 for a tenant one is not in). */
  bytes?: string;
  after?: (o: Outcome, failures: string[]) => void;
}

/** The one 404 body of a tenant the caller is not in, does not exist, or whose id is not a UUID. */
const TENANT_404 = '{"statusCode":404,"error":"Not Found","message":"No such tenant","code":"TENANT_NOT_FOUND"}';

/**
 * Requests with hostile tenant contexts and tenant ids, and what each must answer: a malformed
 * or repeated X-Tenant-Id is 400 TENANT_HEADER_INVALID, one that differs from the token's tid
 * 400 TENANT_MISMATCH, a tenant the caller is not in 404 TENANT_NOT_FOUND (the same bytes as
 * one that does not exist), whatever a token's claims say.
 */
function tenantProbes(ctx: Context): Probe[] {
  const t = ctx.tenant;
  const user = bearer(ctx.user.access);
  const tid = bearer(t.tidAccess);
  const header = (value: string | string[]) => ({ ...user, 'x-tenant-id': value });
  const probes: Probe[] = [];
  const add = (p: Probe) => probes.push(p);
  const listIn = (what: string, h: Record<string, string | string[]>, status: number, code?: string) =>
    add({ what: `GET /resources ${what}`, method: 'GET', path: '/resources', headers: h, status, code });

  listIn('in own tenant', header(t.id), 200);
  listIn('in own tenant, upper-case id', header(t.id.toUpperCase()), 200);
  listIn("in another's tenant", header(t.otherId), 404, 'TENANT_NOT_FOUND');
  listIn('in an unknown tenant', header(randomUUID()), 404, 'TENANT_NOT_FOUND');
  listIn('with a nil UUID', header('00000000-0000-0000-0000-000000000000'), 404, 'TENANT_NOT_FOUND');
  listIn('with a non-UUID', header('not-a-uuid'), 400, 'TENANT_HEADER_INVALID');
  listIn('with an empty header', header(''), 400, 'TENANT_HEADER_INVALID');
  listIn('with a braced UUID', header(`{${t.id}}`), 400, 'TENANT_HEADER_INVALID');
  listIn('with a urn:uuid', header(`urn:uuid:${t.id}`), 400, 'TENANT_HEADER_INVALID');
  listIn('with a 12,000-character header', header('a'.repeat(12_000)), 400, 'TENANT_HEADER_INVALID');
  listIn('with the header twice (own, other)', header([t.id, t.otherId]), 400, 'TENANT_HEADER_INVALID');
  listIn('with the header twice (own, own)', header([t.id, t.id]), 400, 'TENANT_HEADER_INVALID');
  listIn('with two ids in one header', header(`${t.id},${t.otherId}`), 400, 'TENANT_HEADER_INVALID');
  listIn('with tid, no header', tid, 200);
  listIn('with tid and the same header', { ...tid, 'x-tenant-id': t.id }, 200);
  listIn('with tid and another header', { ...tid, 'x-tenant-id': t.otherId }, 400, 'TENANT_MISMATCH');
  listIn('with tid and a junk header', { ...tid, 'x-tenant-id': 'junk' }, 400, 'TENANT_HEADER_INVALID');
  listIn(
    "as a member, in another's tenant",
    { ...bearer(t.member.access), 'x-tenant-id': t.otherId },
    404,
    'TENANT_NOT_FOUND',
  );
  listIn(
    'as a stranger, forging the tenant',
    { ...bearer(t.stranger.access), 'x-tenant-id': t.id },
    404,
    'TENANT_NOT_FOUND',
  );
  // Signed tokens whose tid names a tenant the caller is not in: the membership is looked up.
  listIn('with a forged tid of another tenant', bearer(ctx.forged[0]!), 404, 'TENANT_NOT_FOUND');
  listIn('with a forged tid and tenant_roles owner', bearer(ctx.forged[1]!), 404, 'TENANT_NOT_FOUND');
  listIn(
    'with a forged tid and the own header',
    { ...bearer(ctx.forged[0]!), 'x-tenant-id': t.id },
    400,
    'TENANT_MISMATCH',
  );

  add({
    what: "POST /resources in another's tenant",
    method: 'POST',
    path: '/resources',
    headers: header(t.otherId),
    json: { title: 'x' },
    status: 404,
    code: 'TENANT_NOT_FOUND',
  });
  add({
    what: 'POST /resources with a junk header',
    method: 'POST',
    path: '/resources',
    headers: header('x'),
    json: { title: 'x' },
    status: 400,
    code: 'TENANT_HEADER_INVALID',
  });
  add({
    what: 'POST /resources with tenantId in the body',
    method: 'POST',
    path: '/resources',
    headers: user,
    json: { title: 'x', tenantId: t.id },
    status: 400,
    code: 'VALIDATION_FAILED',
  });
  add({
    what: 'POST /resources in own tenant',
    method: 'POST',
    path: '/resources',
    headers: header(t.id),
    json: { title: 'in the tenant' },
    status: 201,
    after: (o, failures) => {
      const r = o.json as { tenantId?: string; ownerId?: string };
      if (r.tenantId !== t.id || r.ownerId !== ctx.user.id)
        failures.push(`probe POST /resources in own tenant: tenantId/ownerId ${r.tenantId}/${r.ownerId}`);
    },
  });
  const resource = `/resources/${ctx.resourceId}`;
  add({
    what: "GET a personal resource in another's tenant",
    method: 'GET',
    path: resource,
    headers: header(t.otherId),
    status: 404,
    code: 'TENANT_NOT_FOUND',
  });
  add({
    what: 'GET a personal resource with a junk header',
    method: 'GET',
    path: resource,
    headers: header('junk'),
    status: 400,
    code: 'TENANT_HEADER_INVALID',
  });
  add({
    what: "PATCH a personal resource in another's tenant",
    method: 'PATCH',
    path: resource,
    headers: header(t.otherId),
    json: { title: 'y' },
    status: 404,
    code: 'TENANT_NOT_FOUND',
  });
  add({
    what: 'DELETE a personal resource with the header twice',
    method: 'DELETE',
    path: resource,
    headers: header([t.id, t.id]),
    status: 400,
    code: 'TENANT_HEADER_INVALID',
  });

  // A tenant one is not in: the same bytes as one that does not exist, or an id that is not a UUID.
  for (const id of [t.otherId, randomUUID(), 'not-a-uuid', t.otherId.toUpperCase(), '%20']) {
    for (const [method, path, json] of [
      ['GET', `/tenants/${id}`],
      ['PATCH', `/tenants/${id}`, { name: 'taken over' }],
      ['DELETE', `/tenants/${id}`, { confirm: 'whatever' }],
      ['GET', `/tenants/${id}/members`],
      ['POST', `/tenants/${id}/members`, { username: ctx.user.username, roles: ['owner'] }],
      ['PATCH', `/tenants/${id}/members/${ctx.user.id}`, { roles: ['owner'] }],
      ['DELETE', `/tenants/${id}/members/${ctx.user.id}`],
      ['POST', `/tenants/${id}/invitations`, { email: 'x@example.com', roles: ['owner'] }],
      ['GET', `/tenants/${id}/invitations`],
      ['DELETE', `/tenants/${id}/invitations/${randomUUID()}`],
      ['GET', `/tenants/${id}/roles`],
      ['PUT', `/tenants/${id}/roles/${FUZZ_ROLE}`, { permissions: ['resources:read'] }],
      ['DELETE', `/tenants/${id}/roles/${FUZZ_ROLE}`],
    ] as Array<[string, string, unknown?]>) {
      add({
        what: `${method} ${path.replace(id, '<not mine>')} (${id.slice(0, 12)})`,
        method,
        path,
        headers: user,
        json,
        status: 404,
        bytes: TENANT_404,
      });
    }
  }
  add({
    what: "POST /auth/tenant with another's tenant",
    method: 'POST',
    path: '/auth/tenant',
    headers: user,
    json: { tenantId: t.otherId },
    status: 404,
    bytes: TENANT_404,
  });
  add({
    what: 'POST /auth/tenant with a non-UUID',
    method: 'POST',
    path: '/auth/tenant',
    headers: user,
    json: { tenantId: 'not-a-uuid' },
    status: 400,
    code: 'VALIDATION_FAILED',
  });
  add({
    what: 'POST /auth/tenant with an array',
    method: 'POST',
    path: '/auth/tenant',
    headers: user,
    json: { tenantId: [t.id] },
    status: 400,
    code: 'VALIDATION_FAILED',
  });
  add({
    what: 'POST /auth/tenant without tenantId',
    method: 'POST',
    path: '/auth/tenant',
    headers: user,
    json: {},
    status: 400,
    code: 'VALIDATION_FAILED',
  });
  add({
    what: "POST /auth/tenant with a client's token",
    method: 'POST',
    path: '/auth/tenant',
    headers: bearer(ctx.client.access),
    json: { tenantId: t.id },
    status: 403,
    code: 'USER_SESSION_REQUIRED',
  });
  add({
    what: 'GET /tenants?all=true by a non-admin',
    method: 'GET',
    path: '/tenants?all=true',
    headers: user,
    status: 403,
    code: 'INSUFFICIENT_ROLE',
  });
  add({
    what: 'a member reads the invitations',
    method: 'GET',
    path: `/tenants/${t.id}/invitations`,
    headers: bearer(t.member.access),
    status: 403,
    code: 'INSUFFICIENT_TENANT_PERMISSION',
  });
  add({
    what: 'a member adds a member',
    method: 'POST',
    path: `/tenants/${t.id}/members`,
    headers: bearer(t.member.access),
    json: { username: t.stranger.username, roles: [] },
    status: 403,
    code: 'INSUFFICIENT_TENANT_PERMISSION',
  });
  add({
    what: 'a member makes themselves owner',
    method: 'PATCH',
    path: `/tenants/${t.id}/members/${t.member.id}`,
    headers: bearer(t.member.access),
    json: { roles: ['owner'] },
    status: 403,
    code: 'INSUFFICIENT_TENANT_PERMISSION',
  });
  add({
    what: 'the last owner leaves',
    method: 'DELETE',
    path: `/tenants/${t.id}/members/${ctx.user.id}`,
    headers: user,
    status: 409,
    code: 'LAST_OWNER',
  });
  add({
    what: 'a slug in a rename',
    method: 'PATCH',
    path: `/tenants/${t.id}`,
    headers: user,
    json: { slug: 'new-slug' },
    status: 400,
    code: 'VALIDATION_FAILED',
  });
  add({
    what: 'delete with the wrong confirmation',
    method: 'DELETE',
    path: `/tenants/${t.id}`,
    headers: user,
    json: { confirm: `${t.slug}x` },
    status: 400,
    code: 'CONFIRMATION_MISMATCH',
  });
  add({
    what: 'a custom role named owner',
    method: 'PUT',
    path: `/tenants/${t.id}/roles/owner`,
    headers: user,
    json: { permissions: [] },
    status: 400,
    code: 'VALIDATION_FAILED',
  });
  add({
    what: 'a custom role with tenant:delete',
    method: 'PUT',
    path: `/tenants/${t.id}/roles/${FUZZ_ROLE}`,
    headers: user,
    json: { permissions: ['tenant:delete'] },
    status: 400,
    code: 'VALIDATION_FAILED',
  });
  add({
    what: 'deleting a role a pending invitation holds',
    method: 'DELETE',
    path: `/tenants/${t.id}/roles/${FUZZ_ROLE}`,
    headers: user,
    status: 409,
    code: 'ROLE_IN_USE',
  });
  add({
    what: 'a malformed invitation token',
    method: 'POST',
    path: '/tenants/invitations/accept',
    headers: user,
    json: { token: 'A'.repeat(43) },
    status: 400,
    code: 'INVITATION_INVALID',
  });
  return probes;
}

/** Malformed HTTP on raw sockets: Node's parser must answer (400/413/431/...) or close, never crash. */
function malformedRequests(port: number): string[] {
  return [
    'GARBAGE\r\n\r\n',
    'GET / HTTP/9.9\r\n\r\n',
    'GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
    'POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n{}',
    'POST /auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n',
    'POST /auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n',
    `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    'GET /health HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n',
    'GET /health HTTP/1.1\r\nHost: x\r\nX-Nul: a\u0000b\r\n\r\n',
    'GET /health HTTP/1.1\r\nHost: x\r\n X-Folded: y\r\n\r\n',
    'GET /health HTTP/1.1\nHost: x\n\n',
    'GET /users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \u00ff\u00fe\r\n\r\n',
    'POST /resources HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\n\r\n{',
    `POST /auth/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${'4000\r\n' + 'a'.repeat(0x4000) + '\r\n'}${'4000\r\n' + 'a'.repeat(0x4000) + '\r\n'}0\r\n\r\n`,
    'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET http://evil.test/health HTTP/1.1\r\nHost: evil.test\r\n\r\n',
    'TRACE / HTTP/1.1\r\nHost: x\r\n\r\n',
    `GET /health HTTP/1.1\r\n${Array.from({ length: 3000 }, (_, i) => `X-H${i}: v`).join('\r\n')}\r\n\r\n`,
  ].map((r) => r.replace(/\bx\b(?=\r?\n)/, `127.0.0.1:${port}`));
}

describe('hostile input at volume', () => {
  it(
    `survives ${TOTAL}+ fuzzed and malicious requests: no 5xx, no crash, memory back near its level`,
    async () => {
      const t0 = performance.now();
      const agent = keepAliveAgent(CONCURRENCY);
      const adminFresh = async () => loginAccount(app.url, ADMIN.username, ADMIN.password, undefined, CLEAN_IP);
      let admin = await adminFresh();
      const statusCounts = new Map<string, number>();
      const failures: string[] = [];
      const durations: number[] = [];
      let sent = 0;
      let rssAfterWarmup = 0;
      const rssTrend: number[] = [];
      const rssStart = app.rssKiB()!;

      const check = (what: string, o: Outcome) => {
        sent += 1;
        durations.push(o.ms);
        const key = String(o.status ?? o.error);
        statusCounts.set(key, (statusCounts.get(key) ?? 0) + 1);
        if (o.error) return failures.push(`${what}: transport ${o.error}`);
        if (o.status! >= 500) return failures.push(`${what}: ${o.status} ${o.text.slice(0, 200)}`);
        if (/\n\s+at |node_modules|\/src\/|\/dist\//.test(o.text))
          return failures.push(`${what}: internals in body ${o.text.slice(0, 200)}`);
        if (o.status! >= 400 && o.headers['content-type']?.includes('json') && !what.startsWith('HEAD')) {
          const body = o.json as Record<string, unknown> | undefined;
          const shaped =
            body &&
            typeof body.code === 'string' &&
            body.statusCode === o.status &&
            typeof body.error === 'string' &&
            'message' in body;
          if (!shaped) failures.push(`${what}: error body not in the contract's shape: ${o.text.slice(0, 200)}`);
        }
        return undefined;
      };

      // 1. The token attacks, each on a protected route, with the control (the real token).
      const ctx0 = await newContext(admin);
      const control = await call(app.url, 'GET', '/users/me', { headers: bearer(ctx0.user.access), agent });
      expect(control.status).toBe(200);
      const attackStatuses: number[] = [];
      for (const token of ctx0.attacks) {
        for (const [method, path] of [
          ['GET', '/users/me'],
          ['GET', '/auth/sessions'],
          ['POST', '/resources'],
          ['GET', '/users'],
          ['POST', '/auth/logout-all'],
        ] as const) {
          const o = await call(app.url, method, path, {
            headers: bearer(token),
            agent,
            ...(method === 'POST' && path === '/resources' ? { json: { title: 'attack' } } : {}),
          });
          check(`attack ${method} ${path}`, o);
          attackStatuses.push(o.status ?? 0);
          if (o.status !== 401 || !(o.headers['www-authenticate'] ?? '').startsWith('Bearer')) {
            failures.push(
              `attack token accepted or mis-answered on ${method} ${path}: ${o.status} ${token.slice(0, 60)}…`,
            );
          }
        }
      }
      // The attacks did not hurt the real session.
      expect((await call(app.url, 'GET', '/users/me', { headers: bearer(ctx0.user.access), agent })).status).toBe(200);

      // 1b. Hostile tenant contexts, with the exact answer each must get (contract v2 §E).
      for (const p of tenantProbes(ctx0)) {
        const o = await call(app.url, p.method, p.path, {
          headers: { ...p.headers, ...CLEAN_IP },
          ...(p.json === undefined ? {} : { json: p.json }),
          agent,
        });
        check(`probe ${p.what}`, o);
        const code = (o.json as { code?: string } | undefined)?.code;
        if (o.status !== p.status || (p.code !== undefined && code !== p.code)) {
          failures.push(
            `probe ${p.what}: expected ${p.status} ${p.code ?? ''}, got ${o.status ?? o.error} ${o.text.slice(0, 200)}`,
          );
        } else if (p.bytes !== undefined && o.text !== p.bytes) {
          failures.push(`probe ${p.what}: expected the body ${p.bytes}, got ${o.text.slice(0, 200)}`);
        }
        p.after?.(o, failures);
      }

      // 2. Malformed HTTP on raw sockets.
      const rawResults: RawResult[] = [];
      for (let round_ = 0; round_ < 10; round_++) {
        for (const r of malformedRequests(app.port)) {
          const res = await rawRequest(app.port, r, 5_000);
          rawResults.push(res);
          sent += 1;
          if (res.end === 'timeout' && res.status === undefined)
            failures.push(`raw request hung: ${JSON.stringify(r.slice(0, 60))}`);
          if ((res.status ?? 0) >= 500)
            failures.push(`raw request got ${res.status}: ${JSON.stringify(r.slice(0, 60))}`);
        }
      }

      // 3. Fuzzed requests, in batches with a fresh user (fuzzed logouts and password changes
      //    may end a batch's session: that is fine, the next batch starts anew).
      let fuzzed = 0;
      let batch = 0;
      while (fuzzed < TOTAL) {
        batch += 1;
        if (batch % 5 === 0) admin = await adminFresh();
        const ctx = batch === 1 ? ctx0 : await newContext(admin);
        const specs = fc.sample(requestSpec, { numRuns: BATCH, seed: SEED + batch });
        let next = 0;
        const sender = async () => {
          while (next < specs.length) {
            const spec = specs[next++]!;
            const req = materialize(spec, ctx);
            const o = await call(app.url, req.method, req.path, {
              headers: req.headers,
              raw: req.payload,
              agent,
              timeoutMs: 15_000,
            });
            check(`${req.method} ${req.path.slice(0, 80)} [batch ${batch}]`, o);
            if ((o.status ?? 0) >= 500 || o.error)
              failures.push(
                `  request: ${JSON.stringify({ ...req, payload: req.payload?.slice(0, 300) }).slice(0, 600)}`,
              );
          }
        };
        await Promise.all(Array.from({ length: CONCURRENCY }, sender));
        fuzzed += specs.length;
        if (rssAfterWarmup === 0 && fuzzed >= WARMUP) {
          await sleep(1_000);
          rssAfterWarmup = app.rssKiB()!;
        }
        if (batch % 10 === 0) rssTrend.push(round((app.rssKiB() ?? 0) / 1024));
        if (app.dead) break;
        if (failures.length > 50) break;
      }
      agent.destroy();
      await sleep(3_000);
      const rssEnd = app.rssKiB();
      const health = await call(app.url, 'GET', '/health');

      const summary = {
        seed: SEED,
        requests: sent,
        fuzzed,
        token_attacks: attackStatuses.length,
        raw_malformed: rawResults.length,
        statuses: Object.fromEntries([...statusCounts].sort(([a], [b]) => a.localeCompare(b))),
        '5xx': [...statusCounts].filter(([k]) => Number(k) >= 500).reduce((s, [, n]) => s + n, 0),
        failures: failures.length,
        p99_ms: round(percentile(durations, 99)),
        longest_ms: round(Math.max(...durations)),
        rss_mib: {
          start: round(rssStart / 1024, 1),
          after_warmup: round(rssAfterWarmup / 1024, 1),
          end: rssEnd === undefined ? 'dead' : round(rssEnd / 1024, 1),
          every_4000_requests: rssTrend,
        },
        alive: !app.dead,
        total_s: round((performance.now() - t0) / 1000, 1),
      };
      console.log(`[hostile] ${JSON.stringify(summary)}`);

      expect(failures.slice(0, 20)).toEqual([]);
      expect(app.dead).toBe(false);
      expect(health.status).toBe(200);
      expect(sent).toBeGreaterThanOrEqual(20_000);
      expect(rssEnd).toBeDefined();
      expect(rssEnd!).toBeLessThan(rssAfterWarmup * 1.5);
    },
    60_000 + TOTAL * 6,
  );
});
