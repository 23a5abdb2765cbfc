// Scenario — hostile input on the real-time endpoint (contract v2 §F), at volume, against the
// built server as a process. Property-based (fast-check, RELIABILITY_SEED replays a run):
//
// - Upgrades on raw TCP: random methods, paths, Host (missing, bogus), Origin (ours, theirs,
//   case and slash variants, repeated, empty), Sec-WebSocket-Protocol lists (well-formed or
//   not, repeated, huge), keys, versions, Upgrade and Connection headers, X-Forwarded-For.
//   Each answer is checked against what the contract and RFC 6455 call for: a 101 only for
//   an acceptable handshake (selecting gatehouse.v1 exactly when offered), the gateway's
//   refusals (403 ORIGIN_NOT_ALLOWED, 400 VALIDATION_FAILED) with the contract's error body,
//   the other paths' sockets destroyed, never a 5xx.
// - Frames on `ws` sockets, before and after `auth`: random JSON messages (known and unknown
//   events, prototype keys such as __proto__ and constructor in the message, in `data` and in
//   the topics, wrong types, odd ids), random and hand-made tokens (valid, another user's, a
//   machine client's with and without events:read, expired, revoked, forged, garbage), tenant
//   topics (own, a stranger's, random, malformed, too many), text that is not JSON, binary
//   frames, invalid UTF-8, deep nesting within the 4 KiB limit, huge numbers, frames over the
//   limit and exactly at it, bursts over the message rate. The answer to a socket's first
//   fuzzed frame is predicted from the contract (a close code and reason, or the event that
//   answers it, with its `id` echoed); every socket then ends with a close of the contract
//   (never 4500 INTERNAL_ERROR, 1011 or an abnormal 1006) or answers a final barrier message.
// - Framing attacks on raw sockets after a 101 (unmasked frames, reserved bits and opcodes,
//   fragmented and oversized control frames, 2^63 lengths, bad close codes, byte-by-byte
//   frames), each with the close RFC 6455 calls for, and random bytes.
//
// Afterwards the process is alive, logged no error, and the HTTP API and the real-time path
// still work. A second test asks the contract's error body of every refused upgrade, the
// malformed ones included (RFC 6455 handshake errors, a Host that is not a host).
import { createPrivateKey, randomBytes, randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { es256KeyPair, signEs256, signHs256, unsignedJwt } from '../support/jwt.js';
import { baseEnv, killAll, sharedSecrets, startApp, type AppProcess } from './support/app.js';
import { bearer, call, isContractError } from './support/http.js';
import { round } from './support/net.js';
import { freshSharedDatabase } from './support/shared-db.js';
import { loginAccount, signupAccount, type Account } from './support/users.js';
import {
  Sock,
  closePayload,
  encodeFrame,
  handshake,
  isContractBody,
  pool,
  rawWebSocket,
  type Closed,
  type Frame,
  type RawOutcome,
} from './support/ws.js';

const SEED = Number(process.env.RELIABILITY_SEED ?? Math.floor(Math.random() * 2 ** 31));
const UPGRADES = Number(process.env.RELIABILITY_WS_UPGRADES ?? 2_000);
const SOCKETS = Number(process.env.RELIABILITY_WS_SOCKETS ?? 2_500);
const RANDOM_BYTE_SOCKETS = 150;
const LANES = 8; // sockets in flight; each lane has its own accounts (per-user caps stay out of the way)
const IDLE = 10; // sockets that never authenticate: 4408 after WS_AUTH_TIMEOUT
const AUTH_TIMEOUT_S = 2;
const MAX_BYTES = 4096; // WS_MAX_MESSAGE_BYTES (default)
const ADMIN = { username: 'wsfuzz_admin', password: 'wsfuzz admin password' };
const CORS_ORIGIN = 'http://app.wsfuzz.test';
const PUBLIC_URL = 'http://gatehouse.wsfuzz.test:8443';
const APP_URL = 'https://ui.wsfuzz.test';
/** CORS_ORIGINS ∪ origin(PUBLIC_URL) ∪ origin(APP_URL) (contract v2 §F, Upgrade). */
const ALLOWED_ORIGINS = new Set([CORS_ORIGIN, PUBLIC_URL, APP_URL]);
const SUBPROTOCOL = 'gatehouse.v1';

/** Closes the server may send (code and reason), by the contract's table; 1007 is RFC 6455's for invalid UTF-8. */
const ALLOWED_CLOSES = new Set([
  '1001 ',
  '1007 ',
  '1009 ',
  '1013 ',
  '1013 TRY_AGAIN_LATER',
  '4400 BAD_MESSAGE',
  '4401 UNAUTHORIZED',
  '4401 INVALID_TOKEN',
  '4401 TOKEN_EXPIRED',
  '4403 IDENTITY_CHANGED',
  '4403 INSUFFICIENT_SCOPE',
  '4408 AUTH_TIMEOUT',
  '4429 TOO_MANY_CONNECTIONS',
  '4429 TOO_MANY_MESSAGES',
]);
const SERVER_EVENTS = new Set([
  'auth.ok',
  'auth.expiring',
  'subscribed',
  'unsubscribed',
  'error',
  'session.created',
  'session.revoked',
  'resource.created',
  'resource.updated',
  'resource.deleted',
  'tenant.member_added',
  'tenant.member_removed',
]);

let app: AppProcess;
let secrets: ReturnType<typeof sharedSecrets>;
let wsUrl: string;
let admin: Account;
let lanes: Lane[];

beforeAll(async () => {
  const databaseUrl = await freshSharedDatabase('wsfuzz');
  secrets = sharedSecrets();
  app = await startApp(
    baseEnv({
      DATABASE_URL: databaseUrl,
      MIGRATE_ON_START: 'true',
      ADMIN_USERNAME: ADMIN.username,
      ADMIN_PASSWORD: ADMIN.password,
      CORS_ORIGINS: CORS_ORIGIN,
      PUBLIC_URL,
      APP_URL,
      // Every fuzzed socket comes from its own X-Forwarded-For address: the per-address
      // limits (pending sockets, failed authentications) are probed on purpose only.
      TRUST_PROXY: '1',
      WS_AUTH_TIMEOUT: String(AUTH_TIMEOUT_S),
      ...secrets,
    }),
  );
  wsUrl = `ws://127.0.0.1:${app.port}/ws`;
  admin = await loginAccount(app.url, ADMIN.username, ADMIN.password);
  lanes = await pool(
    Array.from({ length: LANES }, (_, i) => i),
    4,
    (i) => newLane(i),
  );
});

afterAll(() => {
  killAll();
  app?.cleanup();
});

// ---------------------------------------------------------------------------------------
// Accounts and tokens of a lane

/** What `auth` with a token gets: on a fresh socket, and on one authenticated as the lane's user. */
interface TokenOutcome {
  fresh: Expectation;
  authed: Expectation;
}

type Expectation = { close: string } | { reply: string; code?: string; userId?: string };

interface Lane {
  user: Account;
  stranger: Account;
  tenantId: string;
  otherTenantId: string;
  /** Placeholder → value, for the fuzzed messages ($USER, $TENANT ...). */
  values: Record<string, string>;
  /** Every token the fuzz may send, and what it gets. */
  outcomes: Map<string, TokenOutcome>;
}

const PLACEHOLDER_TOKENS = [
  '$USER',
  '$STRANGER',
  '$CLIENT',
  '$CLIENT_NO_EVENTS',
  '$EXPIRED',
  '$REVOKED',
  '$REFRESH',
  '$ATTACK0',
  '$ATTACK1',
  '$ATTACK2',
  '$ATTACK3',
  '$ATTACK4',
  '$ATTACK5',
  '$ATTACK6',
  '$ATTACK7',
] as const;
const PLACEHOLDER_TOPICS = ['$TENANT', '$TENANT_UPPER', '$OTHER_TENANT', '$RANDOM_TENANT'] as const;

async function expectOk<T>(
  what: string,
  p: Promise<{ status?: number; json?: unknown; text: string }>,
  status: number,
) {
  const o = await p;
  if (o.status !== status) throw new Error(`${what}: ${o.status} ${o.text.slice(0, 300)}`);
  return o.json as T;
}

async function newTenant(owner: Account, label: string): Promise<string> {
  const slug = `wsf-${label}-${randomBytes(4).toString('hex')}`;
  const t = await expectOk<{ id: string }>(
    `create tenant ${label}`,
    call(app.url, 'POST', '/tenants', { headers: bearer(owner.access), json: { name: `WS fuzz ${label}`, slug } }),
    201,
  );
  return t.id;
}

async function clientToken(label: string, allowedScopes: string[]): Promise<{ token: string; userId: string }> {
  const created = await expectOk<{ client: { clientId: string; serviceUserId: string }; secret: { value: string } }>(
    `create client ${label}`,
    call(app.url, 'POST', '/oauth/clients', { headers: bearer(admin.access), json: { name: label, allowedScopes } }),
    201,
  );
  const basic = Buffer.from(`${created.client.clientId}:${created.secret.value}`).toString('base64');
  const token = await expectOk<{ access_token: string }>(
    `token for ${label}`,
    call(app.url, 'POST', '/oauth/token', {
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${basic}` },
      raw: 'grant_type=client_credentials',
    }),
    200,
  );
  return { token: token.access_token, userId: created.client.serviceUserId };
}

/** Tokens signed with this deployment's key or forged, all refused with 4401 INVALID_TOKEN. */
function forgedTokens(real: string): string[] {
  const [h, p, sig] = real.split('.') as [string, string, string];
  const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as Record<string, unknown>;
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
  const key = createPrivateKey(secrets.JWT_KEYS);
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return [
    `${unsignedJwt({ ...header, alg: 'none' }, payload)}.`,
    signHs256({ ...header, alg: 'HS256' }, payload, secrets.publicPem),
    `${h}.${b64({ ...payload, sub: randomUUID() })}.${sig}`,
    signEs256({ ...header }, { ...payload, aud: 'someone-else', jti: randomUUID() }, key),
    signEs256({ ...header, typ: 'JWT' }, { ...payload, jti: randomUUID() }, key),
    signEs256({ ...header, kid: 'not-a-key' }, payload, key),
    signEs256({ ...header }, { ...payload, jti: randomUUID() }, es256KeyPair().privateKey),
    `${b64({ ...header, jku: 'http://127.0.0.1:1/jwks' })}.${p}.${sig}`,
  ];
}

async function newLane(i: number): Promise<Lane> {
  const user = await signupAccount(app.url, `wsf${i}`);
  const stranger = await signupAccount(app.url, `wsx${i}`);
  const tenantId = await newTenant(user, `own${i}`);
  const otherTenantId = await newTenant(stranger, `other${i}`);
  // A second session of the user, logged out: its access token is revoked.
  const gone = await loginAccount(app.url, user.username, user.password);
  await expectOk('logout', call(app.url, 'POST', '/auth/logout', { headers: bearer(gone.access) }), 204);
  const withEvents = await clientToken(`wsf-events-${i}`, ['events:read', 'resources:read']);
  const withoutEvents = await clientToken(`wsf-noevents-${i}`, ['resources:read']);
  const [h, p] = user.access.split('.') as [string, string];
  const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as Record<string, unknown>;
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
  const now = Math.floor(Date.now() / 1000);
  const expired = signEs256(
    header,
    { ...payload, iat: now - 7200, exp: now - 3600, jti: randomUUID() },
    createPrivateKey(secrets.JWT_KEYS),
  );
  const attacks = forgedTokens(user.access);
  const values: Record<string, string> = {
    $USER: user.access,
    $STRANGER: stranger.access,
    $CLIENT: withEvents.token,
    $CLIENT_NO_EVENTS: withoutEvents.token,
    $EXPIRED: expired,
    $REVOKED: gone.access,
    $REFRESH: user.refresh,
    ...Object.fromEntries(attacks.map((t, k) => [`$ATTACK${k}`, t])),
    $TENANT: `tenant:${tenantId}`,
    $TENANT_UPPER: `tenant:${tenantId.toUpperCase()}`,
    $OTHER_TENANT: `tenant:${otherTenantId}`,
  };
  const ok = (userId: string): Expectation => ({ reply: 'auth.ok', userId });
  const closes = (close: string): TokenOutcome => ({ fresh: { close }, authed: { close } });
  const outcomes = new Map<string, TokenOutcome>([
    [user.access, { fresh: ok(user.id), authed: ok(user.id) }],
    [stranger.access, { fresh: ok(stranger.id), authed: { close: '4403 IDENTITY_CHANGED' } }],
    [withEvents.token, { fresh: ok(withEvents.userId), authed: { close: '4403 IDENTITY_CHANGED' } }],
    [withoutEvents.token, closes('4403 INSUFFICIENT_SCOPE')],
    [expired, closes('4401 TOKEN_EXPIRED')],
    [gone.access, closes('4401 INVALID_TOKEN')],
    [user.refresh, closes('4401 INVALID_TOKEN')],
    ...attacks.map((t): [string, TokenOutcome] => [t, closes('4401 INVALID_TOKEN')]),
  ]);
  return { user, stranger, tenantId, otherTenantId, values, outcomes };
}

/** Replaces placeholders ($USER, $TENANT ...) in every string of a value (keys kept as they are). */
function materialize(value: unknown, lane: Lane): unknown {
  if (typeof value === 'string') return substitute(value, lane);
  if (Array.isArray(value)) return value.map((v) => materialize(v, lane));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value))
      Object.defineProperty(out, k, {
        value: materialize(v, lane),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    return out;
  }
  return value;
}

function substitute(text: string, lane: Lane): string {
  return text
    .replace(/\$RANDOM_TENANT/g, () => `tenant:${randomUUID()}`)
    .replace(/\$[A-Z_]+[0-9]?/g, (m) => lane.values[m] ?? m);
}

// ---------------------------------------------------------------------------------------
// Arbitraries: frames

const nasty = fc.constantFrom(
  '',
  ' ',
  '\u0000',
  '\ud800',
  '\udfff\ud800',
  '💥'.repeat(20),
  '\u202e\u200b\ufeff',
  '${jndi:ldap://x}',
  "' OR 1=1 --",
  '<script>alert(1)</script>',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'NaN',
  '1e309',
);
const anyString = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  { weight: 3, arbitrary: nasty },
);
const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: anyString },
  { weight: 2, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.array(anyString, { maxLength: 4 }) },
);
/** Keys that pollute prototypes when code merges objects carelessly. */
const protoKey = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf');
/** An object with own keys (a `__proto__` key included as an own property, as JSON.parse makes it). */
const ownObject = (entries: fc.Arbitrary<Array<[string, unknown]>>) =>
  entries.map((list) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of list)
      Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    return out;
  });

const tokenValue = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...PLACEHOLDER_TOKENS) },
  { weight: 2, arbitrary: anyString },
  { weight: 1, arbitrary: fc.string({ minLength: 100, maxLength: 3000 }) },
  { weight: 1, arbitrary: anyJson },
);
const topic = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...PLACEHOLDER_TOPICS) },
  { weight: 1, arbitrary: fc.uuid().map((u) => `tenant:${u}`) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'tenant:',
      'tenant:not-a-uuid',
      'TENANT:00000000-0000-4000-8000-000000000000',
      'user:00000000-0000-4000-8000-000000000000',
      'tenant:00000000-0000-4000-8000-000000000000 ',
      'tenant:../../etc/passwd',
      'tenant:*',
      '*',
    ),
  },
  { weight: 1, arbitrary: anyJson },
);
const topicsData = fc.oneof(
  { weight: 6, arbitrary: fc.record({ topics: fc.array(topic, { minLength: 1, maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ topics: fc.array(topic, { minLength: 18, maxLength: 25 }) }) },
  { weight: 1, arbitrary: fc.record({ topics: fc.constantFrom([], null, '$TENANT', { length: 1, 0: '$TENANT' }) }) },
  {
    weight: 1,
    arbitrary: ownObject(fc.tuple(protoKey, fc.array(topic, { maxLength: 3 })).map(([k, v]) => [[k, { topics: v }]])),
  },
  { weight: 1, arbitrary: anyJson },
);
const authData = fc.oneof(
  { weight: 8, arbitrary: fc.record({ token: tokenValue }) },
  {
    weight: 1,
    arbitrary: ownObject(
      fc.tuple(protoKey, tokenValue).map(([k, t]) => [
        [k, { token: t }],
        ['token', t],
      ]),
    ),
  },
  { weight: 1, arbitrary: ownObject(fc.tuple(protoKey, tokenValue).map(([k, t]) => [[k, { token: t }]])) },
  { weight: 1, arbitrary: anyJson },
);
const eventName = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom('auth', 'subscribe', 'unsubscribe') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '__proto__',
      'constructor',
      'toString',
      'AUTH',
      'auth ',
      'ping',
      'auth.ok',
      '',
      'auth\u0000',
    ),
  },
  { weight: 1, arbitrary: anyJson },
);
const idValue = fc.oneof(
  { weight: 6, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 2, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 1, arbitrary: fc.string({ minLength: 60, maxLength: 70 }) },
  { weight: 1, arbitrary: fc.constantFrom(null, true, [], {}, '__proto__') },
);
/** A message-shaped object: event, data (by event), an optional id, sometimes extra or prototype keys. */
const message = fc
  .record({
    event: eventName,
    authData,
    topicsData,
    other: anyJson,
    id: fc.option(idValue, { nil: undefined, freq: 2 }),
    dropData: fc.nat(19).map((n) => n === 0),
    extra: fc.array(fc.tuple(fc.oneof(protoKey, fc.string({ maxLength: 8 })), anyJson), { maxLength: 2 }),
  })
  .map(({ event, authData: a, topicsData: t, other, id, dropData, extra }) => {
    const entries: Array<[string, unknown]> = [['event', event]];
    if (!dropData)
      entries.push(['data', event === 'auth' ? a : event === 'subscribe' || event === 'unsubscribe' ? t : other]);
    if (id !== undefined) entries.push(['id', id]);
    for (const [k, v] of extra) if (k !== 'event' && k !== 'data' && k !== 'id') entries.push([k, v]);
    const out: Record<string, unknown> = {};
    for (const [k, v] of entries)
      Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    return out;
  });

/** Hand-made frames: numbers JSON cannot round-trip, prototype keys in the raw text, odd shapes. */
const HAND_MADE = [
  '{"event":"auth","data":{"token":"$USER"},"id":1e400}',
  '{"event":"auth","data":{"token":1e400}}',
  '{"event":"auth","data":{"token":"$USER"},"id":-0}',
  '{"event":"auth","data":{"token":"$USER"},"id":123456789012345678901234567890}',
  '{"event":"auth","data":{"token":"$USER"},"id":9007199254740993}',
  '{"event":"auth","data":{"token":"$USER"},"id":1e-400}',
  '{"event":"auth","data":{"__proto__":{"token":"$USER"}}}',
  '{"__proto__":{"event":"auth","data":{"token":"$USER"}}}',
  '{"event":"auth","__proto__":{"data":{"token":"$USER"}}}',
  '{"event":"subscribe","data":{"__proto__":{"topics":["$TENANT"]}}}',
  '{"event":"subscribe","data":{"topics":{"__proto__":["$TENANT"]}}}',
  '{"event":"auth","data":{"constructor":{"prototype":{"token":"$USER"}}}}',
  '{"constructor":{"prototype":{"polluted":true}},"event":"auth","data":{"token":"$USER"}}',
  '{"event":"auth","event":"subscribe","data":{"token":"$USER"}}',
  '{"event":"auth","data":{"token":"$USER","token":"x"}}',
  '{"event":"auth","data":{"token":"x","token":"$USER"}}',
  '{"event":"auth","data":null}',
  '{"event":"auth"}',
  '{"event":"subscribe","data":{"topics":["$TENANT","$TENANT","$TENANT_UPPER"]}}',
  '{"event":"unsubscribe","data":{"topics":["$TENANT"]},"id":"x"}',
  '{"event":"auth","data":{"token":"$USER"}} ',
  ' {"event":"auth","data":{"token":"$USER"}}',
  '{"event":"auth","data":{"token":"$USER"}}{}',
  '{"event":"auth","data":{"token":"$USER"},}',
  '{"event":"auth","data":{"token":"$USER\\u0000"}}',
  '{"event":"auth","data":{"token":"\\ud800"}}',
  '[{"event":"auth","data":{"token":"$USER"}}]',
  '"auth"',
  'null',
  'true',
  '0',
  '',
  '{}',
  '\u0000',
];

/** What one frame is: text or binary bytes (text frames may be invalid UTF-8). */
interface FuzzFrame {
  kind: string;
  binary: boolean;
  /** The frame's text, with placeholders (a function of the lane), or raw bytes. */
  text?: string;
  value?: unknown;
  bytes?: Buffer;
  /** A text frame of about this many bytes, padded (for the size limit). */
  padTo?: number;
}

const deepNesting = fc
  .record({ depth: fc.integer({ min: 50, max: 2_000 }), shape: fc.nat(3) })
  .map(({ depth, shape }) => {
    // All within 4 KiB: arrays 2 bytes a level, objects 6.
    if (shape === 0) return `{"event":"auth","data":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    if (shape === 1) {
      const d = Math.min(depth, 650);
      return `{"event":"subscribe","data":${'{"a":'.repeat(d)}1${'}'.repeat(d)}}`;
    }
    if (shape === 2) return `${'['.repeat(depth)}${']'.repeat(depth)}`;
    const d = Math.min(depth, 600);
    return `{"event":"auth","data":{"token":"$USER"},"x":${'{"__proto__":'.repeat(d > 300 ? 300 : d)}1${'}'.repeat(d > 300 ? 300 : d)}}`;
  });
const invalidUtf8 = fc
  .tuple(
    fc.constantFrom(
      [0xff],
      [0xc0, 0x80],
      [0xed, 0xa0, 0x80],
      [0xe2, 0x82],
      [0xf4, 0x90, 0x80, 0x80],
      [0x80],
      [0xf8, 0x88, 0x80, 0x80, 0x80],
    ),
    fc.boolean(),
  )
  .map(([bad, inJson]) =>
    inJson
      ? Buffer.concat([Buffer.from('{"event":"auth","data":{"token":"'), Buffer.from(bad), Buffer.from('"}}')])
      : Buffer.from(bad),
  );

const frame: fc.Arbitrary<FuzzFrame> = fc.oneof(
  { weight: 12, arbitrary: message.map((value) => ({ kind: 'message', binary: false, value })) },
  { weight: 2, arbitrary: fc.constantFrom(...HAND_MADE).map((text) => ({ kind: 'hand-made', binary: false, text })) },
  { weight: 1, arbitrary: deepNesting.map((text) => ({ kind: 'deep', binary: false, text })) },
  {
    weight: 2,
    arbitrary: fc
      .oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 100 }), fc.json({ maxDepth: 3 }))
      .map((text) => ({ kind: 'text', binary: false, text })),
  },
  {
    weight: 1,
    arbitrary: fc
      .oneof(
        fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
        fc.constant(Buffer.from('{"event":"auth","data":{"token":"x"}}')),
      )
      .map((bytes) => ({ kind: 'binary', binary: true, bytes })),
  },
  { weight: 1, arbitrary: invalidUtf8.map((bytes) => ({ kind: 'invalid-utf8', binary: false, bytes })) },
  {
    weight: 1,
    arbitrary: fc
      .oneof(fc.integer({ min: MAX_BYTES + 1, max: 6_000 }), fc.constant(MAX_BYTES), fc.constant(MAX_BYTES + 1))
      .map((padTo) => ({ kind: 'size', binary: false, padTo })),
  },
);

/**
 * A well-formed message with hostile content (the handlers' paths rather than the parser's):
 * subscriptions with odd topics and prototype keys, re-authentication, mostly with the user's
 * own token, so that a socket lives through several of them.
 */
const wellFormed: fc.Arbitrary<FuzzFrame> = fc
  .record({
    event: fc.constantFrom('subscribe', 'subscribe', 'unsubscribe', 'auth'),
    token: fc.constantFrom('$USER', '$USER', '$USER', '$USER', '$STRANGER', '$EXPIRED', '$ATTACK3'),
    topics: topicsData,
    id: fc.option(fc.oneof(fc.string({ maxLength: 64 }), fc.integer()), { nil: undefined }),
  })
  .map(({ event, token, topics, id }) => ({
    kind: 'well-formed',
    binary: false,
    value: { event, data: event === 'auth' ? { token } : topics, ...(id === undefined ? {} : { id }) },
  }));

const socketSpec = fc.record({
  preAuth: fc.nat(9).map((n) => n < 6),
  protocols: fc.constantFrom<string[]>([], [], [SUBPROTOCOL], ['chat', SUBPROTOCOL]),
  origin: fc.constantFrom<string | undefined>(undefined, undefined, CORS_ORIGIN, PUBLIC_URL, APP_URL),
  frames: fc.oneof(
    { weight: 3, arbitrary: fc.array(frame, { minLength: 1, maxLength: 6 }) },
    { weight: 1, arbitrary: fc.array(wellFormed, { minLength: 3, maxLength: 12 }) },
  ),
  burst: fc.nat(24).map((n) => n === 0),
});

/** The bytes of a frame for a lane, and whether it is binary. */
function bytesOf(f: FuzzFrame, lane: Lane): { data: Buffer; binary: boolean } {
  if (f.bytes) return { data: f.bytes, binary: f.binary };
  if (f.padTo !== undefined) {
    const head = `{"event":"unsubscribe","data":{"topics":["${lane.values.$TENANT}"]},"pad":"`;
    const pad = Math.max(0, f.padTo - Buffer.byteLength(head) - 2);
    return { data: Buffer.from(`${head}${'x'.repeat(pad)}"}`), binary: false };
  }
  const text = f.text !== undefined ? substitute(f.text, lane) : JSON.stringify(materialize(f.value, lane));
  return { data: Buffer.from(text, 'utf8'), binary: false };
}

// ---------------------------------------------------------------------------------------
// The contract's answer to a first frame

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * What the contract says a frame gets on a socket that is fresh or authenticated as the
 * lane's user (contract v2 §F and the protocol as built): a close ("code reason") or the
 * event that answers it. Null: not predicted.
 */
function expectedFor(data: Buffer, binary: boolean, authed: boolean, lane: Lane): Expectation | null {
  if (data.length > MAX_BYTES) return { close: '1009 ' };
  if (binary) return { close: '4400 BAD_MESSAGE' };
  let text: string;
  try {
    text = utf8.decode(data);
  } catch {
    return { close: '1007 ' };
  }
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return { close: '4400 BAD_MESSAGE' };
  }
  const bad = { close: '4400 BAD_MESSAGE' };
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return bad;
  const msg = m as Record<string, unknown>;
  if (!Object.hasOwn(msg, 'event') || !['auth', 'subscribe', 'unsubscribe'].includes(msg.event as string)) return bad;
  if (!Object.hasOwn(msg, 'data')) return bad;
  if (Object.hasOwn(msg, 'id')) {
    const id = msg.id;
    if (!((typeof id === 'string' && id.length <= 64) || (typeof id === 'number' && Number.isFinite(id)))) return bad;
  }
  const d = msg.data;
  if (msg.event === 'auth') {
    const token =
      d !== null && typeof d === 'object' && Object.hasOwn(d, 'token') ? (d as { token: unknown }).token : undefined;
    if (typeof token !== 'string' || token === '') return { close: '4401 INVALID_TOKEN' };
    const known = lane.outcomes.get(token);
    if (!known) return { close: '4401 INVALID_TOKEN' };
    return authed ? known.authed : known.fresh;
  }
  if (!authed) return { close: '4401 UNAUTHORIZED' };
  const topics =
    d !== null && typeof d === 'object' && Object.hasOwn(d, 'topics') ? (d as { topics: unknown }).topics : undefined;
  const valid =
    Array.isArray(topics) &&
    topics.length >= 1 &&
    topics.length <= 20 &&
    topics.every((t) => typeof t === 'string' && t.startsWith('tenant:') && UUID.test(t.slice(7)));
  if (!valid) return { reply: 'error', code: 'VALIDATION_FAILED' };
  if (msg.event === 'unsubscribe') return { reply: 'unsubscribed' };
  const own = lane.tenantId.toLowerCase();
  const member = (topics as string[]).every((t) => t.slice(7).toLowerCase() === own);
  return member ? { reply: 'subscribed' } : { reply: 'error', code: 'TENANT_NOT_FOUND' };
}

