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
// Federation (contract v2 §D): the app trusts two providers served by this process (test/
// support/fake-idp.ts: a `jit` one, RS256, with a roleMap on realm_access.roles, and a
// `linked-only` one pinned to ES256), under FEDERATION_DEFAULT_ACCESS=tenants-only. The new
// routes (POST /auth/federated/session, /users/me/identities, the admin identity routes) and
// the token-exchange grant are fuzzed with valid, odd and hostile external tokens (alg none,
// HS256 keyed with the public key, jku/x5u/jwk headers aimed at a canary that must never be
// fetched, JSON bombs, wrong claim types, tampered and truncated tokens) and with random
// external-looking bearer tokens, many of them validly signed; probes check the exact answers.
// The audit trail and the admin user routes (issue 18): GET /audit-events gets fuzzed query
// strings of its own (ids of the batch's accounts and garbage, types with LIKE wildcards and
// regex syntax, lists up to 500 long, odd ISO instants: year 0, ±275760, Feb 30, leap
// seconds, +14:00 / -12:00 offsets, lower-case t and z, nine-digit fractions; real and forged
// cursors; every parameter repeated, which Express turns into an array), GET /users?q= its
// searches (unicode, NUL, backslash, `%`, `_`, 100 and 101 characters, repeated), GET/DELETE
// /users/:id/sessions[/:sessionId] the batch user's, another account's and garbage ids; half
// of these requests carry the admin's token, so that they reach the validators and the
// database. Probes check the exact answers, and that `%` and `_` match only themselves.
// RELIABILITY_SEED=<n> replays a run (the seed is printed).
import { KeyObject, createPrivateKey, generateKeyPairSync, randomUUID, sign as cryptoSign } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeIdp, startCanary } from '../support/fake-idp.js';
import { signEs256, signHs256, unsignedJwt, es256KeyPair } from '../support/jwt.js';
import { baseEnv, killAll, sharedSecrets, startApp, type AppProcess } from './support/app.js';
import { bearer, call, keepAliveAgent, refreshCookieOf, type Outcome } from './support/http.js';
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
/** The `jit` provider: RS256, roles at realm_access.roles, `fuzz-admin` → admin. */
let idp: FakeIdp;
/** The `linked-only` provider, pinned to ES256, keys at a configured jwksUri. */
let partnerIdp: FakeIdp;
/** Where hostile `jku` / `x5u` headers point: Gatehouse must never fetch it. */
let canary: Awaited<ReturnType<typeof startCanary>>;
/** An attacker's RSA key (tokens signed with it must never verify). */
const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
const attackerJwk = { ...attacker.publicKey.export({ format: 'jwk' }), kid: 'fz-attacker', alg: 'RS256' };
const PARTNER_AUDIENCE = 'partner-api';

beforeAll(async () => {
  const databaseUrl = await freshSharedDatabase('fuzz');
  secrets = sharedSecrets();
  idp = await FakeIdp.start({ path: '/realms/fuzz' });
  partnerIdp = await FakeIdp.start({ alg: 'ES256', path: '/partner' });
  canary = await startCanary();
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
      FEDERATION_ISSUERS: JSON.stringify([
        idp.entry({
          name: 'fuzz-idp',
          claims: { roles: 'realm_access.roles' },
          roleMap: { 'fuzz-admin': 'admin' },
        }),
        partnerIdp.entry({
          name: 'partner',
          jwksUri: partnerIdp.jwksUri,
          audience: ['gatehouse-api', PARTNER_AUDIENCE],
          algorithms: ['ES256'],
          provisioning: 'linked-only',
        }),
      ]),
      FEDERATION_DEFAULT_ACCESS: 'tenants-only',
      ...secrets,
    }),
  );
});

afterAll(async () => {
  killAll();
  app?.cleanup();
  await Promise.all([idp?.close(), partnerIdp?.close(), canary?.close()]);
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
  fed: FuzzFederation;
  /** What the audit trail and admin user routes (issue 18) may name. */
  audit: FuzzAudit;
}

/** Real cursors and ids for the audit trail and admin user routes. */
interface FuzzAudit {
  /** nextCursor of GET /audit-events?limit=1, GET /users?limit=1, GET /users/me/activity?limit=1 (the batch user). */
  eventsCursor: string;
  usersCursor: string;
  activityCursor: string;
  /** A live session of another account (the tenant member's). */
  otherSessionId: string;
}

/** What the federation routes and external bearer tokens of a batch may use (contract v2 §D). */
interface FuzzFederation {
  /**
   * Bearer tokens of the trusted providers: a first-seen identity (jit), the batch user's
   * linked identity, a roleMap admin, the partner identity an admin linked to the member, an
   * unlinked partner identity (403), a token too old to exchange, and odd but valid claims.
   */
  bearer: string[];
  /** Tokens that every check must refuse: 401 as a bearer token, FEDERATED_TOKEN_INVALID in a body. */
  hostile: string[];
  /** Fresh tokens of new identities: each opens one session or links once. */
  fresh: string[];
  /** The subject of the batch user's identity at the jit provider, and that identity's id. */
  linkedSub: string;
  identityId: string;
  /** A passwordless account signed in by an exchange: its session's access token and only identity. */
  session: { userId: string; username: string; access: string; identityId: string };
  /** A token-exchange token of the fuzz client acting for the batch user (RFC 8693). */
  exchanged: string;
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

/** The federation routes (contract v2 §D), and the fuzzed Authorization kinds that carry an external issuer's token. */
const FEDERATION_ROUTES = new Set([
  '/auth/federated/session',
  '/users/me/identities',
  '/users/me/identities/:identityId',
  '/users/:id/identities',
  '/users/:id/identities/:identityId',
]);
const EXTERNAL_AUTH = new Set<string>(['federated', 'fedHostile', 'external']);

/** The custom role every batch tenant defines. */
const FUZZ_ROLE = 'fuzz_role';

interface FuzzClient {
  clientId: string;
  secret: string;
  access: string;
  /** The client's service user (it may not have external identities). */
  serviceUserId: string;
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
  // federation (contract v2 §D)
  ['POST', '/auth/federated/session'],
  ['GET', '/users/me/identities'],
  ['POST', '/users/me/identities'],
  ['DELETE', '/users/me/identities/:identityId'],
  ['POST', '/users/:id/identities'],
  ['DELETE', '/users/:id/identities/:identityId'],
  // the audit trail and admin user routes (issue 18)
  ['GET', '/audit-events'],
  ['GET', '/users/me/activity'],
  ['GET', '/users/:id'],
  ['GET', '/users/:id/sessions'],
  ['DELETE', '/users/:id/sessions'],
  ['DELETE', '/users/:id/sessions/:sessionId'],
];
/** The admin routes of issue 18 (and GET /users): half of their fuzzed requests carry the admin's token. */
const ADMIN_READ_ROUTES = new Set([
  'GET /audit-events',
  'GET /users',
  'GET /users/:id',
  'GET /users/:id/sessions',
  'DELETE /users/:id/sessions',
  'DELETE /users/:id/sessions/:sessionId',
]);
/** Routes whose `:id` is an account: the batch user's, another's, or anything (userParam). */
const USER_ID_ROUTES = new Set([
  'GET /users/:id',
  'GET /users/:id/sessions',
  'DELETE /users/:id/sessions',
  'DELETE /users/:id/sessions/:sessionId',
]);
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
  'subjectToken',
  'issuer',
  'subject',
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
const FORM_FIELDS = [
  'grant_type',
  'scope',
  'client_id',
  'client_secret',
  'token',
  'token_type_hint',
  'subject_token',
  'subject_token_type',
  'requested_token_type',
  'actor_token',
];
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const SUBJECT_TYPES = [
  'urn:ietf:params:oauth:token-type:jwt',
  'urn:ietf:params:oauth:token-type:access_token',
  'urn:ietf:params:oauth:token-type:id_token',
];
const formValue = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom('$CLIENT_ID', '$SECRET', '$USER_TOKEN', '$CLIENT_TOKEN', '$FED_TOKEN', '$FED_HOSTILE'),
  },
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
      ...SUBJECT_TYPES,
      'urn:ietf:params:oauth:token-type:refresh_token',
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

/** A claim or header value of a random external token: small (the token must fit in a header). */
const claimValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 3, arbitrary: nasty },
  { weight: 2, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 1, arbitrary: fc.array(fc.string({ maxLength: 10 }), { maxLength: 5 }) },
);
/**
 * A random external-looking token: a header and claims (mostly plausible: a configured `iss`,
 * the expected `aud`, a near `exp`), optionally a JSON bomb, and a signature: mostly a real
 * one by a trusted provider's key (`$SIGN`, `$PARTNER_SIGN`), so that the claim checks and
 * the provisioning of odd claims are reached, or garbage. Placeholders are filled in by
 * `externalToken()`.
 */
const externalSpec = fc.record({
  header: fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record(
        {
          alg: fc.constantFrom('RS256', 'RS256', 'RS256', 'ES256', 'PS256', 'EdDSA', 'HS256', 'none', 'RS1', ''),
          kid: fc.oneof(fc.constant('$KID'), fc.constant('$KID'), fc.constant('$KID'), fc.uuid(), claimValue),
          typ: fc.constantFrom('JWT', 'at+jwt', 'JOSE', 'JWE'),
        },
        { requiredKeys: ['alg'] },
      ),
    },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom<unknown>(
        { alg: 'RS256', kid: '$KID', jku: '$CANARY' },
        { alg: 'RS256', kid: 'fz-attacker', x5u: '$CANARY' },
        { alg: 'RS256', kid: 'fz-attacker', jwk: '$ATTACKER_JWK' },
        { alg: 'RS256', kid: '$KID', crit: ['exp'] },
        { alg: 'RS256', kid: '$KID', b64: false, crit: ['b64'] },
        { alg: 'RS256', kid: '$KID', zip: 'DEF' },
        { alg: 'RS256', kid: '$KID', enc: 'A256GCM' },
      ),
    },
  ),
  claims: fc.record(
    {
      iss: fc.oneof(
        { weight: 8, arbitrary: fc.constant<unknown>('$ISS') },
        { weight: 2, arbitrary: fc.constant<unknown>('$PARTNER') },
        { weight: 1, arbitrary: fc.constant<unknown>('gatehouse') },
        { weight: 1, arbitrary: claimValue },
      ),
      sub: fc.oneof(
        { weight: 4, arbitrary: fc.string({ minLength: 1, maxLength: 40 }).map((v): unknown => v) },
        { weight: 2, arbitrary: claimValue },
        { weight: 1, arbitrary: fc.constantFrom<unknown>('$LINKED_SUB', 's'.repeat(255), 's'.repeat(256)) },
      ),
      aud: fc.oneof(
        { weight: 6, arbitrary: fc.constantFrom<unknown>('gatehouse-api', ['x', 'gatehouse-api'], PARTNER_AUDIENCE) },
        { weight: 2, arbitrary: claimValue },
      ),
      exp: fc.oneof(
        { weight: 6, arbitrary: fc.constant<unknown>('$SOON') },
        { weight: 1, arbitrary: fc.constantFrom<unknown>('$PAST', '$FAR') },
        { weight: 2, arbitrary: claimValue },
      ),
      iat: fc.oneof(
        { weight: 4, arbitrary: fc.constant<unknown>('$NOW') },
        { weight: 2, arbitrary: fc.constantFrom<unknown>('$OLD', '$FUTURE') },
        { weight: 1, arbitrary: claimValue },
      ),
      nbf: fc.oneof(fc.constantFrom<unknown>('$NOW', '$FUTURE'), claimValue),
      jti: fc.oneof(
        fc.uuid().map((v): unknown => v),
        claimValue,
      ),
      preferred_username: claimValue,
      email: fc.oneof(fc.constantFrom<unknown>('fz@example.com', 'FZ@EXAMPLE.COM', 'nope'), claimValue),
      email_verified: fc.oneof(
        fc.boolean().map((v): unknown => v),
        claimValue,
      ),
      name: claimValue,
      realm_access: fc.oneof(
        fc
          .array(fc.constantFrom('fuzz-admin', 'user', 'admin', '__proto__', 'constructor'), { maxLength: 4 })
          .map((roles): unknown => ({ roles })),
        claimValue,
      ),
    },
    { requiredKeys: [] },
  ),
  extra: fc.dictionary(fc.string({ maxLength: 10 }), claimValue, { maxKeys: 3 }),
  bomb: fc.option(fc.integer({ min: 100, max: 2_000 }), { nil: undefined, freq: 8 }),
  signature: fc.oneof(
    { weight: 6, arbitrary: fc.constant('$SIGN') },
    { weight: 1, arbitrary: fc.constant('$PARTNER_SIGN') },
    { weight: 2, arbitrary: fc.base64String({ maxLength: 400 }) },
    { weight: 1, arbitrary: fc.constantFrom('', '.', 'AA', '$SIGN.extra') },
  ),
});
type ExternalSpec = typeof externalSpec extends fc.Arbitrary<infer T> ? T : never;

