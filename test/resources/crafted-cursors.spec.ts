import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { createResource, login, signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

/**
 * Security finding 10: a cursor is client input. One crafted the way the encoder builds them
 * (base64url of the JSON `[createdAt ISO string, id]`) but holding a date PostgreSQL cannot
 * store, or one far outside any real creation time, reached the query and came back as 500
 * (22009 and friends). Every cursor that is not a real position must be a 400 with the
 * contract's body, on both paginated endpoints. Run on PGlite and on PostgreSQL.
 */

const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
const ID = '3b241101-e2bb-4255-8caf-4136c566a962';

/** Exactly what encodeCursor does with a position. */
const cursorOf = (createdAt: string, id: string = ID): string =>
  Buffer.from(JSON.stringify([createdAt, id]), 'utf8').toString('base64url');

const crafted: Array<[string, string]> = [
  ['year 0', cursorOf(new Date('0000-01-01T00:00:00.000Z').toISOString())],
  ['the earliest JavaScript date (-271821)', cursorOf(new Date(-8.64e15).toISOString())],
  ['the latest JavaScript date (+275760-09-13)', cursorOf(new Date(8.64e15).toISOString())],
  ['year 1 BC', cursorOf('-000001-06-15T12:00:00.000Z')],
  ['year 4714 BC (before PostgreSQL timestamps)', cursorOf(new Date(Date.UTC(-4713, 0, 1)).toISOString())],
  ['year 10000', cursorOf(new Date(Date.UTC(10000, 0, 1)).toISOString())],
  ['just before 1970', cursorOf('1969-12-31T23:59:59.999Z')],
  ['year 1 AD', cursorOf('0001-01-01T00:00:00.000Z')],
  ['a date string that is not the encoder format ("0" reads as year 2000)', cursorOf('0')],
  ['a date-only string', cursorOf('2024-01-01')],
  ['an ISO string with an offset instead of Z', cursorOf('2024-01-01T00:00:00.000+02:00')],
  ['an impossible calendar date', cursorOf('2024-02-30T00:00:00.000Z')],
  ['a numeric id', Buffer.from(JSON.stringify(['2024-01-01T00:00:00.000Z', 7])).toString('base64url')],
  ['a UUID with trailing text', cursorOf('2024-01-01T00:00:00.000Z', `${ID}x`)],
  ['a third element', Buffer.from(JSON.stringify(['2024-01-01T00:00:00.000Z', ID, 1])).toString('base64url')],
];

describe('crafted pagination cursors (GET /resources and GET /users)', () => {
  let t: TestApp;
  let admin: SignedUp;
  let user: SignedUp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, ...ADMIN });
    admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
    user = await signup(t);
    await createResource(t, user.auth);
  });
  afterAll(async () => t?.close());

  const endpoints = () => [
    { path: '/resources', auth: user.auth },
    { path: '/users', auth: admin.auth },
  ];

  it.each(crafted)('answers 400 VALIDATION_FAILED, never 500, to a cursor holding %s', async (_name, cursor) => {
    for (const { path, auth } of endpoints()) {
      const res = await t.http.get(path).query({ cursor }).set(auth);
      expect({ path, status: res.status }).toEqual({ path, status: 400 });
      expect(res.body).toEqual({
        statusCode: 400,
        error: 'Bad Request',
        code: 'VALIDATION_FAILED',
        message: ['cursor is not valid'],
      });
    }
  });

  it.each([
    ['the first instant of 1970', '1970-01-01T00:00:00.000Z'],
    ['the last instant of 9999', '9999-12-31T23:59:59.999Z'],
    ['today', new Date().toISOString()],
  ])('accepts a well-formed cursor at %s (200)', async (_name, createdAt) => {
    for (const { path, auth } of endpoints()) {
      const res = await t.http
        .get(path)
        .query({ cursor: cursorOf(createdAt) })
        .set(auth);
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
      expect(Array.isArray(res.body.items)).toBe(true);
    }
  });

  it('still follows the nextCursor the server hands out, on both endpoints', async () => {
    await createResource(t, user.auth);
    for (const { path, auth } of endpoints()) {
      const first = await t.http.get(path).query({ limit: 1 }).set(auth).expect(200);
      expect(typeof first.body.nextCursor).toBe('string');
      const second = await t.http.get(path).query({ limit: 1, cursor: first.body.nextCursor }).set(auth).expect(200);
      expect(second.body.items).toHaveLength(1);
      expect(second.body.items[0].id).not.toBe(first.body.items[0].id);
    }
  });
});