/** The `id` a direct answer must echo (a valid id of the message), if any. */
function idOf(data: Buffer): string | number | undefined {
  try {
    const m = JSON.parse(utf8.decode(data)) as { id?: unknown };
    return typeof m.id === 'string' || typeof m.id === 'number' ? m.id : undefined;
  } catch {
    return undefined;
  }
}

const closeKey = (c: { code: number; reason: string }) => `${c.code} ${c.reason}`;

// ---------------------------------------------------------------------------------------
// Upgrades

interface UpgradeSpec {
  method: string;
  path: string;
  host: string | null;
  origins: readonly string[];
  protocols: readonly string[];
  key: 'valid' | 'missing' | 'bad' | 'twice';
  version: string | null;
  upgrade: string | null;
  connection: string | null;
  xff: string | null;
  extensions: string | null;
}

/** The parts of a handshake that the gateway judges: Origin, subprotocols, and what it ignores. */
const acceptableParts = fc.record({
  path: fc.constantFrom('/ws', '/ws', '/ws', '/ws?access_token=abc', '/ws?', '/ws/../ws', 'http://evil.test/ws'),
  host: fc.constantFrom<string | null>(
    'HOST',
    'HOST',
    'HOST',
    null,
    'localhost',
    'evil.test',
    '@evil.test',
    'h'.repeat(300),
  ),
  origins: fc.oneof(
    { weight: 4, arbitrary: fc.constant([]) },
    {
      weight: 5,
      arbitrary: fc
        .constantFrom(
          CORS_ORIGIN,
          PUBLIC_URL,
          APP_URL,
          'http://evil.test',
          'null',
          '',
          'HTTP://APP.WSFUZZ.TEST',
          `${CORS_ORIGIN}/`,
          `${CORS_ORIGIN}:80`,
          'http://gatehouse.wsfuzz.test',
          'https://app.wsfuzz.test',
          `${CORS_ORIGIN}.evil.test`,
          'file://',
          'chrome-extension://abcdef',
          'SELF',
          'SELF_HTTPS',
          'SELF_WS',
        )
        .map((o) => [o]),
    },
    { weight: 1, arbitrary: fc.constantFrom([CORS_ORIGIN, CORS_ORIGIN], [CORS_ORIGIN, 'http://evil.test']) },
  ),
  protocols: fc.oneof(
    { weight: 4, arbitrary: fc.constant([]) },
    {
      weight: 4,
      arbitrary: fc
        .constantFrom(
          SUBPROTOCOL,
          `chat, ${SUBPROTOCOL}`,
          `${SUBPROTOCOL},chat`,
          'chat',
          'graphql-ws',
          'GATEHOUSE.V1',
          'gatehouse.v2',
          Array.from({ length: 300 }, (_, i) => `p${i}`).join(', '),
          `${Array.from({ length: 300 }, (_, i) => `p${i}`).join(', ')}, ${SUBPROTOCOL}`,
        )
        .map((p) => [p]),
    },
    { weight: 1, arbitrary: fc.constantFrom(['chat', SUBPROTOCOL], ['chat', 'superchat']) },
  ),
  xff: fc.oneof(
    { weight: 6, arbitrary: fc.ipV4() },
    { weight: 1, arbitrary: fc.ipV6() },
    { weight: 1, arbitrary: fc.constantFrom('not an ip', '1.2.3.4, 5.6.7.8', '', 'unknown', 'x'.repeat(500)) },
  ),
  extensions: fc.constantFrom<string | null>(
    null,
    null,
    null,
    'permessage-deflate; client_max_window_bits',
    'x-evil; a=1',
    ';;;',
  ),
});