/** A `subjectToken` (or `subject_token`): which of the batch's tokens, or a random one. */
const subjectSpec = fc.record({
  source: fc.constantFrom(
    'fresh',
    'fresh',
    'fresh',
    'bearer',
    'hostile',
    'hostile',
    'random',
    'random',
  ) as fc.Arbitrary<'fresh' | 'bearer' | 'hostile' | 'random'>,
  i: fc.nat(),
  random: externalSpec,
  tokenType: fc.constantFrom(
    ...SUBJECT_TYPES,
    ...SUBJECT_TYPES,
    'urn:ietf:params:oauth:token-type:saml2',
    'urn:ietf:params:oauth:token-type:refresh_token',
    'jwt',
  ),
  extra: fc.array(
    fc.tuple(
      fc.constantFrom('scope', 'requested_token_type', 'actor_token', 'audience', 'resource', 'subject_token'),
      formValue,
    ),
    { maxLength: 2 },
  ),
  password: fc.constantFrom('right', 'right', 'wrong', 'none') as fc.Arbitrary<'right' | 'wrong' | 'none'>,
  basic: fc.nat(9).map((n) => n < 8),
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
  | { kind: 'shaped'; field: number; value: unknown; keep: boolean }
  /**
   * An external token where the route takes one: `{subjectToken}` (with the password for
   * POST /users/me/identities), or a token-exchange form on POST /oauth/token.
   */
  | ({ kind: 'subject' } & (typeof subjectSpec extends fc.Arbitrary<infer S> ? S : never));
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
  { weight: 4, arbitrary: subjectSpec.map((spec) => ({ kind: 'subject' as const, ...spec })) },
);

let signupCounter = 0;
let freshCounter = 0;
/** The batch's fresh external tokens in turn (each works once; later uses get FEDERATED_TOKEN_REUSED). */
function nextFresh(ctx: Context): string {
  return ctx.fed.fresh[(freshCounter += 1) % ctx.fed.fresh.length]!;
}
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
    case 'POST /auth/federated/session':
      return { subjectToken: nextFresh(ctx) };
    case 'POST /users/me/identities':
      return { subjectToken: nextFresh(ctx), password: ctx.user.password };
    case 'POST /users/:id/identities':
      return { issuer: idp.issuer, subject: `fz-admin-link-${(signupCounter += 1)}` };
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
  /** Federation: a trusted provider's token, a passwordless session, a token-exchange token, a random one. */
  | { kind: 'federated'; i: number }
  | { kind: 'fedHostile'; i: number }
  | { kind: 'fedSession' }
  | { kind: 'exchanged' }
  | { kind: 'external'; spec: ExternalSpec }
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
  { weight: 3, arbitrary: fc.nat().map((i) => ({ kind: 'federated' as const, i })) },
  { weight: 1, arbitrary: fc.nat().map((i) => ({ kind: 'fedHostile' as const, i })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'fedSession' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'exchanged' as const }) },
  { weight: 3, arbitrary: externalSpec.map((spec) => ({ kind: 'external' as const, spec })) },
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
  { weight: 3, arbitrary: fc.constantFrom('RESOURCE', 'SESSION', 'USER', 'ADMIN', 'FED_USER') },
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
  {
    weight: 4,
    arbitrary: fc.constantFrom('MEMBER', 'USER', 'ADMIN', 'INVITATION', 'ROLE', 'IDENTITY', 'FED_IDENTITY'),
  },
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
// --- The audit trail and the admin user routes (issue 18) ----------------------------------
/** A query parameter: key, value (placeholders such as $USER filled in), and whether it is sent as is, unencoded. */
type QueryPair = [string, string, boolean?];
const pair =
  (key: string) =>
  (value: string): QueryPair => [key, value];
const enc64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64url');
/** The whitespace-separated words of `text` (long lists of values without spaces, compactly). */
const words = (text: string): string[] => text.trim().split(/\s+/);

/** Instants for `from` / `to` in odd ISO 8601 (and not quite ISO) forms. */
const ODD_INSTANTS = [
  ...words(`
    0000-01-01T00:00:00Z 0001-01-01T00:00:00Z 0001-01-01T00:00:00+14:00 9999-12-31T23:59:59.999Z
    9999-12-31T23:59:59-12:00 +275760-09-13T00:00:00.000Z +275760-09-13T00:00:00.001Z
    -271821-04-20T00:00:00.000Z -000001-01-01T00:00:00Z +002026-01-01T00:00:00Z 2026-02-30T00:00:00Z
    2026-02-29T00:00:00Z 2024-02-29T00:00:00Z 2026-13-01T00:00:00Z 2026-00-10T00:00:00Z
    2016-12-31T23:59:60Z 2016-12-31T23:59:60.999Z 2026-01-01T24:00:00Z 2026-01-01T00:00:00+14:00
    2026-01-01T00:00:00-12:00 2026-01-01T00:00:00+25:00 2026-01-01T00:00:00+05:30
    2026-01-01T00:00:00+0530 2026-01-01T00:00:00-00:00 2026-01-01t00:00:00z 2026-01-01T00:00:00z
    2026-01-01t00:00:00Z 2026-01-01T00:00:00.123456789Z 2026-01-01T00:00:00.1234567891234Z
    2026-01-01T00:00:00.Z 2026-01-01T00:00:00,5Z 2026-01-01T00:00Z 2026-01-01T00Z 2026-01-01 2026-01
    2026 2026-W01-1 2026-001 20260101T000000Z 2026-01-01T00:00:00 1970-01-01T00:00:00Z
    1969-12-31T23:59:59.999Z NaN Infinity -1 0 1767225600000 now null
  `),
  '2026-01-01 00:00:00Z',
  '',
  ' ',
  'Thu, 01 Jan 2026 00:00:00 GMT',
];
/** A date written as ISO 8601 with a chosen number of fraction digits, zone and separator. */
const isoInstant = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...ODD_INSTANTS) },
  {
    weight: 3,
    arbitrary: fc
      .record({
        date: fc.oneof(
          fc.date({
            min: new Date('0001-01-01T00:00:00Z'),
            max: new Date('9999-12-31T23:59:59Z'),
            noInvalidDate: true,
          }),
          fc.date({ min: new Date(-8.64e15), max: new Date(8.64e15), noInvalidDate: true }),
        ),
        digits: fc.nat(12),
        zone: fc.constantFrom(
          'Z',
          'Z',
          'z',
          '+00:00',
          '+14:00',
          '-12:00',
          '+23:59',
          '-00:00',
          '+0100',
          '+01',
          '',
          '+24:00',
        ),
        separator: fc.constantFrom('T', 'T', 'T', 't', ' '),
      })
      .map(({ date, digits, zone, separator }) => {
        const [day, time] = date.toISOString().slice(0, -1).split('T') as [string, string];
        const [hms, ms] = time.split('.') as [string, string];
        return `${day}${separator}${hms}${digits === 0 ? '' : `.${`${ms}123456789`.slice(0, digits)}`}${zone}`;
      }),
  },
  { weight: 1, arbitrary: anyString.map((s) => s.slice(0, 100)) },
);
const EVENT_TYPES = [
  'signup',
  'login.succeeded',
  'login.failed',
  'logout',
  'logout_all',
  'session.revoked',
  'password.changed',
  'roles.changed',
  'mfa.enrolled',
  'identity.linked',
];
/** One entry of `type`: real types and families, LIKE wildcards, regex syntax, near misses. */
const typeItem = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(...EVENT_TYPES, 'login.*', 'mfa.*', 'session.*', 'tenant.*', 'identity.*', 'x.*', 'z'),
  },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      ...words(String.raw`
        % _ .* * . .. login.% login._ login% _% \% \ login.** login.*.* *.failed login.[a-z]* .+ ^login
        login$ (login) login|logout LOGIN.* Login.Failed login.*' login.*;-- %00 ℓogin.* 💥.*
      `),
      'login.failed ',
      ' login.failed',
      'login. *',
      '\u0000',
      'login.\u0000',
      'login\u200b.*',
      'a'.repeat(200),
      '',
    ),
  },
  { weight: 2, arbitrary: fc.string({ maxLength: 12 }) },
);
const typeValue = fc.oneof(
  { weight: 5, arbitrary: fc.array(typeItem, { minLength: 1, maxLength: 4 }).map((l) => l.join(',')) },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 19, max: 22 })
      .map((n) => Array.from({ length: n }, (_, i) => EVENT_TYPES[i % EVENT_TYPES.length]!).join(',')),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 50, max: 500 })
      .chain((n) => fc.constantFrom('login.*', '%', '_', 'a').map((t) => Array<string>(n).fill(t).join(','))),
  },
  { weight: 1, arbitrary: fc.constantFrom(',', ',,', 'login.*,', ',login.*', 'login.*,,logout') },
);
/** userId / actorId: the batch's accounts (any case, any wrapping), other UUIDs, garbage. */
const idValue = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('$USER', '$ADMIN', '$MEMBER', '$USER_UPPER', '$CLIENT_USER', '$SESSION') },
  { weight: 2, arbitrary: fc.uuid() },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      ...words(`
        00000000-0000-0000-0000-000000000000 ffffffff-ffff-ffff-ffff-ffffffffffff {$USER} urn:uuid:$USER
        $USER_NOHYPHENS $USER,$ADMIN $USERx % _ %00 null
      `),
      '$USER ',
      ' $USER',
      '\u0000',
      '',
      "'; DROP TABLE audit_events; --",
    ),
  },
  { weight: 2, arbitrary: anyString.map((s) => s.slice(0, 200)) },
);
const limitValue = fc.constantFrom(
  ...words('0 1 20 100 101 -1 1.5 1e2 0x10 +5 05 NaN Infinity 1,2 true []'),
  ' 5',
  '5 ',
  '',
  '9'.repeat(30),
);
/** Real cursors of the batch (any list's), forged ones (odd instants, not-UUIDs, JSON of any shape), garbage. */
const cursorValue = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('$EVENTS_CURSOR', '$USERS_CURSOR', '$ACTIVITY_CURSOR') },
  { weight: 3, arbitrary: fc.tuple(isoInstant, fc.uuid()).map((position) => enc64(JSON.stringify(position))) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      enc64('["2026-01-01T00:00:00.000Z","not-a-uuid"]'),
      enc64('["2026-01-01T00:00:00.000Z"]'),
      enc64('[0,"00000000-0000-0000-0000-000000000000"]'),
      enc64('["2026-01-01T00:00:00.000Z","00000000-0000-0000-0000-000000000000","x"]'),
      enc64('{"__proto__":{"createdAt":1}}'),
      enc64('["\u0000","\u0000"]'),
      enc64('["0000-01-01T00:00:00.000Z","00000000-0000-0000-0000-000000000000"]'),
      enc64('["-000001-01-01T00:00:00.000Z","00000000-0000-0000-0000-000000000000"]'),
      enc64('["+275760-09-13T00:00:00.000Z","00000000-0000-0000-0000-000000000000"]'),
      enc64('["2026-02-30T00:00:00.000Z","00000000-0000-0000-0000-000000000000"]'),
      enc64('["2016-12-31T23:59:60.000Z","00000000-0000-0000-0000-000000000000"]'),
    ),
  },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => enc64(JSON.stringify(v))) },
  { weight: 2, arbitrary: anyString.map((s) => s.slice(0, 300)) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      ...words('= $EVENTS_CURSOR= $EVENTS_CURSOR$EVENTS_CURSOR $EVENTS_CURSOR. % .. eyJ'),
      '',
      'A'.repeat(200),
      'A'.repeat(201),
    ),
  },
);
/** Values sent unencoded: malformed and tricky percent-encodings, `+`. */
const rawValue = fc.constantFrom(
  ...words('% %zz %E0%A4%A %00 %25 %5C %5F login.*%2Clogout + a+b %2B %C0%AE %C0%80 %ED%A0%80 %FF'),
);
const auditPair: fc.Arbitrary<QueryPair> = fc.oneof(
  { weight: 3, arbitrary: idValue.map(pair('userId')) },
  { weight: 2, arbitrary: idValue.map(pair('actorId')) },
  { weight: 4, arbitrary: typeValue.map(pair('type')) },
  { weight: 3, arbitrary: isoInstant.map(pair('from')) },
  { weight: 3, arbitrary: isoInstant.map(pair('to')) },
  { weight: 2, arbitrary: limitValue.map(pair('limit')) },
  { weight: 2, arbitrary: cursorValue.map(pair('cursor')) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.constantFrom(
          'type[]',
          'type[0]',
          'userId[]',
          'from[]',
          'limit[]',
          'cursor[a]',
          'q',
          'foo',
          'TYPE',
          'userid',
        ),
        fc.oneof(typeValue, idValue),
      )
      .map(([k, v]): QueryPair => [k, v]),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom('type', 'userId', 'actorId', 'from', 'to', 'limit', 'cursor'), rawValue)
      .map(([k, v]): QueryPair => [k, v, true]),
  },
);
/**
 * A query string of GET /audit-events: one to six parameters, often the same one twice (an
 * array in Express), sometimes one pair exactly repeated.
 */
