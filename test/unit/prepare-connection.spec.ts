import { describe, expect, it } from 'vitest';
import { isDatabaseUnavailable } from '../../src/common/errors/database-errors.js';
import { prepareConnection } from '../../src/database/open-database.js';

/** A stand-in for a new pg client: records what it is asked, answers as `answer` says. */
function client(answer: (sql: string) => Promise<unknown>) {
  const asked: string[] = [];
  const socket = { destroyed: false };
  return {
    asked,
    socket,
    query: ((sql: string) => {
      asked.push(sql);
      return answer(sql);
    }) as never,
    connection: { stream: { destroy: () => void (socket.destroyed = true) } },
  };
}

describe('prepareConnection (each new PostgreSQL connection, before the pool hands it out)', () => {
  it('sets the time zone to UTC, and nothing else', async () => {
    const c = client(async () => ({ rows: [] }));
    await prepareConnection(c, 1000);
    expect(c.asked).toEqual(['SET TIME ZONE UTC']);
    expect(c.socket.destroyed).toBe(false);
  });

  it('refuses the connection as unreachable when the server refuses the setting', async () => {
    const refused = Object.assign(new Error('invalid value for parameter "TimeZone": "UTC"'), { code: '22023' });
    const c = client(() => Promise.reject(refused));
    const error: unknown = await prepareConnection(c, 1000).catch((e: unknown) => e);
    // Closed at once: the pool's gentle end() would wait for a server that may never close.
    expect(c.socket.destroyed).toBe(true);
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ code: '08000', cause: refused });
    expect((error as Error).message).toContain('invalid value for parameter "TimeZone"');
    expect(isDatabaseUnavailable(error)).toBe(true);
    // What the server said alone would not be a 503.
    expect(isDatabaseUnavailable(refused)).toBe(false);
  });

  it('gives up when the server never answers, within its bound', async () => {
    const started = performance.now();
    const c = client(() => new Promise(() => undefined));
    const error: unknown = await prepareConnection(c, 50).catch((e: unknown) => e);
    expect(c.socket.destroyed).toBe(true);
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(error).toMatchObject({ code: '08000' });
    expect((error as Error).message).toContain('database timeout after 50 ms');
    expect(isDatabaseUnavailable(error)).toBe(true);
  });
});
