import { PGlite } from '@electric-sql/pglite';
import { describe, expect, it } from 'vitest';
import { openDatabase, type OpenedDatabase } from '../../src/database/open-database.js';

describe('openDatabase: an in-memory database started from a template (what the test suite does)', () => {
  it('holds what the template held, and what one database writes reaches no other started from it', async () => {
    const source = new PGlite();
    await source.exec(`CREATE TABLE marker (v text); INSERT INTO marker VALUES ('from the template'); CHECKPOINT`);
    const template = await source.dumpDataDir('none');
    await source.close();

    const open = () => openDatabase({ kind: 'pglite', dataDir: undefined, template }, { connectTimeoutMs: 10_000 });
    const read = async (database: OpenedDatabase) => {
      const adapter = await database.factory.connect();
      const result = await adapter.queryRaw({ sql: 'SELECT v FROM marker ORDER BY v', args: [], argTypes: [] });
      return result.rows.map((row) => row[0]);
    };
    const first = open();
    const opened = [first];
    try {
      expect(await read(first)).toEqual(['from the template']);
      const adapter = await first.factory.connect();
      await adapter.executeRaw({ sql: `INSERT INTO marker VALUES ('only in the first')`, args: [], argTypes: [] });
      expect(await read(first)).toEqual(['from the template', 'only in the first']);
      // Opened after the write, and again after the first is closed.
      const second = open();
      opened.push(second);
      expect(await read(second)).toEqual(['from the template']);
      await first.close();
      const third = open();
      opened.push(third);
      expect(await read(third)).toEqual(['from the template']);
    } finally {
      for (const database of opened) await database.close();
    }
  });
});
