import 'reflect-metadata';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Body, Controller, Get, Logger, Module, Post } from '@nestjs/common';
import { simpleParser } from 'mailparser';
import type { Response } from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Public } from '../../src/access/public.decorator.js';
import { MailerService } from '../../src/mail/mailer.service.js';
import { basic, form } from '../clients/oauth-helpers.js';
import { advanceToFreshStep, codeNow } from '../mfa/mfa-helpers.js';
import { ROOMY_LIMITS } from '../support/env.js';
import { bearer, refreshCookie, refreshCookieOf, uniqueEmail, uniqueUsername } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

/**
 * Issue 18's check on the logs: a run of the flows that handle credentials (sign-up, login,
 * refresh, password change, forgotten password, two-step sign-in, a machine client, a wrong
 * password, a refresh-token reuse, an unexpected error) at LOG_LEVEL=verbose in JSON, every
 * line captured; then each line is JSON, each line written while a request was handled
 * carries that request's id (the X-Request-Id of its response), and no value the run used
 * (passwords, tokens, cookies, mailed tokens, secrets, codes) appears anywhere in the text.
 */

/** A value only this probe logs: under a field no rule redacts (so the grep must find it), and as a password. */
const VISIBLE_MARKER = `visible-marker-${uniqueUsername('m')}`;

@Controller('__test')
class ProbeController {
  private readonly logger = new Logger('Probe');

  /** Logs from deep in a request: after the JSON body was read and after an await. */
  @Public()
  @Post('log')
  async log(@Body() body: { password: string }): Promise<{ ok: true }> {
    await sleep(1);
    this.logger.log({ msg: 'probe', note: VISIBLE_MARKER, password: body.password, nested: { token: body.password } });
    return { ok: true };
  }

  @Public()
  @Get('boom')
  boom(): never {
    throw new Error('probe failure');
  }
}

@Module({ controllers: [ProbeController] })
class ProbeModule {}

interface Line {
  level: string;
  time: string;
  msg?: string;
  context?: string;
  reqId?: string;
  [field: string]: unknown;
}

/** One request: its id and the range of captured lines written while it was handled. */
interface Call {
  id: string;
  from: number;
  /** The index of its access line (the last line it writes). */
  to: number;
  status: number;
}

