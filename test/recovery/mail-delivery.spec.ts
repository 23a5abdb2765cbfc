import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MailerService } from '../../src/mail/mailer.service.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { client, expectStatus, mailIdle, recoveryEnv, signupAs, sleep, until } from './recovery-helpers.js';

/** The `mail.failed` audit rows of the app. */
const failedMails = (t: TestApp) =>
  t.prisma.auditEvent.findMany({ where: { type: 'mail.failed' }, orderBy: { createdAt: 'asc' } });

/**
 * Contract v2 §A: mail is off the request path. A hanging SMTP server never slows an answer;
 * a refusing one costs three tries (at once, after 1 s, after 5 s) and a `mail.failed` audit
 * row, never a 5xx.
 */
describe('an SMTP server that never answers DATA', () => {
  let smtp: TestSmtp;
  let t: TestApp;
  beforeAll(async () => {
    smtp = await startSmtp('hang-on-data');
    t = await startApp(recoveryEnv(smtp));
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close(); // waits for the hanging connections to be dropped
  }, 90_000);

  it('POST /auth/password/forgot still answers 202 well under 1 s, while the mail hangs', async () => {
    const c = client(t);
    // Signups send verification mails, which hang too (and fill both workers).
    const users = [await signupAs(c), await signupAs(c), await signupAs(c)];
    await c.post('/auth/password/forgot').send({ login: 'warm-up-unknown' }).expect(202);
    for (const user of users) {
      const started = performance.now();
      const res = await c.post('/auth/password/forgot').send({ login: user.username });
      const elapsed = performance.now() - started;
      expectStatus(res, 202);
      expect(elapsed, 'forgot answered within').toBeLessThan(500);
    }
    const idle = await Promise.race([mailIdle(t).then(() => 'idle'), sleep(500).then(() => 'still sending')]);
    expect(idle).toBe('still sending');
    expect(smtp.received).toHaveLength(0);
  });
});

/**
 * A raw TCP server that answers every connection with "421 service not available" and
 * hangs up: a refusing mail server that counts the tries.
 */
async function startRefusingServer(): Promise<{ url: string; tries: () => number; close(): Promise<void> }> {
  let tries = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    tries += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.end('421 4.3.2 Service not available, closing transmission channel\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    tries: () => tries,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('an SMTP server that refuses every connection (421)', () => {
  let refusing: Awaited<ReturnType<typeof startRefusingServer>>;
  let t: TestApp;
  beforeAll(async () => {
    refusing = await startRefusingServer();
    t = await startApp(recoveryEnv(refusing));
  });
  afterAll(async () => {
    await t?.close();
    await refusing?.close();
  });

  it('forgot answers 202; the mail is tried exactly 3 times (at once, after 1 s, after 5 s), then audited as mail.failed', async () => {
    const c = client(t);
    // Without an email address the signup sends nothing; the address comes straight after.
    const user = await signupAs(c, { email: null });
    const email = `refused_${user.username}@example.com`;
    await t.prisma.user.update({ where: { id: user.id }, data: { email, emailKey: email.toLowerCase() } });
    await mailIdle(t);
    expect(refusing.tries()).toBe(0);
    t.clock.freeze();
    try {
      const res = await c.post('/auth/password/forgot').send({ login: user.username });
      expectStatus(res, 202);

      // Try 1, at once.
      await until(() => refusing.tries() === 1, 5000, 'first try');
      // Then the clock moves in 100 ms steps until the next try: the fake time it took is
      // at least the retry wait (more only if a step came before the wait had begun).
      const advanceUntilTry = async (n: number) => {
        let advancedMs = 0;
        while (refusing.tries() < n) {
          if (advancedMs > 20_000) throw new Error(`no try ${n} after ${advancedMs} ms of fake time`);
          t.clock.advance(0.1);
          advancedMs += 100;
          await sleep(20);
        }
        return advancedMs;
      };
      const firstWait = await advanceUntilTry(2);
      expect(firstWait).toBeGreaterThanOrEqual(1000);
      expect(firstWait).toBeLessThan(5000);
      const secondWait = await advanceUntilTry(3);
      expect(secondWait).toBeGreaterThanOrEqual(5000);
      expect(secondWait).toBeLessThan(10_000);
      await until(async () => (await failedMails(t)).length > 0, 5000, 'a mail.failed audit row after the 3rd try');

      const failed = await failedMails(t);
      expect(failed).toHaveLength(1);
      expect(failed[0]).toMatchObject({ type: 'mail.failed', userId: user.id });
      expect(failed[0]!.details).toMatchObject({ kind: 'reset_password', tries: 3 });

      // Nothing more, however long one waits.
      t.clock.advance(3600);
      await sleep(300);
      expect(refusing.tries()).toBe(3);
      expect(await failedMails(t)).toHaveLength(1);

      // The app keeps answering normally: no 5xx.
      const again = await c.post('/auth/password/forgot').send({ login: user.username });
      expectStatus(again, 202);
      const login = await c.post('/auth/login').send({ username: user.username, password: user.password });
      expectStatus(login, 200);
    } finally {
      t.clock.unfreeze();
    }
  });
});

