import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { uniqueEmail, uniqueUsername } from '../support/factories.js';
import { startSmtp, tokenOf, type TestSmtp } from '../support/smtp.js';
import { startApp, type TestApp } from '../support/test-app.js';
import {
  APP_URL,
  PASSWORD,
  SUBJECT,
  VERIFY_LINK,
  client,
  expectStatus,
  linkToken,
  mailIdle,
  nextMail,
  recoveryEnv,
  resetToken,
  signupWithVerificationToken,
} from './recovery-helpers.js';

/** Every row of every table of the public schema, as JSON (bytes shown as hex, base64 and text). */
async function dumpDatabase(t: TestApp): Promise<{ tables: string[]; json: string }> {
  const tables = (
    await t.prisma.$queryRawUnsafe<Array<{ name: string }>>(
      `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`,
    )
  ).map((r) => r.name);
  const dump: Record<string, unknown> = {};
  for (const name of tables) {
    dump[name] = await t.prisma.$queryRawUnsafe(`SELECT * FROM "${name.replace(/"/g, '""')}"`);
  }
  const bytes = (b: Uint8Array) => {
    const buf = Buffer.from(b);
    return {
      hex: buf.toString('hex'),
      base64: buf.toString('base64'),
      base64url: buf.toString('base64url'),
      text: buf.toString('latin1'),
    };
  };
  const json = JSON.stringify(dump, (_key, value: unknown) => {
    if (typeof value === 'bigint') return value.toString();
    if (value instanceof Uint8Array) return bytes(value);
    if (
      value &&
      typeof value === 'object' &&
      (value as { type?: unknown }).type === 'Buffer' &&
      Array.isArray((value as { data?: unknown }).data)
    ) {
      return bytes(Uint8Array.from((value as { data: number[] }).data));
    }
    return value;
  });
  return { tables, json };
}

/** Contract v2 §A: only a hash of a mailed token is stored, never the token. */
describe('tokens at rest', () => {
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

  it('no table holds a mailed token (verification, reset, email change; used or not), only its SHA-256', async () => {
    const c = client(t);
    // A used verification token and an unused reset token.
    const { user, token: usedVerify } = await signupWithVerificationToken(c, smtp);
    expect((await c.post('/auth/email/verify').send({ token: usedVerify })).status).toBe(200);
    const unusedReset = await resetToken(c, smtp, user);
    // Both email-change tokens (the current address is verified), unused.
    const newEmail = uniqueEmail('moved');
    const change = await c.post('/users/me/email').set(user.auth).send({ newEmail, password: PASSWORD });
    expectStatus(change, 202);
    const forNew = tokenOf(await nextMail(smtp, newEmail, SUBJECT.confirmNew));
    const forCurrent = tokenOf(await nextMail(smtp, user.email!, SUBJECT.confirmChange));
    // An unused verification token of another user.
    const { token: unusedVerify } = await signupWithVerificationToken(c, smtp);
    await mailIdle(t);

    const { tables, json } = await dumpDatabase(t);
    expect(tables).toContain('one_time_tokens');
    for (const [label, token] of Object.entries({ usedVerify, unusedReset, forNew, forCurrent, unusedVerify })) {
      const raw = Buffer.from(token, 'base64url');
      for (const form of [
        token,
        encodeURIComponent(token),
        raw.toString('hex'),
        raw.toString('base64'),
        raw.toString('base64url'),
      ]) {
        expect(json.includes(form), `${label} stored as ${form}`).toBe(false);
      }
    }
    // The dump does see the tokens' rows: the hashes of the unused ones are there.
    for (const token of [unusedReset, forNew, forCurrent, unusedVerify]) {
      expect(json).toContain(createHash('sha256').update(token, 'utf8').digest('hex'));
    }
  });
});

describe('outbox mode (no SMTP_URL)', () => {
  let dir: string;
  let outbox: string;
  let t: TestApp;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-outbox-'));
    outbox = join(dir, 'outbox');
    t = await startApp({ ...ROOMY_LIMITS, TRUST_PROXY: 'true', APP_URL, DATA_DIR: dir, MAIL_OUTBOX_DIR: outbox });
  });
  afterAll(async () => {
    await t?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('writes each mail as an .eml file with mode 0600 (in a 0700 directory) whose link works', async () => {
    expect(t.config.SMTP_URL).toBeUndefined();
    const c = client(t);
    const email = uniqueEmail('outbox');
    const res = await c.post('/auth/signup').send({ username: uniqueUsername('outbox'), email, password: PASSWORD });
    expectStatus(res, 201);
    await mailIdle(t);

    expect(statSync(outbox).mode & 0o777).toBe(0o700);
    const files = readdirSync(outbox).filter((f) => f.endsWith('.eml'));
    expect(files).toHaveLength(1);
    const path = join(outbox, files[0]!);
    expect(statSync(path).mode & 0o777).toBe(0o600);

    const raw = readFileSync(path, 'utf8');
    const parsed = await simpleParser(raw);
    expect(parsed.subject).toContain(SUBJECT.verify);
    const to = Array.isArray(parsed.to) ? parsed.to.flatMap((a) => a.value) : (parsed.to?.value ?? []);
    expect(to.map((a) => a.address)).toEqual([email]);
    const token = linkToken({ from: '', to: [email], parsed, raw }, VERIFY_LINK);
    expect(parsed.text).toContain(`${VERIFY_LINK}${token}`);

    const ok = await c.post('/auth/email/verify').send({ token });
    expectStatus(ok, 200);
    expect(ok.body).toEqual({ status: 'verified' });
  });
});
