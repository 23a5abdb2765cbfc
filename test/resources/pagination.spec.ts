import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { createResource, signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

interface Item {
  id: string;
  ownerId: string;
  title: string;
  createdAt: string;
}
interface Page {
  items: Item[];
  nextCursor: string | null;
}

describe('GET /resources: cursor pagination', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS });
  });
  afterAll(async () => t?.close());

  async function page(user: SignedUp, query: Record<string, string | number>): Promise<Page> {
    return (await t.http.get('/resources').query(query).set(user.auth).expect(200)).body;
  }

  /** Follows nextCursor to the end; runs `between` after each page. */
  async function allPages(
    user: SignedUp,
    limit: number,
    between?: (pageIndex: number) => Promise<void>,
  ): Promise<Page[]> {
    const pages: Page[] = [];
    let cursor: string | null = null;
    do {
      const p = await page(user, cursor ? { limit, cursor } : { limit });
      pages.push(p);
      cursor = p.nextCursor;
      if (between) await between(pages.length - 1);
      if (pages.length > 100) throw new Error('pagination does not end');
    } while (cursor !== null);
    return pages;
  }

  /** `n` resources, one second apart (oldest first). */
  async function seed(user: SignedUp, n: number, tag = 'item'): Promise<Item[]> {
    const made: Item[] = [];
    for (let i = 0; i < n; i++) {
      t.clock.advance(1);
      made.push(await createResource(t, user.auth, { title: `${tag} ${i}` }));
    }
    return made;
  }

  it('7 items with limit=3 come in pages of 3, 3 and 1, newest first, each exactly once', async () => {
    const u = await signup(t);
    const made = await seed(u, 7);
    const pages = await allPages(u, 3);

    expect(pages.map((p) => p.items.length)).toEqual([3, 3, 1]);
    expect(typeof pages[0]!.nextCursor).toBe('string');
    expect(typeof pages[1]!.nextCursor).toBe('string');
    expect(pages[2]!.nextCursor).toBeNull();
    const ids = pages.flatMap((p) => p.items.map((i) => i.id));
    expect(ids).toEqual(made.toReversed().map((r) => r.id));
    const times = pages.flatMap((p) => p.items.map((i) => Date.parse(i.createdAt)));
    for (let i = 1; i < times.length; i++) expect(times[i]!).toBeLessThan(times[i - 1]!);
  });

  it('a full last page still ends with nextCursor null (6 items, limit=3)', async () => {
    const u = await signup(t);
    await seed(u, 6);
    const pages = await allPages(u, 3);
    expect(pages.map((p) => p.items.length)).toEqual([3, 3]);
    expect(pages[1]!.nextCursor).toBeNull();
  });

  it('an empty list is one page with nextCursor null', async () => {
    const u = await signup(t);
    expect(await page(u, {})).toEqual({ items: [], nextCursor: null });
  });

  it('shows each of the original items exactly once while new items are inserted between page fetches', async () => {
    const u = await signup(t);
    const original = await seed(u, 7, 'original');
    const inserted: string[] = [];
    const pages = await allPages(u, 3, async () => {
      for (const r of await seed(u, 2, 'inserted')) inserted.push(r.id);
    });

    const ids = pages.flatMap((p) => p.items.map((i) => i.id));
    expect(new Set(ids).size).toBe(ids.length);
    for (const r of original) expect(ids.filter((id) => id === r.id)).toHaveLength(1);
    // The original items, in order, newest first; nothing inserted later shows up among them.
    expect(ids.filter((id) => !inserted.includes(id))).toEqual(original.toReversed().map((r) => r.id));
    expect(pages.map((p) => p.items.length)).toEqual([3, 3, 1]);
  });

  it('shows each item exactly once when they all share the same createdAt', async () => {
    const u = await signup(t);
    t.clock.freeze();
    try {
      for (let i = 0; i < 7; i++) await createResource(t, u.auth, { title: `same instant ${i}` });
    } finally {
      t.clock.unfreeze();
    }
    const pages = await allPages(u, 3);
    expect(pages.map((p) => p.items.length)).toEqual([3, 3, 1]);
    const ids = pages.flatMap((p) => p.items.map((i) => i.id));
    expect(new Set(ids).size).toBe(7);
    expect(new Set(pages.flatMap((p) => p.items.map((i) => i.createdAt))).size).toBe(1);
  });

  it('keeps going from a cursor whose item was deleted meanwhile', async () => {
    const u = await signup(t);
    const made = await seed(u, 7);
    const first = await page(u, { limit: 3 });
    await t.http.delete(`/resources/${first.items[2]!.id}`).set(u.auth).expect(204);
    const second = await page(u, { limit: 3, cursor: first.nextCursor! });
    const expected = made.toReversed().map((r) => r.id);
    expect(second.items.map((i) => i.id)).toEqual(expected.slice(3, 6));
  });

  it("never shows another user's items, even with a cursor taken from their list", async () => {
    const a = await signup(t);
    const b = await signup(t);
    await seed(a, 4, 'a');
    const mine = await seed(b, 2, 'b');
    const aPage = await page(a, { limit: 2 });
    const bPage = await page(b, { limit: 10, cursor: aPage.nextCursor! });
    for (const item of bPage.items) expect(item.ownerId).toBe(b.id);
    const bAll = (await allPages(b, 1)).flatMap((p) => p.items.map((i) => i.id));
    expect(bAll).toEqual(mine.toReversed().map((r) => r.id));
  });

  it('accepts limit=1 and limit=100', async () => {
    const u = await signup(t);
    await seed(u, 3);
    const one = await page(u, { limit: 1 });
    expect(one.items).toHaveLength(1);
    expect(one.nextCursor).not.toBeNull();
    const hundred = await page(u, { limit: 100 });
    expect(hundred.items).toHaveLength(3);
    expect(hundred.nextCursor).toBeNull();
  });

  it.each([['0'], ['101'], ['-1'], ['abc'], ['2.5'], ['']])('answers 400 to limit=%s', async (limit) => {
    const u = await signup(t);
    const res = await t.http.get('/resources').query({ limit }).set(u.auth).expect(400);
    expect(res.body).toMatchObject({ statusCode: 400, error: 'Bad Request', code: 'VALIDATION_FAILED' });
  });

  const badCursors: Array<[string, string]> = [
    ['garbage', '!!not-a-cursor!!'],
    ['base64 of plain text', Buffer.from('hello').toString('base64url')],
    ['base64 of an object', Buffer.from(JSON.stringify({ createdAt: new Date().toISOString() })).toString('base64url')],
    ['a non-UUID id', Buffer.from(JSON.stringify([new Date().toISOString(), "1' OR '1'='1"])).toString('base64url')],
    [
      'an invalid date',
      Buffer.from(JSON.stringify(['not a date', '3b241101-e2bb-4255-8caf-4136c566a962'])).toString('base64url'),
    ],
    ['overlong', 'x'.repeat(1000)],
  ];
  it.each(badCursors)('answers 400 to a cursor that is %s', async (_name, cursor) => {
    const u = await signup(t);
    const res = await t.http.get('/resources').query({ cursor }).set(u.auth).expect(400);
    expect(res.body).toMatchObject({ statusCode: 400, code: 'VALIDATION_FAILED' });
  });

  it('answers 400 to two cursors or two limits', async () => {
    const u = await signup(t);
    await seed(u, 3);
    const first = await page(u, { limit: 1 });
    await t.http.get(`/resources?cursor=${first.nextCursor}&cursor=${first.nextCursor}`).set(u.auth).expect(400);
    await t.http.get('/resources?limit=1&limit=2').set(u.auth).expect(400);
  });
});
