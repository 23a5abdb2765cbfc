import { randomBytes } from 'node:crypto';
import type { TestApp } from './test-app.js';

let counter = 0;

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
