import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueEmail, uniqueUsername } from '../support/factories.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { client, freshIp, recoveryEnv, signupAs } from './recovery-helpers.js';

const HOUR = 3600;

function expectTooMany(
  res: { status: number; body: { code?: unknown }; headers: Record<string, string> },
  label: string,
) {
  expect(res.status, `${label}: status`).toBe(429);
  expect(res.body.code, `${label}: code`).toBe('TOO_MANY_REQUESTS');
  const retryAfter = res.headers['retry-after'];
  expect(retryAfter, `${label}: Retry-After`).toMatch(/^\d+$/);
  expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  expect(Number(retryAfter)).toBeLessThanOrEqual(HOUR);
}

/**
 * Contract v2 §A: at most MAIL_RATE_LIMIT (5) forgot requests per identifier per hour, known
 * or not, whatever address they come from; and MAIL_IP_RATE_LIMIT per client address.
 */
describe('MAIL_RATE_LIMIT: forgot requests per identifier', () => {
  let smtp: TestSmtp;
  let t: TestApp;
  beforeAll(async () => {
    smtp = await startSmtp('accept');
    // A high per-address limit: only the per-identifier one can answer 429 here.
    t = await startApp(recoveryEnv(smtp, { MAIL_IP_RATE_LIMIT: '100000' }));
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('has the defaults this file assumes', () => {
    expect(t.config.MAIL_RATE_LIMIT).toBe(5);
    expect(t.config.TRUST_PROXY).toBe(true);
  });

  /** Six forgot requests for `login`, each from a different (spoofed) X-Forwarded-For address. */
  async function sixFromSixAddresses(login: string) {
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await client(t, freshIp()).post('/auth/password/forgot').send({ login }));
    return answers;
  }

  it.each([
    ['a known username', 'known-username'],
    ['a known email address', 'known-email'],
    ['an unknown username', 'unknown-username'],
    ['an unknown email address', 'unknown-email'],
  ])(
    'the 6th request within an hour for %s is 429 TOO_MANY_REQUESTS with an integer Retry-After',
    async (_label, kind) => {
      let login: string;
      if (kind.startsWith('known')) {
        const user = await signupAs(client(t));
        login = kind === 'known-email' ? user.email! : user.username;
      } else {
        login = kind === 'unknown-email' ? uniqueEmail('ghost') : uniqueUsername('ghost');
      }
      const answers = await sixFromSixAddresses(login);
      expect(answers.slice(0, 5).map((r) => r.status)).toEqual([202, 202, 202, 202, 202]);
      expectTooMany(answers[5]!, `6th request (${kind})`);
    },
  );

  it('the 429 for a known and for an unknown identifier are alike', async () => {
    const user = await signupAs(client(t));
    const known = (await sixFromSixAddresses(user.username))[5]!;
    const unknown = (await sixFromSixAddresses(uniqueUsername('ghost')))[5]!;
    expect(known.status).toBe(429);
    expect(unknown.status).toBe(429);
    expect(unknown.text).toBe(known.text);
    expect(Object.keys(unknown.headers).sort()).toEqual(Object.keys(known.headers).sort());
  });

  it('the identifier is counted regardless of case', async () => {
    const login = uniqueUsername('casey');
    const variants = [login, login.toUpperCase(), login, login.toUpperCase(), login, login.toUpperCase()];
    const answers = [];
    for (const v of variants) answers.push(await client(t, freshIp()).post('/auth/password/forgot').send({ login: v }));
    expect(answers.slice(0, 5).map((r) => r.status)).toEqual([202, 202, 202, 202, 202]);
    expectTooMany(answers[5]!, '6th request, other case');
  });

  it('another identifier from the same addresses is not limited by the first one', async () => {
    const ip = freshIp();
    const first = uniqueUsername('first');
    for (let i = 0; i < 5; i++) await client(t, ip).post('/auth/password/forgot').send({ login: first }).expect(202);
    expectTooMany(await client(t, ip).post('/auth/password/forgot').send({ login: first }), '6th for the first');
    await client(t, ip)
      .post('/auth/password/forgot')
      .send({ login: uniqueUsername('second') })
      .expect(202);
  });
});

describe('MAIL_IP_RATE_LIMIT: forgot requests per client address', () => {
  let smtp: TestSmtp;
  let t: TestApp;
  const limit = 4;
  beforeAll(async () => {
    smtp = await startSmtp('accept');
    t = await startApp(recoveryEnv(smtp, { MAIL_IP_RATE_LIMIT: String(limit) }));
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('the (limit+1)-th request from one address, over different identifiers, is 429; another address is not affected', async () => {
    const ip = freshIp();
    for (let i = 0; i < limit; i++) {
      const res = await client(t, ip)
        .post('/auth/password/forgot')
        .send({ login: uniqueUsername('spray') });
      expect(res.status, `request ${i + 1}`).toBe(202);
    }
    expectTooMany(
      await client(t, ip)
        .post('/auth/password/forgot')
        .send({ login: uniqueUsername('spray') }),
      `request ${limit + 1}`,
    );
    const other = await client(t, freshIp())
      .post('/auth/password/forgot')
      .send({ login: uniqueUsername('spray') });
    expect(other.status).toBe(202);
  });
});
