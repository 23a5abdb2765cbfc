import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/config.schema.js';
import { uniqueEmail, uniqueUsername } from '../support/factories.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import { startApp, type TestApp } from '../support/test-app.js';
import {
  PASSWORD,
  SUBJECT,
  VERIFY_LINK,
  client,
  expectStatus,
  linkToken,
  mailIdle,
  nextMail,
  outcome,
  recoveryEnv,
  signupAs,
  signupWithVerificationToken,
  verifiedUser,
} from './recovery-helpers.js';

/** Contract v2 §A: verification of the email address (signup mail, verify, verify-request). */
describe('email verification', () => {
  let smtp: TestSmtp;
  let t: TestApp;
  beforeAll(async () => {
    smtp = await startSmtp('accept');
    t = await startApp(recoveryEnv(smtp));
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('a signup with an email mails exactly one verification link to the app', async () => {
    const c = client(t);
    const before = smtp.received.length;
    const user = await signupAs(c);
    await mailIdle(t);
    const mails = smtp.received.slice(before);
    expect(mails).toHaveLength(1);
    const [mail] = mails;
    expect(mail!.to).toEqual([user.email]);
    expect(mail!.parsed.subject).toContain(SUBJECT.verify);
    const token = linkToken(mail!, VERIFY_LINK);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('a signup without an email sends nothing', async () => {
    const c = client(t);
    await mailIdle(t);
    const before = smtp.received.length;
    await signupAs(c, { email: null });
    await mailIdle(t);
    expect(smtp.received.length).toBe(before);
  });

  it('POST /auth/email/verify with the mailed token verifies the address once; the same token again is 400 VERIFICATION_TOKEN_INVALID', async () => {
    const c = client(t);
    const { user, token } = await signupWithVerificationToken(c, smtp);
    const before = await c.get('/users/me').set(user.auth).expect(200);
    expect(before.body.emailVerified).toBe(false);

    const res = await c.post('/auth/email/verify').send({ token });
    expectStatus(res, 200);
    expect(res.body).toEqual({ status: 'verified' });
    expect(res.headers['cache-control']).toBe('no-store');

    const me = await c.get('/users/me').set(user.auth).expect(200);
    expect(me.body).toMatchObject({ email: user.email, emailVerified: true, pendingEmail: null });

    const again = await c.post('/auth/email/verify').send({ token });
    expect(outcome(again)).toEqual({ status: 400, code: 'VERIFICATION_TOKEN_INVALID' });
  });

  it('bearer POST /auth/email/verify-request answers 202 and mails one new link (which replaces the old one)', async () => {
    const c = client(t);
    const { user, token: first } = await signupWithVerificationToken(c, smtp);
    t.clock.advance(61); // past the 60 s in which no second link is sent
    await mailIdle(t);
    const before = smtp.received.length;

    const res = await c.post('/auth/email/verify-request').set(user.auth);
    expectStatus(res, 202);
    expect(typeof res.body.message).toBe('string');
    await mailIdle(t);
    const mails = smtp.received.slice(before);
    expect(mails).toHaveLength(1);
    expect(mails[0]!.to).toEqual([user.email]);
    const second = linkToken(await nextMail(smtp, user.email!, SUBJECT.verify), VERIFY_LINK);
    expect(second).not.toBe(first);

    expect(outcome(await c.post('/auth/email/verify').send({ token: first }))).toEqual({
      status: 400,
      code: 'VERIFICATION_TOKEN_INVALID',
    });
    const ok = await c.post('/auth/email/verify').send({ token: second });
    expectStatus(ok, 200);
    expect(ok.body).toEqual({ status: 'verified' });
  });

  it('bearer verify-request within 60 s of the last link answers 202, sends nothing, and the last link still works', async () => {
    const c = client(t);
    const { user, token } = await signupWithVerificationToken(c, smtp);
    await mailIdle(t);
    const before = smtp.received.length;
    const res = await c.post('/auth/email/verify-request').set(user.auth);
    expectStatus(res, 202);
    await mailIdle(t);
    expect(smtp.received.length).toBe(before);
    expect((await c.post('/auth/email/verify').send({ token })).status).toBe(200);
  });

  it('bearer verify-request without an email address answers 400 NO_EMAIL', async () => {
    const c = client(t);
    const user = await signupAs(c, { email: null });
    const res = await c.post('/auth/email/verify-request').set(user.auth);
    expect(outcome(res)).toEqual({ status: 400, code: 'NO_EMAIL' });
  });

  it('bearer verify-request for an already verified address answers 409 EMAIL_ALREADY_VERIFIED and sends nothing', async () => {
    const c = client(t);
    const user = await verifiedUser(c, smtp);
    t.clock.advance(61);
    await mailIdle(t);
    const before = smtp.received.length;
    const res = await c.post('/auth/email/verify-request').set(user.auth);
    expect(outcome(res)).toEqual({ status: 409, code: 'EMAIL_ALREADY_VERIFIED' });
    await mailIdle(t);
    expect(smtp.received.length).toBe(before);
  });

  it('anonymous verify-request answers the same for a waiting account and an unknown address; only the first gets a link', async () => {
    const c = client(t);
    const { user } = await signupWithVerificationToken(c, smtp);
    t.clock.advance(61);
    await mailIdle(t);
    const before = smtp.received.length;
    const unknown = uniqueEmail('nobody');
    const known = await c.post('/auth/email/verify-request').send({ email: user.email });
    const stranger = await c.post('/auth/email/verify-request').send({ email: unknown });
    expect(known.status).toBe(202);
    expect(stranger.status).toBe(202);
    expect(stranger.text).toBe(known.text);
    await mailIdle(t);
    const mails = smtp.received.slice(before);
    expect(mails.map((m) => m.to)).toEqual([[user.email]]);
    linkToken(mails[0]!, VERIFY_LINK);
  });

  it('anonymous verify-request with a null, missing or malformed email answers 400 VALIDATION_FAILED and mails nothing', async () => {
    const c = client(t);
    await mailIdle(t);
    const before = smtp.received.length;
    // null once reached the address's normalisation and answered 500.
    for (const body of [{ email: null }, {}, { email: 12 }, { email: 'not an address' }]) {
      const res = await c.post('/auth/email/verify-request').send(body);
      expect({ body, status: res.status, code: res.body.code }).toEqual({
        body,
        status: 400,
        code: 'VALIDATION_FAILED',
      });
      expect(res.body.message).toContain('email must be a valid email address');
    }
    await mailIdle(t);
    expect(smtp.received.length).toBe(before);
  });
});

describe('REQUIRE_EMAIL_VERIFICATION=true', () => {
  let smtp: TestSmtp;
  let t: TestApp;
  beforeAll(async () => {
    smtp = await startSmtp('accept');
    t = await startApp(recoveryEnv(smtp, { REQUIRE_EMAIL_VERIFICATION: 'true' }));
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('login by the unverified email: right password 403 EMAIL_NOT_VERIFIED (no session), wrong password 401 INVALID_CREDENTIALS; after verification 200', async () => {
    const c = client(t);
    const email = uniqueEmail('unverified');
    const signup = await c.post('/auth/signup').send({ username: uniqueUsername('unv'), email, password: PASSWORD });
    expectStatus(signup, 201);
    const token = linkToken(await nextMail(smtp, email, SUBJECT.verify), VERIFY_LINK);

    const right = await c.post('/auth/login').send({ username: email, password: PASSWORD });
    expect(outcome(right)).toEqual({ status: 403, code: 'EMAIL_NOT_VERIFIED' });
    expect(right.headers['set-cookie']).toBeUndefined();
    expect(right.body.accessToken).toBeUndefined();

    const wrong = await c.post('/auth/login').send({ username: email, password: 'not the password' });
    expect(outcome(wrong)).toEqual({ status: 401, code: 'INVALID_CREDENTIALS' });

    expect((await c.post('/auth/email/verify').send({ token })).status).toBe(200);
    const ok = await c.post('/auth/login').send({ username: email, password: PASSWORD });
    expectStatus(ok, 200);
    expect(typeof ok.body.accessToken).toBe('string');
  });
});

describe('REQUIRE_EMAIL_VERIFICATION configuration', () => {
  const production = {
    NODE_ENV: 'production',
    REQUIRE_EMAIL_VERIFICATION: 'true',
    PASSWORD_PEPPER: 'production-pepper-0123456789-0123456789',
    JWT_SECRETS: 'a-production-secret-of-at-least-32-bytes-0123456789',
  };

  it('in production without SMTP_URL is a ConfigError naming SMTP_URL', () => {
    let caught: unknown;
    try {
      parseConfig(production);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const problems = (caught as ConfigError).problems;
    expect(problems.some((p) => p.startsWith('SMTP_URL'))).toBe(true);
    expect((caught as ConfigError).message).toContain('SMTP_URL');
  });

  it('in production with SMTP_URL is accepted', () => {
    expect(parseConfig({ ...production, SMTP_URL: 'smtp://mail.example.test:587' }).REQUIRE_EMAIL_VERIFICATION).toBe(
      true,
    );
  });
});
