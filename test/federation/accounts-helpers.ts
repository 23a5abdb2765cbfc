import { randomBytes } from 'node:crypto';
import type { Response } from 'supertest';
import { expect } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { bearer, login, refreshCookieOf, type SignedUp } from '../support/factories.js';
import type { FakeIdp, SignOptions } from '../support/fake-idp.js';
import { startApp, type TestApp } from '../support/test-app.js';

/**
 * What the federation account tests share (contract v2 §D): an app trusting fake issuers,
 * tokens signed on the app's clock, the exchange, the administrator, error assertions.
 */

export const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
export const BASE_ENV = { ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', ...ADMIN } as const;

/** The fields of a linked identity (GET /users/me/identities), sorted. */
export const IDENTITY_KEYS = ['id', 'issuer', 'issuerName', 'lastSeenAt', 'linkedAt', 'subject'];
export const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** An app trusting these issuers (FEDERATION_ISSUERS entries), plus `env`. */
export function startFederated(entries: Array<Record<string, unknown>>, env: Record<string, string> = {}) {
  return startApp({ ...BASE_ENV, FEDERATION_ISSUERS: JSON.stringify(entries), ...env });
}

let counter = 0;
/** A `sub` no other test uses (opaque, as real issuers make them). */
export function uniqueSubject(tag = 'sub'): string {
  counter += 1;
  return `${tag}-${counter}-${randomBytes(6).toString('hex')}`;
}

/** The app's clock, in epoch seconds. */
export function appNow(t: TestApp): number {
  return Math.floor(t.clock.nowMs() / 1000);
}

/** A token of `idp` issued "now" by the app's clock (so that advancing the clock keeps it fresh). */
export function tokenOf(
  t: TestApp,
  idp: FakeIdp,
  claims: Record<string, unknown>,
  opts: SignOptions = {},
): Promise<string> {
  return idp.sign(claims, { now: appNow(t), ...opts });
}

/** `Authorization` with a fresh token of `idp` for `sub` (and other claims). */
export async function idpAuth(
  t: TestApp,
  idp: FakeIdp,
  sub: string,
  claims: Record<string, unknown> = {},
): Promise<{ Authorization: string }> {
  return bearer(await tokenOf(t, idp, { sub, ...claims }));
}

/** POST /auth/federated/session with this subject token (any JSON value, for the validation tests). */
export function exchange(t: TestApp, subjectToken: unknown, headers: Record<string, string> = {}) {
  return t.http.post('/auth/federated/session').set(headers).send({ subjectToken });
}

export interface FederatedSession {
  id: string;
  username: string;
  accessToken: string;
  refreshToken: string;
  auth: { Authorization: string };
}

/** A session opened by exchanging a fresh token of `idp` for `sub` (expects 200). */
export async function federatedSession(
  t: TestApp,
  idp: FakeIdp,
  sub: string,
  claims: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<FederatedSession> {
  const res = await exchange(t, await tokenOf(t, idp, { sub, ...claims }), headers);
  expectOk(res, 200);
  const refreshToken = refreshCookieOf(res);
  if (!refreshToken) throw new Error('the exchange set no refresh cookie');
  return {
    id: res.body.user.id as string,
    username: res.body.user.username as string,
    accessToken: res.body.accessToken as string,
    refreshToken,
    auth: bearer(res.body.accessToken as string),
  };
}

/** A fresh session of the administrator of BASE_ENV. */
export function adminSession(t: TestApp): Promise<SignedUp> {
  return login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
}

/** GET /users/me with these credentials (expects 200) and answers the body. */
export async function me(t: TestApp, auth: { Authorization: string }): Promise<Record<string, unknown>> {
  const res = await t.http.get('/users/me').set(auth);
  expectOk(res, 200);
  return res.body as Record<string, unknown>;
}

/** The user id GET /users/me answers for these credentials (expects 200). */
export async function meId(t: TestApp, auth: { Authorization: string }): Promise<string> {
  return (await me(t, auth)).id as string;
}

/** Admin PATCH /users/:id (expects 200). */
export async function adminPatchUser(
  t: TestApp,
  admin: { auth: { Authorization: string } },
  userId: string,
  body: Record<string, unknown>,
): Promise<void> {
  expectOk(await t.http.patch(`/users/${userId}`).set(admin.auth).send(body), 200);
}

/** The answer has this status and error code (its body is shown when it does not). */
export function expectError(res: Response, status: number, code: string): void {
  expect({ status: res.status, code: res.body?.code, body: res.status === status ? undefined : res.text }).toEqual({
    status,
    code,
    body: undefined,
  });
}

/** The answer has this status (its body is shown when it does not). */
export function expectOk(res: Response, status = 200): void {
  expect(res.status === status ? status : `${res.status}: ${res.text}`).toBe(status);
}

/** A 401 of the bearer guard: INVALID_TOKEN with the RFC 6750 challenge naming `description`. */
export function expectBearerRejected(res: Response, description?: string): void {
  expectError(res, 401, 'INVALID_TOKEN');
  const challenge = (res.headers['www-authenticate'] as string | undefined) ?? '';
  expect(challenge).toContain('error="invalid_token"');
  if (description !== undefined) expect(challenge).toContain(`error_description="${description}"`);
}
