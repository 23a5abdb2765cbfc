import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueEmail, uniqueUsername } from '../support/factories.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import { startApp, type TestApp } from '../support/test-app.js';
import {
  APP_URL,
  RESET_LINK,
  SUBJECT,
  VERIFY_LINK,
  client,
  expectStatus,
  linkToken,
  mailIdle,
  nextMail,
  recoveryEnv,
  signupAs,
} from './recovery-helpers.js';

/** Headers whose values differ per request by nature; their names must still match. */
const PER_REQUEST_VALUES = new Set(['x-request-id', 'date', 'etag']);

/** Everything a caller can observe of an answer, except per-request values. */
function observable(res: { status: number; text: string; headers: Record<string, string | string[] | undefined> }) {
  return {
    status: res.status,
    body: res.text,
    headerNames: Object.keys(res.headers).sort(),
    headerValues: Object.fromEntries(
      Object.entries(res.headers)
        .filter(([name]) => !PER_REQUEST_VALUES.has(name))
        .sort(([a], [b]) => a.localeCompare(b)),
    ),
  };
}

/** Contract v2 §A: POST /auth/password/forgot tells nobody whether an account exists. */
describe('POST /auth/password/forgot', () => {
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

  it('answers identically (status, body bytes, header names and values) for a user with an email, an unknown login, a user without email and a disabled user; only the first gets a mail', async () => {
    const c = client(t);
    const withEmail = await signupAs(c);
    const withoutEmail = await signupAs(c, { email: null });
    const disabled = await signupAs(c);
    await t.prisma.user.update({ where: { id: disabled.id }, data: { disabled: true } });
    await mailIdle(t); // the signups' verification mails are out of the way
    const before = smtp.received.length;

    const cases = [
      ['user with an email', withEmail.username],
      ['unknown login', uniqueUsername('ghost')],
      ['user without email', withoutEmail.username],
      ['disabled user', disabled.username],
      ['unknown email address', uniqueEmail('ghost')],
    ] as const;
    const answers = [];
    for (const [label, login] of cases) {
      const res = await c.post('/auth/password/forgot').send({ login });
      answers.push({ label, ...observable(res) });
    }
    expect(answers[0]!.status).toBe(202);
    expect(JSON.parse(answers[0]!.body)).toEqual({ message: expect.any(String) });
    expect(answers[0]!.headerValues['cache-control']).toBe('no-store');
    for (const answer of answers.slice(1)) {
      expect({ ...answer, label: answers[0]!.label }, `answer for ${answer.label}`).toEqual(answers[0]);
    }

    await mailIdle(t);
    const mails = smtp.received.slice(before);
    expect(mails.map((m) => m.to)).toEqual([[withEmail.email]]);
    expect(mails[0]!.parsed.subject).toContain(SUBJECT.reset);
    linkToken(mails[0]!, RESET_LINK);
  });

  it('finds the account by its email address too (case-insensitively)', async () => {
    const c = client(t);
    const user = await signupAs(c);
    await nextMail(smtp, user.email!, SUBJECT.verify);
    const res = await c.post('/auth/password/forgot').send({ login: user.email!.toUpperCase() });
    expectStatus(res, 202);
    linkToken(await nextMail(smtp, user.email!, SUBJECT.reset), RESET_LINK);
  });

  it('a Host: evil.example header still yields links to APP_URL', async () => {
    const c = client(t);
    const user = await signupAs(c);
    await nextMail(smtp, user.email!, SUBJECT.verify);
    const res = await c.post('/auth/password/forgot').set('Host', 'evil.example').send({ login: user.username });
    expectStatus(res, 202);
    const mail = await nextMail(smtp, user.email!, SUBJECT.reset);
    linkToken(mail, RESET_LINK);
    expect(mail.raw).not.toContain('evil.example');
  });

  it('an X-Forwarded-Host: evil.example header (proxy trusted) still yields links to APP_URL', async () => {
    const c = client(t);
    const user = await signupAs(c);
    await nextMail(smtp, user.email!, SUBJECT.verify);
    const res = await c
      .post('/auth/password/forgot')
      .set('X-Forwarded-Host', 'evil.example')
      .set('X-Forwarded-Proto', 'http')
      .send({ login: user.username });
    expectStatus(res, 202);
    const mail = await nextMail(smtp, user.email!, SUBJECT.reset);
    linkToken(mail, RESET_LINK);
    expect(mail.raw).not.toContain('evil.example');
  });

  it('a signup with Host and X-Forwarded-Host: evil.example still gets a verification link to APP_URL', async () => {
    const c = client(t);
    const email = uniqueEmail('hosty');
    const res = await c
      .post('/auth/signup')
      .set('Host', 'evil.example')
      .set('X-Forwarded-Host', 'evil.example')
      .send({ username: uniqueUsername('hosty'), email, password: 'correct horse battery' });
    expectStatus(res, 201);
    const mail = await nextMail(smtp, email, SUBJECT.verify);
    expect(linkToken(mail, VERIFY_LINK)).toBeTruthy();
    expect(mail.parsed.text).toContain(`${APP_URL}/verify-email#token=`);
    expect(mail.raw).not.toContain('evil.example');
  });

  it('a display name carrying "\\r\\nBcc: evil@x" (set in the database) gives one recipient and no Bcc header', async () => {
    const c = client(t);
    const user = await signupAs(c);
    await nextMail(smtp, user.email!, SUBJECT.verify);
    // The DTO refuses control characters, so it is set underneath the API.
    await t.prisma.user.update({ where: { id: user.id }, data: { displayName: 'x\r\nBcc: evil@x' } });
    await mailIdle(t);
    const before = smtp.received.length;

    const res = await c.post('/auth/password/forgot').send({ login: user.username });
    expectStatus(res, 202);
    await mailIdle(t);
    const mails = smtp.received.slice(before);
    expect(mails).toHaveLength(1);
    const mail = mails[0]!;
    expect(mail.to).toEqual([user.email]);
    const headerBlock = mail.raw.split(/\r?\n\r?\n/)[0]!;
    expect(headerBlock).not.toMatch(/^bcc\s*:/im);
    expect(mail.parsed.bcc).toBeUndefined();
    expect(mail.parsed.headers.has('bcc')).toBe(false);
    const to = mail.parsed.to;
    const toList = Array.isArray(to) ? to.flatMap((a) => a.value) : (to?.value ?? []);
    expect(toList.map((a) => a.address)).toEqual([user.email]);
    expect(smtp.received.some((m) => m.to.some((a) => a.includes('evil')))).toBe(false);
  });

  it('a body without a login, or with a non-string one, is 400 VALIDATION_FAILED', async () => {
    const c = client(t);
    for (const body of [{}, { login: '' }, { login: 42 }, { login: ['a'] }, { login: 'x'.repeat(255) }]) {
      const res = await c.post('/auth/password/forgot').send(body);
      expect({ body, status: res.status, code: res.body.code }).toEqual({
        body,
        status: 400,
        code: 'VALIDATION_FAILED',
      });
    }
  });
});