const auditQuery = fc
  .tuple(fc.array(auditPair, { minLength: 1, maxLength: 6 }), fc.nat())
  .map(([pairs, i]) => (i % 4 === 0 ? [...pairs, pairs[i % pairs.length]!] : pairs));
/**
 * A query string of GET /audit-events that passes validation (mostly): every filter optional,
 * odd but valid values (upper-case ids, offsets, long fractions, twenty types, forged cursors
 * of any position the encoder could write), so that the database gets them.
 */
const validDate = fc.oneof(
  fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }),
  fc.date({ min: new Date('1000-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }),
);
const validAuditQuery = fc
  .record(
    {
      userId: fc.constantFrom('$USER', '$USER', '$USER_UPPER', '$MEMBER', '$ADMIN', '$CLIENT_USER', '$SESSION'),
      actorId: fc.constantFrom('$USER', '$ADMIN', '$MEMBER', '00000000-0000-0000-0000-000000000000'),
      type: fc
        .array(fc.constantFrom(...EVENT_TYPES, 'login.*', 'mfa.*', 'session.*', 'tenant.*', 'x.*', '_', 'login._'), {
          minLength: 1,
          maxLength: 20,
        })
        .map((types) => types.join(',')),
      from: fc.oneof(
        validDate.map((d) => d.toISOString()),
        validDate.map((d) => d.toISOString().replace('Z', '123456Z')),
        validDate.map((d) => d.toISOString().replace(/\.\d{3}Z$/, '+14:00')),
      ),
      to: fc.oneof(
        validDate.map((d) => d.toISOString()),
        validDate.map((d) => d.toISOString().replace(/\.\d{3}Z$/, '-12:00')),
      ),
      limit: fc.integer({ min: 1, max: 100 }).map(String),
      cursor: fc.oneof(
        fc.constant('$EVENTS_CURSOR'),
        fc.tuple(validDate, fc.uuid()).map(([d, id]) => enc64(JSON.stringify([d.toISOString(), id]))),
      ),
    },
    { requiredKeys: [] },
  )
  .map((q) => Object.entries(q).map(([k, v]): QueryPair => [k, v]));
/** `q` of GET /users: LIKE wildcards, the escape character, case folding traps, NUL, 99–101 and more characters. */
const searchValue = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      ...words(String.raw`
        % _ \ \% \_ %_% %% _% \\ ' " * .* ? [a-z] ^ $ ( fz FZ fz_ example.com @ İ ı ß SS é É Ω ﬃ 💥
        null undefined __proto__ $USER_NAME $USER_NAME_UPPER $USER
      `),
      // Whitespace, a combining accent, NUL, a lone surrogate, direction and zero-width marks.
      ' ',
      '  ',
      '\t',
      '\n',
      'e\u0301',
      '\u0000',
      'a\u0000',
      '%\u0000%',
      '\ud800',
      '\u202e',
      '\u200b',
      "' OR 1=1 --",
    ),
  },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(99, 100, 101, 200)
      .chain((n) => fc.constantFrom('a', '%', '_', '\\', '💥', 'é', 'e\u0301').map((c) => c.repeat(n))),
  },
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  { weight: 2, arbitrary: anyString.map((s) => s.slice(0, 400)) },
);
const searchQuery = fc.array(
  fc.oneof(
    { weight: 6, arbitrary: searchValue.map(pair('q')) },
    { weight: 1, arbitrary: limitValue.map(pair('limit')) },
    { weight: 1, arbitrary: cursorValue.map(pair('cursor')) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom('q[]', 'q[0]', 'Q', 'search', 'userId', 'type'), searchValue)
        .map(([k, v]): QueryPair => [k, v]),
    },
    { weight: 1, arbitrary: rawValue.map((v): QueryPair => ['q', v, true]) },
  ),
  { minLength: 1, maxLength: 4 },
);
/** GET /users/me/activity: limit and cursor, and parameters it does not take. */
const pageQuery = fc.array(
  fc.oneof(
    { weight: 2, arbitrary: limitValue.map(pair('limit')) },
    { weight: 3, arbitrary: cursorValue.map(pair('cursor')) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom('type', 'userId', 'from', 'q', 'limit[]'), fc.oneof(typeValue, idValue))
        .map(([k, v]): QueryPair => [k, v]),
    },
  ),
  { minLength: 1, maxLength: 3 },
);
/** `:id` of the admin user routes: the batch user, other accounts, or anything. */
const userParam = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(...words('MEMBER MEMBER STRANGER STRANGER USER USER USER_UPPER FED_USER CLIENT_USER')),
  },
  { weight: 3, arbitrary: pathParam },
);
/** `:sessionId`: the batch user's session, another account's, or anything. */
const sessionParam = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('SESSION', 'SESSION', 'OTHER_SESSION', 'SESSION_UPPER') },
  { weight: 4, arbitrary: pathParam },
);
const requestSpec = fc.record({
  route: fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom(...ROUTES) },
    // The two searches with the most query parameters get more of the volume.
    { weight: 2, arbitrary: fc.constantFrom<[string, string]>(['GET', '/audit-events'], ['GET', '/users']) },
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
  // issue 18: the admin user routes' ids, and the query strings of their own (mostly used)
  userTarget: userParam,
  session: sessionParam,
  auditQuery,
  validAuditQuery,
  searchQuery,
  pageQuery,
  /** Below 4: GET /audit-events gets validAuditQuery; below 8, the route's own hostile query; else `query`. */
  ownQuery: fc.nat(9),
  /** Below 5: the admin's token and no body on ADMIN_READ_ROUTES, whatever `auth` and `body` say. */
  adminFirst: fc.nat(9),
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
    ['FED_USER', ctx.fed.session.userId],
    ['IDENTITY', ctx.fed.identityId],
    ['FED_IDENTITY', ctx.fed.session.identityId],
    ['STRANGER', ctx.tenant.stranger.id],
    ['CLIENT_USER', ctx.client.serviceUserId],
    ['USER_UPPER', ctx.user.id.toUpperCase()],
    ['OTHER_SESSION', ctx.audit.otherSessionId],
    ['SESSION_UPPER', ctx.sessionId.toUpperCase()],
  ]);
  // A Map, not an object: a fuzzed 'constructor' or 'hasOwnProperty' must stay a plain string.
  const named = (value: string): string => ids.get(value) ?? value;
  const route = `${method} ${template}`;
  // The admin's own sessions are never ended by the fuzz (its token serves the whole batch).
  const userTarget = method === 'DELETE' && spec.userTarget === 'ADMIN' ? 'STRANGER' : spec.userTarget;
  // `:id` alone, not the start of `:identityId`.
  let path = template.startsWith('/tenants/:id')
    ? template.replace(/:id(?=\/|$)/, named(spec.tenant))
    : template.replace(/:id(?=\/|$)/, named(USER_ID_ROUTES.has(route) ? userTarget : spec.param));
  path = path.replace(/:userId|:invitationId|:name|:identityId/, named(spec.sub));
  path = path.replace(':sessionId', named(spec.session));
  const ownQuery =
    spec.ownQuery >= 8
      ? undefined
      : route === 'GET /audit-events'
        ? spec.ownQuery < 4
          ? spec.validAuditQuery
          : spec.auditQuery
        : route === 'GET /users'
          ? spec.searchQuery
          : route === 'GET /users/me/activity'
            ? spec.pageQuery
            : undefined;
  if (ownQuery) {
    const filled = (v: string) => v.replace(QUERY_PLACEHOLDER, (_, name: string) => queryValue(name, ctx));
    path += `?${ownQuery.map(([k, v, raw]) => `${pct(k)}=${raw ? v : pct(filled(v))}`).join('&')}`;
  } else if (spec.query.length > 0) path += `?${spec.query.map(([k, v]) => `${pct(k)}=${pct(v)}`).join('&')}`;
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
  const fed = ctx.fed;
  if (spec.auth.kind === 'federated') headers.authorization = `Bearer ${fed.bearer[spec.auth.i % fed.bearer.length]}`;
  if (spec.auth.kind === 'fedHostile')
    headers.authorization = `Bearer ${fed.hostile[spec.auth.i % fed.hostile.length]}`;
  if (spec.auth.kind === 'fedSession') headers.authorization = `Bearer ${fed.session.access}`;
  if (spec.auth.kind === 'exchanged') headers.authorization = `Bearer ${fed.exchanged}`;
  if (spec.auth.kind === 'external') headers.authorization = `Bearer ${externalToken(spec.auth.spec, ctx)}`;
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
  const placeholders = new Map([
    ['$CLIENT_ID', ctx.client.clientId],
    ['$SECRET', ctx.client.secret],
    ['$USER_TOKEN', ctx.user.access],
    ['$CLIENT_TOKEN', ctx.client.access],
    ['$FED_TOKEN', fed.bearer[1]!],
    ['$FED_HOSTILE', fed.hostile[0]!],
  ]);
  const basicOf = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
  if (b.kind === 'subject') {
    const pick = (list: string[]) => list[b.i % list.length]!;
    const token =
      b.source === 'fresh'
        ? pick(fed.fresh)
        : b.source === 'bearer'
          ? pick(fed.bearer)
          : b.source === 'hostile'
            ? pick(fed.hostile)
            : externalToken(b.random, ctx);
    if (template === '/oauth/token') {
      const fields: Array<[string, string]> = [
        ['grant_type', TOKEN_EXCHANGE],
        ['subject_token', token],
        ['subject_token_type', b.tokenType],
        ...b.extra.map(([k, v]): [string, string] => [k, placeholders.get(v) ?? v]),
      ];
      payload = fields.map(([k, v]) => `${pct(k)}=${pct(v)}`).join('&');
      formType = true;
      if (b.basic) headers.authorization = basicOf(ctx.client.clientId, ctx.client.secret);
    } else {
      const body: Record<string, unknown> = { subjectToken: token };
      if (template === '/users/me/identities' && b.password !== 'none')
        body.password = b.password === 'right' ? ctx.user.password : 'not the password';
      payload = JSON.stringify(body);
    }
  }
  if (b.kind === 'form') {
    const value = (v: string) => placeholders.get(v) ?? v;
    const enc = (v: string) => (b.encoded ? pct(v) : v);
    payload = b.fields.map(([k, v]) => `${enc(k)}=${enc(value(v))}`).join('&');
    formType = b.typed;
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
  if (ADMIN_READ_ROUTES.has(route) && spec.adminFirst < 5) {
    headers.authorization = `Bearer ${ctx.admin.access}`;
    delete headers['content-type'];
    delete headers['content-encoding'];
    return { method, path, headers };
  }
  return { method, path, headers, payload };
}

