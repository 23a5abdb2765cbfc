import { describe, expect, it } from 'vitest';
import { isRedisUnavailable } from '../../src/common/errors/redis-errors.js';

const named = (name: string, message: string) => Object.assign(new Error(message), { name });

describe('isRedisUnavailable', () => {
  it.each([
    ['no connection and no offline queue', new Error("Stream isn't writeable and enableOfflineQueue options is false")],
    ['the connection closed before the reply', new Error('Connection is closed.')],
    [
      'the reconnection attempts ran out',
      named('MaxRetriesPerRequestError', 'Reached the max retries per request limit'),
    ],
    ['no reply in time', new Error('Command timed out')],
    ['a read-only replica', named('ReplyError', "READONLY You can't write against a read only replica.")],
    ['a Redis loading its data', named('ReplyError', 'LOADING Redis is loading the dataset in memory')],
    ['a master down', named('ReplyError', 'MASTERDOWN Link with MASTER is down')],
    ['a Redis out of memory', named('ReplyError', "OOM command not allowed when used memory > 'maxmemory'.")],
    [
      'a Redis whose snapshots fail',
      named(
        'ReplyError',
        'MISCONF Redis is configured to save RDB snapshots, but it is currently not able to persist on disk.',
      ),
    ],
    ['any of them as a cause', new Error('wrapped', { cause: new Error('Connection is closed.') })],
  ])('recognises %s', (_name, error) => {
    expect(isRedisUnavailable(error)).toBe(true);
  });

  it.each([
    ['a script error', named('ReplyError', 'ERR Error running script')],
    ['a wrong type', named('ReplyError', 'WRONGTYPE Operation against a key holding the wrong kind of value')],
    ['a message that only contains the words', new Error('the Connection is closed. said someone')],
    ['not an error', 'Connection is closed.'],
    ['nothing', undefined],
  ])('leaves %s to the 500', (_name, error) => {
    expect(isRedisUnavailable(error)).toBe(false);
  });
});
