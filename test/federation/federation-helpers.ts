import { KeyObject, sign as cryptoSign } from 'node:crypto';
import { expect } from 'vitest';
import type { Response } from 'supertest';
import { bearer, login, type SignedUp } from '../support/factories.js';
import type { FakeIdp, FakeKey, SignOptions } from '../support/fake-idp.js';
import { unsignedJwt } from '../support/jwt.js';
import { startApp, type TestApp } from '../support/test-app.js';

/** The bootstrap admin of every federation test app (ADMIN_USERNAME / ADMIN_PASSWORD). */
export const FED_ADMIN = { ADMIN_USERNAME: 'fedroot', ADMIN_PASSWORD: 'fed root password 123' } as const;

/** One configured issuer: a fake provider, with FEDERATION_ISSUERS entry fields to override. */
export type IssuerSpec = FakeIdp | { idp: FakeIdp; entry?: Record<string, unknown> };

export interface FedApp {
  t: TestApp;
  /** Closes the app, then every provider it was given. */
  close(): Promise<void>;
}

/** The FEDERATION_ISSUERS entries of these specs; entries without a name get `idp-<index>`. */
export function issuerEntries(specs: readonly IssuerSpec[]): Array<Record<string, unknown>> {
  return specs.map((spec, index) => {
    const { idp, entry } = 'idp' in spec ? spec : { idp: spec, entry: undefined };
    return idp.entry({ name: `idp-${index}`, ...entry });
  });
}

/**
 * An app trusting these providers (FEDERATION_ISSUERS), with the bootstrap admin FED_ADMIN
 * and roomy sign-up and login limits; `env` adds or overrides variables.
 */
export async function fedApp(specs: readonly IssuerSpec[], env: Record<string, string> = {}): Promise<FedApp> {
  const idps = specs.map((spec) => ('idp' in spec ? spec.idp : spec));
  const t = await startApp({
    SIGNUP_RATE_LIMIT: '100000',
    REFRESH_RATE_LIMIT: '100000',
    LOGIN_RATE_LIMIT: '1000',
    ...FED_ADMIN,
    FEDERATION_ISSUERS: JSON.stringify(issuerEntries(specs)),
    ...env,
  });
  return {
    t,
    close: async () => {
      await t.close();
      for (const idp of idps) await idp.close();
    },
  };
}

/** The bootstrap admin's session (fedApp sets FED_ADMIN). */
export function adminOf(t: TestApp): Promise<SignedUp> {
  return login(t, FED_ADMIN.ADMIN_USERNAME, FED_ADMIN.ADMIN_PASSWORD);
}

/** The app clock's time in epoch seconds (tokens signed "now" after t.clock.advance()). */
export function nowOf(t: TestApp): number {
  return Math.floor(t.clock.nowMs() / 1000);
}

/** A token of this provider issued at the app clock's "now" (unless `opts.now` says otherwise). */
export function tokenAt(
  t: TestApp,
  idp: FakeIdp,
  claims: Record<string, unknown> = {},
  opts: SignOptions = {},
): Promise<string> {
  return idp.sign(claims, { now: nowOf(t), ...opts });
}

/** `Authorization: Bearer <token of this provider at the app clock's now>`. */
export async function fedAuth(
  t: TestApp,
  idp: FakeIdp,
  claims: Record<string, unknown> = {},
  opts: SignOptions = {},
): Promise<{ Authorization: string }> {
  return bearer(await tokenAt(t, idp, claims, opts));
}

/** The registered claims FakeIdp.sign would put in a token, for hand-made tokens. */
export function claimsOf(
  idp: FakeIdp,
  now: number,
  extra: Record<string, unknown> = {},
): Record<string, unknown> & { iss: string; sub: string; aud: string; iat: number; exp: number } {
  return { iss: idp.issuer, sub: 'subject-1', aud: 'gatehouse-api', iat: now, exp: now + 300, ...extra };
}

/** A provider key's public half as PEM (SPKI), as an attacker would download it. */
export function publicPem(key: FakeKey): string {
  return KeyObject.from(key.publicKey).export({ type: 'spki', format: 'pem' }).toString();
}

/**
 * An RS256 token signed by hand with a provider key, any header allowed (jose refuses to
 * sign some, e.g. an unknown `crit` extension).
 */
export function signRs256Raw(header: Record<string, unknown>, payload: Record<string, unknown>, key: FakeKey): string {
  const input = unsignedJwt({ alg: 'RS256', kid: key.kid, ...header }, payload);
  const signature = cryptoSign('sha256', Buffer.from(input), KeyObject.from(key.privateKey));
  return `${input}.${signature.toString('base64url')}`;
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
export function expectStatus(res: Response, status: number): void {
  expect(res.status === status ? status : `${res.status}: ${res.text}`).toBe(status);
}

/**
 * 401 INVALID_TOKEN with the RFC 6750 challenge (`error="invalid_token"`); when given, the
 * error_description must match `description`.
 */
export function expectInvalidToken(res: Response, description?: string | RegExp): void {
  expectError(res, 401, 'INVALID_TOKEN');
  const challenge = res.headers['www-authenticate'] ?? '';
  expect(challenge).toMatch(/^Bearer realm="gatehouse", error="invalid_token"/);
  if (description !== undefined) {
    const found = /error_description="([^"]*)"/.exec(challenge)?.[1];
    if (typeof description === 'string') expect(found).toBe(description);
    else expect(found).toMatch(description);
  }
}

/** 503 FEDERATION_UNAVAILABLE with a Retry-After of whole seconds (never 401, never 500). */
export function expectUnavailable(res: Response): void {
  expectError(res, 503, 'FEDERATION_UNAVAILABLE');
  expect(res.headers['retry-after'] ?? '').toMatch(/^[1-9][0-9]*$/);
}
