import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  type Account,
  type Client,
} from './recovery-helpers.js';

const verify = (c: Client, token: string) => c.post('/auth/email/verify').send({ token });
const loginStatus = async (c: Client, username: string, password: string = PASSWORD) =>
  (await c.post('/auth/login').send({ username, password })).status;

/** Contract v2 §A: POST /users/me/email, confirmed by the new address and by the verified current one. */
describe('email change (EMAIL_CHANGE_MODE=verified, the default)', () => {
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

  /** Requests the change (expects 202) and returns the answer. */
  async function requestChange(c: Client, user: Account, newEmail: string) {
    const res = await c.post('/users/me/email').set(user.auth).send({ newEmail, password: PASSWORD });
    expectStatus(res, 202);
    return res.body as { pendingEmail: string; confirmationsRequired: string[] };
  }

  /** A verified user with a pending change to a new address, and both confirmation tokens. */
  async function pendingChange(c: Client) {
    const user = await verifiedUser(c, smtp);
    const newEmail = uniqueEmail('new');
    const body = await requestChange(c, user, newEmail);
    expect(body).toEqual({ pendingEmail: newEmail, confirmationsRequired: ['new', 'current'] });
    const forNew = linkToken(await nextMail(smtp, newEmail, SUBJECT.confirmNew), VERIFY_LINK);
    const currentMail = await nextMail(smtp, user.email!, SUBJECT.confirmChange);
    expect(currentMail.parsed.text).toContain(newEmail);
    const forCurrent = linkToken(currentMail, VERIFY_LINK);
    return { user, oldEmail: user.email!, newEmail, forNew, forCurrent };
  }

  it('needs the password: a wrong one is 403 INVALID_PASSWORD and nothing is pending or mailed', async () => {
    const c = client(t);
    const user = await verifiedUser(c, smtp);
    const newEmail = uniqueEmail('new');
    const res = await c.post('/users/me/email').set(user.auth).send({ newEmail, password: 'not the password' });
    expect(outcome(res)).toEqual({ status: 403, code: 'INVALID_PASSWORD' });
    const missing = await c.post('/users/me/email').set(user.auth).send({ newEmail });
    expect(outcome(missing)).toEqual({ status: 400, code: 'VALIDATION_FAILED' });
    await mailIdle(t);
    expect(smtp.mailsTo(newEmail)).toHaveLength(0);
    const me = await c.get('/users/me').set(user.auth).expect(200);
    expect(me.body.pendingEmail).toBeNull();
  });

  it('with a verified current address: 202 ["new","current"], one mail to each; one confirmation → awaiting_other_confirmation, both → email_changed', async () => {
    const c = client(t);
    await mailIdle(t);
    const before = smtp.received.length;
    const { user, oldEmail, newEmail, forNew, forCurrent } = await pendingChange(c);
    await mailIdle(t);
    // Since the verification: exactly the two confirmation mails.
    const sinceVerify = smtp.received.slice(before).filter((m) => !(m.parsed.subject ?? '').includes(SUBJECT.verify));
    expect(sinceVerify.map((m) => m.to[0] ?? '').sort((a, b) => a.localeCompare(b))).toEqual(
      [newEmail, oldEmail].sort((a, b) => a.localeCompare(b)),
    );

    const me = await c.get('/users/me').set(user.auth).expect(200);
    expect(me.body).toMatchObject({ email: oldEmail, emailVerified: true, pendingEmail: newEmail });

    const first = await verify(c, forNew);
    expectStatus(first, 200);
    expect(first.body).toEqual({ status: 'awaiting_other_confirmation' });
    const second = await verify(c, forCurrent);
    expectStatus(second, 200);
    expect(second.body).toEqual({ status: 'email_changed' });

    const after = await c.get('/users/me').set(user.auth).expect(200);
    expect(after.body).toMatchObject({ email: newEmail, emailVerified: true, pendingEmail: null });
    expect(await loginStatus(c, newEmail)).toBe(200);
    expect(outcome(await c.post('/auth/login').send({ username: oldEmail, password: PASSWORD }))).toEqual({
      status: 401,
      code: 'INVALID_CREDENTIALS',
    });
    const notice = await nextMail(smtp, oldEmail, SUBJECT.changed);
    expect(notice.parsed.text).toContain(newEmail);
    // Both links are spent.
    expect(outcome(await verify(c, forNew))).toEqual({ status: 400, code: 'VERIFICATION_TOKEN_INVALID' });
    expect(outcome(await verify(c, forCurrent))).toEqual({ status: 400, code: 'VERIFICATION_TOKEN_INVALID' });
  });

  it('the confirmations may come in the other order (current first)', async () => {
    const c = client(t);
    const { user, newEmail, forNew, forCurrent } = await pendingChange(c);
    expect((await verify(c, forCurrent)).body).toEqual({ status: 'awaiting_other_confirmation' });
    expect((await verify(c, forNew)).body).toEqual({ status: 'email_changed' });
    const me = await c.get('/users/me').set(user.auth).expect(200);
    expect(me.body.email).toBe(newEmail);
  });

  it('the pending address can neither log in nor receive a reset before confirmation', async () => {
    const c = client(t);
    const { user, newEmail } = await pendingChange(c);
    expect(outcome(await c.post('/auth/login').send({ username: newEmail, password: PASSWORD }))).toEqual({
      status: 401,
      code: 'INVALID_CREDENTIALS',
    });
    await mailIdle(t);
    const before = smtp.received.length;
    const forgot = await c.post('/auth/password/forgot').send({ login: newEmail });
    expectStatus(forgot, 202);
    await mailIdle(t);
    expect(smtp.received.slice(before)).toHaveLength(0);
    // The account itself still logs in by its current address.
    expect(await loginStatus(c, user.email!)).toBe(200);
  });

  it('an address taken meanwhile by another signup is 409 EMAIL_TAKEN at the last confirmation; nothing changes', async () => {
    const c = client(t);
    const { user, oldEmail, newEmail, forNew, forCurrent } = await pendingChange(c);
    expect((await verify(c, forNew)).body).toEqual({ status: 'awaiting_other_confirmation' });
    const squatter = await c
      .post('/auth/signup')
      .send({ username: uniqueUsername('squat'), email: newEmail, password: PASSWORD });
    expectStatus(squatter, 201);
    expect(outcome(await verify(c, forCurrent))).toEqual({ status: 409, code: 'EMAIL_TAKEN' });
    const me = await c.get('/users/me').set(user.auth).expect(200);
    expect(me.body).toMatchObject({ email: oldEmail, emailVerified: true });
    expect(await loginStatus(c, oldEmail)).toBe(200);
  });

  it('DELETE /users/me/email/pending answers 204 (twice), and both tokens are 400 afterwards', async () => {
    const c = client(t);
    const { user, oldEmail, forNew, forCurrent } = await pendingChange(c);
    await c.delete('/users/me/email/pending').set(user.auth).expect(204);
    await c.delete('/users/me/email/pending').set(user.auth).expect(204);
    const me = await c.get('/users/me').set(user.auth).expect(200);
    expect(me.body).toMatchObject({ email: oldEmail, pendingEmail: null });
    expect(outcome(await verify(c, forNew))).toEqual({ status: 400, code: 'VERIFICATION_TOKEN_INVALID' });
    expect(outcome(await verify(c, forCurrent))).toEqual({ status: 400, code: 'VERIFICATION_TOKEN_INVALID' });
    const after = await c.get('/users/me').set(user.auth).expect(200);
    expect(after.body.email).toBe(oldEmail);
  });

  it('with an unverified current address only ["new"] is required, and only the new address is mailed', async () => {
    const c = client(t);
    const { user } = await signupWithVerificationToken(c, smtp); // left unverified
    await mailIdle(t);
    const before = smtp.received.length;
    const newEmail = uniqueEmail('new');
    expect(await requestChange(c, user, newEmail)).toEqual({ pendingEmail: newEmail, confirmationsRequired: ['new'] });
    await mailIdle(t);
    const mails = smtp.received.slice(before);
    expect(mails.map((m) => m.to)).toEqual([[newEmail]]);
    const token = linkToken(mails[0]!, VERIFY_LINK);
    const res = await verify(c, token);
    expect(res.body).toEqual({ status: 'email_changed' });
    const me = await c.get('/users/me').set(user.auth).expect(200);
    expect(me.body).toMatchObject({ email: newEmail, emailVerified: true, pendingEmail: null });
  });

  it('without any email address only ["new"] is required', async () => {
    const c = client(t);
    const user = await signupAs(c, { email: null });
    const newEmail = uniqueEmail('first');
    expect(await requestChange(c, user, newEmail)).toEqual({ pendingEmail: newEmail, confirmationsRequired: ['new'] });
    const token = linkToken(await nextMail(smtp, newEmail, SUBJECT.confirmNew), VERIFY_LINK);
    expect((await verify(c, token)).body).toEqual({ status: 'email_changed' });
    expect(await loginStatus(c, newEmail)).toBe(200);
  });

  it('the same address (in any case) is 400 EMAIL_UNCHANGED', async () => {
    const c = client(t);
    const user = await verifiedUser(c, smtp);
    for (const newEmail of [user.email!, user.email!.toUpperCase()]) {
      const res = await c.post('/users/me/email').set(user.auth).send({ newEmail, password: PASSWORD });
      expect(outcome(res), `change to ${newEmail}`).toEqual({ status: 400, code: 'EMAIL_UNCHANGED' });
    }
  });

  it('an address another account has is 409 EMAIL_TAKEN at once', async () => {
    const c = client(t);
    const user = await verifiedUser(c, smtp);
    const other = await signupAs(c);
    const res = await c.post('/users/me/email').set(user.auth).send({ newEmail: other.email, password: PASSWORD });
    expect(outcome(res)).toEqual({ status: 409, code: 'EMAIL_TAKEN' });
  });

  it('PATCH /users/me with email is 400 EMAIL_CHANGE_REQUIRES_VERIFICATION and changes nothing; a display name alone still works', async () => {
    const c = client(t);
    const user = await signupAs(c);
    const res = await c
      .patch('/users/me')
      .set(user.auth)
      .send({ email: uniqueEmail('patched') });
    expect(outcome(res)).toEqual({ status: 400, code: 'EMAIL_CHANGE_REQUIRES_VERIFICATION' });
    const me = await c.get('/users/me').set(user.auth).expect(200);
    expect(me.body.email).toBe(user.email);
    const named = await c.patch('/users/me').set(user.auth).send({ displayName: 'Still Works' });
    expectStatus(named, 200);
    expect(named.body.displayName).toBe('Still Works');
  });
});

describe('EMAIL_CHANGE_MODE=immediate (the v1 behaviour)', () => {
  let smtp: TestSmtp;
  let t: TestApp;
  beforeAll(async () => {
    smtp = await startSmtp('accept');
    t = await startApp(recoveryEnv(smtp, { EMAIL_CHANGE_MODE: 'immediate' }));
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('PATCH /users/me with email changes it at once, unverified', async () => {
    const c = client(t);
    const user = await verifiedUser(c, smtp);
    const newEmail = uniqueEmail('patched');
    const res = await c.patch('/users/me').set(user.auth).send({ email: newEmail });
    expectStatus(res, 200);
    expect(res.body).toMatchObject({ email: newEmail, emailVerified: false });
    const me = await c.get('/users/me').set(user.auth).expect(200);
    expect(me.body).toMatchObject({ email: newEmail, emailVerified: false, pendingEmail: null });
    expect(await loginStatus(c, newEmail)).toBe(200);
    expect(await loginStatus(c, user.email!)).toBe(401);
  });
});
