import { Secret, TOTP } from 'otpauth';
import { expect } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { bearer, decodeJwt, refreshCookieOf, signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

/** Contract v2 §B: two-step sign-in. Shared pieces of the test/mfa specs. */

export const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
export const MFA_ENV = { ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', ...ADMIN };
/** `XXXXX-XXXXX`, Crockford base32 (0-9 A-Z without I L O U). */
export const RECOVERY_CODE = /^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$/;
export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
export const STEP_MS = 30_000;

/**
 * An app on a fresh database with a frozen FakeClock: time moves only by advance() (and by
 * the server's own clock.sleep), so a TOTP step never ends in the middle of a test.
 */
export async function startMfaApp(env: Record<string, string> = {}): Promise<TestApp> {
  const t = await startApp({ ...MFA_ENV, ...env });
  t.clock.freeze();
  return t;
}

/** The 6-digit TOTP code of `secret` (base32) at `ms`, computed by `otpauth`, not by the app. */
export function codeAt(secret: string, ms: number): string {
  return TOTP.generate({ secret: Secret.fromBase32(secret), timestamp: ms });
}

/** The code of the step `offset` steps away from the app's current time. */
export function codeNow(t: TestApp, secret: string, offset = 0): string {
  return codeAt(secret, t.clock.nowMs() + offset * STEP_MS);
}

/** A 6-digit code that is none of the codes within ±3 steps of now. */
export function wrongCode(t: TestApp, secret: string): string {
  const near = new Set([-3, -2, -1, 0, 1, 2, 3].map((d) => codeNow(t, secret, d)));
  for (let n = 0; ; n++) {
    const candidate = String((n * 137_911 + 424_242) % 1_000_000).padStart(6, '0');
    if (!near.has(candidate)) return candidate;
  }
}

/**
 * Moves the clock to `intoSec` seconds after the start of the step `steps` steps ahead and
 * answers the code of that step: a step no code of the user can have used yet.
 */
export function advanceToFreshStep(t: TestApp, secret: string, steps = 1, intoSec = 1): string {
  const now = t.clock.nowMs();
  const target = (Math.floor(now / STEP_MS) + steps) * STEP_MS + intoSec * 1000;
  t.clock.advance((target - now) / 1000);
  return codeNow(t, secret);
}

export interface MfaUser extends SignedUp {
  /** The base32 secret of the enrolment. */
  secret: string;
  recoveryCodes: string[];
  /** The 201 body of POST /auth/mfa/totp and the 200 body of the confirm. */
  enrolment: Record<string, unknown>;
  confirmation: Record<string, unknown>;
}

/** POST /auth/mfa/totp with this caller's password (expects 201). */
export async function startEnrolment(t: TestApp, u: SignedUp): Promise<Record<string, unknown>> {
  const res = await t.http.post('/auth/mfa/totp').set(u.auth).send({ password: u.password });
  expectStatus(res, 201);
  return res.body as Record<string, unknown>;
}

/**
 * Enrols `u` (a fresh signup by default): POST /auth/mfa/totp, then confirm with the code
 * of the current step. Answers the account with the aal2 access token of the confirm.
 */
export async function enrol(t: TestApp, user?: SignedUp): Promise<MfaUser> {
  const u = user ?? (await signup(t));
  const enrolment = await startEnrolment(t, u);
  const secret = enrolment.secret as string;
  const res = await t.http
    .post('/auth/mfa/totp/confirm')
    .set(u.auth)
    .send({ code: codeNow(t, secret) });
  expectStatus(res, 200);
  const accessToken = res.body.accessToken as string;
  return {
    ...u,
    accessToken,
    auth: bearer(accessToken),
    refreshToken: refreshCookieOf(res) ?? u.refreshToken,
    secret,
    recoveryCodes: res.body.recoveryCodes as string[],
    enrolment,
    confirmation: res.body as Record<string, unknown>,
  };
}

/** POST /auth/login with the right password of an MFA account: expects 403 MFA_REQUIRED, answers the mfaToken. */
export async function passwordStep(t: TestApp, u: { username: string; password: string }): Promise<string> {
  const res = await t.http.post('/auth/login').send({ username: u.username, password: u.password });
  expectStatus(res, 403);
  expect(res.body.code).toBe('MFA_REQUIRED');
  expect(typeof res.body.mfaToken).toBe('string');
  return res.body.mfaToken as string;
}

/** POST /auth/login/mfa. */
export function loginMfa(t: TestApp, mfaToken: unknown, proof: { code?: unknown; recoveryCode?: unknown }) {
  return t.http.post('/auth/login/mfa').send({ mfaToken, ...proof });
}

/**
 * A complete two-step login with a code of a fresh step (the clock moves up to one step):
 * answers the new session like factories' login().
 */
export async function mfaLogin(t: TestApp, u: MfaUser): Promise<SignedUp & { body: Record<string, unknown> }> {
  const mfaToken = await passwordStep(t, u);
  const res = await loginMfa(t, mfaToken, { code: advanceToFreshStep(t, u.secret) });
  expectStatus(res, 200);
  const refreshToken = refreshCookieOf(res);
  expect(refreshToken).toBeTruthy();
  return {
    id: u.id,
    username: u.username,
    password: u.password,
    accessToken: res.body.accessToken as string,
    refreshToken: refreshToken!,
    auth: bearer(res.body.accessToken as string),
    body: res.body as Record<string, unknown>,
  };
}

/** The claims of an access token. */
export const claimsOf = (token: string) => decodeJwt(token).payload;

/** Expects this status; a failure shows the body that came instead. */
export function expectStatus(res: { status: number; text: string }, status: number): void {
  expect(res.status === status ? status : `${res.status}: ${res.text}`).toBe(status);
}

/** Expects this status and error code, in v1's error shape. */
export function expectError(
  res: { status: number; text: string; body: Record<string, unknown> },
  status: number,
  code: string,
): void {
  expect({ status: res.status, code: res.body?.code }, `response: ${res.text}`).toEqual({ status, code });
  expect(res.body).toMatchObject({ statusCode: status, error: expect.any(String) });
  // v1's message is a string, or a list of them for validation errors.
  const { message } = res.body;
  expect(typeof message === 'string' || (Array.isArray(message) && message.every((m) => typeof m === 'string'))).toBe(
    true,
  );
}

/** Status and code, for comparing many answers at once. */
export const outcome = (res: { status: number; body: { code?: unknown } }) => `${res.status} ${String(res.body?.code)}`;

/** The `attempts` of every challenge of a user, oldest first. */
export async function challengeAttempts(t: TestApp, userId: string): Promise<number[]> {
  const rows = await t.prisma.mfaChallenge.findMany({
    where: { userId },
    select: { attempts: true },
    orderBy: { createdAt: 'asc' },
  });
  return rows.map((c) => c.attempts);
}

/** How many answers had each outcome(), e.g. { '401 INVALID_MFA_CODE': 5, '401 MFA_TOKEN_INVALID': 25 }. */
export const outcomeCounts = (answers: readonly { status: number; body: { code?: unknown } }[]) =>
  answers.map(outcome).reduce<Record<string, number>>((m, o) => ({ ...m, [o]: (m[o] ?? 0) + 1 }), {});

/** Live (not revoked) session rows of a user. */
export const liveSessions = (t: TestApp, userId: string) =>
  t.prisma.session.count({ where: { userId, revokedAt: null } });

/** Every session row of a user. */
export const allSessions = (t: TestApp, userId: string) => t.prisma.session.count({ where: { userId } });

/**
 * The user row's xmax: a row lock (FOR SHARE, FOR UPDATE) or an update stamps it with its
 * transaction, so an unchanged value means nothing locked or wrote the row.
 */
export async function userRowXmax(t: TestApp, userId: string): Promise<string> {
  const rows = await t.prisma.$queryRaw<
    Array<{ x: string }>
  >`SELECT xmax::text AS x FROM users WHERE id = ${userId}::uuid`;
  return rows[0]!.x;
}
