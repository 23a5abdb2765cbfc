import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import { startApp, type TestApp } from '../support/test-app.js';
import {
  NEW_PASSWORD,
  client,
  expectStatus,
  outcome,
  recoveryEnv,
  resetToken,
  signupWithVerificationToken,
  type Client,
} from './recovery-helpers.js';

/** The token with one bit of its 32 bytes flipped (still 43 base64url characters). */
function bitFlipped(token: string, bit = 0): string {
  const bytes = Buffer.from(token, 'base64url');
  bytes[bit >> 3]! ^= 1 << (bit & 7);
  const flipped = bytes.toString('base64url');
  expect(flipped).toHaveLength(token.length);
  expect(flipped).not.toBe(token);
  return flipped;
}

const verify = (c: Client, body: unknown) => c.post('/auth/email/verify').send(body as object);
const reset = (c: Client, body: Record<string, unknown>) =>
  c.post('/auth/password/reset').send({ newPassword: NEW_PASSWORD, ...body });

/** Contract v2 §A: whatever is sent as a token, the answer is a 400, never a 500. */
describe('malformed and misused tokens', () => {
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

  /** A user with an outstanding verification token and an outstanding reset token. */
  async function userWithTokens(c: Client) {
    const { user, token: verifyToken } = await signupWithVerificationToken(c, smtp);
    return { user, verifyToken, resetToken: await resetToken(c, smtp, user) };
  }

  it('bit-flipped tokens are 400 on both endpoints, and the real ones still work afterwards', async () => {
    const c = client(t);
    const { verifyToken, resetToken: resetTok } = await userWithTokens(c);
    for (const bit of [0, 7, 100, 255]) {
      expect(outcome(await verify(c, { token: bitFlipped(verifyToken, bit) })), `verify, bit ${bit}`).toEqual({
        status: 400,
        code: 'VERIFICATION_TOKEN_INVALID',
      });
      expect(outcome(await reset(c, { token: bitFlipped(resetTok, bit) })), `reset, bit ${bit}`).toEqual({
        status: 400,
        code: 'RESET_TOKEN_INVALID',
      });
    }
    expect((await verify(c, { token: verifyToken })).body).toEqual({ status: 'verified' });
    expect((await reset(c, { token: resetTok })).status).toBe(204);
  });

  it('a verification token on /auth/password/reset is 400 and stays valid for /auth/email/verify', async () => {
    const c = client(t);
    const { user, verifyToken } = await userWithTokens(c);
    expect(outcome(await reset(c, { token: verifyToken }))).toEqual({ status: 400, code: 'RESET_TOKEN_INVALID' });
    // The password did not change.
    await c.post('/auth/login').send({ username: user.username, password: user.password }).expect(200);
    const ok = await verify(c, { token: verifyToken });
    expectStatus(ok, 200);
    expect(ok.body).toEqual({ status: 'verified' });
  });

  it('a reset token on /auth/email/verify is 400 and stays valid for /auth/password/reset', async () => {
    const c = client(t);
    const { user, resetToken: resetTok } = await userWithTokens(c);
    expect(outcome(await verify(c, { token: resetTok }))).toEqual({ status: 400, code: 'VERIFICATION_TOKEN_INVALID' });
    const me = await c.get('/users/me').set(user.auth).expect(200);
    expect(me.body.emailVerified).toBe(false);
    const ok = await reset(c, { token: resetTok });
    expectStatus(ok, 204);
  });

  const malformed: Array<[string, Record<string, unknown>]> = [
    ['10 KB token', { token: 'A'.repeat(10 * 1024) }],
    ['SQL metacharacters', { token: "' OR 1=1 --" }],
    ['SQL metacharacters, token length', { token: "'; DROP TABLE users; --".padEnd(43, 'x') }],
    ['LIKE wildcards', { token: '%'.repeat(43) }],
    ['array', { token: ['a'.repeat(43)] }],
    ['number', { token: 12345 }],
    ['null', { token: null }],
    ['object', { token: { $ne: '' } }],
    ['boolean', { token: true }],
    ['empty string', { token: '' }],
    ['missing', {}],
  ];

  it.each(malformed)('%s: 400 on /auth/email/verify and /auth/password/reset, never 500', async (_label, body) => {
    const c = client(t);
    const onVerify = await verify(c, body);
    expectStatus(onVerify, 400);
    expect(['VALIDATION_FAILED', 'VERIFICATION_TOKEN_INVALID']).toContain(onVerify.body.code);
    const onReset = await reset(c, body);
    expectStatus(onReset, 400);
    expect(['VALIDATION_FAILED', 'RESET_TOKEN_INVALID']).toContain(onReset.body.code);
  });

  it('after all of those, the outstanding tokens still work and the users table is intact', async () => {
    const c = client(t);
    const { user, verifyToken, resetToken: resetTok } = await userWithTokens(c);
    for (const [, body] of malformed) {
      await verify(c, body);
      await reset(c, body);
    }
    expect((await verify(c, { token: verifyToken })).status).toBe(200);
    expect((await reset(c, { token: resetTok })).status).toBe(204);
    expect(await t.prisma.user.count({ where: { id: user.id } })).toBe(1);
  });
});
