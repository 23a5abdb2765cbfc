import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { queryPrepared } from '../../src/database/prepared-statements.js';
import type { PrismaService } from '../../src/database/prisma.service.js';
import { TransactionHost, type PrismaTx } from '../../src/database/transactions.js';
import { Prisma } from '../../src/generated/prisma/client.js';
import { onPostgres } from '../support/env.js';
import { startApp, type TestApp } from '../support/test-app.js';

/** Stand-ins: a pool whose query() does what it is told, and a transaction host on a fake Prisma. */
function standIns(opts: { pool?: (q: unknown) => Promise<{ rows: unknown[] }>; inTransaction?: boolean }) {
  type PoolQuery = (q: unknown) => Promise<{ rows: unknown[] }>;
  const poolQuery = vi.fn<PoolQuery>(opts.pool ?? (async () => ({ rows: [{ from: 'pool' }] })));
  const queryRaw = vi.fn<() => Promise<unknown[]>>(async () => [{ from: 'prisma' }]);
  const prisma = { pgPool: () => (opts.pool === undefined ? null : { query: poolQuery }) } as unknown as PrismaService;
  const txHost = {
    isTransactionActive: () => opts.inTransaction ?? false,
    tx: { $queryRaw: queryRaw },
  } as unknown as TransactionHost<PrismaTx>;
  return { prisma, txHost, poolQuery, queryRaw };
}

const statement = () => Prisma.sql`SELECT id FROM users WHERE id = ${'a'} AND disabled = ${false}`;
const failing = (code: string) => async () => {
  throw Object.assign(new Error(`failed with ${code}`), { code });
};

describe('queryPrepared: where a statement runs', () => {
  it('runs on the pool as a named prepared statement outside a transaction, with the text and values of the Prisma.sql', async () => {
    const s = standIns({ pool: async () => ({ rows: [{ from: 'pool' }] }) });
    expect(await queryPrepared(s.txHost, s.prisma, 'named_v1', statement())).toEqual([{ from: 'pool' }]);
    expect(s.poolQuery).toHaveBeenCalledWith({
      name: 'named_v1',
      text: 'SELECT id FROM users WHERE id = $1 AND disabled = $2',
      values: ['a', false],
    });
    expect(s.queryRaw).not.toHaveBeenCalled();
  });

  it("runs through Prisma inside a transaction (the transaction's own connection), and without a pool (PGlite)", async () => {
    const inTx = standIns({ pool: async () => ({ rows: [] }), inTransaction: true });
    expect(await queryPrepared(inTx.txHost, inTx.prisma, 'named_v1', statement())).toEqual([{ from: 'prisma' }]);
    expect(inTx.poolQuery).not.toHaveBeenCalled();
    const embedded = standIns({});
    expect(await queryPrepared(embedded.txHost, embedded.prisma, 'named_v1', statement())).toEqual([
      { from: 'prisma' },
    ]);
    expect(await queryPrepared(embedded.txHost, undefined, 'named_v1', statement())).toEqual([{ from: 'prisma' }]);
  });

  it.each(['0A000', '26000', '42P05'])(
    'runs it unprepared through Prisma when the connection cannot use a prepared statement (%s)',
    async (code) => {
      const s = standIns({ pool: failing(code) });
      expect(await queryPrepared(s.txHost, s.prisma, 'named_v1', statement())).toEqual([{ from: 'prisma' }]);
      expect(s.queryRaw).toHaveBeenCalledTimes(1);
    },
  );

  it('lets any other failure through, without running the statement a second time', async () => {
    const s = standIns({ pool: failing('23505') });
    await expect(queryPrepared(s.txHost, s.prisma, 'named_v1', statement())).rejects.toThrow('failed with 23505');
    expect(s.queryRaw).not.toHaveBeenCalled();
  });
});

describe.runIf(onPostgres)('queryPrepared on PostgreSQL: the same rows as Prisma', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp();
  });
  afterAll(async () => t?.close());

  it('answers every type the hot statements return as Prisma does (uuid, bytea, timestamptz, arrays, json, int, bool, null)', async () => {
    const id = randomUUID();
    const bytes = Buffer.from([0, 1, 2, 254, 255]);
    const at = new Date('2026-05-04T03:02:01.123Z');
    const sql = Prisma.sql`
      SELECT ${id}::uuid AS id, ${bytes}::bytea AS bytes, ${at}::timestamptz AS at, ARRAY['user', 'admin']::text[] AS roles,
             json_build_object('name', 'editor', 'permissions', ARRAY['resources:read']) AS custom, 42::int AS n,
             true AS yes, NULL::timestamptz AS never`;
    const txHost = t.app.get(TransactionHost) as TransactionHost<PrismaTx>;
    const prepared = await queryPrepared<Record<string, unknown>>(txHost, t.prisma, 'gatehouse_test_types_v1', sql);
    const viaPrisma = await txHost.withTransaction(() =>
      queryPrepared<Record<string, unknown>>(txHost, t.prisma, 'gatehouse_test_types_v1', sql),
    );
    // Prisma answers bytes as a Uint8Array, pg as a Buffer (a Uint8Array too): compare the bytes.
    const normal = (row: Record<string, unknown>) => ({ ...row, bytes: [...(row.bytes as Uint8Array)] });
    expect(normal(prepared[0]!)).toEqual(normal(viaPrisma[0]!));
    expect(normal(prepared[0]!)).toEqual({
      id,
      bytes: [...bytes],
      at,
      roles: ['user', 'admin'],
      custom: { name: 'editor', permissions: ['resources:read'] },
      n: 42,
      yes: true,
      never: null,
    });
    // The second call finds the statement already prepared on its connection.
    expect(await queryPrepared(txHost, t.prisma, 'gatehouse_test_types_v1', sql)).toEqual(prepared);
  });
});