describe('logs of a run through every flow that handles a secret (LOG_LEVEL=verbose, LOG_FORMAT=json)', () => {
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      raw.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const secrets = new Map<string, string>();
  const keep = (what: string, value: unknown): string => {
    if (typeof value !== 'string' || value.length < 8)
      throw new Error(`${what}: not a value to look for (${String(value)})`);
    secrets.set(what, value as string);
    return value as string;
  };
  const calls: Call[] = [];
  const outboxRoot = mkdtempSync(join(tmpdir(), 'gatehouse-logs-'));
  const outbox = join(outboxRoot, 'outbox');
  const ADMIN_PASSWORD = 'admin password for the log test';
  let t: TestApp;
  let previousLogger: unknown;

  const parsed = (index: number): Line => JSON.parse(raw[index]!) as Line;

  /** Sends one request and records the lines it wrote; waits for its access line and its mail. */
  async function call(send: () => PromiseLike<Response>): Promise<Response> {
    const from = raw.length;
    const res = await send();
    const id = res.headers['x-request-id'] as string;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    let to = -1;
    for (let waited = 0; to === -1; waited++) {
      to = raw.findIndex(
        (line, i) => i >= from && line.includes(`"reqId":"${id}"`) && line.includes('"context":"HTTP"'),
      );
      if (to === -1) {
        if (waited >= 200) throw new Error(`no access line for ${id}`);
        await sleep(5);
      }
    }
    calls.push({ id, from, to, status: res.status });
    await t.app.get(MailerService).whenIdle();
    return res;
  }

  /** The one-time token in the newest mail to `address` (read from the outbox's .eml files). */
  async function mailedToken(address: string, subject: string): Promise<string> {
    const mails = await Promise.all(
      readdirSync(outbox)
        .filter((f) => f.endsWith('.eml'))
        .sort()
        .map(async (f) => simpleParser(readFileSync(join(outbox, f)))),
    );
    const mail = mails
      .filter(
        (m) => m.subject?.includes(subject) && m.text?.includes('#token=') && JSON.stringify(m.to).includes(address),
      )
      .at(-1);
    const token = /#token=([A-Za-z0-9_%-]+)/.exec(mail?.text ?? '')?.[1];
    if (token === undefined) throw new Error(`no ${subject} mail to ${address}`);
    return decodeURIComponent(token);
  }

  beforeAll(async () => {
    previousLogger = (Logger as unknown as { staticInstanceRef: unknown }).staticInstanceRef;
    t = await startApp(
      {
        ...ROOMY_LIMITS,
        LOGIN_RATE_LIMIT: '1000',
        LOG_LEVEL: 'verbose',
        LOG_FORMAT: 'json',
        LOG_REQUESTS: 'true',
        ADMIN_USERNAME: 'root',
        ADMIN_PASSWORD,
        MAIL_OUTBOX_DIR: outbox,
      },
      { imports: [ProbeModule], logDestination: sink },
    );
    t.clock.freeze();
  });

  it('runs sign-up, logins, refreshes, password change and reset, two-step sign-in, a machine client, errors', async () => {
    keep('admin password', ADMIN_PASSWORD);

    // Sign-up (with an address: a verification mail with its token), login, refresh.
    const email = uniqueEmail('logs');
    const username = uniqueUsername('logs');
    const password = keep('sign-up password', 'first password of the log test');
    const signup = await call(() => t.http.post('/auth/signup').send({ username, email, password }));
    expect(signup.status).toBe(201);
    keep('sign-up access token', signup.body.accessToken);
    keep('sign-up refresh cookie', refreshCookieOf(signup));
    keep('verification token', await mailedToken(email, 'confirm your email address'));

    const wrong = await call(() => t.http.post('/auth/login').send({ username, password: 'a wrong password 123' }));
    expect(wrong.status).toBe(401);
    keep('wrong password', 'a wrong password 123');

    const login = await call(() => t.http.post('/auth/login').send({ username, password }));
    expect(login.status).toBe(200);
    let access = keep('login access token', login.body.accessToken);
    const firstCookie = keep('login refresh cookie', refreshCookieOf(login));
    const refreshed = await call(() => t.http.post('/auth/refresh').set('Cookie', refreshCookie(firstCookie)));
    expect(refreshed.status).toBe(200);
    access = keep('refreshed access token', refreshed.body.accessToken);
    keep('refreshed refresh cookie', refreshCookieOf(refreshed));
    // The rotated cookie once more, after the grace period: reuse, the session is revoked and
    // the sessions service logs it from deep in the request.
    t.clock.advance(t.config.REFRESH_REUSE_GRACE + 1);
    const reuse = await call(() => t.http.post('/auth/refresh').set('Cookie', refreshCookie(firstCookie)));
    expect(reuse.status).toBe(401);

    // Password change, then forgotten password and reset through the mailed token.
    const session = await call(() => t.http.post('/auth/login').send({ username, password }));
    expect(session.status).toBe(200);
    access = keep('second login access token', session.body.accessToken);
    const changed = keep('changed password', 'second password of the log test');
    const change = await call(() =>
      t.http.post('/users/me/password').set(bearer(access)).send({ currentPassword: password, newPassword: changed }),
    );
    expect(change.status).toBeLessThan(300);
    const forgot = await call(() => t.http.post('/auth/password/forgot').send({ login: email }));
    expect(forgot.status).toBeLessThan(300);
    const resetToken = keep('reset token', await mailedToken(email, 'reset your password'));
    const reset = keep('reset password', 'third password of the log test');
    const resetRes = await call(() =>
      t.http.post('/auth/password/reset').send({ token: resetToken, newPassword: reset }),
    );
    expect(resetRes.status).toBeLessThan(300);

    // Two-step sign-in: enrolment (secret, recovery codes), then a login with a code.
    const again = await call(() => t.http.post('/auth/login').send({ username, password: reset }));
    expect(again.status).toBe(200);
    access = keep('third login access token', again.body.accessToken);
    const enrolment = await call(() => t.http.post('/auth/mfa/totp').set(bearer(access)).send({ password: reset }));
    expect(enrolment.status).toBe(201);
    const totpSecret = keep('TOTP secret', enrolment.body.secret);
    keep('otpauth URI', enrolment.body.otpauthUri);
    const confirm = await call(() =>
      t.http
        .post('/auth/mfa/totp/confirm')
        .set(bearer(access))
        .send({ code: codeNow(t, totpSecret) }),
    );
    expect(confirm.status).toBe(200);
    keep('aal2 access token', confirm.body.accessToken);
    (confirm.body.recoveryCodes as string[]).forEach((code, i) => keep(`recovery code ${i}`, code));
    const step = await call(() => t.http.post('/auth/login').send({ username, password: reset }));
    expect(step.status).toBe(403);
    const mfaToken = keep('mfaToken', step.body.mfaToken);
    const second = await call(() =>
      t.http.post('/auth/login/mfa').send({ mfaToken, code: advanceToFreshStep(t, totpSecret) }),
    );
    expect(second.status).toBe(200);
    keep('two-step access token', second.body.accessToken);
    keep('two-step refresh cookie', refreshCookieOf(second));

    // A machine client: its secret, and a client_credentials token.
    const admin = await call(() => t.http.post('/auth/login').send({ username: 'root', password: ADMIN_PASSWORD }));
    expect(admin.status).toBe(200);
    keep('admin access token', admin.body.accessToken);
    const created = await call(() =>
      t.http
        .post('/oauth/clients')
        .set(bearer(admin.body.accessToken as string))
        .send({ name: 'log test job', allowedScopes: ['resources:read'] }),
    );
    expect(created.status).toBe(201);
    const clientId = created.body.client.clientId as string;
    const clientSecret = keep('client secret', created.body.secret.value);
    const basicAuth = basic(clientId, clientSecret);
    keep('client Basic credentials', basicAuth.Authorization.slice('Basic '.length));
    const token = await call(() =>
      t.http
        .post('/oauth/token')
        .set(basicAuth)
        .type('form')
        .send(form({ grant_type: 'client_credentials', scope: 'resources:read' })),
    );
    expect(token.status).toBe(200);
    keep('client access token', token.body.access_token);
    // The same secret in the form body (client_secret_post), and a wrong one.
    const posted = await call(() =>
      t.http
        .post('/oauth/token')
        .type('form')
        .send(form({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret })),
    );
    expect(posted.status).toBe(200);
    keep('client access token (post)', posted.body.access_token);

    // A query string with a token in it, a logged object holding a password, an unexpected error.
    const probePassword = keep('probe password', 'probe password value 123');
    const queryToken = keep('query-string token', `qs-${uniqueUsername('tok')}`);
    const probe = await call(() => t.http.post(`/__test/log?token=${queryToken}`).send({ password: probePassword }));
    expect(probe.status).toBe(201);
    const boom = await call(() => t.http.get(`/__test/boom?code=${queryToken}`));
    expect(boom.status).toBe(500);
    const notFound = await call(() => t.http.get(`/no/such/path?access_token=${queryToken}`));
    expect(notFound.status).toBe(404);
  }, 60_000);

  afterAll(async () => {
    await t?.close();
    (Logger as unknown as { staticInstanceRef: unknown }).staticInstanceRef = previousLogger;
    rmSync(outboxRoot, { recursive: true, force: true });
  });

  it('writes every line as a JSON object with level, time and msg (start-up lines included)', () => {
    expect(raw.length).toBeGreaterThan(calls.length);
    for (const line of raw) {
      const entry = JSON.parse(line) as Line;
      expect(typeof entry.level).toBe('string');
      expect(Date.parse(entry.time)).not.toBeNaN();
    }
    expect(raw.some((line) => parsed(raw.indexOf(line)).context === 'Database')).toBe(true);
  });

  it("gives every line written while a request was handled that request's X-Request-Id", () => {
    let inside = 0;
    for (const c of calls) {
      for (let i = c.from; i <= c.to; i++) {
        expect({ line: raw[i], reqId: parsed(i).reqId }).toMatchObject({ reqId: c.id });
        if (parsed(i).context !== 'HTTP') inside++;
      }
    }
    // Not only access lines: the probe's line, the refresh-token reuse and the error are logged
    // from inside their requests.
    expect(inside).toBeGreaterThanOrEqual(3);
    const of = (context: string) => raw.map((_, i) => parsed(i)).filter((l) => l.context === context);
    const ids = new Set(calls.map((c) => c.id));
    const sent = of('Mail').filter((l) => l.msg?.startsWith('sent '));
    expect(sent.length).toBeGreaterThanOrEqual(2);
    const unknown = [...of('Probe'), ...of('Sessions'), ...of('Errors'), ...sent].filter(
      (l) => !ids.has(l.reqId ?? ''),
    );
    expect(unknown).toEqual([]);
    expect(of('Probe')).toHaveLength(1);
    expect(of('Sessions').some((l) => l.msg?.includes('reuse'))).toBe(true);
    expect(of('Errors')).toHaveLength(1);
  });

  it('writes one access line per request: method, path without its query, route, status, duration, id, address', () => {
    const access = raw.map((_, i) => parsed(i)).filter((l) => l.context === 'HTTP');
    expect(access).toHaveLength(calls.length);
    const probe = access.find((l) => l.path === '/__test/log')!;
    expect(probe).toMatchObject({ level: 'info', method: 'POST', route: '/__test/log', status: 201 });
    expect(typeof probe.ms).toBe('number');
    expect(typeof probe.ip).toBe('string');
    expect(Object.keys(probe).sort()).toEqual(
      [
        'context',
        'hostname',
        'ip',
        'level',
        'method',
        'ms',
        'msg',
        'path',
        'pid',
        'reqId',
        'route',
        'status',
        'time',
      ].sort(),
    );
    expect(access.find((l) => l.path === '/__test/boom')).toMatchObject({ level: 'error', status: 500 });
    expect(access.find((l) => l.path === '/no/such/path')).toMatchObject({ level: 'info', status: 404 });
    expect(access.find((l) => l.path === '/no/such/path')?.route).toBeUndefined();
    expect(access.find((l) => l.status === 401)).toMatchObject({ level: 'info', path: '/auth/login' });
  });

  it('logs the unexpected error with its stack, the method and the path, never the query or the body', () => {
    const errors = raw.map((_, i) => parsed(i)).filter((l) => l.context === 'Errors');
    expect(errors[0]).toMatchObject({ level: 'error', msg: 'GET /__test/boom: Error: probe failure' });
    const err = errors[0]!.err as { type: string; message: string; stack: string };
    expect(err).toMatchObject({ type: 'Error', message: 'probe failure' });
    expect(err.stack).toMatch(/\n\s+at /);
  });

  it('has no password, token, cookie, secret or code of the run anywhere in the captured text', () => {
    const text = raw.join('\n');
    // The grep finds what is there: the probe's visible field, and the redaction marks.
    expect(text).toContain(VISIBLE_MARKER);
    expect(text).toContain('"password":"[redacted]"');
    expect(text).toContain('"nested":{"token":"[redacted]"}');
    expect(secrets.size).toBeGreaterThanOrEqual(25);
    const found = [...secrets].filter(([, value]) => text.includes(value)).map(([what]) => what);
    expect(found).toEqual([]);
  });
});
