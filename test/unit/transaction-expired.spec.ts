import { describe, expect, it } from 'vitest';
import { isTransactionExpired } from '../../src/common/errors/database-errors.js';
import { unavailableDependency } from '../../src/common/errors/unavailable.js';

/** A Prisma client error as it reaches the exception filter. */
const prismaError = (code: string, message: string) => Object.assign(new Error(message), { code });

const QUERY_AFTER =
  'Transaction API error: A query cannot be executed on an expired transaction. The timeout for this transaction was 10000 ms, however 12994 ms passed since the start of the transaction.';
const COMMIT_AFTER =
  'Transaction already closed: A commit cannot be executed on an expired transaction. The timeout for this transaction was 10000 ms, however 10021 ms passed since the start of the transaction.';

describe('isTransactionExpired', () => {
  it.each([
    ['a query after the time limit', QUERY_AFTER],
    ['the commit after the time limit', COMMIT_AFTER],
  ])('recognises %s, answered 503 DATABASE_UNAVAILABLE', (_name, message) => {
    const error = prismaError('P2028', message);
    expect(isTransactionExpired(error)).toBe(true);
    // Answered 503, but logged as an error: a transaction that takes too long may be a fault.
    expect(unavailableDependency(error)).toMatchObject({
      what: 'database',
      code: 'DATABASE_UNAVAILABLE',
      logAsError: true,
    });
  });

  it.each([
    [
      'another transaction error (a bug, not a wait)',
      prismaError('P2028', 'Transaction API error: Transaction not found.'),
    ],
    ['the same words under another code', prismaError('P2002', QUERY_AFTER)],
    ['not an error', 'expired transaction'],
    ['null', null],
  ])('leaves %s alone', (_name, error) => {
    expect(isTransactionExpired(error)).toBe(false);
    expect(unavailableDependency(error)).toBeNull();
  });
});

it('a database out of reach stays a warning', () => {
  expect(unavailableDependency(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toEqual(
    expect.not.objectContaining({ logAsError: true }),
  );
});