/** What breaks a handshake (RFC 6455 §4.2.1), or makes it no upgrade at all, or aims elsewhere. */
const mutation: fc.Arbitrary<Partial<UpgradeSpec>> = fc.oneof(
  fc.constantFrom('POST', 'HEAD', 'OPTIONS', 'PUT', 'DELETE').map((method) => ({ method })),
  fc.constantFrom('/ws/', '/WS', '/%77s', '/ws%00', '/', '/wsx', '//ws', '/auth/login').map((path) => ({ path })),
  fc.constantFrom('a b', '[::', 'x:99999', '', 'evil.test:0').map((host) => ({ host })),
  fc.constantFrom<UpgradeSpec['key']>('missing', 'bad', 'twice').map((key) => ({ key })),
  fc.constantFrom<string | null>('8', '7', null, 'abc', '13, 8').map((version) => ({ version })),
  fc.constantFrom<string | null>('WebSocket', 'h2c', 'websocket, h2c', null).map((upgrade) => ({ upgrade })),
  fc.constantFrom<string | null>('keep-alive, Upgrade', 'keep-alive', null).map((connection) => ({ connection })),
  fc
    .constantFrom<readonly string[]>(
      [`${SUBPROTOCOL}, ${SUBPROTOCOL}`],
      [SUBPROTOCOL, SUBPROTOCOL],
      [''],
      [' '],
      [','],
      ['a b'],
      [`${SUBPROTOCOL};q=1`],
      [`${SUBPROTOCOL}, `],
      [`"${SUBPROTOCOL}"`],
    )
    .map((protocols) => ({ protocols })),
);

