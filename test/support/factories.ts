import { randomBytes } from 'node:crypto';
import type { TestApp } from './test-app.js';

let counter = 0;

/** The fields of every User object (contract v2 §0.5), sorted. */
export const USER_KEYS = [
  'createdAt',
  'displayName',
  'email',
  'emailVerified',
  'id',
  'kind',
  'mfaEnabled',
  'roles',
  'username',
];
/** GET /users/me adds what only the caller sees (the only place with a field named like a password). */
export const ME_KEYS = [...USER_KEYS, 'pendingEmail', 'hasPassword', 'identities'].sort();

export function uniqueUsername(prefix = 'user'): string {
  counter += 1;
  return `${prefix}_${counter}_${randomBytes(3).toString('hex')}`;
}

export interface SignedUp {
  id: string;
  username: string;
  password: string;
  accessToken: string;
  refreshToken: string;
  auth: { Authorization: string };
}

export function refreshCookieOf(res: { headers: Record<string, unknown> }): string | undefined {
  const raw = res.headers['set-cookie'];
  const list = Array.isArray(raw) ? (raw as string[]) : typeof raw === 'string' ? [raw] : [];
  const cookie = list.find((c) => c.startsWith('refresh_token='));
  return cookie?.slice('refresh_token='.length).split(';')[0];
}

/** Signs up a fresh user through the API. */
export async function signup(t: TestApp, overrides: Record<string, unknown> = {}): Promise<SignedUp> {
  const username = (overrides.username as string | undefined) ?? uniqueUsername();
  const password = (overrides.password as string | undefined) ?? 'correct horse battery';
  const res = await t.http
    .post('/auth/signup')
    .send({ username, password, ...overrides })
    .expect(201);
  const refreshToken = refreshCookieOf(res);
  if (!refreshToken) throw new Error('signup set no refresh cookie');
  return {
    id: res.body.user.id,
    username,
    password,
    accessToken: res.body.accessToken,
    refreshToken,
    auth: { Authorization: `Bearer ${res.body.accessToken}` },
  };
}

export async function login(t: TestApp, username: string, password: string): Promise<SignedUp> {
  const res = await t.http.post('/auth/login').send({ username, password }).expect(200);
  return {
    id: res.body.user.id,
    username,
    password,
    accessToken: res.body.accessToken,
    refreshToken: refreshCookieOf(res)!,
    auth: { Authorization: `Bearer ${res.body.accessToken}` },
  };
}

/** Every Set-Cookie header of a response, as a list. */
export function setCookiesOf(res: { headers: Record<string, unknown> }): string[] {
  const raw = res.headers['set-cookie'];
  return Array.isArray(raw) ? (raw as string[]) : typeof raw === 'string' ? [raw] : [];
}

/** `Cookie` header value presenting a refresh token. */
export function refreshCookie(token: string): string {
  return `refresh_token=${token}`;
}

export function bearer(accessToken: string): { Authorization: string } {
  return { Authorization: `Bearer ${accessToken}` };
}

/** POST /auth/refresh with this refresh token (and optional extra headers). */
export function refresh(t: TestApp, token: string, headers: Record<string, string> = {}) {
  return t.http.post('/auth/refresh').set('Cookie', refreshCookie(token)).set(headers);
}

/** Header and payload of a JWT, without verifying anything. */
export function decodeJwt(token: string): {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  signature: string;
} {
  const [h, p, s] = token.split('.');
  if (h === undefined || p === undefined || s === undefined) throw new Error(`not a JWT: ${token}`);
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>,
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>,
    signature: s,
  };
}

/** Status of a GET on a protected route with this access token (GET /auth/sessions). */
export async function protectedStatus(t: TestApp, accessToken: string): Promise<number> {
  const res = await t.http.get('/auth/sessions').set(bearer(accessToken));
  return res.status;
}

/** A unique, valid email address. */
export function uniqueEmail(tag = 'mail'): string {
  return `${uniqueUsername(tag)}@example.com`;
}

/** POST /resources as this caller; answers the created Resource (expects 201). */
export async function createResource(
  t: TestApp,
  auth: { Authorization: string },
  fields: { title?: string; body?: string; visibility?: 'private' | 'public' } = {},
): Promise<{
  id: string;
  ownerId: string;
  title: string;
  body: string;
  visibility: 'private' | 'public';
  createdAt: string;
  updatedAt: string;
}> {
  const res = await t.http
    .post('/resources')
    .set(auth)
    .send({ title: fields.title ?? `resource ${uniqueUsername('r')}`, ...fields })
    .expect(201);
  return res.body;
}
