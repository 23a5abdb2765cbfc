import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Logger } from '@nestjs/common';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.schema.js';
import { CENSOR, createAppLogger, scrubSensitive, type AppLogger } from '../../src/logging/app-logger.js';
import { currentRequest, runInRequestContext } from '../../src/logging/request-context.js';

/** A logger writing into a list, as the application builds it from this environment. */
function capture(env: Record<string, string> = {}): { logger: AppLogger; lines: string[]; text: () => string } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const config = parseConfig({ DATABASE_URL: 'memory://', LOG_LEVEL: 'verbose', LOG_FORMAT: 'json', ...env });
  return { logger: createAppLogger(config, { destination: sink }), lines, text: () => lines.join('\n') };
}

const json = (line: string | undefined) => JSON.parse(line ?? 'null') as Record<string, unknown>;

/** Nest's Logger routes every `new Logger(context)` to one static logger: restored after each test. */
const nest = Logger as unknown as { staticInstanceRef: unknown };
const previous: unknown = nest.staticInstanceRef;
afterEach(() => {
  nest.staticInstanceRef = previous;
});

describe('JSON lines (LOG_FORMAT=json)', () => {
  it("write one JSON object per line with level, time, msg and the Logger's context", () => {
    const { logger, lines } = capture();
    Logger.overrideLogger(logger);
    new Logger('Gatehouse').log('listening on http://0.0.0.0:3000 (pid 1)');
    new Logger('Mail').warn('mail queue full');
    new Logger('Database').error('connection lost');
    expect(lines).toHaveLength(3);
    const first = json(lines[0]);
    expect(first).toMatchObject({
      level: 'info',
      context: 'Gatehouse',
      msg: 'listening on http://0.0.0.0:3000 (pid 1)',
      pid: process.pid,
    });
    expect(new Date(first.time as string).toISOString()).toBe(first.time);
    expect(json(lines[1])).toMatchObject({ level: 'warn', context: 'Mail', msg: 'mail queue full' });
    expect(json(lines[2])).toMatchObject({ level: 'error', context: 'Database', msg: 'connection lost' });
    expect(json(lines[2])).not.toHaveProperty('err');
  });

  it("map Nest's levels to pino's (log → info, verbose → trace) and keep LOG_LEVEL's threshold", () => {
    const verbose = capture();
    verbose.logger.verbose('v', 'X');
    verbose.logger.debug('d', 'X');
    verbose.logger.fatal('f', 'X');
    expect(verbose.lines.map((l) => json(l).level)).toEqual(['trace', 'debug', 'fatal']);

    const warn = capture({ LOG_LEVEL: 'warn' });
    warn.logger.log('not written', 'X');
    warn.logger.debug('not written', 'X');
    warn.logger.warn('written', 'X');
    expect(warn.lines.map((l) => json(l).msg)).toEqual(['written']);

    const silent = capture({ LOG_LEVEL: 'silent' });
    silent.logger.error('nothing', 'X');
    silent.logger.fatal('nothing', 'X');
    expect(silent.lines).toEqual([]);
  });

  it('take the message as written (no printf-style %s), an Error as err, a stack given to error() as err.stack', () => {
    const { logger, lines } = capture();
    logger.log('100% done, %s left', 'X');
    const error = Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
    logger.error(error, 'X');
    logger.error('failed', error.stack, 'X');
    expect(json(lines[0]).msg).toBe('100% done, %s left');
    expect(json(lines[1])).toMatchObject({
      msg: 'refused',
      err: { type: 'Error', message: 'refused', code: 'ECONNREFUSED' },
    });
    expect((json(lines[1]).err as { stack: string }).stack).toMatch(/\n\s+at /);
    expect(json(lines[2])).toMatchObject({
      msg: 'failed',
      context: 'X',
      err: { type: 'Error', message: 'Error: refused' },
    });
  });
});

describe('the request id', () => {
  it('is on every line written inside a request context, after awaits and timers too, and on no other', async () => {
    const { logger, lines } = capture();
    logger.log('before', 'X');
    await runInRequestContext({ reqId: 'req-1' }, async () => {
      logger.log('inside', 'X');
      await sleep(1);
      expect(currentRequest()).toEqual({ reqId: 'req-1' });
      await new Promise<void>((resolve) =>
        setImmediate(() => {
          logger.warn('in a later turn', 'X');
          resolve();
        }),
      );
    });
    logger.log('after', 'X');
    expect(lines.map((l) => [json(l).msg, json(l).reqId])).toEqual([
      ['before', undefined],
      ['inside', 'req-1'],
      ['in a later turn', 'req-1'],
      ['after', undefined],
    ]);
  });

  it('keeps two interleaved requests apart', async () => {
    const { logger, lines } = capture();
    const handle = (reqId: string, delay: number) =>
      runInRequestContext({ reqId }, async () => {
        await sleep(delay);
        logger.log(`done ${reqId}`, 'X');
      });
    await Promise.all([handle('slow', 20), handle('fast', 1)]);
    expect(lines.map((l) => `${json(l).msg as string}/${json(l).reqId as string}`)).toEqual([
      'done fast/fast',
      'done slow/slow',
    ]);
  });
});

