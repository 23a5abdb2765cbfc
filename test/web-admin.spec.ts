/// <reference lib="dom" />
// The browser client's type declarations use the DOM's; the test itself runs in Node.
//
// The pure helpers of the admin console (web/src/admin/format.ts) and of the "Account activity"
// card (eventText in web/src/views/activity-view.ts), and what the client's admin calls send:
// their paths and query strings, and the roles it reads from the held token.
import { afterEach, describe, expect, it } from 'vitest';
import {
  eventJson,
  isUuid,
  isoToLocalInput,
  localInputToIso,
  secretState,
  shortAgent,
  splitTypes,
} from '../web/src/admin/format.js';
import { GatehouseClient } from '../web/src/gatehouse-client.js';
import { eventText } from '../web/src/views/activity-view.js';

function jwt(claims: object): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'ES256', typ: 'at+jwt' })}.${part(claims)}.signature`;
}

const clients: GatehouseClient[] = [];
let channels = 0;

/** A client whose refresh answers a token with `roles`, recording every other call as "METHOD /path?query". */
function clientWith(roles: unknown): { client: GatehouseClient; calls: string[] } {
  const calls: string[] = [];
  const token = jwt({ sub: 'u-1', sid: 's-1', roles });
  const fetch: typeof globalThis.fetch = async (input, init = {}) => {
    const url = new URL(
      typeof input === 'string' ? input : input instanceof URL ? input.href : input.url,
      'http://gatehouse.test',
    );
    const method = init.method ?? 'GET';
    await Promise.resolve();
    if (url.pathname === '/auth/refresh') {
      return new Response(JSON.stringify({ accessToken: token, tokenType: 'Bearer', expiresIn: 900 }), {
        status: 200,
        headers: { 'Content-Type': 'application/json' },
      });
    }
    calls.push(`${method} ${url.pathname}${url.search}${typeof init.body === 'string' ? ` ${init.body}` : ''}`);
    return method === 'DELETE'
      ? new Response(null, { status: 204 })
      : new Response(JSON.stringify({ items: [], nextCursor: null }), {
          status: 200,
          headers: { 'Content-Type': 'application/json' },
        });
  };
  const client = new GatehouseClient({ fetch, channelName: `gatehouse-admin-test-${process.pid}-${++channels}` });
  clients.push(client);
  return { client, calls };
}

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

describe('event types in words', () => {
  it('says what happened, in plain words', () => {
    expect(eventText('login.succeeded')).toBe('Signed in');
    expect(eventText('login.failed')).toBe('Failed sign-in attempt');
    expect(eventText('password.changed')).toBe('Password changed');
    expect(eventText('mfa.reset_by_admin')).toBe('Two-step sign-in reset by an administrator');
    expect(eventText('logout_all')).toBe('Signed out everywhere');
  });

  it('turns a type it does not know into words rather than showing nothing', () => {
    expect(eventText('widget.frobnicated_twice')).toBe('Widget frobnicated twice');
    expect(eventText('')).toBe('');
  });
});

describe('admin console helpers', () => {
  it('splits a comma-separated list of event types, dropping blanks', () => {
    expect(splitTypes(' login.* , account.disabled ,,')).toEqual(['login.*', 'account.disabled']);
    expect(splitTypes('')).toEqual([]);
  });

  it('tells account ids (UUIDs) from anything else', () => {
    expect(isUuid('5f0c6e1a-2b3c-4d5e-8f90-123456789abc')).toBe(true);
    expect(isUuid('5F0C6E1A-2B3C-4D5E-8F90-123456789ABC')).toBe(true);
    expect(isUuid('ada')).toBe(false);
    expect(isUuid('5f0c6e1a-2b3c-4d5e-8f90-123456789abc ')).toBe(false);
  });

  it('reads a datetime-local value as an instant of this computer, and back', () => {
    const iso = localInputToIso('2026-12-01T14:30');
    expect(iso).toBe(new Date(2026, 11, 1, 14, 30).toISOString());
    expect(isoToLocalInput(iso)).toBe('2026-12-01T14:30');
    expect(localInputToIso('  ')).toBeNull();
    expect(localInputToIso('not a date')).toBeUndefined();
    expect(isoToLocalInput(null)).toBe('');
    expect(isoToLocalInput('garbage')).toBe('');
  });

  it("tells a secret's state from its dates", () => {
    const now = Date.parse('2026-12-01T12:00:00Z');
    expect(secretState({ revokedAt: null, expiresAt: null }, now)).toBe('live');
    expect(secretState({ revokedAt: null, expiresAt: '2026-12-01T12:00:01Z' }, now)).toBe('live');
    expect(secretState({ revokedAt: null, expiresAt: '2026-12-01T12:00:00Z' }, now)).toBe('expired');
    expect(secretState({ revokedAt: '2026-11-30T00:00:00Z', expiresAt: null }, now)).toBe('revoked');
  });

  it('shortens user agents and writes events as indented JSON text', () => {
    expect(shortAgent(null)).toBe('—');
    expect(shortAgent('curl/8.5.0')).toBe('curl/8.5.0');
    const long = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36';
    expect(shortAgent(long, 20)).toBe(`${long.slice(0, 19)}…`);
    expect(eventJson({ a: '<b>', n: null })).toBe('{\n  "a": "<b>",\n  "n": null\n}');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(eventJson(cyclic)).toBe('[object Object]');
  });
});

describe('the client for the admin console', () => {
  it('reads the roles of the held token (known roles only), and none when signed out', async () => {
    const { client } = clientWith(['user', 'admin', 'root']);
    expect(client.roles).toEqual([]);
    expect(await client.start()).toBe(true);
    expect(client.roles).toEqual(['user', 'admin']);
    const { client: odd } = clientWith('admin');
    await odd.start();
    expect(odd.roles).toEqual([]);
    const { client: plain } = clientWith(['user']);
    await plain.start();
    expect(plain.roles).toEqual(['user']);
  });

  it('sends the admin calls to their paths, with their filters in the query string', async () => {
    const { client, calls } = clientWith(['user', 'admin']);
    await client.start();
    await client.adminListUsers({ q: 'ada lovelace', cursor: 'c1' });
    await client.adminListUsers();
    await client.auditEvents({
      userId: 'u-2',
      type: ['login.*', 'mfa.reset_by_admin'],
      from: '2026-12-01T00:00:00.000Z',
      cursor: 'c2',
    });
    await client.adminUserSessions('u/2');
    await client.adminEndUserSession('u-2', 's-9');
    await client.adminEndUserSessions('u-2');
    await client.adminUpdateUser('u-2', { roles: ['user', 'admin'] });
    await client.listAllTenants();
    await client.activity('c3', 10);
    await client.setClientSecretExpiry('k-1', 's-1', null);
    expect(calls).toEqual([
      'GET /users?limit=20&cursor=c1&q=ada+lovelace',
      'GET /users?limit=20',
      'GET /audit-events?limit=50&cursor=c2&userId=u-2&type=login.*%2Cmfa.reset_by_admin&from=2026-12-01T00%3A00%3A00.000Z',
      'GET /users/u%2F2/sessions',
      'DELETE /users/u-2/sessions/s-9',
      'DELETE /users/u-2/sessions',
      'PATCH /users/u-2 {"roles":["user","admin"]}',
      'GET /tenants?all=true&limit=50',
      'GET /users/me/activity?limit=10&cursor=c3',
      'PATCH /oauth/clients/k-1/secrets/s-1 {"expiresAt":null}',
    ]);
  });
});
