import { Secret } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signup } from '../support/factories.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import type { TestApp } from '../support/test-app.js';
import { NEW_PASSWORD, client, recoveryEnv, resetToken, signupAs } from '../recovery/recovery-helpers.js';
import {
  advanceToFreshStep,
  codeNow,
  enrol,
  expectError,
  expectStatus,
  loginMfa,
  mfaLogin,
  passwordStep,
  startEnrolment,
  startMfaApp,
} from './mfa-helpers.js';

/**
 * Every row of every table of the public schema as one lower-case text: each column as
 * text, and each bytea column also as hex and as base64.
 */
async function dumpDatabase(t: TestApp): Promise<string> {
  const columns = await t.prisma.$queryRawUnsafe<Array<{ table: string; column: string; type: string }>>(
    `SELECT c.table_name AS "table", c.column_name AS "column", c.data_type AS "type"
       FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
      WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
      ORDER BY c.table_name, c.ordinal_position`,
  );
  const tables = new Map<string, string[]>();
  for (const { table, column, type } of columns) {
    const q = `"${column.replace(/"/g, '""')}"`;
    const exprs =
      type === 'bytea'
        ? [`encode(${q}, 'hex')`, `translate(encode(${q}, 'base64'), E'\\n', '')`, `encode(${q}, 'escape')`]
        : [`${q}::text`];
    tables.set(table, [...(tables.get(table) ?? []), ...exprs]);
  }
  expect([...tables.keys()]).toEqual(expect.arrayContaining(['mfa_totp', 'mfa_recovery_codes', 'mfa_challenges']));
  const parts: string[] = [];
  for (const [table, exprs] of tables) {
    const rows = await t.prisma.$queryRawUnsafe<unknown[]>(
      `SELECT ${exprs.map((e, i) => `${e} AS c${i}`).join(', ')} FROM "${table.replace(/"/g, '""')}"`,
    );
    parts.push(`${table}: ${JSON.stringify(rows)}`);
  }
  return parts.join('\n').toLowerCase();
}

/** The forms a leaked secret could take in a dump. */
function secretForms(base32: string): string[] {
  const bytes = Buffer.from(Secret.fromBase32(base32).buffer);
  expect(bytes).toHaveLength(20);
  return [base32, bytes.toString('hex'), bytes.toString('base64'), bytes.toString('base64url')].map((s) =>
    s.toLowerCase(),
  );
}

/** Contract v2 §B test 9: what is stored, the verification window, and a reset keeps MFA. */
describe('MFA storage and verification window', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMfaApp();
  });
  afterAll(async () => t?.close());

  it('no table holds the base32 secret, its bytes, a recovery code or an mfaToken', async () => {
    const m = await enrol(t);
    await mfaLogin(t, m);
    const mfaToken = await passwordStep(t, m);
    await loginMfa(t, mfaToken, { recoveryCode: m.recoveryCodes[0] }).expect(200);
    const openToken = await passwordStep(t, m); // a challenge left open
    await loginMfa(t, openToken, { recoveryCode: 'AAAAA-AAAAA' }).expect(401); // and a failure, audited
    const pendingUser = await signup(t);
    const pending = await startEnrolment(t, pendingUser); // a pending (unconfirmed) secret

    // The rows are there (so the dump below looks at them)...
    const totp = await t.prisma.mfaTotp.findUniqueOrThrow({ where: { userId: m.id } });
    expect(totp.secretEnc.length).toBeGreaterThanOrEqual(20);
    expect(totp.secretKeyId).toBeTruthy();
    expect(await t.prisma.mfaTotp.count({ where: { userId: pendingUser.id, confirmedAt: null } })).toBe(1);
    expect(await t.prisma.mfaRecoveryCode.count({ where: { userId: m.id } })).toBe(10);
    expect(await t.prisma.mfaChallenge.count({ where: { userId: m.id } })).toBeGreaterThanOrEqual(3);

    // ...and hold none of the secrets.
    const dump = await dumpDatabase(t);
    expect(dump).toContain(m.id.toLowerCase());
    const leaks: Record<string, string[]> = {
      secret: secretForms(m.secret),
      'pending secret': secretForms(pending.secret as string),
      'recovery codes': m.recoveryCodes.flatMap((c) => [c, c.replace('-', '')]).map((c) => c.toLowerCase()),
      mfaTokens: [mfaToken, openToken].map((s) => s.toLowerCase()),
      'otpauth URI': ['otpauth://'],
    };
    for (const [what, needles] of Object.entries(leaks)) {
      for (const needle of needles) expect(dump.includes(needle), `${what} ${needle} in a table`).toBe(false);
    }
  });

  it('MFA_TOTP_WINDOW=1 (default): codes of ±1 step are accepted, ±2 refused', async () => {
    const m = await enrol(t);
    advanceToFreshStep(t, m.secret, 5, 15); // mid-step n; nothing used since step n−5
    const challenge = await passwordStep(t, m);
    expectError(await loginMfa(t, challenge, { code: codeNow(t, m.secret, 2) }), 401, 'INVALID_MFA_CODE');
    expectError(await loginMfa(t, challenge, { code: codeNow(t, m.secret, -2) }), 401, 'INVALID_MFA_CODE');
    expectStatus(await loginMfa(t, challenge, { code: codeNow(t, m.secret, -1) }), 200);
    expectStatus(await loginMfa(t, await passwordStep(t, m), { code: codeNow(t, m.secret, 1) }), 200);
  });
});

describe('a password reset keeps MFA', () => {
  let smtp: TestSmtp;
  let t: TestApp;
  beforeAll(async () => {
    smtp = await startSmtp('accept');
    t = await startMfaApp(recoveryEnv(smtp));
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('after a reset the new password leads to MFA_REQUIRED, and a challenge from before is dead', async () => {
    const c = client(t);
    const account = await signupAs(c);
    const m = await enrol(t, account);
    const before = await passwordStep(t, m);
    const token = await resetToken(c, smtp, account);
    expectStatus(await c.post('/auth/password/reset').send({ token, newPassword: NEW_PASSWORD }), 204);

    const res = await c.post('/auth/login').send({ username: m.username, password: NEW_PASSWORD });
    expectError(res, 403, 'MFA_REQUIRED');
    expect(res.headers['set-cookie']).toBeUndefined();
    const code = advanceToFreshStep(t, m.secret);
    expectError(await loginMfa(t, before, { code }), 401, 'MFA_TOKEN_INVALID');
    expectStatus(await loginMfa(t, res.body.mfaToken, { code }), 200);
    // The recovery codes survive the reset too.
    const again = await passwordStep(t, { username: m.username, password: NEW_PASSWORD });
    expectStatus(await loginMfa(t, again, { recoveryCode: m.recoveryCodes[0] }), 200);
  });
});
