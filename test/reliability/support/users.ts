import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import { bearer, call, refreshCookieOf } from './http.js';

export interface Account {
  id: string;
  username: string;
  password: string;
  access: string;
  refresh: string;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

/** POST /auth/signup; throws unless 201 with a refresh cookie. */
export async function signupAccount(
  base: string,
  prefix = 'rel',
  agent?: http.Agent,
  headers: Record<string, string> = {},
): Promise<Account> {
  const username = uniqueName(prefix);
  const password = `pw ${randomBytes(8).toString('hex')}`;
  const res = await call(base, 'POST', '/auth/signup', { json: { username, password }, agent, headers });
  const refresh = refreshCookieOf(res);
  if (res.status !== 201 || !refresh) throw new Error(`signup failed: ${res.status ?? res.error} ${res.text}`);
  const body = res.json as { user: { id: string }; accessToken: string };
  return { id: body.user.id, username, password, access: body.accessToken, refresh };
}

/** POST /auth/login; throws unless 200. */
export async function loginAccount(
  base: string,
  username: string,
  password: string,
  agent?: http.Agent,
  headers: Record<string, string> = {},
): Promise<Account> {
  const res = await call(base, 'POST', '/auth/login', { json: { username, password }, agent, headers });
  const refresh = refreshCookieOf(res);
  if (res.status !== 200 || !refresh) throw new Error(`login failed: ${res.status ?? res.error} ${res.text}`);
  const body = res.json as { user: { id: string }; accessToken: string };
  return { id: body.user.id, username, password, access: body.accessToken, refresh };
}

export async function createResource(
  base: string,
  account: Account,
  title: string,
  agent?: http.Agent,
): Promise<string> {
  const res = await call(base, 'POST', '/resources', { json: { title }, headers: bearer(account.access), agent });
  if (res.status !== 201) throw new Error(`create resource failed: ${res.status ?? res.error} ${res.text}`);
  return (res.json as { id: string }).id;
}