/** A handshake: mostly well-formed with the gateway's parts varied, a part of them broken once or twice. */
const upgradeSpec: fc.Arbitrary<UpgradeSpec> = fc
  .record({
    parts: acceptableParts,
    mutations: fc.oneof(
      { weight: 6, arbitrary: fc.constant([]) },
      { weight: 3, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 1 }) },
      { weight: 1, arbitrary: fc.array(mutation, { minLength: 2, maxLength: 2 }) },
    ),
  })
  .map(({ parts, mutations }) => ({
    method: 'GET',
    key: 'valid' as const,
    version: '13',
    upgrade: 'websocket',
    connection: 'Upgrade',
    ...parts,
    ...Object.assign({}, ...mutations),
  }));

/** The Host header a spec sends (undefined: none). */
const hostOf = (spec: UpgradeSpec, port: number) =>
  spec.host === 'HOST' ? `127.0.0.1:${port}` : (spec.host ?? undefined);

/** The Origin header values a spec sends: SELF is the server's own address (same origin). */
const originsOf = (spec: UpgradeSpec, port: number) =>
  spec.origins.map((o) =>
    o === 'SELF'
      ? `http://127.0.0.1:${port}`
      : o === 'SELF_HTTPS'
        ? `https://127.0.0.1:${port}`
        : o === 'SELF_WS'
          ? `ws://127.0.0.1:${port}`
          : o,
  );

