import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

/** A new database on the suite's shared PostgreSQL server; its URL. */
export async function freshSharedDatabase(label: string): Promise<string> {
  const name = `gatehouse_${label}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: inject('sharedPgUrl') });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(inject('sharedPgUrl'));
  url.pathname = `/${name}`;
  return url.toString();
}

/** One query on a database, on a short-lived connection. */
export async function queryDb<T extends pg.QueryResultRow = pg.QueryResultRow>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}