/** Placeholders in the query strings of the issue 18 routes (longest names first). */
const QUERY_PLACEHOLDER =
  /\$(USER_UPPER|USER_NOHYPHENS|USER_NAME_UPPER|USER_NAME|USER|ADMIN|MEMBER|CLIENT_USER|SESSION|EVENTS_CURSOR|USERS_CURSOR|ACTIVITY_CURSOR)/g;
function queryValue(name: string, ctx: Context): string {
  switch (name) {
    case 'USER_UPPER':
      return ctx.user.id.toUpperCase();
    case 'USER_NOHYPHENS':
      return ctx.user.id.replaceAll('-', '');
    case 'USER_NAME_UPPER':
      return ctx.user.username.toUpperCase();
    case 'USER_NAME':
      return ctx.user.username;
    case 'USER':
      return ctx.user.id;
    case 'ADMIN':
      return ctx.admin.id;
    case 'MEMBER':
      return ctx.tenant.member.id;
    case 'CLIENT_USER':
      return ctx.client.serviceUserId;
    case 'SESSION':
      return ctx.sessionId;
    case 'EVENTS_CURSOR':
      return ctx.audit.eventsCursor;
    case 'USERS_CURSOR':
      return ctx.audit.usersCursor;
    default:
      return ctx.audit.activityCursor;
  }
}

const b64text = (text: string): string => Buffer.from(text, 'utf8').toString('base64url');
const b64json = (value: unknown): string => b64text(JSON.stringify(value) ?? 'null');

/** A fake provider's current signing key as a node KeyObject, to sign synchronously. */
const keyObjects = new Map<string, KeyObject>();
function providerKey(provider: FakeIdp): { kid: string; alg: string; key: KeyObject } {
  const { kid, alg, privateKey } = provider.currentKey;
  let key = keyObjects.get(kid);
  if (!key) keyObjects.set(kid, (key = KeyObject.from(privateKey)));
  return { kid, alg, key };
}

/** `header.payload` signed with `key` (RS256, or ES256 for an EC key); both parts given as text. */
function signCompact(headerJson: string, payloadJson: string, key: KeyObject): string {
  const input = `${b64text(headerJson)}.${b64text(payloadJson)}`;
  const signature =
    key.asymmetricKeyType === 'ec'
      ? cryptoSign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
      : cryptoSign('sha256', Buffer.from(input), key);
  return `${input}.${signature.toString('base64url')}`;
}

/** The random external token of a spec, its placeholders filled in (see externalSpec). */
function externalToken(spec: ExternalSpec, ctx: Context): string {
  const now = Math.floor(Date.now() / 1000);
  const signer = providerKey(spec.signature === '$PARTNER_SIGN' ? partnerIdp : idp);
  const named = new Map<string, unknown>([
    ['$KID', signer.kid],
    ['$CANARY', canary.url],
    ['$ATTACKER_JWK', attackerJwk],
    ['$ISS', idp.issuer],
    ['$PARTNER', partnerIdp.issuer],
    ['$LINKED_SUB', ctx.fed.linkedSub],
    ['$SOON', now + 600],
    ['$PAST', now - 3600],
    ['$FAR', now + 40 * 86_400],
    ['$NOW', now],
    ['$OLD', now - 400],
    ['$FUTURE', now + 3600],
  ]);
  const fill = (v: unknown): unknown => (typeof v === 'string' && named.has(v) ? named.get(v) : v);
  const fillAll = (o: unknown): unknown =>
    o !== null && typeof o === 'object' && !Array.isArray(o)
      ? Object.fromEntries(Object.entries(o).map(([k, v]) => [k, fill(v)]))
      : fill(o);
  const headerJson = JSON.stringify(fillAll(spec.header)) ?? 'null';
  let payloadJson = JSON.stringify({ ...spec.extra, ...(fillAll(spec.claims) as Record<string, unknown>) });
  if (spec.bomb !== undefined) {
    const deep = `${'['.repeat(spec.bomb)}${']'.repeat(spec.bomb)}`;
    payloadJson = payloadJson.replace(/\}$/, `${payloadJson === '{}' ? '' : ','}"deep":${deep}}`);
  }
  if (spec.signature === '$SIGN' || spec.signature === '$PARTNER_SIGN')
    return signCompact(headerJson, payloadJson, signer.key);
  if (spec.signature === '$SIGN.extra') return `${signCompact(headerJson, payloadJson, signer.key)}.extra`;
  return `${b64text(headerJson)}.${b64text(payloadJson)}.${spec.signature}`;
}

/**
 * External tokens that every check must refuse, each on its own ground: no or a symmetric
 * algorithm, keys named by the token (jku, x5u, jwk, x5c: aimed at the canary), another key,
 * each required claim missing, wrong or of the wrong type, expired, not yet valid, too long,
 * another issuer (Gatehouse's own, an unknown one, the ES256-pinned partner), crit headers,
 * malformed parts, a tampered payload, a JSON bomb without a valid signature.
 */
function hostileExternalTokens(valid: string): string[] {
  const now = Math.floor(Date.now() / 1000);
  const { kid, key } = providerKey(idp);
  const partner = providerKey(partnerIdp);
  const base = {
    iss: idp.issuer,
    sub: 'fz-hostile',
    aud: 'gatehouse-api',
    iat: now,
    exp: now + 900,
    jti: randomUUID(),
  };
  const h = { alg: 'RS256', kid, typ: 'JWT' };
  const sig = (header: unknown, payload: unknown) =>
    signCompact(JSON.stringify(header), typeof payload === 'string' ? payload : JSON.stringify(payload), key);
  const without = (name: keyof typeof base) => Object.fromEntries(Object.entries(base).filter(([k]) => k !== name));
  const attackerSigned = (header: Record<string, unknown>) =>
    signCompact(JSON.stringify({ alg: 'RS256', ...header }), JSON.stringify(base), attacker.privateKey);
  const publicPem = KeyObject.from(idp.currentKey.publicKey).export({ type: 'spki', format: 'pem' }).toString();
  const [vh, vp, vs] = valid.split('.') as [string, string, string];
  const deep = `${'['.repeat(1500)}${']'.repeat(1500)}`;
  return [
    `${b64json({ alg: 'none', typ: 'JWT' })}.${b64json(base)}.`,
    `${b64json({ alg: 'none', kid })}.${b64json(base)}.`,
    signHs256({ kid, typ: 'JWT' }, base, publicPem),
    signHs256({ kid, typ: 'JWT' }, base, JSON.stringify(idp.currentKey.publicJwk)),
    attackerSigned({ kid: 'fz-attacker', jku: canary.url }),
    attackerSigned({ kid: 'fz-attacker', x5u: canary.url }),
    attackerSigned({ kid: 'fz-attacker', jwk: attackerJwk }),
    attackerSigned({ kid, jwk: attackerJwk, jku: canary.url }),
    attackerSigned({ kid, x5c: ['MIIBfake'], x5u: canary.url }),
    sig(h, { ...base, aud: 'someone-else' }),
    sig(h, without('aud')),
    sig(h, without('exp')),
    sig(h, without('sub')),
    sig(h, without('iss')),
    sig(h, { ...base, iat: now - 7200, exp: now - 3600 }),
    sig(h, { ...base, nbf: now + 3600 }),
    sig(h, { ...base, iat: now + 3600, exp: now + 4000 }),
    sig(h, { ...base, exp: now + 200_000 }),
    sig(h, { ...base, sub: '' }),
    sig(h, { ...base, sub: 's'.repeat(256) }),
    sig(h, { ...base, sub: 42 }),
    sig(h, { ...base, sub: { id: 'fz' } }),
    sig(h, { ...base, exp: String(now + 900) }),
    sig(h, { ...base, iat: 'yesterday' }),
    sig(h, { ...base, aud: [{ a: 1 }] }),
    sig(h, { ...base, iss: 'gatehouse' }),
    sig(h, { ...base, iss: partnerIdp.issuer }),
    sig(h, { ...base, iss: 'http://127.0.0.1:1/unknown' }),
    sig(h, { ...base, iss: 12345 }),
    sig(h, { ...base, iss: [idp.issuer] }),
    signCompact(JSON.stringify({ alg: 'ES256', kid: partner.kid }), JSON.stringify(base), partner.key),
    sig({ ...h, alg: 'PS256' }, base),
    sig({ ...h, alg: 'ES256' }, base),
    sig({ ...h, crit: ['exp'] }, base),
    sig({ ...h, b64: false, crit: ['b64'] }, base),
    sig({ ...h, kid: 'k'.repeat(3000) }, base),
    sig({ ...h, kid: { $ne: null } }, base),
    sig({ ...h, kid: '../../../../etc/passwd' }, base),
    sig('not an object', base),
    sig(['RS256'], base),
    sig(h, `{"iss":"${idp.issuer}",`),
    sig(h, '[1,2,3]'),
    sig(h, 'null'),
    `${vh}.${b64json({ ...base, sub: 'fz-tampered' })}.${vs}`,
    `${vh}.${vp}.${vs.slice(0, -4)}AAAA`,
    `${valid}.extra`,
    `${vh}.${vp}`,
    `${vh}.${vp}.`,
    `${valid}..x.y`,
    `${b64json(h)}.${b64text(`{"iss":"${idp.issuer}","sub":"fz-bomb","aud":"gatehouse-api","exp":${now + 900},"realm_access":{"roles":${deep}}}`)}.${vs}`,
  ];
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
    // Tampered signature bytes. Not a fixed "AA": one signature in 256 ends with those very
    // characters (a last byte of 0), and the "attack" would be the real token.
    `${h}.${p}.${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BA' : 'AA'}`,
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
  const client = await newClient();
  return {
    user,
    admin,
    resourceId,
    sessionId,
    attacks: tokenAttacks({ user }),
    client,
    tenant,
    forged: forgedTenantTokens(user, { id: tenant.id, otherId: tenant.otherId }),
    fed: await newFuzzFederation(user, tenant.member, client),
    audit: await newFuzzAudit(admin, user, tenant.member),
  };
}

/** Real cursors of the three lists (their first page of one item) and the member's session. */
async function newFuzzAudit(admin: Account, user: Account, member: Account): Promise<FuzzAudit> {
  const firstPage = async (what: string, path: string, account: Account) =>
    expectStatus(
      what,
      await call(app.url, 'GET', path, { headers: { ...bearer(account.access), ...CLEAN_IP } }),
      200,
    ) as {
      nextCursor: string | null;
    };
  // A position that names no row, in the encoder's exact form, when a list has a single page.
  const nowhere = enc64(JSON.stringify([new Date().toISOString(), randomUUID()]));
  const events = await firstPage('first audit page', '/audit-events?limit=1', admin);
  const users = await firstPage('first users page', '/users?limit=1', admin);
  const activity = await firstPage('first activity page', '/users/me/activity?limit=1', user);
  const [session] = expectStatus(
    "the member's sessions",
    await call(app.url, 'GET', '/auth/sessions', { headers: { ...bearer(member.access), ...CLEAN_IP } }),
    200,
  ) as Array<{ id: string }>;
  return {
    eventsCursor: events.nextCursor ?? nowhere,
    usersCursor: users.nextCursor ?? nowhere,
    activityCursor: activity.nextCursor ?? nowhere,
    otherSessionId: session!.id,
  };
}

/** A client address of its own (TRUST_PROXY=1): the harness's exchanges stay under the per-address limit. */
function freshAddress(): Record<string, string> {
  const byte = () => Math.floor(Math.random() * 254) + 1;
  return { 'x-forwarded-for': `198.18.${byte()}.${byte()}` };
}

/** Throws unless `o` has `status`; the parsed body. */
function expectStatus(what: string, o: Outcome, status: number): unknown {
  if (o.status !== status) throw new Error(`${what} failed: ${o.status ?? o.error} ${o.text.slice(0, 300)}`);
  return o.json;
}