function upgradeRequest(spec: UpgradeSpec, port: number): string {
  const lines = [`${spec.method} ${spec.path} HTTP/1.1`];
  const host = hostOf(spec, port);
  if (host !== undefined) lines.push(`Host: ${host}`);
  if (spec.upgrade !== null) lines.push(`Upgrade: ${spec.upgrade}`);
  if (spec.connection !== null) lines.push(`Connection: ${spec.connection}`);
  const key = randomBytes(16).toString('base64');
  if (spec.key === 'valid') lines.push(`Sec-WebSocket-Key: ${key}`);
  if (spec.key === 'bad') lines.push('Sec-WebSocket-Key: not-a-key');
  if (spec.key === 'twice') lines.push(`Sec-WebSocket-Key: ${key}`, `Sec-WebSocket-Key: ${key}`);
  if (spec.version !== null) lines.push(`Sec-WebSocket-Version: ${spec.version}`);
  for (const o of originsOf(spec, port)) lines.push(`Origin: ${o}`);
  for (const p of spec.protocols) lines.push(`Sec-WebSocket-Protocol: ${p}`);
  if (spec.xff !== null) lines.push(`X-Forwarded-For: ${spec.xff}`);
  if (spec.extensions !== null) lines.push(`Sec-WebSocket-Extensions: ${spec.extensions}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** A header list as RFC 6455 §4.1 (RFC 7230 token list) allows it: tokens, no duplicates; null if not. */
function protocolList(values: readonly string[]): string[] | null {
  if (values.length === 0) return [];
  const items = values
    .join(', ')
    .split(',')
    .map((s) => s.replace(/^[ \t]+|[ \t]+$/g, ''));
  if (items.some((s) => !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(s))) return null;
  return new Set(items).size === items.length ? items : null;
}

type UpgradeExpectation =
  | { kind: 'http' } // not an upgrade: an ordinary HTTP answer
  | { kind: 'destroyed' } // another path: no answer
  | { kind: 'malformed-handshake'; status: number } // RFC 6455 handshake error
  | { kind: 'bad-host' } // a Host no URL can be made of
  | { kind: 'refused'; status: number; code: string } // the gateway's refusal
  | { kind: 'accepted'; protocol: string | null };

/** What the contract and RFC 6455 call for, for an upgrade request. */
function expectedUpgrade(spec: UpgradeSpec, port: number): UpgradeExpectation {
  const upgrading =
    spec.upgrade !== null && spec.connection !== null && /(^|,)\s*upgrade\s*(,|$)/i.test(spec.connection);
  if (!upgrading) return { kind: 'http' };
  const host = hostOf(spec, port);
  const base = `ws://${host ?? 'undefined'}/`;
  if (!URL.canParse(spec.path, base)) return { kind: 'bad-host' };
  if (new URL(spec.path, base).pathname !== '/ws') return { kind: 'destroyed' };
  if (spec.method !== 'GET') return { kind: 'malformed-handshake', status: 405 };
  if (spec.upgrade!.toLowerCase() !== 'websocket') return { kind: 'malformed-handshake', status: 400 };
  if (spec.key !== 'valid') return { kind: 'malformed-handshake', status: 400 };
  if (spec.version !== '13' && spec.version !== '8') return { kind: 'malformed-handshake', status: 400 };
  const offered = protocolList(spec.protocols);
  if (offered === null) return { kind: 'malformed-handshake', status: 400 };
  // Ours: CORS_ORIGINS, PUBLIC_URL's and APP_URL's origins, and the requested host itself
  // (a page of this server, over http or https: the same origin).
  const origin = spec.origins.length ? originsOf(spec, port).join(', ') : undefined;
  const sameHost = host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
  if (origin !== undefined && !ALLOWED_ORIGINS.has(origin) && !sameHost)
    return { kind: 'refused', status: 403, code: 'ORIGIN_NOT_ALLOWED' };
  if (spec.protocols.length > 0 && !offered.includes(SUBPROTOCOL)) {
    return { kind: 'refused', status: 400, code: 'VALIDATION_FAILED' };
  }
  return { kind: 'accepted', protocol: offered.includes(SUBPROTOCOL) ? SUBPROTOCOL : null };
}

// ---------------------------------------------------------------------------------------
// Framing attacks on raw sockets (RFC 6455 §5), each with the close it calls for

const text = (s: string) => Buffer.from(s, 'utf8');
const GARBAGE_AUTH = '{"event":"auth","data":{"token":"garbage"}}';
const FRAMING: Array<{ what: string; frames: () => Buffer[]; close: string; sentClose?: boolean; pong?: boolean }> = [
  { what: 'unmasked text frame', frames: () => [encodeFrame(0x1, text(GARBAGE_AUTH), { mask: false })], close: '1002' },
  {
    what: 'RSV1 without an extension',
    frames: () => [encodeFrame(0x1, text(GARBAGE_AUTH), { rsv: 4 })],
    close: '1002',
  },
  { what: 'RSV2', frames: () => [encodeFrame(0x1, text(GARBAGE_AUTH), { rsv: 2 })], close: '1002' },
  { what: 'RSV3', frames: () => [encodeFrame(0x1, text(GARBAGE_AUTH), { rsv: 1 })], close: '1002' },
  ...[0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf].map((op) => ({
    what: `reserved opcode ${op}`,
    frames: () => [encodeFrame(op, text('x'))],
    close: '1002',
  })),
  { what: 'fragmented ping', frames: () => [encodeFrame(0x9, text('p'), { fin: false })], close: '1002' },
  { what: 'ping of 126 bytes', frames: () => [encodeFrame(0x9, Buffer.alloc(126, 0x61))], close: '1002' },
  { what: 'continuation without a start', frames: () => [encodeFrame(0x0, text(GARBAGE_AUTH))], close: '1002' },
  {
    what: 'a new text frame inside a fragmented message',
    frames: () => [encodeFrame(0x1, text('{"event":'), { fin: false }), encodeFrame(0x1, text('"auth"}'))],
    close: '1002',
  },
  {
    what: 'length 2^63',
    frames: () => [encodeFrame(0x1, Buffer.alloc(0), { length: 2n ** 63n })],
    close: '1009',
  },
  { what: 'length 2^40', frames: () => [encodeFrame(0x1, Buffer.alloc(0), { length: 2n ** 40n })], close: '1009' },
  {
    what: 'a 16-bit length over the limit',
    frames: () => [encodeFrame(0x1, Buffer.alloc(MAX_BYTES + 904, 0x20))],
    close: '1009',
  },
  {
    what: 'fragments that add up to more than the limit',
    frames: () => [
      encodeFrame(0x1, Buffer.alloc(3000, 0x20), { fin: false }),
      encodeFrame(0x0, Buffer.alloc(3000, 0x20)),
    ],
    close: '1009',
  },
  {
    what: 'a message in three fragments (a bad token)',
    frames: () => [
      encodeFrame(0x1, text(GARBAGE_AUTH.slice(0, 10)), { fin: false }),
      encodeFrame(0x0, text(GARBAGE_AUTH.slice(10, 30)), { fin: false }),
      encodeFrame(0x0, text(GARBAGE_AUTH.slice(30))),
    ],
    close: '4401 INVALID_TOKEN',
  },
  {
    what: 'a fragmented binary message',
    frames: () => [
      encodeFrame(0x2, text(GARBAGE_AUTH.slice(0, 10)), { fin: false }),
      encodeFrame(0x0, text(GARBAGE_AUTH.slice(10))),
    ],
    close: '4400 BAD_MESSAGE',
  },
  {
    what: 'a ping between fragments (allowed), then a bad token',
    frames: () => [
      encodeFrame(0x1, text(GARBAGE_AUTH.slice(0, 10)), { fin: false }),
      encodeFrame(0x9, text('between')),
      encodeFrame(0x0, text(GARBAGE_AUTH.slice(10))),
    ],
    close: '4401 INVALID_TOKEN',
    pong: true,
  },
  ...[0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535].map((code) => ({
    what: `close with the invalid code ${code}`,
    frames: () => [encodeFrame(0x8, closePayload(code))],
    close: '1002',
  })),
  { what: 'close with a 1-byte payload', frames: () => [encodeFrame(0x8, Buffer.from([0x03]))], close: '1002' },
  {
    what: 'close with an invalid UTF-8 reason',
    frames: () => [encodeFrame(0x8, closePayload(1000, Buffer.from([0xff, 0xfe])))],
    close: '1007',
  },
  { what: 'text that is not UTF-8', frames: () => [encodeFrame(0x1, Buffer.from([0x7b, 0xff, 0x7d]))], close: '1007' },
  {
    what: 'text ending inside a UTF-8 sequence, then its continuation',
    frames: () => [
      encodeFrame(0x1, Buffer.from([0x22, 0xe2, 0x82]), { fin: false }),
      encodeFrame(0x0, Buffer.from([0xac, 0x22])),
    ],
    close: '4400 BAD_MESSAGE',
  },
  { what: 'a normal close', frames: () => [encodeFrame(0x8, closePayload(1000))], close: '1000', sentClose: true },
  { what: 'an empty close', frames: () => [encodeFrame(0x8, Buffer.alloc(0))], close: '1005', sentClose: true },
  {
    what: 'close 4500 from the client (echoed)',
    frames: () => [encodeFrame(0x8, closePayload(4500, 'client says'))],
    close: '4500 client says',
    sentClose: true,
  },
  {
    what: 'a ping, then a normal close',
    frames: () => [encodeFrame(0x9, text('hello')), encodeFrame(0x8, closePayload(1000))],
    close: '1000',
    sentClose: true,
    pong: true,
  },
  {
    what: 'an unsolicited pong, then a bad token',
    frames: () => [encodeFrame(0xa, text('pong')), encodeFrame(0x1, text(GARBAGE_AUTH))],
    close: '4401 INVALID_TOKEN',
  },
  {
    what: 'a frame written one byte at a time',
    frames: () => [...encodeFrame(0x1, text(GARBAGE_AUTH))].map((b) => Buffer.from([b])),
    close: '4401 INVALID_TOKEN',
  },
  {
    what: 'two messages in one write',
    frames: () => [Buffer.concat([encodeFrame(0x1, text(GARBAGE_AUTH)), encodeFrame(0x1, text(GARBAGE_AUTH))])],
    close: '4401 INVALID_TOKEN',
  },
];

// ---------------------------------------------------------------------------------------

const randomIp = () => `10.${(Math.random() * 256) | 0}.${(Math.random() * 256) | 0}.${(Math.random() * 256) | 0}`;

describe('hostile input on the real-time endpoint', () => {
  it(`survives ${UPGRADES} fuzzed upgrades, ${SOCKETS} fuzzed sockets and framing attacks: contract closes only, no crash`, async () => {
    const t0 = performance.now();
    const rssStart = app.rssKiB()!;
    const failures: string[] = [];
    const fail = (s: string) => {
      if (failures.length < 200) failures.push(s);
    };
    const count = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);

    // 0. Sockets that never authenticate: 4408 after WS_AUTH_TIMEOUT (awaited at the end).
    const idle = await Promise.all(
      Array.from({ length: IDLE }, () => Sock.open(wsUrl, { headers: { 'x-forwarded-for': randomIp() } })),
    );

    // 1. Upgrades on raw TCP.
    const upgradeStatuses = new Map<string, number>();
    const upgradeKinds = new Map<string, number>();
    const deviations = new Map<string, number>();
    const upgrades = fc.sample(upgradeSpec, { numRuns: UPGRADES, seed: SEED });
    await pool(upgrades, LANES, async (spec) => {
      const expected = expectedUpgrade(spec, app.port);
      const o = await rawWebSocket(app.port, upgradeRequest(spec, app.port), [], {
        timeoutMs: 10_000,
        closeAfter: true,
        headOnly: spec.method === 'HEAD',
      });
      count(upgradeStatuses, String(o.status ?? (o.malformed ? 'malformed' : o.end)));
      count(upgradeKinds, expected.kind);
      const what = `upgrade ${JSON.stringify(spec).slice(0, 300)} → ${o.status ?? o.end} ${o.head.slice(0, 80)} ${o.body.slice(0, 120)}`;
      if (o.end === 'timeout') return fail(`no answer within 10 s: ${what}`);
      if ((o.status ?? 0) >= 500) return fail(`5xx: ${what}`);
      switch (expected.kind) {
        case 'http':
          // An ordinary request: whatever the route answers, an error in the contract's shape.
          if (o.status === 101 || o.status === undefined)
            return fail(`not an upgrade, expected an HTTP answer: ${what}`);
          // (Node's own bare 400 for an HTTP/1.1 request without Host comes before the app.)
          if (o.status === 400 && spec.host === null && !/json/.test(o.headers['content-type'] ?? '')) return undefined;
          if (o.status >= 400 && spec.method !== 'HEAD' && !isContractBody(o.status, o.headers, o.body))
            return fail(`not an upgrade, not the contract's body: ${what}`);
          return undefined;
        case 'destroyed':
          if (o.status !== undefined) return fail(`another path, expected no answer: ${what}`);
          return undefined;
        case 'bad-host':
        case 'malformed-handshake': {
          const status = expected.kind === 'bad-host' ? 400 : expected.status;
          if (o.status !== status) return fail(`expected ${status}: ${what}`);
          // The body's shape is the second test's business; here they are counted.
          if (o.malformed || !isContractBody(o.status, o.headers, o.body)) count(deviations, expected.kind);
          return undefined;
        }
        case 'refused':
          if (o.status !== expected.status || !isContractBody(o.status, o.headers, o.body))
            return fail(`expected ${expected.status} ${expected.code}: ${what}`);
          if ((JSON.parse(o.body) as { code: string }).code !== expected.code)
            return fail(`expected ${expected.status} ${expected.code}: ${what}`);
          return undefined;
        case 'accepted':
          if (o.status !== 101) return fail(`expected 101: ${what}`);
          if ((o.headers['sec-websocket-protocol'] ?? null) !== expected.protocol)
            return fail(`expected the subprotocol ${expected.protocol}: ${what} ${o.head}`);
          if (o.close?.code !== 1000)
            return fail(`101, then a normal close: expected 1000 back, got ${JSON.stringify(o.close)} (${what})`);
          return undefined;
      }
    });

    // 2. Frames on ws sockets.
    const closeCounts = new Map<string, number>();
    const firstFrame = { predicted: 0, checked: 0 };
    let sockets = 0;
    let frames = 0;
    const specs = fc.sample(socketSpec, { numRuns: SOCKETS, seed: SEED + 1 });
    let next = 0;
    const runLane = async (lane: Lane, laneNo: number) => {
      while (next < specs.length) {
        const n = next++;
        const spec = specs[n]!;
        const label = `socket ${n} (lane ${laneNo}, seed ${SEED})`;
        let sock: Sock;
        try {
          sock = await Sock.open(wsUrl, {
            headers: { 'x-forwarded-for': randomIp(), ...(spec.origin ? { origin: spec.origin } : {}) },
            protocols: spec.protocols,
          });
        } catch (error) {
          fail(`${label}: a valid upgrade failed: ${String(error)}`);
          continue;
        }
        sockets += 1;
        if (spec.protocols.includes(SUBPROTOCOL) && sock.ws.protocol !== SUBPROTOCOL)
          fail(`${label}: subprotocol ${sock.ws.protocol}`);
        if (spec.preAuth) {
          sock.send({ event: 'auth', data: { token: lane.user.access } });
          frames += 1;
          try {
            await sock.next((f) => f.event === 'auth.ok', 'auth.ok');
          } catch (error) {
            fail(`${label}: auth with a valid token: ${String(error)}`);
            sock.ws.terminate();
            continue;
          }
        }
        const from = sock.frames.length;
        const payloads = spec.frames.map((f) => bytesOf(f, lane));
        if (spec.burst && spec.preAuth) {
          const unsubscribe = Buffer.from(
            JSON.stringify({ event: 'unsubscribe', data: { topics: [lane.values.$TENANT] } }),
          );
          for (let k = 0; k < 35; k++) payloads.unshift({ data: unsubscribe, binary: false });
        }
        // The first frame alone, and its answer as the contract predicts it. (The frames after
        // it are pipelined: a frame that breaks the protocol closes the socket at once, before
        // the answers to messages still being handled.)
        const [head, ...tail] = payloads;
        const expected = expectedFor(head!.data, head!.binary, spec.preAuth, lane);
        sock.ws.send(head!.data, { binary: head!.binary });
        frames += 1;
        if (expected) {
          firstFrame.predicted += 1;
          const first = await sock.answerOrClose(() => true, 10_000, from);
          const desc = `${label}: first frame ${head!.binary ? 'binary' : 'text'} ${JSON.stringify(head!.data.toString('utf8').slice(0, 160))}`;
          if (first === null) fail(`${desc}: neither an answer nor a close within 10 s`);
          else if ('close' in expected) {
            const got = 'code' in first ? closeKey(first) : `frame ${JSON.stringify(first).slice(0, 160)}`;
            const want = expected.close;
            const same = want.endsWith(' ') ? got.startsWith(want.trim()) : got === want;
            if (!same) fail(`${desc}: expected close ${want}, got ${got}`);
            else firstFrame.checked += 1;
          } else {
            const f = 'event' in first ? (first as Frame) : undefined;
            const id = idOf(head!.data);
            if (!f)
              fail(
                `${desc}: expected ${expected.reply}${expected.code ? ` ${expected.code}` : ''}, got close ${closeKey(first as Closed)}`,
              );
            else if (
              f.event !== expected.reply ||
              (expected.code !== undefined && f.data.code !== expected.code) ||
              (expected.userId !== undefined && f.data.userId !== expected.userId) ||
              f.id !== id
            )
              fail(
                `${desc}: expected ${expected.reply} ${expected.code ?? ''} id ${String(id)}, got ${JSON.stringify(f).slice(0, 200)}`,
              );
            else firstFrame.checked += 1;
          }
        }
        const barrierId = `barrier-${n}`;
        for (const p of tail) {
          if (!sock.open) break;
          sock.ws.send(p.data, { binary: p.binary });
          frames += 1;
        }
        if (sock.open) {
          sock.send({ event: 'unsubscribe', data: { topics: [`tenant:${randomUUID()}`] }, id: barrierId });
          frames += 1;
        }

        // The end: the barrier's answer (then our close), or the server's close.
        const end = await sock.answerOrClose((f) => f.id === barrierId, 10_000, from);
        if (end === null) {
          fail(`${label}: neither the barrier's answer nor a close within 10 s`);
          sock.ws.terminate();
          continue;
        }
        let closed: Closed | null;
        if ('event' in end) {
          if (end.event !== 'unsubscribed') fail(`${label}: barrier answered ${JSON.stringify(end).slice(0, 200)}`);
          sock.ws.close(1000);
          closed = await sock.closing(10_000);
          if (closed && closed.code !== 1000) fail(`${label}: our close 1000 answered ${closeKey(closed)}`);
          count(closeCounts, 'client 1000');
        } else {
          closed = end as Closed;
          count(closeCounts, closeKey(closed));
          if (!ALLOWED_CLOSES.has(closeKey(closed))) fail(`${label}: closed ${closeKey(closed)}`);
        }
        if (!closed) fail(`${label}: never closed`);
        for (const f of sock.frames) {
          if (!SERVER_EVENTS.has(f.event)) fail(`${label}: unknown event ${JSON.stringify(f).slice(0, 200)}`);
          // INSUFFICIENT_SCOPE: a socket that signed in with the machine client's token (events:read
          // without tenants:read) and then subscribed to a tenant topic.
          if (
            f.event === 'error' &&
            !['VALIDATION_FAILED', 'TENANT_NOT_FOUND', 'INSUFFICIENT_SCOPE'].includes(String(f.data.code))
          )
            fail(`${label}: error ${JSON.stringify(f).slice(0, 200)}`);
        }
        if (sock.garbage.length) fail(`${label}: frames that are not JSON: ${sock.garbage.join(' | ')}`);
      }
    };
    await Promise.all(lanes.map((lane, i) => runLane(lane, i)));

    // 3. Framing attacks on raw sockets, then random bytes after a 101.
    const rawCloses = new Map<string, number>();
    let rawSockets = 0;
    const rawRun = async (what: string, frameBytes: Buffer[], check: (o: RawOutcome) => string | null) => {
      const o = await rawWebSocket(
        app.port,
        handshake('/ws', `127.0.0.1:${app.port}`, [['X-Forwarded-For', randomIp()]]),
        frameBytes,
        { timeoutMs: (AUTH_TIMEOUT_S + 8) * 1000 },
      );
      rawSockets += 1;
      frames += frameBytes.length;
      count(rawCloses, o.close ? `${o.close.code}` : `no close (${o.end})`);
      if (o.status !== 101) return fail(`raw ${what}: no 101 (${o.status ?? o.end})`);
      const problem = check(o);
      if (problem) fail(`raw ${what}: ${problem}`);
      return undefined;
    };
    await pool([...FRAMING, ...FRAMING, ...FRAMING], LANES, (c) =>
      rawRun(c.what, c.frames(), (o) => {
        if (!o.close) return `no close frame (${o.end}), expected ${c.close}`;
        const got = `${o.close.code}${o.close.reason ? ` ${o.close.reason}` : ''}`;
        const want = c.close;
        if (!(got === want || (!want.includes(' ') && String(o.close.code) === want)))
          return `expected close ${want}, got ${got}`;
        if (c.pong && o.pongs === 0) return 'no pong';
        return null;
      }),
    );
    const randomFrames = fc.sample(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 4 }),
      {
        numRuns: RANDOM_BYTE_SOCKETS,
        seed: SEED + 2,
      },
    );
    await pool(randomFrames, LANES, (chunks) =>
      rawRun(
        `random bytes ${Buffer.from(chunks[0]!).toString('hex').slice(0, 40)}`,
        chunks.map((c) => Buffer.from(c)),
        (o) => {
          // Never authenticated: every such socket ends with a close of the protocol, at the
          // latest the auth timeout's.
          if (!o.close) return `no close frame (${o.end})`;
          const ok =
            [1002, 1007, 1009, 4400, 4401, 4408].includes(o.close.code) ||
            (o.close.code === 1000 && o.close.reason === '');
          return ok ? null : `closed ${o.close.code} ${o.close.reason}`;
        },
      ),
    );

    // 4. The idle sockets timed out.
    for (const s of idle) {
      const c = await s.closing(10_000);
      count(closeCounts, c ? closeKey(c) : 'idle: never closed');
      if (!c || closeKey(c) !== '4408 AUTH_TIMEOUT') fail(`idle socket: ${c ? closeKey(c) : 'never closed'}`);
    }

    // 5. Still serving: HTTP, and the real-time path end to end.
    const lane = lanes[0]!;
    const health = await call(app.url, 'GET', '/health');
    const me = await call(app.url, 'GET', '/users/me', { headers: bearer(lane.user.access) });
    const live = await Sock.authenticated(wsUrl, lane.user.access, { headers: { 'x-forwarded-for': randomIp() } });
    const created = await call(app.url, 'POST', '/resources', {
      headers: bearer(lane.user.access),
      json: { title: 'after the fuzz' },
    });
    const event = await live.next((f) => f.event === 'resource.created', 'resource.created');
    live.ws.close(1000);
    await live.done;
    const errors = app
      .output()
      .split('\n')
      .filter((l) => /\bERROR\b|INTERNAL_ERROR|Unhandled|uncaught/i.test(l));

    const summary = {
      seed: SEED,
      upgrades: upgrades.length,
      upgrade_expectations: Object.fromEntries(upgradeKinds),
      upgrade_statuses: Object.fromEntries([...upgradeStatuses].sort(([a], [b]) => a.localeCompare(b))),
      upgrade_refusals_without_contract_body: Object.fromEntries(deviations),
      sockets,
      frames,
      first_frames: firstFrame,
      closes: Object.fromEntries([...closeCounts].sort(([a], [b]) => a.localeCompare(b))),
      raw_sockets: rawSockets,
      raw_closes: Object.fromEntries([...rawCloses].sort(([a], [b]) => a.localeCompare(b))),
      failures: failures.length,
      server_errors_logged: errors.length,
      rss_mib: { start: round(rssStart / 1024, 1), end: round((app.rssKiB() ?? 0) / 1024, 1) },
      alive: !app.dead,
      total_s: round((performance.now() - t0) / 1000, 1),
    };
    console.log(`[websocket-hostile] ${JSON.stringify(summary)}`);
    if (failures.length) console.log(`[websocket-hostile] failures:\n${failures.join('\n')}`);

    expect(failures.slice(0, 30)).toEqual([]);
    expect(errors.slice(0, 10)).toEqual([]);
    expect(app.dead).toBe(false);
    expect(health.status).toBe(200);
    expect(me.status).toBe(200);
    expect(created.status).toBe(201);
    expect(event.data.id).toBe((created.json as { id: string }).id);
    // The fuzz reached what it is for.
    expect(firstFrame.checked).toBeGreaterThan(SOCKETS * 0.8);
    expect(upgradeKinds.get('accepted') ?? 0).toBeGreaterThan(UPGRADES * 0.05);
    expect(upgradeKinds.get('refused') ?? 0).toBeGreaterThan(UPGRADES * 0.05);
    expect(closeCounts.get('4400 BAD_MESSAGE') ?? 0).toBeGreaterThan(0);
    expect(closeCounts.get('4429 TOO_MANY_MESSAGES') ?? 0).toBeGreaterThan(0);
    expect(closeCounts.get('1009 ') ?? 0).toBeGreaterThan(0);
  }, 300_000);

  it('answers every refused upgrade with the contract error body (4xx, no 101), malformed handshakes included', async () => {
    const host = `127.0.0.1:${app.port}`;
    const xff = (): [string, string] => ['X-Forwarded-For', randomIp()];
    const probes: Array<{ what: string; request: string; status: number; code: string; header?: string }> = [
      {
        what: 'an Origin not ours',
        request: handshake('/ws', host, [xff(), ['Origin', 'http://evil.test']]),
        status: 403,
        code: 'ORIGIN_NOT_ALLOWED',
      },
      {
        what: 'subprotocols without gatehouse.v1',
        request: handshake('/ws', host, [xff(), ['Sec-WebSocket-Protocol', 'chat, graphql-ws']]),
        status: 400,
        code: 'VALIDATION_FAILED',
      },
      {
        what: 'a subprotocol list that is not a token list',
        request: handshake('/ws', host, [xff(), ['Sec-WebSocket-Protocol', 'gatehouse.v1 chat']]),
        status: 400,
        code: 'VALIDATION_FAILED',
      },
      {
        what: 'gatehouse.v1 offered twice',
        request: handshake('/ws', host, [xff(), ['Sec-WebSocket-Protocol', 'gatehouse.v1, gatehouse.v1']]),
        status: 400,
        code: 'VALIDATION_FAILED',
      },
      {
        what: 'an empty Sec-WebSocket-Protocol',
        request: handshake('/ws', host, [xff(), ['Sec-WebSocket-Protocol', '']]),
        status: 400,
        code: 'VALIDATION_FAILED',
      },
      {
        what: 'a Host that is not a host',
        request: handshake('/ws', 'a b', [xff()]),
        status: 400,
        code: 'VALIDATION_FAILED',
      },
      {
        what: 'a Host with a port out of range',
        request: handshake('/ws', '127.0.0.1:99999', [xff()]),
        status: 400,
        code: 'VALIDATION_FAILED',
      },
      {
        what: 'no Sec-WebSocket-Key',
        request: handshake('/ws', host, [xff()]).replace(/Sec-WebSocket-Key: [^\r]*\r\n/, ''),
        status: 400,
        code: 'VALIDATION_FAILED',
      },
      {
        what: 'Sec-WebSocket-Version 7',
        request: handshake('/ws', host, [xff()]).replace('Sec-WebSocket-Version: 13', 'Sec-WebSocket-Version: 7'),
        status: 400,
        code: 'VALIDATION_FAILED',
        header: 'sec-websocket-version',
      },
      {
        what: 'Upgrade: h2c on the WebSocket path',
        request: handshake('/ws', host, [xff()]).replace('Upgrade: websocket', 'Upgrade: h2c'),
        status: 400,
        code: 'VALIDATION_FAILED',
      },
      {
        what: 'a POST upgrade',
        request: handshake('/ws', host, [xff()]).replace(/^GET/, 'POST'),
        status: 405,
        code: 'METHOD_NOT_ALLOWED',
      },
    ];
    const problems: string[] = [];
    for (const p of probes) {
      const o = await rawWebSocket(app.port, p.request, [], { timeoutMs: 5_000 });
      const body = o.body || o.head;
      const code = (() => {
        try {
          return (JSON.parse(o.body) as { code?: string }).code;
        } catch {
          return undefined;
        }
      })();
      // The status is the point; the code only where the contract names one (403, 400 subprotocol).
      const codeMatters = p.code === 'ORIGIN_NOT_ALLOWED' || p.what.startsWith('subprotocols without');
      if (
        o.status !== p.status ||
        o.malformed ||
        !isContractBody(o.status, o.headers, o.body) ||
        (codeMatters && code !== p.code) ||
        (p.header !== undefined && o.headers[p.header] === undefined)
      ) {
        problems.push(
          `${p.what}: expected ${p.status} with the contract's body, got ${o.status ?? o.end}${o.malformed ? ' (malformed HTTP)' : ''}: ${JSON.stringify(o.head.split('\r\n')[0])} ${o.headers['content-type'] ?? ''} ${JSON.stringify(body.slice(0, 120))}`,
        );
      }
    }
    // Still answering.
    expect(isContractError(await call(app.url, 'GET', '/no-such-route'), 404)).toBe(true);
    expect(problems).toEqual([]);
  });
});