describe('an SMTP server that rejects every message (451 after DATA)', () => {
  let smtp: TestSmtp;
  let t: TestApp;
  beforeAll(async () => {
    smtp = await startSmtp('reject');
    t = await startApp(recoveryEnv(smtp));
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('forgot answers 202; after the retry waits the mail is given up after 3 tries and audited as mail.failed', async () => {
    const c = client(t);
    const user = await signupAs(c, { email: null });
    const email = `rejected_${user.username}@example.com`;
    await t.prisma.user.update({ where: { id: user.id }, data: { email, emailKey: email.toLowerCase() } });
    t.clock.freeze();
    try {
      const res = await c.post('/auth/password/forgot').send({ login: user.username });
      expectStatus(res, 202);
      // Move the clock through the waits (1 s, then 5 s) as the tries fail.
      const deadline = Date.now() + 15_000;
      while ((await failedMails(t)).length === 0) {
        if (Date.now() > deadline) throw new Error('no mail.failed audit row');
        t.clock.advance(0.5);
        await sleep(25);
      }
      await mailIdle(t);
      const failed = await failedMails(t);
      expect(failed).toHaveLength(1);
      expect(failed[0]).toMatchObject({ userId: user.id });
      expect(failed[0]!.details).toMatchObject({ kind: 'reset_password', tries: 3 });
      expect(smtp.received).toHaveLength(0);
      await c.get('/users/me').set(user.auth).expect(200);
    } finally {
      t.clock.unfreeze();
    }
  });
});

describe('an SMTP_URL where nothing listens', () => {
  let t: TestApp;
  beforeAll(async () => {
    // A port that was just free: connections to it are refused.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    t = await startApp(recoveryEnv({ url: `smtp://127.0.0.1:${port}` }));
  });
  afterAll(async () => t?.close());

  it('a signup with an email still answers 201, forgot 202; the mails end as mail.failed after 3 tries each', async () => {
    const c = client(t);
    t.clock.freeze();
    try {
      const user = await signupAs(c);
      const res = await c.post('/auth/password/forgot').send({ login: user.username });
      expectStatus(res, 202);
      const deadline = Date.now() + 15_000;
      while ((await failedMails(t)).length < 2) {
        if (Date.now() > deadline) throw new Error('fewer than 2 mail.failed audit rows');
        t.clock.advance(0.5);
        await sleep(25);
      }
      await t.app.get(MailerService).whenIdle();
      const failed = await failedMails(t);
      expect(failed.map((f) => (f.details as { kind?: string }).kind ?? '').sort((a, b) => a.localeCompare(b))).toEqual(
        ['reset_password', 'verify_email'],
      );
      for (const f of failed) {
        expect(f.userId).toBe(user.id);
        expect(f.details).toMatchObject({ tries: 3 });
      }
    } finally {
      t.clock.unfreeze();
    }
  });
});