describe('redaction', () => {
  const SECRET = 'value-that-must-never-be-logged';

  it('hides credentials by field name at any depth and in any spelling, and nothing else', () => {
    const { logger, text, lines } = capture();
    logger.log(
      {
        msg: 'object message',
        password: SECRET,
        headers: { authorization: `Bearer ${SECRET}`, cookie: `refresh_token=${SECRET}`, 'user-agent': 'curl' },
        req: { headers: { Authorization: SECRET }, body: { newPassword: SECRET }, query: { token: SECRET } },
        oauth: { client_secret: SECRET, clientSecret: SECRET, refresh_token: SECRET, 'Set-Cookie': [SECRET] },
        mfa: {
          mfaToken: SECRET,
          code: SECRET,
          recoveryCodes: [SECRET],
          otpauthUri: `otpauth://totp/x?secret=${SECRET}`,
        },
        list: [{ currentPassword: SECRET }, { deep: { deeper: { accessToken: SECRET } } }],
        kept: 'visible detail',
      },
      'X',
    );
    expect(text()).not.toContain(SECRET);
    const line = json(lines[0]);
    expect(line).toMatchObject({
      msg: 'object message',
      password: CENSOR,
      headers: { authorization: CENSOR, cookie: CENSOR, 'user-agent': 'curl' },
      oauth: { client_secret: CENSOR, clientSecret: CENSOR, refresh_token: CENSOR, 'Set-Cookie': CENSOR },
      list: [{ currentPassword: CENSOR }, { deep: { deeper: { accessToken: CENSOR } } }],
      kept: 'visible detail',
      context: 'X',
    });
    expect((line.req as Record<string, unknown>).body).toBe(CENSOR);
  });

  it('can fail: the same grep finds a value logged under a field no rule covers', () => {
    const { logger, text } = capture();
    logger.log({ msg: 'leak', note: SECRET }, 'X');
    expect(text()).toContain(SECRET);
  });

  it('keeps of an error only its type, message, code, stack and cause, never what a library hung on it', () => {
    const { logger, text, lines } = capture();
    const error = Object.assign(new Error('request failed', { cause: new Error('socket hang up') }), {
      config: { headers: { Authorization: `Basic ${SECRET}` } },
      response: { data: SECRET },
    });
    logger.error('upstream failed', { err: error }, 'X');
    expect(text()).not.toContain(SECRET);
    const err = json(lines[0]).err as Record<string, unknown>;
    expect(Object.keys(err).sort()).toEqual(['cause', 'message', 'stack', 'type']);
    expect(err.cause).toMatchObject({ type: 'Error', message: 'socket hang up' });
  });

  it('copies only what it changes: an object without credentials is logged as it is', () => {
    const clean = { a: 1, b: { c: [1, 2, { d: 'x' }] } };
    expect(scrubSensitive(clean)).toBe(clean);
    const dirty = { a: 1, b: { token: 'x' }, e: { f: 1 } };
    const scrubbed = scrubSensitive(dirty);
    expect(scrubbed).toEqual({ a: 1, b: { token: CENSOR }, e: { f: 1 } });
    expect(scrubbed.e).toBe(dirty.e);
    expect(dirty.b.token).toBe('x');
  });
});

describe('pretty text (LOG_FORMAT=pretty)', () => {
  const SECRET_PRETTY = 'pretty-secret-value';

  it('writes one uncoloured line per entry: time, level, (context) and message, then the other fields', () => {
    const { logger, lines } = capture({ LOG_FORMAT: 'pretty' });
    logger.warn('running on the embedded database: this set-up is for development', 'Gatehouse');
    runInRequestContext({ reqId: 'req-9' }, () => logger.log({ msg: 'probe', password: SECRET_PRETTY }, 'Probe'));
    logger.warn('a driver message\n\n  on several lines', 'Database');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatch(/^\[[\d:.]+\] WARN: \(Database\) a driver message on several lines$/);
    expect(lines[0]).toMatch(
      /^\[\d{2}:\d{2}:\d{2}\.\d{3}\] WARN: \(Gatehouse\) running on the embedded database: this set-up is for development$/,
    );
    expect(lines[1]).toMatch(/^\[[\d:.]+\] INFO: \(Probe\) probe \{"reqId":"req-9","password":"\[redacted\]"\}$/);
    expect(lines.join('\n')).not.toContain('\u001b['); // no colour codes
  });
});
