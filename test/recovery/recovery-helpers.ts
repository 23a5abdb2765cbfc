import { randomInt } from 'node:crypto';
import { expect } from 'vitest';
import { MailerService } from '../../src/mail/mailer.service.js';
import { ROOMY_LIMITS } from '../support/env.js';
import { refreshCookieOf, uniqueEmail, uniqueUsername } from '../support/factories.js';
import { tokenOf, type ReceivedMail, type TestSmtp } from '../support/smtp.js';
import type { TestApp } from '../support/test-app.js';

/** Where the user interface is: every mailed link must start here, whatever the request said. */
export const APP_URL = 'https://app.example.test';
export const VERIFY_LINK = `${APP_URL}/verify-email#token=`;
export const RESET_LINK = `${APP_URL}/reset-password#token=`;

export const PASSWORD = 'correct horse battery';
export const NEW_PASSWORD = 'a brand new passphrase';

/** Subjects of the mails (mail-templates.ts), to tell them apart in one mailbox. */
export const SUBJECT = {
  verify: 'confirm your email address',
  reset: 'reset your password',
  confirmNew: 'confirm your new email address',
  confirmChange: 'confirm the change of your email address',
  changed: 'your email address was changed',
} as const;

/**
 * Environment of an app mailing to `smtp`: links under APP_URL, X-Forwarded-For trusted so
 * that each test can come from its own client address (the per-address limits on mail
 * requests and token submissions never mix between tests), roomy sign-up and login limits.
 */
export function recoveryEnv(smtp: Pick<TestSmtp, 'url'>, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...ROOMY_LIMITS,
    LOGIN_RATE_LIMIT: '1000',
    TRUST_PROXY: 'true',
    SMTP_URL: smtp.url,
    APP_URL,
    ...extra,
  };
}

/** A client address of its own (random per file, so that runs sharing one Redis never meet). */
const prefix = `10.${randomInt(256)}.${randomInt(256)}`;
let ipCounter = 0;
export function freshIp(): string {
  ipCounter += 1;
  return `${prefix}.${ipCounter}`;
}

/** Requests from one client address (X-Forwarded-For, with TRUST_PROXY=true). */
export interface Client {
  ip: string;
  get(path: string): ReturnType<TestApp['http']['get']>;
  post(path: string): ReturnType<TestApp['http']['post']>;
  patch(path: string): ReturnType<TestApp['http']['patch']>;
  delete(path: string): ReturnType<TestApp['http']['delete']>;
}

export function client(t: TestApp, ip: string = freshIp()): Client {
  return {
    ip,
    get: (path) => t.http.get(path).set('X-Forwarded-For', ip),
    post: (path) => t.http.post(path).set('X-Forwarded-For', ip),
    patch: (path) => t.http.patch(path).set('X-Forwarded-For', ip),
    delete: (path) => t.http.delete(path).set('X-Forwarded-For', ip),
  };
}

/** Resolves once the app's mail queue has nothing queued, in flight or waiting for a retry. */
export function mailIdle(t: TestApp): Promise<void> {
  return t.app.get(MailerService).whenIdle();
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 10 ms until it holds; throws after `timeoutMs`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await sleep(10);
  }
}

export interface Account {
  id: string;
  username: string;
  email: string | null;
  password: string;
  accessToken: string;
  refreshToken: string;
  auth: { Authorization: string };
}

/** Signs up through the API (expects 201 and a session). */
export async function signupAs(
  c: Client,
  fields: { email?: string | null; username?: string; displayName?: string } = {},
): Promise<Account> {
  const username = fields.username ?? uniqueUsername('rec');
  const email = fields.email === undefined ? uniqueEmail('rec') : fields.email;
  const body: Record<string, unknown> = { username, password: PASSWORD };
  if (email !== null) body.email = email;
  if (fields.displayName !== undefined) body.displayName = fields.displayName;
  const res = await c.post('/auth/signup').send(body);
  expectStatus(res, 201);
  const refreshToken = refreshCookieOf(res);
  expect(refreshToken).toBeDefined();
  return {
    id: res.body.user.id as string,
    username,
    email,
    password: PASSWORD,
    accessToken: res.body.accessToken as string,
    refreshToken: refreshToken!,
    auth: { Authorization: `Bearer ${res.body.accessToken as string}` },
  };
}

/** The mail's `#token=` token, after checking that its link starts with `linkPrefix` (text and HTML). */
export function linkToken(mail: ReceivedMail, linkPrefix: string): string {
  const token = tokenOf(mail);
  const link = `${linkPrefix}${encodeURIComponent(token)}`;
  expect(mail.parsed.text ?? '').toContain(link);
  if (typeof mail.parsed.html === 'string') expect(mail.parsed.html).toContain(link);
  return token;
}

/**
 * Waits for the next mail to `to` whose subject contains `subject`; mails of other kinds to
 * that address (a signup's verification mail, say) are passed over. Tests that count mails
 * do so explicitly, on `smtp.received`.
 */
export async function nextMail(smtp: TestSmtp, to: string, subject: string, timeoutMs = 10_000): Promise<ReceivedMail> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const mail = await smtp.waitForMail(to, Math.max(1, deadline - Date.now())).catch(() => undefined);
    if (!mail) throw new Error(`no "${subject}" mail to ${to} within ${timeoutMs} ms`);
    if ((mail.parsed.subject ?? '').includes(subject)) return mail;
  }
}

/** Signs up with an email address and returns the account and the token of its verification mail. */
export async function signupWithVerificationToken(
  c: Client,
  smtp: TestSmtp,
  fields: { displayName?: string } = {},
): Promise<{ user: Account; token: string }> {
  const user = await signupAs(c, fields);
  const mail = await nextMail(smtp, user.email!, SUBJECT.verify);
  return { user, token: linkToken(mail, VERIFY_LINK) };
}

/** Signs up with an email address and verifies it through the mailed link. */
export async function verifiedUser(c: Client, smtp: TestSmtp): Promise<Account> {
  const { user, token } = await signupWithVerificationToken(c, smtp);
  const res = await c.post('/auth/email/verify').send({ token });
  expectStatus(res, 200);
  expect(res.body).toEqual({ status: 'verified' });
  return user;
}

/** POST /auth/password/forgot (expects 202) and the token of the reset mail that follows. */
export async function resetToken(
  c: Client,
  smtp: TestSmtp,
  user: Account,
  login: string = user.username,
): Promise<string> {
  const res = await c.post('/auth/password/forgot').send({ login });
  expectStatus(res, 202);
  const mail = await nextMail(smtp, user.email!, SUBJECT.reset);
  return linkToken(mail, RESET_LINK);
}

/** Expects this status; a failure shows the body that came instead. */
export function expectStatus(res: { status: number; text: string }, status: number): void {
  expect(res.status === status ? status : `${res.status}: ${res.text}`).toBe(status);
}

/** Status and error code, for one-line expectations. */
export function outcome(res: { status: number; body: { code?: unknown } }): { status: number; code: unknown } {
  return { status: res.status, code: res.body?.code };
}