/**
 * The batch's federation: the batch user links an identity of the jit provider (proving both
 * accounts), an admin links a partner identity to the member (linked-only), a passwordless
 * account signs in by an exchange, the fuzz client exchanges a token for the batch user
 * (RFC 8693); and the tokens the fuzz sends: valid, odd, hostile, fresh.
 */
async function newFuzzFederation(user: Account, member: Account, client: FuzzClient): Promise<FuzzFederation> {
  const tag = randomUUID().slice(0, 8);
  const ttl = 900;
  const linkedSub = `fz-linked-${tag}`;
  const linked = expectStatus(
    'link an identity',
    await call(app.url, 'POST', '/users/me/identities', {
      headers: { ...bearer(user.access), ...CLEAN_IP },
      json: { subjectToken: await idp.sign({ sub: linkedSub }), password: user.password },
    }),
    201,
  ) as { id: string };
  const admin = await loginAccount(app.url, ADMIN.username, ADMIN.password, undefined, CLEAN_IP);
  const partnerSub = `fz-partner-${tag}`;
  expectStatus(
    'admin-link a partner identity',
    await call(app.url, 'POST', `/users/${member.id}/identities`, {
      headers: { ...bearer(admin.access), ...CLEAN_IP },
      json: { issuer: partnerIdp.issuer, subject: partnerSub },
    }),
    201,
  );
  const exchange = expectStatus(
    'exchange a token for a session',
    await call(app.url, 'POST', '/auth/federated/session', {
      headers: freshAddress(),
      json: { subjectToken: await idp.sign({ sub: `fz-session-${tag}`, preferred_username: `fzfed_${tag}` }) },
    }),
    200,
  ) as { accessToken: string; user: { id: string; username: string } };
  const [own] = expectStatus(
    'list the identities',
    await call(app.url, 'GET', '/users/me/identities', { headers: { ...bearer(exchange.accessToken), ...CLEAN_IP } }),
    200,
  ) as Array<{ id: string }>;
  const exchanged = expectStatus(
    'token exchange',
    await call(app.url, 'POST', '/oauth/token', {
      headers: {
        ...CLEAN_IP,
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${client.clientId}:${client.secret}`).toString('base64')}`,
      },
      raw: new URLSearchParams({
        grant_type: TOKEN_EXCHANGE,
        subject_token: await idp.sign({ sub: linkedSub }),
        subject_token_type: SUBJECT_TYPES[0]!,
      }).toString(),
    }),
    200,
  ) as { access_token: string };
  const now = Math.floor(Date.now() / 1000);
  const odd: Array<Record<string, unknown>> = [
    { preferred_username: '__proto__', name: 'constructor' },
    { preferred_username: 'svc.admin', email: `${user.username}@example.com`, email_verified: 'true' },
    { preferred_username: '../../etc/passwd', email: 'not-an-email', email_verified: true },
    { preferred_username: '💥'.repeat(40), name: '\u202e\u200b\ufeff' },
    { preferred_username: 'Ω≈ç√∫ ada', name: 'a\u0007b\u001bc', email: `${'e'.repeat(300)}@example.com` },
    { preferred_username: 'x'.repeat(400), email_verified: 1 },
    { preferred_username: ['a', 'b'], name: { first: 'a' }, email: ['x@example.com'], email_verified: [true] },
    { realm_access: { roles: 'fuzz-admin' } },
    { realm_access: { roles: [['fuzz-admin'], { x: 1 }, null, 42] } },
    { realm_access: 'fuzz-admin' },
    { realm_access: { roles: Array.from({ length: 1000 }, () => 'fuzz-admin') } },
    { realm_access: { roles: ['__proto__', 'constructor', 'hasOwnProperty', 'toString'] } },
    { realm_access: { roles: JSON.parse(`${'['.repeat(1500)}${']'.repeat(1500)}`) as unknown } },
    { jti: '', aud: ['other', 'gatehouse-api'], typ: 'Bearer' },
    { jti: 'j'.repeat(600) },
    { sub: `${'s'.repeat(235)}-${tag}` },
    { sub: `CgVhZG1pbhIFbG9jYWw-${tag}` },
    { sub: `\ud800-${tag}` },
    { sub: ` ${tag} ` },
  ];
  const bearerTokens = [
    await idp.sign(
      {
        sub: `fz-jit-${tag}`,
        preferred_username: 'Fuzz Jit',
        email: `fz-jit-${tag}@example.com`,
        email_verified: true,
      },
      { ttl },
    ),
    await idp.sign({ sub: linkedSub }, { ttl }),
    await idp.sign({ sub: `fz-admin-${tag}`, realm_access: { roles: ['fuzz-admin', 'other'] } }, { ttl }),
    await partnerIdp.sign({ sub: partnerSub }, { ttl }),
    await partnerIdp.sign({ sub: `fz-partner-unlinked-${tag}`, aud: PARTNER_AUDIENCE }, { ttl }),
    await idp.sign({ sub: linkedSub }, { now: now - 400, ttl: 3600 }),
    ...(
      await Promise.all(
        odd.map((claims, i) => idp.sign({ sub: `fz-odd-${i}-${tag}`, ...claims }, { ttl }).catch(() => null)),
      )
    ).filter((t): t is string => t !== null),
  ];
  const fresh = await Promise.all([
    ...Array.from({ length: 16 }, (_, i) => idp.sign({ sub: `fz-fresh-${i}-${tag}` }, { ttl })),
    partnerIdp.sign({ sub: `fz-fresh-partner-${tag}` }, { ttl }),
    partnerIdp.sign({ sub: partnerSub }, { ttl }),
  ]);
  return {
    bearer: bearerTokens,
    hostile: hostileExternalTokens(bearerTokens[1]!),
    fresh,
    linkedSub,
    identityId: linked.id,
    session: {
      userId: exchange.user.id,
      username: exchange.user.username,
      access: exchange.accessToken,
      identityId: own!.id,
    },
    exchanged: exchanged.access_token,
  };
}

/** The fuzz's machine client (created once, by a fresh admin session: the fuzz may end the others). */
let fuzzClient: { clientId: string; secret: string; serviceUserId: string } | undefined;

/**
 * The machine client with every scope but the admin ones, allowed token exchange (RFC 8693),
 * and a new token of it (from the token endpoint).
 */
