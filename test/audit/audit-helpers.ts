import { expect } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { decodeJwt } from '../support/factories.js';
import type { TestApp } from '../support/test-app.js';
import { FORM, GRANT, basic, form, type Created } from '../clients/oauth-helpers.js';

/** The audit trail over HTTP (GET /audit-events, GET /users/me/activity) and the admin session calls. */

export const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
export const ENV = { ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', ...ADMIN };
export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** The fields of an AuditEvent, sorted. */
export const AUDIT_KEYS = [
  'actorId',
  'actorUsername',
  'createdAt',
  'details',
  'id',
  'ip',
  'requestId',
  'sessionId',
  'type',
  'userAgent',
  'userId',
  'username',
];
/** The fields of an Activity item, sorted. */
export const ACTIVITY_KEYS = [
  'byAdministrator',
  'createdAt',
  'currentSession',
  'id',
  'ip',
  'newDevice',
  'sessionId',
  'type',
  'userAgent',
];
/** The fields of an admin's view of a session, sorted. */
export const ADMIN_SESSION_KEYS = ['createdAt', 'expiresAt', 'id', 'ip', 'lastUsedAt', 'userAgent'];

export interface AuditEvent {
  id: string;
  type: string;
  createdAt: string;
  userId: string | null;
  username: string | null;
  actorId: string | null;
  actorUsername: string | null;
  sessionId: string | null;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
  details: Record<string, unknown> | null;
}

export interface Activity {
  id: string;
  type: string;
  createdAt: string;
  ip: string | null;
  userAgent: string | null;
  sessionId: string | null;
  currentSession: boolean;
  byAdministrator: boolean;
  newDevice: boolean;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

type Auth = { Authorization: string };
type Query = Record<string, string | number>;

/** Expects this status; a failure shows the body that came instead. */
export function expectStatus(res: { status: number; text: string }, status: number): void {
  expect(res.status === status ? status : `${res.status}: ${res.text}`).toBe(status);
}

/** Expects the contract's error body with this status and code. */
export function expectError(
  res: { status: number; text: string; body: Record<string, unknown> },
  status: number,
  code: string,
): void {
  expect({ status: res.status, code: res.body?.code }, `response: ${res.text}`).toEqual({ status, code });
  expect(Object.keys(res.body).sort()).toEqual(['code', 'error', 'message', 'statusCode']);
  expect(res.body.statusCode).toBe(status);
  expect(typeof res.body.error).toBe('string');
  const { message } = res.body;
  expect(typeof message === 'string' || (Array.isArray(message) && message.every((m) => typeof m === 'string'))).toBe(
    true,
  );
}

/** One page of GET /audit-events (expects 200). */
export async function auditPage(t: TestApp, auth: Auth, query: Query = {}): Promise<Page<AuditEvent>> {
  const res = await t.http.get('/audit-events').query(query).set(auth);
  expectStatus(res, 200);
  expect(Object.keys(res.body).sort()).toEqual(['items', 'nextCursor']);
  return res.body as Page<AuditEvent>;
}

/** One page of GET /users/me/activity (expects 200). */
export async function activityPage(t: TestApp, auth: Auth, query: Query = {}): Promise<Page<Activity>> {
  const res = await t.http.get('/users/me/activity').query(query).set(auth);
  expectStatus(res, 200);
  expect(Object.keys(res.body).sort()).toEqual(['items', 'nextCursor']);
  return res.body as Page<Activity>;
}

/**
 * Every page of a paginated call, following nextCursor; `between` runs after each page.
 * Answers the pages (the last one has nextCursor null).
 */
export async function walk<T>(
  fetch: (query: Query) => Promise<Page<T>>,
  query: Query,
  between?: () => Promise<void>,
): Promise<Array<Page<T>>> {
  const pages: Array<Page<T>> = [];
  let cursor: string | null = null;
  do {
    const page: Page<T> = await fetch(cursor ? { ...query, cursor } : query);
    pages.push(page);
    cursor = page.nextCursor;
    if (between) await between();
    if (pages.length > 1000) throw new Error('pagination does not end');
  } while (cursor !== null);
  return pages;
}

/** Expects items newest first: createdAt descending, then id descending (the keyset order). */
export function expectNewestFirst(items: ReadonlyArray<{ id: string; createdAt: string }>): void {
  for (let i = 1; i < items.length; i++) {
    const [a, b] = [items[i - 1]!, items[i]!];
    const ordered = a.createdAt > b.createdAt || (a.createdAt === b.createdAt && a.id > b.id);
    expect(ordered, `item ${i - 1} (${a.createdAt} ${a.id}) before item ${i} (${b.createdAt} ${b.id})`).toBe(true);
  }
}

/** The session id (`sid`) of an access token. */
export const sidOf = (accessToken: string): string => decodeJwt(accessToken).payload.sid as string;

/** An instant `ms` milliseconds after (or before) an ISO timestamp, as ISO. */
export const shifted = (iso: string, ms: number): string => new Date(Date.parse(iso) + ms).toISOString();

/** POST /oauth/clients as this admin (expects 201). */
export async function createClient(
  t: TestApp,
  auth: Auth,
  allowedScopes: string[],
  name = 'audit-client',
): Promise<Created> {
  const res = await t.http.post('/oauth/clients').set(auth).send({ name, allowedScopes });
  expectStatus(res, 201);
  return res.body as Created;
}

/** A client-credentials access token of this client, optionally narrowed to `scope`. */
export async function clientToken(t: TestApp, c: Created, scope?: string): Promise<string> {
  const res = await t.http
    .post('/oauth/token')
    .set('Content-Type', FORM)
    .set(basic(c.client.clientId, c.secret.value))
    .send(form({ ...GRANT, ...(scope ? { scope } : {}) }));
  expectStatus(res, 200);
  return res.body.access_token as string;
}

/** A machine client whose service user has the admin role (given by this admin). */
export async function adminClient(t: TestApp, auth: Auth, allowedScopes: string[], name?: string): Promise<Created> {
  const c = await createClient(t, auth, allowedScopes, name);
  const res = await t.http
    .patch(`/users/${c.client.serviceUserId}`)
    .set(auth)
    .send({ roles: ['user', 'admin'] });
  expectStatus(res, 200);
  return c;
}
