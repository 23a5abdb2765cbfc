import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onPostgres } from '../support/env.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import { startApp, type TestApp } from '../support/test-app.js';
import {
  NEW_PASSWORD,
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
  resetToken,
  signupAs,
  verifiedUser,
} from './recovery-helpers.js';

/** The attacks an adversarial review of account recovery found, each refused now. */
describe('account recovery under attack', () => {
  let smtp: TestSmtp;
  let t: TestApp;
  beforeAll(async () => {
    smtp = await startSmtp();
    t = await startApp(recoveryEnv(smtp, { MAIL_RATE_LIMIT: '3', MAIL_NOTIFY_UNKNOWN: 'true' }));
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('a current-address link approves only the new address it named: a second change request replaces it', async () => {
    const c = client(t);
    const victim = await verifiedUser(c, smtp);
    const first = await c
      .post('/users/me/email')
      .set(victim.auth)
      .send({ newEmail: 'first-new@example.org', password: PASSWORD });
    expectStatus(first, 202);
    const approveFirst = linkToken(await nextMail(smtp, victim.email!, SUBJECT.confirmChange), VERIFY_LINK);
    // Within 60 s, another address: both links are replaced, and the current address is told.
    const second = await c
      .post('/users/me/email')
      .set(victim.auth)
      .send({ newEmail: 'attacker@example.net', password: PASSWORD });
    expectStatus(second, 202);
    const newLink = linkToken(await nextMail(smtp, 'attacker@example.net', SUBJECT.confirmNew), VERIFY_LINK);
    const secondNotice = await nextMail(smtp, victim.email!, SUBJECT.confirmChange);
    expect(secondNotice.parsed.text).toContain('attacker@example.net');
    expect((await c.post('/auth/email/verify').send({ token: newLink })).body).toEqual({
      status: 'awaiting_other_confirmation',
    });
    // The link the victim got for the first change approves nothing now.
    expect(outcome(await c.post('/auth/email/verify').send({ token: approveFirst }))).toEqual({
      status: 400,
      code: 'VERIFICATION_TOKEN_INVALID',
    });
    const me = await c.get('/users/me').set(victim.auth);
    expect(me.body).toMatchObject({ email: victim.email, pendingEmail: 'attacker@example.net' });
  });

  it('the "is this address taken?" answer of an email change is counted against the mail limit', async () => {
    const c = client(t);
    const owner = await signupAs(c);
    const prober = await signupAs(c, { email: null });
    const answers: number[] = [];
    for (let i = 0; i < 6; i++) {
      answers.push(
        (await c.post('/users/me/email').set(prober.auth).send({ newEmail: owner.email, password: PASSWORD })).status,
      );
    }
    expect(answers).toEqual([409, 409, 409, 429, 429, 429]);
  });

  it('the "no account here" notice goes to one valid address only: never a list or a display name', async () => {
    const c = client(t);
    const before = smtp.received.length;
    for (const login of [
      'a1@example.org, a2@example.org, a3@example.org',
      'WIN A PRIZE <a4@example.org>',
      'a5@example.org\r\nBcc: x@example.org',
    ]) {
      expectStatus(await c.post('/auth/password/forgot').send({ login }), 202);
    }
    expectStatus(await c.post('/auth/password/forgot').send({ login: 'lonely@example.org' }), 202);
    await mailIdle(t);
    // (Other tests' mails may still arrive meanwhile: only the "no account" notices count.)
    const notices = smtp.received
      .slice(before)
      .filter((m) => (m.parsed.subject ?? '').includes('password reset requested'));
    expect(notices.map((m) => m.to)).toEqual([['lonely@example.org']]);
  });

  it('every answer of the recovery routes carries Cache-Control: no-store, errors included', async () => {
    const c = client(t);
    const u = await signupAs(c);
    const answers = [
      await c.post('/auth/password/forgot').send({ login: 42 }),
      await c.post('/auth/password/reset').send({ token: 'x' }),
      await c.post('/auth/email/verify').send({}),
      await c.post('/auth/email/verify-request').set('Authorization', 'Bearer nonsense').send({}),
      await c.post('/users/me/email').set(u.auth).send({ newEmail: 'not an address', password: PASSWORD }),
      await c.post('/users/me/email').set(u.auth).send({ newEmail: 'x@example.org', password: 'wrong password' }),
      await c.delete('/users/me/email/pending').set(u.auth),
    ];
    expect(answers.map((r) => [r.status, r.headers['cache-control']])).toEqual([
      [400, 'no-store'],
      [400, 'no-store'],
      [400, 'no-store'],
      [401, 'no-store'],
      [400, 'no-store'],
      [403, 'no-store'],
      [204, 'no-store'],
    ]);
  });

  it('a disabled account cannot finish an email change (the link stays valid)', async () => {
    const c = client(t);
    const u = await signupAs(c, { email: null });
    expectStatus(
      await c.post('/users/me/email').set(u.auth).send({ newEmail: 'later@example.org', password: PASSWORD }),
      202,
    );
    const token = linkToken(await nextMail(smtp, 'later@example.org', SUBJECT.confirmNew), VERIFY_LINK);
    await t.prisma.user.update({ where: { id: u.id }, data: { disabled: true } });
    expect(outcome(await c.post('/auth/email/verify').send({ token }))).toEqual({
      status: 403,
      code: 'ACCOUNT_DISABLED',
    });
    await t.prisma.user.update({ where: { id: u.id }, data: { disabled: false } });
    expect((await c.post('/auth/email/verify').send({ token })).body).toEqual({ status: 'email_changed' });
  });
});

describe('EMAIL_CHANGE_MODE=immediate', () => {
  let smtp: TestSmtp;
  let t: TestApp;
  beforeAll(async () => {
    smtp = await startSmtp();
    t = await startApp(recoveryEnv(smtp, { EMAIL_CHANGE_MODE: 'immediate' }));
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('tells the previous, verified address when PATCH /users/me moves the email', async () => {
    const c = client(t);
    const u = await verifiedUser(c, smtp);
    const res = await c.patch('/users/me').set(u.auth).send({ email: 'moved@example.org' });
    expectStatus(res, 200);
    expect(res.body).toMatchObject({ email: 'moved@example.org', emailVerified: false });
    const notice = await nextMail(smtp, u.email!, SUBJECT.changed);
    expect(notice.parsed.text).toContain('moved@example.org');
  });
});

describe.runIf(onPostgres)('concurrent changes of one account (PostgreSQL)', () => {
  let smtp: TestSmtp;
  let t: TestApp;
  beforeAll(async () => {
    smtp = await startSmtp();
    t = await startApp(recoveryEnv(smtp, { BCRYPT_COST: '4' }));
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('a reset racing a password change never answers 500 (no deadlock)', async () => {
    for (let round = 0; round < 8; round++) {
      const c = client(t);
      const u = await verifiedUser(c, smtp);
      const token = await resetToken(c, smtp, u);
      const [reset, change] = await Promise.all([
        c.post('/auth/password/reset').send({ token, newPassword: NEW_PASSWORD }),
        c
          .post('/users/me/password')
          .set(u.auth)
          .send({ currentPassword: PASSWORD, newPassword: 'yet another passphrase' }),
      ]);
      expect([reset.status, change.status].every((s) => s < 500)).toBe(true);
    }
  });

  it('a confirmation racing a cancel never answers 500 (no deadlock)', async () => {
    for (let round = 0; round < 8; round++) {
      const c = client(t);
      const u = await verifiedUser(c, smtp);
      const newEmail = `race${round}-${Date.now()}@example.org`;
      expectStatus(await c.post('/users/me/email').set(u.auth).send({ newEmail, password: PASSWORD }), 202);
      const token = linkToken(await nextMail(smtp, u.email!, SUBJECT.confirmChange), VERIFY_LINK);
      const [verify, cancel] = await Promise.all([
        c.post('/auth/email/verify').send({ token }),
        c.delete('/users/me/email/pending').set(u.auth),
      ]);
      expect([verify.status, cancel.status].every((s) => s < 500)).toBe(true);
    }
  });
});