async function newClient(): Promise<FuzzClient> {
  if (!fuzzClient) {
    const admin = await loginAccount(app.url, ADMIN.username, ADMIN.password, undefined, CLEAN_IP);
    const created = await call(app.url, 'POST', '/oauth/clients', {
      headers: { ...bearer(admin.access), ...CLEAN_IP },
      json: {
        name: 'fuzz client',
        allowedScopes: ['introspection', 'profile', 'resources:read', 'resources:write'],
        tokenExchange: true,
      },
    });
    expect(created.status).toBe(201);
    const { client, secret } = created.json as {
      client: { clientId: string; serviceUserId: string };
      secret: { value: string };
    };
    fuzzClient = { clientId: client.clientId, secret: secret.value, serviceUserId: client.serviceUserId };
  }
  const { clientId, secret, serviceUserId } = fuzzClient;
  const token = await call(app.url, 'POST', '/oauth/token', {
    headers: {
      ...CLEAN_IP,
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`,
    },
    raw: 'grant_type=client_credentials',
  });
  expect(token.status).toBe(200);
  return { clientId, secret, serviceUserId, access: (token.json as { access_token: string }).access_token };
}

interface Probe {
  what: string;
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  json?: unknown;
  /** A body sent as is (the OAuth form endpoints). */
  raw?: string;
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

/**
 * The audit trail and the admin user routes (issue 18), with the exact answer each hostile
 * request must get: repeated parameters (arrays), instants PostgreSQL or Date cannot hold or
 * that do not exist, LIKE wildcards that must match only themselves, forged cursors, ids that
 * are not UUIDs or name no account, another account's session, callers without the admin
 * role. The stranger's sessions are then ended by the admin, which the audit trail records.
 */
async function auditProbes(ctx: Context): Promise<Probe[]> {
  const admin = await loginAccount(app.url, ADMIN.username, ADMIN.password, undefined, CLEAN_IP);
  const asAdmin = bearer(admin.access);
  const user = ctx.user;
  const stranger = ctx.tenant.stranger;
  const member = ctx.tenant.member;
  const probes: Probe[] = [];
  const add = (p: Probe) => probes.push(p);
  const zero = '00000000-0000-0000-0000-000000000000';
  const qs = (pairs: Array<[string, string]>) => pairs.map(([k, v]) => `${pct(k)}=${pct(v)}`).join('&');
  type Page = { items?: Array<Record<string, unknown>>; nextCursor?: unknown };
  const itemsOf = (o: Outcome) => (o.json as Page | undefined)?.items ?? [];
  const check =
    (what: string, ok: (items: Array<Record<string, unknown>>, o: Outcome) => boolean) =>
    (o: Outcome, failures: string[]) => {
      if (o.status === 200 && !ok(itemsOf(o), o))
        failures.push(`probe ${what}: unexpected answer ${o.text.slice(0, 300)}`);
    };
  const events = (what: string, pairs: Array<[string, string]>, status: number, after?: Probe['after']) =>
    add({
      what: `GET /audit-events ${what}`,
      method: 'GET',
      path: `/audit-events?${qs(pairs)}`,
      headers: asAdmin,
      status,
      code: status === 400 ? 'VALIDATION_FAILED' : undefined,
      after,
    });
  const search = (what: string, queryString: string, status: number, after?: Probe['after']) =>
    add({
      what: `GET /users ${what}`,
      method: 'GET',
      path: `/users?${queryString}`,
      headers: asAdmin,
      status,
      code: status === 400 ? 'VALIDATION_FAILED' : undefined,
      after,
    });

  // 1. GET /audit-events: repeated parameters become arrays in Express: 400, never 500.
  for (const [k, v] of [
    ['type', 'login.*'],
    ['userId', user.id],
    ['actorId', admin.id],
    ['from', '2026-01-01T00:00:00Z'],
    ['to', '2026-01-01T00:00:00Z'],
    ['limit', '5'],
    ['cursor', ctx.audit.eventsCursor],
  ] as Array<[string, string]>)
    events(
      `with ${k} twice`,
      [
        [k, v],
        [k, v],
      ],
      400,
    );
  events(
    'with type=a&type=b',
    [
      ['type', 'a'],
      ['type', 'b'],
    ],
    400,
  );
  events('with type[]', [['type[]', 'login.*']], 400);
  events('with an unknown parameter', [['foo', '1']], 400);
  // Instants: outside years 1–9999 (in UTC), impossible dates, a leap second, not ISO.
  for (const [k, v] of [
    ['from', '0000-01-01T00:00:00Z'],
    ['from', '+275760-09-13T00:00:00.000Z'],
    ['to', '-000001-01-01T00:00:00Z'],
    ['from', '0001-01-01T00:00:00+14:00'],
    ['to', '9999-12-31T23:59:59-12:00'],
    ['from', '2026-02-30T00:00:00Z'],
    ['from', '2026-13-01T00:00:00Z'],
    ['from', '2016-12-31T23:59:60Z'],
    ['from', 'NaN'],
    ['from', ''],
    ['to', '1767225600000'],
    ['to', 'Thu, 01 Jan 2026 00:00:00 GMT'],
  ] as Array<[string, string]>)
    events(`with ${k}=${v || '(empty)'}`, [[k, v]], 400);
  events(
    'with from = to',
    [
      ['from', '2026-01-01T00:00:00Z'],
      ['to', '2026-01-01T00:00:00Z'],
    ],
    400,
  );
  events(
    'with from after to',
    [
      ['from', '2026-01-02T00:00:00Z'],
      ['to', '2026-01-01T00:00:00Z'],
    ],
    400,
  );
  events(
    'from year 1000 to year 9999',
    [
      ['from', '1000-01-01T00:00:00Z'],
      ['to', '9999-12-31T23:59:59.999Z'],
    ],
    200,
  );
  events(
    'with offsets +14:00 and -12:00',
    [
      ['from', '2026-01-01T00:00:00+14:00'],
      ['to', '2026-01-01T00:00:00-12:00'],
    ],
    200,
  );
  events('with a date alone', [['from', '2026-01-01']], 200);
  // Not an instant (the server's time zone would decide), or finer than the stored millisecond.
  events('without an offset', [['from', '2026-01-01T00:00:00']], 400);
  events('with nine fraction digits', [['from', '2026-01-01T00:00:00.123456789Z']], 400);
  // Types: LIKE wildcards and regex syntax are refused or match only themselves.
  for (const t of [
    '%',
    'login.%',
    '.*',
    '*',
    'login.*.*',
    'LOGIN.*',
    'login.*,',
    `${'login.*,'.repeat(20)}logout`,
    'a'.repeat(1001),
  ])
    events(`with type=${t.slice(0, 30)}`, [['type', t]], 400);
  for (const t of ['_', 'login._', 'login_failed'])
    events(
      `with type=${t} (no wildcard)`,
      [['type', t]],
      200,
      check(`type=${t}`, (items) => items.length === 0),
    );
  events(
    'with 20 types',
    [['type', Array.from({ length: 20 }, (_, i) => EVENT_TYPES[i % EVENT_TYPES.length]).join(',')]],
    200,
  );
  events(
    "with the batch user's id in upper case",
    [['userId', user.id.toUpperCase()]],
    200,
    check('userId in upper case', (items) => items.length > 0 && items.every((i) => i.userId === user.id)),
  );
  events(
    'with the family login.*',
    [
      ['type', 'login.*'],
      ['limit', '100'],
    ],
    200,
    check('login.*', (items) => items.length > 0 && items.every((i) => String(i.type).startsWith('login.'))),
  );
  for (const id of [
    'not-a-uuid',
    `{${user.id}}`,
    user.id.replaceAll('-', ''),
    '%00',
    '\u0000',
    `${user.id},${admin.id}`,
  ])
    events(`with userId=${id.slice(0, 20)}`, [['userId', id]], 400);
  for (const limit of ['0', '101', '1.5', '-1', 'ten', ''])
    events(`with limit=${limit || '(empty)'}`, [['limit', limit]], 400);
  events('with limit=100', [['limit', '100']], 200);
  // Cursors: only positions the server hands out.
  for (const [what, cursor] of [
    ['garbage', 'garbage'],
    ['of year 0', enc64(JSON.stringify(['0000-01-01T00:00:00.000Z', zero]))],
    ['of year +275760', enc64(JSON.stringify(['+275760-09-13T00:00:00.000Z', zero]))],
    ['of Feb 30', enc64(JSON.stringify(['2026-02-30T00:00:00.000Z', zero]))],
    ['without milliseconds', enc64(JSON.stringify(['2026-01-01T00:00:00Z', zero]))],
    ['with a non-UUID', enc64(JSON.stringify(['2026-01-01T00:00:00.000Z', 'x']))],
    ['of 201 characters', 'A'.repeat(201)],
  ] as Array<[string, string]>)
    events(`with a cursor ${what}`, [['cursor', cursor]], 400);
  events('with a real cursor', [['cursor', ctx.audit.eventsCursor]], 200);
  for (const [what, headers] of [
    ['as a user', bearer(user.access)],
    ["with a client's token", bearer(ctx.client.access)],
  ] as Array<[string, Record<string, string>]>)
    add({
      what: `GET /audit-events ${what}`,
      method: 'GET',
      path: '/audit-events',
      headers,
      status: 403,
      code: 'INSUFFICIENT_ROLE',
    });

  // 2. GET /users/me/activity.
  const activity = (what: string, queryString: string, status: number) =>
    add({
      what: `GET /users/me/activity ${what}`,
      method: 'GET',
      path: `/users/me/activity${queryString}`,
      headers: bearer(user.access),
      status,
      code: status === 400 ? 'VALIDATION_FAILED' : undefined,
    });
  activity('', '', 200);
  activity('with a real cursor', `?cursor=${ctx.audit.activityCursor}`, 200);
  activity('with a cursor of year 0', `?cursor=${enc64(JSON.stringify(['0000-01-01T00:00:00.000Z', zero]))}`, 400);
  activity('with limit twice', '?limit=1&limit=2', 400);
  activity('with a type filter', '?type=login.*', 400);

  // 3. GET /users?q=: 1–100 characters, one q, no NUL; %, _ and \ match only themselves.
  search('with q=%00', 'q=%00', 400);
  search('with an empty q', 'q=', 400);
  search('with q twice', 'q=a&q=b', 400);
  search('with q[]', `q[]=${pct(user.username)}`, 400);
  search('with 101 characters', `q=${'a'.repeat(101)}`, 400);
  search(
    'with 100 characters',
    `q=${'a'.repeat(100)}`,
    200,
    check('100 a', (items) => items.length === 0),
  );
  for (const literal of ['%', '_', '\\', '%_%', '\\%'])
    search(
      `with q=${literal}`,
      `q=${pct(literal)}&limit=100`,
      200,
      check(`q=${literal}`, (items) =>
        items.every((i) =>
          [i.username, i.email, i.displayName].some((f) => typeof f === 'string' && f.includes(literal)),
        ),
      ),
    );
  search(
    "with the batch user's name in upper case",
    `q=${pct(user.username.toUpperCase())}`,
    200,
    check('username upper case', (items) => items.length === 1 && items[0]!.id === user.id),
  );

  // 4. GET /users/:id and the admin session routes.
  const admin_ = (what: string, method: string, path: string, status: number, code?: string, after?: Probe['after']) =>
    add({ what: `${method} ${what}`, method, path, headers: asAdmin, status, code, after });
  const ok = (what: string, test: (o: Outcome) => boolean) => (o: Outcome, failures: string[]) => {
    if (!test(o)) failures.push(`probe ${what}: unexpected answer ${o.text.slice(0, 300)}`);
  };
  admin_(
    '/users/<user>',
    'GET',
    `/users/${user.id}`,
    200,
    undefined,
    ok('GET /users/<user>', (o) => {
      const u = o.json as { id?: string; disabled?: unknown };
      return u.id === user.id && u.disabled === false;
    }),
  );
  admin_(
    '/users/<USER>',
    'GET',
    `/users/${user.id.toUpperCase()}`,
    200,
    undefined,
    ok('GET /users/<USER>', (o) => (o.json as { id?: string }).id === user.id),
  );
  admin_('/users/<unknown>', 'GET', `/users/${randomUUID()}`, 404, 'USER_NOT_FOUND');
  admin_('/users/<not a uuid>', 'GET', '/users/not-a-uuid', 404, 'USER_NOT_FOUND');
  // NUL in any path parameter is refused before the id is looked at.
  admin_('/users/<%00>', 'GET', '/users/%00', 400, 'VALIDATION_FAILED');
  admin_(
    '/users/<admin>/sessions',
    'GET',
    `/users/${admin.id}/sessions`,
    200,
    undefined,
    ok('admin sessions', (o) => Array.isArray(o.json) && (o.json as unknown[]).length > 0),
  );
  admin_(
    '/users/<user>/sessions',
    'GET',
    `/users/${user.id}/sessions`,
    200,
    undefined,
    ok('user sessions', (o) => (o.json as Array<{ id: string }>).some((s) => s.id === ctx.sessionId)),
  );
  admin_('/users/<unknown>/sessions', 'GET', `/users/${randomUUID()}/sessions`, 404, 'USER_NOT_FOUND');
  admin_('/users/<unknown>/sessions', 'DELETE', `/users/${randomUUID()}/sessions`, 404, 'USER_NOT_FOUND');
  admin_('/users/<not a uuid>/sessions', 'DELETE', '/users/x/sessions', 404, 'USER_NOT_FOUND');
  admin_(
    "/users/<member>/sessions/<the user's session>",
    'DELETE',
    `/users/${member.id}/sessions/${ctx.sessionId}`,
    404,
    'NOT_FOUND',
  );
  admin_('/users/<user>/sessions/<unknown>', 'DELETE', `/users/${user.id}/sessions/${randomUUID()}`, 404, 'NOT_FOUND');
  admin_('/users/<user>/sessions/<not a uuid>', 'DELETE', `/users/${user.id}/sessions/not-a-uuid`, 404, 'NOT_FOUND');
  admin_('/users/<user>/sessions/<%00>', 'DELETE', `/users/${user.id}/sessions/%00`, 400, 'VALIDATION_FAILED');
  add({
    what: 'GET /users/<user> as the user',
    method: 'GET',
    path: `/users/${user.id}`,
    headers: bearer(user.access),
    status: 403,
    code: 'INSUFFICIENT_ROLE',
  });
  add({
    what: 'DELETE /users/<user>/sessions/<own> as the user',
    method: 'DELETE',
    path: `/users/${user.id}/sessions/${ctx.sessionId}`,
    headers: bearer(user.access),
    status: 403,
    code: 'INSUFFICIENT_ROLE',
  });
  add({
    what: 'the user is still signed in',
    method: 'GET',
    path: '/users/me',
    headers: bearer(user.access),
    status: 200,
  });
  // The admin ends the stranger's sessions: recorded with the admin as actor.
  admin_('/users/<stranger>/sessions', 'DELETE', `/users/${stranger.id}/sessions`, 204);
  admin_(
    '/users/<stranger>/sessions (after)',
    'GET',
    `/users/${stranger.id}/sessions`,
    200,
    undefined,
    ok('no sessions left', (o) => Array.isArray(o.json) && (o.json as unknown[]).length === 0),
  );
  add({
    what: "the stranger's token after the admin ended its sessions",
    method: 'GET',
    path: '/users/me',
    headers: bearer(stranger.access),
    status: 401,
  });
  events(
    'about the stranger, by the admin',
    [
      ['userId', stranger.id],
      ['actorId', admin.id],
    ],
    200,
    check(
      'audited with the admin as actor',
      (items) => items.length > 0 && items.every((i) => i.actorId === admin.id && i.userId === stranger.id),
    ),
  );
  return probes;
}

/** The claims of a JWT, unverified (what Gatehouse signed, or what a provider's token says). */
function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** RFC 6750 challenge of a refused bearer token. */
const INVALID_TOKEN_CHALLENGE = /^Bearer realm="gatehouse", error="invalid_token", error_description="[^"]+"$/;

/**
 * Federation (contract v2 §D), with the exact answer each request must get: provider tokens
 * as bearer tokens (jit, linked, roleMap admin, linked-only, tenants-only, every hostile
 * token), the session exchange (once, fresh, hostile and malformed subject tokens), linking
 * and unlinking by the owner and by an admin, RFC 8693 token exchange, and the deletion of a
 * passwordless account. Accounts and tokens the probes need are made here first.
 */
async function federationProbes(ctx: Context): Promise<Probe[]> {
  const f = ctx.fed;
  const tag = randomUUID().slice(0, 8);
  const sign = (claims: Record<string, unknown>, opts: Parameters<FakeIdp['sign']>[1] = {}) =>
    idp.sign(claims, { ttl: 900, ...opts });
  const [jitToken, linkedToken, adminToken, partnerLinked, partnerUnlinked, oldToken] = f.bearer as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const user = bearer(ctx.user.access);
  const admin = bearer((await loginAccount(app.url, ADMIN.username, ADMIN.password, undefined, CLEAN_IP)).access);
  const probes: Probe[] = [];
  const add = (p: Probe) => probes.push(p);
  const expectThat = (what: string, ok: (o: Outcome) => boolean) => (o: Outcome, failures: string[]) => {
    if (!ok(o)) failures.push(`probe ${what}: unexpected answer ${o.text.slice(0, 300)}`);
  };
  const exchange = (what: string, subjectToken: unknown, status: number, code?: string, after?: Probe['after']) =>
    add({
      what: `exchange ${what}`,
      method: 'POST',
      path: '/auth/federated/session',
      headers: freshAddress(),
      json: subjectToken === undefined ? {} : { subjectToken },
      status,
      code,
      after,
    });
  const link = (what: string, headers: Probe['headers'], json: unknown, status: number, code?: string) =>
    add({ what: `link ${what}`, method: 'POST', path: '/users/me/identities', headers, json, status, code });
  const refused = (what: string, token: string, reason: string) =>
    add({
      what: `bearer ${what}`,
      method: 'GET',
      path: '/users/me',
      headers: bearer(token),
      status: 401,
      code: 'INVALID_TOKEN',
      after: expectThat(what, (o) => o.headers['www-authenticate']?.includes(`error_description="${reason}"`) === true),
    });

  // 1. The providers' tokens as bearer tokens.
  add({
    what: 'a first-seen identity (jit) creates a passwordless account',
    method: 'GET',
    path: '/users/me',
    headers: bearer(jitToken),
    status: 200,
    after: expectThat('jit account', (o) => {
      const me = o.json as { hasPassword?: boolean; identities?: Array<Record<string, unknown>> };
      const [identity] = me.identities ?? [];
      return (
        me.hasPassword === false &&
        me.identities?.length === 1 &&
        identity?.issuer === idp.issuer &&
        identity.issuerName === 'fuzz-idp' &&
        identity.subject === claimsOf(jitToken).sub
      );
    }),
  });
  add({
    what: 'the linked identity acts as the batch user',
    method: 'GET',
    path: '/users/me',
    headers: bearer(linkedToken),
    status: 200,
    after: expectThat('linked identity', (o) => (o.json as { id?: string }).id === ctx.user.id),
  });
  add({
    what: "a provider's token on a session route",
    method: 'GET',
    path: '/auth/sessions',
    headers: bearer(linkedToken),
    status: 403,
    code: 'USER_SESSION_REQUIRED',
  });
  add({
    what: 'tenants-only: personal resources',
    method: 'GET',
    path: '/resources',
    headers: bearer(linkedToken),
    status: 403,
    code: 'INSUFFICIENT_TENANT_PERMISSION',
  });
  add({
    what: 'tenants-only: in an own tenant',
    method: 'GET',
    path: '/resources',
    headers: { ...bearer(linkedToken), 'x-tenant-id': ctx.tenant.id },
    status: 200,
  });
  add({
    what: 'tenants-only: every tenant of the caller',
    method: 'GET',
    path: '/resources?scope=memberships',
    headers: bearer(linkedToken),
    status: 200,
  });
  add({
    what: 'tenants-only: creating a tenant',
    method: 'POST',
    path: '/tenants',
    headers: bearer(linkedToken),
    json: { name: 'Not allowed', slug: `fz-fed-${tag}` },
    status: 403,
    code: 'TENANT_CREATION_DISABLED',
  });
  add({ what: 'roleMap admin', method: 'GET', path: '/users', headers: bearer(adminToken), status: 200 });
  add({
    what: 'no mapped role',
    method: 'GET',
    path: '/users',
    headers: bearer(jitToken),
    status: 403,
    code: 'INSUFFICIENT_ROLE',
  });
  add({
    what: 'linked-only, linked by an admin',
    method: 'GET',
    path: '/users/me',
    headers: bearer(partnerLinked),
    status: 200,
    after: expectThat('partner identity', (o) => (o.json as { id?: string }).id === ctx.tenant.member.id),
  });
  add({
    what: 'linked-only, not linked',
    method: 'GET',
    path: '/users/me',
    headers: bearer(partnerUnlinked),
    status: 403,
    code: 'FEDERATED_USER_NOT_PROVISIONED',
  });
  add({
    what: 'a token too old to exchange is still a bearer token',
    method: 'GET',
    path: '/users/me',
    headers: bearer(oldToken),
    status: 200,
  });
  refused('of an unknown issuer', await sign({ iss: 'http://127.0.0.1:1/unknown' }), 'unknown issuer');
  refused('for another audience', await sign({ aud: 'someone-else' }), 'claim aud invalid');
  refused('expired', await sign({}, { now: Math.floor(Date.now() / 1000) - 7200 }), 'expired');
  refused('living too long', await sign({}, { ttl: 200_000 }), 'lifetime too long');
  refused('with alg none', f.hostile[0]!, 'algorithm not allowed');
  // PostgreSQL text cannot hold U+0000: such a sub must be refused like any bad sub, not reach the database.
  add({
    what: 'bearer with a sub holding U+0000',
    method: 'GET',
    path: '/users/me',
    headers: bearer(await sign({ sub: `fz\u0000nul-${tag}` })),
    status: 401,
    code: 'INVALID_TOKEN',
    after: expectThat('NUL sub', (o) => INVALID_TOKEN_CHALLENGE.test(o.headers['www-authenticate'] ?? '')),
  });
  f.hostile.forEach((token, i) =>
    add({
      what: `hostile external token ${i} as a bearer token`,
      method: 'GET',
      path: '/users/me',
      headers: bearer(token),
      status: 401,
      code: 'INVALID_TOKEN',
      after: expectThat(`hostile ${i}`, (o) => INVALID_TOKEN_CHALLENGE.test(o.headers['www-authenticate'] ?? '')),
    }),
  );

  // 2. The session exchange.
  f.hostile.forEach((token, i) => exchange(`hostile token ${i}`, token, 401, 'FEDERATED_TOKEN_INVALID'));
  exchange('without subjectToken', undefined, 400, 'VALIDATION_FAILED');
  exchange('with a number', 42, 400, 'VALIDATION_FAILED');
  exchange('with an empty string', '', 400, 'VALIDATION_FAILED');
  exchange('with an array', [jitToken], 400, 'VALIDATION_FAILED');
  exchange('with an object', { token: jitToken }, 400, 'VALIDATION_FAILED');
  exchange('with 16,000 characters', 'x'.repeat(16_000), 401, 'FEDERATED_TOKEN_INVALID');
  exchange('with a body over 16 KiB', 'x'.repeat(16_500), 413, 'PAYLOAD_TOO_LARGE');
  add({
    what: 'exchange with another field',
    method: 'POST',
    path: '/auth/federated/session',
    headers: freshAddress(),
    json: { subjectToken: await sign({ sub: `fz-extra-${tag}` }), isAdmin: true },
    status: 400,
    code: 'VALIDATION_FAILED',
  });
  const once = await sign({ sub: `fz-once-${tag}` });
  exchange('a fresh token', once, 200, undefined, (o, failures) => {
    const body = o.json as { accessToken?: string; user?: { id?: string } };
    const claims = body.accessToken ? claimsOf(body.accessToken) : {};
    if (!refreshCookieOf(o) || JSON.stringify(claims.amr) !== '["fed"]' || claims.acr !== 'aal1')
      failures.push(`probe exchange a fresh token: no refresh cookie or wrong amr/acr: ${o.text.slice(0, 300)}`);
  });
  exchange('the same token again', once, 401, 'FEDERATED_TOKEN_REUSED');
  exchange('a token issued 400 s ago', oldToken, 401, 'FEDERATED_TOKEN_INVALID');
  exchange(
    'a token without iat',
    await sign({ sub: `fz-noiat-${tag}` }, { omit: ['iat'] }),
    401,
    'FEDERATED_TOKEN_INVALID',
  );
  exchange(
    'linked-only, not linked',
    await partnerIdp.sign({ sub: `fz-nobody-${tag}` }),
    403,
    'FEDERATED_USER_NOT_PROVISIONED',
  );
  exchange(
    'linked-only, linked by an admin',
    await partnerIdp.sign({ sub: claimsOf(partnerLinked).sub as string }),
    200,
    undefined,
    expectThat('partner exchange', (o) => (o.json as { user?: { id?: string } }).user?.id === ctx.tenant.member.id),
  );
  exchange('a token whose sub holds U+0000', await sign({ sub: `fz\u0000x-${tag}` }), 401, 'FEDERATED_TOKEN_INVALID');

  // 3. Linking and unlinking by the owner.
  const password = ctx.user.password;
  link(
    'with a wrong password',
    user,
    { subjectToken: await sign({ sub: `fz-wrongpw-${tag}` }), password: 'not it' },
    403,
    'INVALID_PASSWORD',
  );
  link('without the password', user, { subjectToken: await sign({ sub: `fz-nopw-${tag}` }) }, 400, 'VALIDATION_FAILED');
  const linkToken = await sign({ sub: `fz-link-${tag}` });
  add({
    what: 'link a fresh token, with the password',
    method: 'POST',
    path: '/users/me/identities',
    headers: user,
    json: { subjectToken: linkToken, password },
    status: 201,
    after: expectThat('link', (o) => {
      const id = o.json as Record<string, unknown>;
      return id.issuer === idp.issuer && id.issuerName === 'fuzz-idp' && id.subject === `fz-link-${tag}`;
    }),
  });
  link('the same token again', user, { subjectToken: linkToken, password }, 401, 'FEDERATED_TOKEN_REUSED');
  exchange('a token used to link', linkToken, 401, 'FEDERATED_TOKEN_REUSED');
  link(
    'an identity that has an account',
    user,
    { subjectToken: await sign({ sub: claimsOf(jitToken).sub as string }), password },
    409,
    'IDENTITY_ALREADY_LINKED',
  );
  link('a hostile token', user, { subjectToken: f.hostile[0], password }, 401, 'FEDERATED_TOKEN_INVALID');
  link('a token issued 400 s ago', user, { subjectToken: oldToken, password }, 401, 'FEDERATED_TOKEN_INVALID');
  link(
    'from an account without a password',
    bearer(f.session.access),
    { subjectToken: await sign({ sub: `fz-nolocal-${tag}` }), password: 'x' },
    403,
    'NO_LOCAL_PASSWORD',
  );
  link(
    'a token whose email holds U+0000',
    user,
    { subjectToken: await sign({ sub: `fz-nulmail-${tag}`, email: 'a\u0000b@example.com' }), password },
    201,
  );
  add({
    what: 'list the identities',
    method: 'GET',
    path: '/users/me/identities',
    headers: user,
    status: 200,
    after: expectThat('identities', (o) => {
      const subjects = (o.json as Array<{ subject: string }>).map((i) => i.subject);
      return subjects.includes(f.linkedSub) && subjects.includes(`fz-link-${tag}`);
    }),
  });
  for (const [what, id, headers] of [
    ['not a UUID', 'not-a-uuid', user],
    ['unknown', randomUUID(), user],
    ["another account's", f.session.identityId, user],
  ] as const) {
    add({
      what: `unlink ${what}`,
      method: 'DELETE',
      path: `/users/me/identities/${id}`,
      headers,
      status: 404,
      code: 'NOT_FOUND',
    });
  }
  add({
    what: 'unlink the only way in of a passwordless account',
    method: 'DELETE',
    path: `/users/me/identities/${f.session.identityId}`,
    headers: bearer(f.session.access),
    status: 409,
    code: 'LAST_LOGIN_METHOD',
  });

  // 4. Linking and unlinking by an admin.
  const adminLink = (
    what: string,
    headers: Probe['headers'],
    id: string,
    json: unknown,
    status: number,
    code?: string,
  ) =>
    add({ what: `admin link ${what}`, method: 'POST', path: `/users/${id}/identities`, headers, json, status, code });
  const adminSub = `fz-adm-${tag}`;
  adminLink(
    'an unconfigured issuer',
    admin,
    ctx.user.id,
    { issuer: 'http://127.0.0.1:1/unknown', subject: 's' },
    400,
    'VALIDATION_FAILED',
  );
  adminLink('by a non-admin', user, ctx.user.id, { issuer: idp.issuer, subject: adminSub }, 403, 'INSUFFICIENT_ROLE');
  adminLink(
    'to an unknown user',
    admin,
    randomUUID(),
    { issuer: idp.issuer, subject: adminSub },
    404,
    'USER_NOT_FOUND',
  );
  adminLink('to a non-UUID', admin, 'not-a-uuid', { issuer: idp.issuer, subject: adminSub }, 404, 'USER_NOT_FOUND');
  adminLink(
    "to a client's service user",
    admin,
    ctx.client.serviceUserId,
    { issuer: idp.issuer, subject: adminSub },
    400,
    'VALIDATION_FAILED',
  );
  adminLink('with an empty subject', admin, ctx.user.id, { issuer: idp.issuer, subject: '' }, 400, 'VALIDATION_FAILED');
  adminLink(
    'with a 256-character subject',
    admin,
    ctx.user.id,
    { issuer: idp.issuer, subject: 's'.repeat(256) },
    400,
    'VALIDATION_FAILED',
  );
  adminLink(
    'with a NUL in the subject',
    admin,
    ctx.user.id,
    { issuer: idp.issuer, subject: 'a\u0000b' },
    400,
    'VALIDATION_FAILED',
  );
  adminLink(
    'with another field',
    admin,
    ctx.user.id,
    { issuer: idp.issuer, subject: adminSub, userId: ctx.admin.id },
    400,
    'VALIDATION_FAILED',
  );
  adminLink('a new identity', admin, ctx.user.id, { issuer: idp.issuer, subject: adminSub }, 201);
  adminLink(
    'the same identity again',
    admin,
    ctx.tenant.member.id,
    { issuer: idp.issuer, subject: adminSub },
    409,
    'IDENTITY_ALREADY_LINKED',
  );
  for (const [what, path, headers, status, code] of [
    ['an unknown identity', `/users/${ctx.user.id}/identities/${randomUUID()}`, admin, 404, 'NOT_FOUND'],
    ['of an unknown user', `/users/${randomUUID()}/identities/${randomUUID()}`, admin, 404, 'USER_NOT_FOUND'],
    ['by a non-admin', `/users/${f.session.userId}/identities/${f.session.identityId}`, user, 403, 'INSUFFICIENT_ROLE'],
    [
      'the only way in',
      `/users/${f.session.userId}/identities/${f.session.identityId}`,
      admin,
      409,
      'LAST_LOGIN_METHOD',
    ],
  ] as const) {
    add({ what: `admin unlink ${what}`, method: 'DELETE', path, headers, status, code });
  }

  // 5. RFC 8693 token exchange.
  const plain = await plainClient();
  const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
  const basicOf = (c: { clientId: string; secret: string }) => ({
    'content-type': 'application/x-www-form-urlencoded',
    authorization: `Basic ${Buffer.from(`${c.clientId}:${c.secret}`).toString('base64')}`,
  });
  const grant = async (fields: Record<string, string> = {}) => ({
    grant_type: TOKEN_EXCHANGE,
    subject_token: await sign({ sub: f.linkedSub }),
    subject_token_type: SUBJECT_TYPES[1]!,
    ...fields,
  });
  const tokenProbe = (
    what: string,
    client: { clientId: string; secret: string },
    fields: Record<string, string>,
    status: number,
    code?: string,
    after?: Probe['after'],
  ) =>
    add({
      what: `token exchange ${what}`,
      method: 'POST',
      path: '/oauth/token',
      headers: basicOf(client),
      raw: form(fields),
      status,
      code,
      after,
    });
  tokenProbe('by a client without tokenExchange', plain, await grant(), 400, 'UNAUTHORIZED_CLIENT');
  tokenProbe(
    'for the batch user',
    ctx.client,
    await grant(),
    200,
    undefined,
    expectThat('token exchange', (o) => {
      const body = o.json as { access_token?: string; issued_token_type?: string; scope?: string };
      const claims = body.access_token ? claimsOf(body.access_token) : {};
      const act = claims.act as { sub?: string; client_id?: string } | undefined;
      return (
        body.issued_token_type === 'urn:ietf:params:oauth:token-type:access_token' &&
        claims.sub === ctx.user.id &&
        act?.client_id === ctx.client.clientId &&
        act.sub === ctx.client.serviceUserId &&
        !(body.scope ?? '').split(' ').includes('introspection')
      );
    }),
  );
  const { subject_token: _omitted, ...withoutToken } = await grant();
  tokenProbe('without subject_token', ctx.client, withoutToken, 400, 'INVALID_REQUEST');
  tokenProbe(
    'with a SAML token type',
    ctx.client,
    await grant({ subject_token_type: 'urn:ietf:params:oauth:token-type:saml2' }),
    400,
    'INVALID_REQUEST',
  );
  tokenProbe(
    'asking for an ID token',
    ctx.client,
    await grant({ requested_token_type: SUBJECT_TYPES[2]! }),
    400,
    'INVALID_REQUEST',
  );
  tokenProbe(
    'with an actor_token',
    ctx.client,
    await grant({ actor_token: ctx.client.access, actor_token_type: SUBJECT_TYPES[1]! }),
    400,
    'INVALID_REQUEST',
  );
  tokenProbe('asking for introspection', ctx.client, await grant({ scope: 'introspection' }), 400, 'INVALID_SCOPE');
  tokenProbe(
    'with a hostile subject token',
    ctx.client,
    await grant({ subject_token: f.hostile[2]! }),
    400,
    'INVALID_REQUEST',
  );
  tokenProbe(
    'for a linked-only identity not linked',
    ctx.client,
    await grant({ subject_token: partnerUnlinked }),
    400,
    'INVALID_REQUEST',
  );
  add({
    what: 'the exchanged token acts as the user',
    method: 'GET',
    path: '/users/me',
    headers: bearer(f.exchanged),
    status: 200,
    after: expectThat('exchanged token', (o) => (o.json as { id?: string }).id === ctx.user.id),
  });
  add({
    what: 'the exchanged token on a session route',
    method: 'POST',
    path: '/auth/logout-all',
    headers: bearer(f.exchanged),
    status: 403,
    code: 'USER_SESSION_REQUIRED',
  });

  // 6. A passwordless account deletes itself from a fresh session.
  const deleteSub = `fz-delete-${tag}`;
  const signedIn = expectStatus(
    'exchange for the deletion probes',
    await call(app.url, 'POST', '/auth/federated/session', {
      headers: freshAddress(),
      json: { subjectToken: await sign({ sub: deleteSub, preferred_username: `fzdel_${tag}` }) },
    }),
    200,
  ) as { accessToken: string; user: { username: string } };
  const me = bearer(signedIn.accessToken);
  const remove = (what: string, headers: Probe['headers'], json: unknown, status: number, code?: string) =>
    add({ what: `delete ${what}`, method: 'DELETE', path: '/users/me', headers, json, status, code });
  remove('with the wrong confirmation', me, { confirm: `${signedIn.user.username}x` }, 400, 'CONFIRMATION_MISMATCH');
  remove('with a password instead', me, { password: 'anything' }, 400, 'CONFIRMATION_MISMATCH');
  remove('with neither', me, {}, 400, 'VALIDATION_FAILED');
  remove(
    "with the provider's token",
    bearer(await sign({ sub: deleteSub })),
    { confirm: signedIn.user.username },
    403,
    'USER_SESSION_REQUIRED',
  );
  remove('a password account by confirmation', user, { confirm: ctx.user.username }, 400, 'VALIDATION_FAILED');
  remove('with the username', me, { confirm: signedIn.user.username }, 204);
  add({ what: 'the deleted account', method: 'GET', path: '/users/me', headers: me, status: 401 });
  return probes;
}

/** A client without tokenExchange (created once). */
let plainClientCache: { clientId: string; secret: string } | undefined;
async function plainClient(): Promise<{ clientId: string; secret: string }> {
  if (!plainClientCache) {
    const admin = await loginAccount(app.url, ADMIN.username, ADMIN.password, undefined, CLEAN_IP);
    const { client, secret } = expectStatus(
      'create a client without token exchange',
      await call(app.url, 'POST', '/oauth/clients', {
        headers: { ...bearer(admin.access), ...CLEAN_IP },
        json: { name: 'fuzz plain client', allowedScopes: ['profile'] },
      }),
      201,
    ) as { client: { clientId: string }; secret: { value: string } };
    plainClientCache = { clientId: client.clientId, secret: secret.value };
  }
  return plainClientCache;
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

      // 1b. Hostile tenant contexts (contract v2 §E) and federation (§D), with the exact
      //     answer each must get.
      const fedProbes = await federationProbes(ctx0);
      const issue18Probes = await auditProbes(ctx0);
      for (const p of [...tenantProbes(ctx0), ...fedProbes, ...issue18Probes]) {
        const o = await call(app.url, p.method, p.path, {
          headers: { ...CLEAN_IP, ...p.headers },
          ...(p.json === undefined ? {} : { json: p.json }),
          ...(p.raw === undefined ? {} : { raw: p.raw }),
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

      // 3. Fuzzed requests (federation routes and external bearer tokens counted apart), in batches with a fresh user (fuzzed logouts and password changes
      //    may end a batch's session: that is fine, the next batch starts anew).
      let fuzzed = 0;
      let batch = 0;
      let federationRequests = 0;
      let externalBearerRequests = 0;
      /** The issue 18 routes and GET /users: requests, those with the admin's token, their statuses. */
      const adminRoutes = { requests: 0, asAdmin: 0, statuses: new Map<string, number>() };
      while (fuzzed < TOTAL) {
        batch += 1;
        // A fresh admin session per batch: half the requests to the admin routes carry it, and a
        // fuzzed logout of the last batch may have ended the previous one.
        if (batch > 1) admin = await adminFresh();
        const ctx = batch === 1 ? ctx0 : await newContext(admin);
        const specs = fc.sample(requestSpec, { numRuns: BATCH, seed: SEED + batch });
        let next = 0;
        const sender = async () => {
          while (next < specs.length) {
            const spec = specs[next++]!;
            const req = materialize(spec, ctx);
            if (
              FEDERATION_ROUTES.has(spec.route[1]) ||
              (spec.body.kind === 'subject' && spec.route[1] === '/oauth/token')
            )
              federationRequests += 1;
            if (EXTERNAL_AUTH.has(spec.auth.kind)) externalBearerRequests += 1;
            const adminRoute =
              ADMIN_READ_ROUTES.has(`${spec.route[0]} ${spec.route[1]}`) || spec.route[1] === '/users/me/activity';
            if (adminRoute) adminRoutes.requests += 1;
            if (adminRoute && req.headers.authorization === `Bearer ${ctx.admin.access}`) adminRoutes.asAdmin += 1;
            const o = await call(app.url, req.method, req.path, {
              headers: req.headers,
              raw: req.payload,
              agent,
              timeoutMs: 15_000,
            });
            check(`${req.method} ${req.path.slice(0, 80)} [batch ${batch}]`, o);
            if (adminRoute) {
              const key = String(o.status ?? o.error);
              adminRoutes.statuses.set(key, (adminRoutes.statuses.get(key) ?? 0) + 1);
            }
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

      const jwksFetches = idp.jwksHits;
      const summary = {
        seed: SEED,
        requests: sent,
        fuzzed,
        token_attacks: attackStatuses.length,
        federation: {
          probes: fedProbes.length,
          fuzzed_on_federation_routes: federationRequests,
          fuzzed_with_external_bearer: externalBearerRequests,
          jwks_fetches: { 'fuzz-idp': jwksFetches, partner: partnerIdp.jwksHits },
          canary_hits: canary.hits(),
        },
        raw_malformed: rawResults.length,
        issue18: {
          probes: issue18Probes.length,
          fuzzed: adminRoutes.requests,
          with_admin_token: adminRoutes.asAdmin,
          statuses: Object.fromEntries([...adminRoutes.statuses].sort(([a], [b]) => a.localeCompare(b))),
        },
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
      // jku / x5u / jwk headers are never followed, and unknown kids refetch at most once per
      // FEDERATION_JWKS_COOLDOWN (30 s): the first fetch, one per cooldown, one per cache TTL.
      expect(canary.hits()).toBe(0);
      expect(jwksFetches).toBeGreaterThan(0);
      expect(jwksFetches).toBeLessThanOrEqual(Math.ceil((performance.now() - t0) / 30_000) + 2);
      expect(federationRequests).toBeGreaterThan(1_000);
      expect(externalBearerRequests).toBeGreaterThan(1_000);
      // The admin routes are reached with the admin's token, and many requests get past validation.
      expect(adminRoutes.asAdmin).toBeGreaterThan(TOTAL / 25);
      expect(adminRoutes.statuses.get('200') ?? 0).toBeGreaterThan(TOTAL / 200);
      expect(app.dead).toBe(false);
      expect(health.status).toBe(200);
      expect(sent).toBeGreaterThanOrEqual(20_000);
      expect(rssEnd).toBeDefined();
      expect(rssEnd!).toBeLessThan(rssAfterWarmup * 1.5);
    },
    60_000 + TOTAL * 6,
  );
});
