import type pg from 'pg';
import type { Prisma } from '../generated/prisma/client.js';
import type { PrismaService } from './prisma.service.js';
import type { PrismaTx, TransactionHost } from './transactions.js';

/**
 * A few hot statements (a refresh's rotation, a client's credentials, a login's second step)
 * run as named prepared statements on the pool under the Prisma adapter: PostgreSQL parses and
 * plans each once per connection, and the process skips Prisma's per-statement work. The SQL
 * is written once, as `Prisma.sql`: `pg` runs its `.text` ($1…$n placeholders) and `.values`;
 * Prisma's `$queryRaw` runs the same object where no prepared statement is used: on PGlite,
 * inside a transaction (whose statements must go through its own connection), or when a
 * connection cannot use one (below). A name must always carry the same text: only the values
 * may vary between calls. Without a name (null), the statement is planned at each call for its
 * values, still without Prisma's work: for a statement whose best plan depends on them, where
 * PostgreSQL's generic plan of a prepared statement would be a poor one for some values.
 */
export async function queryPrepared<T>(
  txHost: TransactionHost<PrismaTx>,
  prisma: PrismaService | null | undefined,
  name: string | null,
  statement: Prisma.Sql,
): Promise<T[]> {
  const pool: pg.Pool | null | undefined = prisma?.pgPool();
  if (pool && !txHost.isTransactionActive()) {
    try {
      const query = name === null ? { text: statement.text } : { name, text: statement.text };
      return (await pool.query<T & pg.QueryResultRow>({ ...query, values: statement.values })).rows;
    } catch (error) {
      // The statement did not run, and Prisma runs it unprepared, when the connection cannot
      // use a named prepared statement: a migration changed a returned column's type while
      // this process runs ("cached plan must not change result type", 0A000), or a pooler in
      // transaction mode (PgBouncer without prepared-statement support) hands out backends
      // that lack it or already have it (26000, 42P05).
      if (!PREPARED_STATEMENT_UNUSABLE.has(String((error as { code?: unknown }).code))) throw error;
    }
  }
  return txHost.tx.$queryRaw<T[]>(statement);
}

/** SQLSTATEs after which the prepared statement did not run and the unprepared one is used. */
const PREPARED_STATEMENT_UNUSABLE = new Set(['0A000', '26000', '42P05']);
