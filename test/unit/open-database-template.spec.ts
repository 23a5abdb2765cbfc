import { PGlite } from '@electric-sql/pglite';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/database/open-database.js';

describe('openDatabase: an in-memory database started from a template (what the test suite does)', () => {
  it('holds what the template held, and writes to it do not reach the template', async () => {
    const source = new PGlite();
    await source.exec(`CREATE TABLE marker (v text); INSERT INTO marker VALUES ('from the template')`);
    const template = await source.dumpDataDir('none');
    await source.close();

    const read = async (database: ReturnType<typeof openDatabase>) => {
      const adapter = await database.factory.connect();
      const result = await adapter.queryRaw({ sql: 'SELECT v FROM marker ORDER BY v', args: [], argTypes: [] });
      return result.rows.map((row) => row[0]);
    };
    const first = openDatabase({ kind: 'pglite', dataDir: undefined, template }, { connectTimeoutMs: 10_000 });
    const second = openDatabase({ kind: 'pglite', dataDir: undefined, template }, { connectTimeoutMs: 10_000 });
    try {
      expect(await read(first)).toEqual(['from the template']);
      const adapter = await first.factory.connect();
      await adapter.executeRaw({ sql: `INSERT INTO marker VALUES ('only in the first')`, args: [], argTypes: [] });
      expect(await read(first)).toEqual(['from the template', 'only in the first']);
      expect(await read(second)).toEqual(['from the template']);
    } finally {
      await first.close();
      await second.close();
    }
  });
});
