import { Logger, type ArgumentsHost } from '@nestjs/common';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { OAuthExceptionFilter } from '../../src/oauth/oauth-errors.js';

/** A Prisma client error as it reaches the exception filter. */
const prismaError = (code: string, message: string) => Object.assign(new Error(message), { code });
const EXPIRED = prismaError(
  'P2028',
  'Transaction API error: A query cannot be executed on an expired transaction. The timeout for this transaction was 10000 ms, however 12994 ms passed since the start of the transaction.',
);
/** ioredis's error for a command whose connection closed before its reply. */
const CLOSED = new Error('Connection is closed.');

/** An HTTP host of one request to the token endpoint, and what was answered. */
function host() {
  const answer: { status?: number; body?: unknown; headers: Record<string, string> } = { headers: {} };
  const req = { method: 'POST', originalUrl: '/oauth/token?x=1', url: '/oauth/token?x=1', id: 'req-7' };
  const res = {
    headersSent: false,
    setHeader: (name: string, value: string) => void (answer.headers[name.toLowerCase()] = value),
    status(code: number) {
      answer.status = code;
      return res;
    },
    json(body: unknown) {
      answer.body = body;
      return res;
    },
  };
  const http = { getRequest: () => req, getResponse: () => res };
  return { host: { switchToHttp: () => http } as unknown as ArgumentsHost, answer };
}

/**
 * The OAuth endpoints answer a dependency out of reach as `temporarily_unavailable`; the
 * failure behind it is logged as it is on every other endpoint (the global filter only sees
 * the OAuth answer).
 */
describe('OAuthExceptionFilter logs a dependency out of reach', () => {
  afterEach(() => vi.restoreAllMocks());

  it('an expired transaction: 503 temporarily_unavailable, logged as an error with the request id', () => {
    const error = vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const warn = vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const { host: h, answer } = host();
    new OAuthExceptionFilter().catch(EXPIRED, h);
    expect(answer).toMatchObject({
      status: 503,
      body: { statusCode: 503, error: 'temporarily_unavailable', code: 'DATABASE_UNAVAILABLE' },
      headers: { 'retry-after': '5', 'cache-control': 'no-store' },
    });
    expect(error).toHaveBeenCalledTimes(1);
    expect(error.mock.calls[0]).toEqual([
      expect.stringMatching(/^POST \/oauth\/token: Error: Transaction API error/),
      { err: EXPIRED, reqId: 'req-7' },
    ]);
    expect(warn).not.toHaveBeenCalled();
  });

  it('Redis out of reach: 503 temporarily_unavailable, one warning line', () => {
    const error = vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const warn = vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const { host: h, answer } = host();
    new OAuthExceptionFilter().catch(CLOSED, h);
    expect(answer).toMatchObject({
      status: 503,
      body: { error: 'temporarily_unavailable', code: 'SERVICE_UNAVAILABLE' },
    });
    expect(warn.mock.calls).toEqual([['redis unavailable: Error: Connection is closed.', { reqId: 'req-7' }]]);
    expect(error).not.toHaveBeenCalled();
  });

  it('an unexpected error is logged once, by the global filter', () => {
    const error = vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const warn = vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const { host: h, answer } = host();
    new OAuthExceptionFilter().catch(prismaError('P2002', 'Unique constraint failed'), h);
    // Not a dependency: the global filter's generic 500, logged there once.
    expect(answer.status).toBe(500);
    expect(error).toHaveBeenCalledTimes(1);
    expect(warn).not.toHaveBeenCalled();
  });
});
