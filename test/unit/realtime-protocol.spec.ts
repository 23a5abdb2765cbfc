import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  CLOSE,
  MAX_TOPICS_PER_MESSAGE,
  SUBPROTOCOL,
  parseFrame,
  tenantTopics,
  tokenOf,
} from '../../src/realtime/protocol.js';

/** The real-time wire format (contract v2 §F): frames, auth tokens and topics. */

const text = (s: string) => Buffer.from(s, 'utf8');
const json = (v: unknown) => text(JSON.stringify(v));

describe('parseFrame', () => {
  it.each([
    ['auth', { event: 'auth', data: { token: 't' } }],
    ['subscribe', { event: 'subscribe', data: { topics: [] } }],
    ['unsubscribe', { event: 'unsubscribe', data: null }],
  ])('reads a %s message ({event, data}, no id)', (_name, message) => {
    const parsed = parseFrame(json(message), false);
    expect(parsed).toEqual(message);
    expect(parsed).not.toHaveProperty('id');
  });

  it.each([
    ['a string id', 'req-1'],
    ['an empty string id', ''],
    ['a 64-character string id', 'x'.repeat(64)],
    ['id 0', 0],
    ['a negative fractional id', -1.5],
    ['a large integer id', Number.MAX_SAFE_INTEGER],
  ])('keeps %s (echoed in the answer)', (_name, id) => {
    expect(parseFrame(json({ event: 'auth', data: {}, id }), false)).toEqual({ event: 'auth', data: {}, id });
  });

  it('keeps any data, falsy ones included, and drops members it does not know', () => {
    for (const data of [null, 0, false, '', [], 'x', { nested: { deep: [1] } }]) {
      expect(parseFrame(json({ event: 'subscribe', data, extra: 'ignored' }), false)).toEqual({
        event: 'subscribe',
        data,
      });
    }
  });

  it('accepts whitespace around the JSON', () => {
    expect(parseFrame(text(' \n\t{"event":"auth","data":{}}\r\n '), false)).toEqual({ event: 'auth', data: {} });
  });

  it('refuses a binary frame even when it holds a valid message', () => {
    expect(parseFrame(json({ event: 'auth', data: { token: 't' } }), true)).toBeNull();
  });

  it.each([
    ['an empty frame', ''],
    ['truncated JSON', '{"event":"auth","data":'],
    ['a single-quoted object', "{'event':'auth','data':{}}"],
    ['a trailing comma', '{"event":"auth","data":{},}'],
    ['a byte order mark before the JSON', '\uFEFF{"event":"auth","data":{}}'],
    ['two JSON values', '{"event":"auth","data":{}}{"event":"auth","data":{}}'],
    ['JSON null', 'null'],
    ['a JSON array holding a message', '[{"event":"auth","data":{}}]'],
    ['a JSON string', '"auth"'],
    ['a JSON number', '42'],
    ['JSON true', 'true'],
    ['no event', '{"data":{}}'],
    ['no data', '{"event":"auth"}'],
    ['data only inherited through a __proto__ member', '{"event":"auth","__proto__":{"data":{}}}'],
    ['an unknown event', '{"event":"ping","data":{}}'],
    ['an event in another case', '{"event":"AUTH","data":{}}'],
    ['an event with a trailing space', '{"event":"auth ","data":{}}'],
    ['an Object.prototype name as event', '{"event":"constructor","data":{}}'],
    ['an event that is not a string', '{"event":["auth"],"data":{}}'],
    ['an event that is an object', '{"event":{"name":"auth"},"data":{}}'],
    ['an event that is null', '{"event":null,"data":{}}'],
    ['an id that is an object', '{"event":"auth","data":{},"id":{}}'],
    ['an id that is an array', '{"event":"auth","data":{},"id":["a"]}'],
    ['an id that is null', '{"event":"auth","data":{},"id":null}'],
    ['an id that is a boolean', '{"event":"auth","data":{},"id":true}'],
    ['a 65-character id', `{"event":"auth","data":{},"id":"${'x'.repeat(65)}"}`],
    ['an id that overflows to Infinity', '{"event":"auth","data":{},"id":1e999}'],
    ['an id that overflows to -Infinity', '{"event":"auth","data":{},"id":-1e999}'],
  ])('refuses %s', (_name, frame) => {
    expect(parseFrame(text(frame), false)).toBeNull();
  });

  it('refuses bytes that are not UTF-8 JSON', () => {
    expect(parseFrame(Buffer.from([0xff, 0xfe, 0x00, 0x7b]), false)).toBeNull();
  });
});

describe('tokenOf', () => {
  it('reads a non-empty string token', () => {
    expect(tokenOf({ token: 'abc.def.ghi' })).toBe('abc.def.ghi');
    expect(tokenOf({ token: ' ', other: 1 })).toBe(' ');
  });

  it.each([
    ['null data', null],
    ['no data', undefined],
    ['a string as data', 'abc.def.ghi'],
    ['a number as data', 7],
    ['an array as data', ['abc']],
    ['no token member', {}],
    ['an empty token', { token: '' }],
    ['a numeric token', { token: 123 }],
    ['a null token', { token: null }],
    ['a token in an array', { token: ['abc'] }],
    ['a token object', { token: { value: 'abc' } }],
    ['a token behind a JSON __proto__ member', JSON.parse('{"__proto__":{"token":"abc"}}') as unknown],
  ])('answers null for %s', (_name, data) => {
    expect(tokenOf(data)).toBeNull();
  });
});

describe('tenantTopics', () => {
  const topic = (id: string) => `tenant:${id}`;

  it('answers the tenant ids of tenant:<uuid> topics', () => {
    const a = randomUUID();
    const b = randomUUID();
    expect(tenantTopics({ topics: [topic(a), topic(b)] })).toEqual({ tenants: [a, b] });
  });

  it('lower-cases the ids and names each tenant once', () => {
    const a = randomUUID();
    expect(tenantTopics({ topics: [topic(a.toUpperCase()), topic(a)] })).toEqual({ tenants: [a] });
  });

  it('accepts the nil UUID and any version (the pattern is the UUID shape)', () => {
    const nil = '00000000-0000-0000-0000-000000000000';
    expect(tenantTopics({ topics: [topic(nil)] })).toEqual({ tenants: [nil] });
  });

  it(`accepts ${MAX_TOPICS_PER_MESSAGE} topics and refuses ${MAX_TOPICS_PER_MESSAGE + 1}`, () => {
    const ids = Array.from({ length: MAX_TOPICS_PER_MESSAGE + 1 }, () => randomUUID());
    const twenty = tenantTopics({ topics: ids.slice(0, MAX_TOPICS_PER_MESSAGE).map(topic) });
    expect(twenty).toEqual({ tenants: ids.slice(0, MAX_TOPICS_PER_MESSAGE) });
    const more = tenantTopics({ topics: ids.map(topic) });
    expect(more).toEqual({ error: expect.stringContaining(String(MAX_TOPICS_PER_MESSAGE)) });
  });

  it('counts repeated topics against the per-message cap', () => {
    const id = randomUUID();
    expect(
      tenantTopics({ topics: Array.from({ length: MAX_TOPICS_PER_MESSAGE + 1 }, () => topic(id)) }),
    ).toHaveProperty('error');
  });

  it.each([
    ['null data', null],
    ['no data', undefined],
    ['a string as data', 'tenant:x'],
    ['an array as data', [topic('00000000-0000-0000-0000-000000000000')]],
    ['no topics member', {}],
    ['topics that are a string', { topics: topic('00000000-0000-0000-0000-000000000000') }],
    ['topics that are an object', { topics: { 0: topic('00000000-0000-0000-0000-000000000000'), length: 1 } }],
    ['topics that are null', { topics: null }],
    ['empty topics', { topics: [] }],
  ])('refuses %s (a non-empty array is needed)', (_name, data) => {
    expect(tenantTopics(data)).toEqual({ error: expect.stringMatching(/non-empty array/) });
  });

  it.each([
    ['a tenant id that is not a UUID', 'tenant:not-a-uuid'],
    ['a user topic', 'user:x'],
    ['a bare UUID', '0f8fad5b-d9cb-469f-a165-70867728950e'],
    ['an upper-case prefix', 'Tenant:0f8fad5b-d9cb-469f-a165-70867728950e'],
    ['a space after the colon', 'tenant: 0f8fad5b-d9cb-469f-a165-70867728950e'],
    ['a trailing newline', 'tenant:0f8fad5b-d9cb-469f-a165-70867728950e\n'],
    ['a UUID in braces', 'tenant:{0f8fad5b-d9cb-469f-a165-70867728950e}'],
    ['a UUID without hyphens', 'tenant:0f8fad5bd9cb469fa16570867728950e'],
    ['a UUID with a non-hex digit', 'tenant:0f8fad5b-d9cb-469f-a165-70867728950g'],
    ['an empty topic', ''],
    ['tenant: and nothing', 'tenant:'],
    ['a number', 42],
    ['null', null],
    ['an object', { tenant: '0f8fad5b-d9cb-469f-a165-70867728950e' }],
  ])('refuses %s, even next to a valid topic', (_name, bad) => {
    const expected = { error: expect.stringMatching(/tenant:<tenant id>/) };
    expect(tenantTopics({ topics: [bad] })).toEqual(expected);
    expect(tenantTopics({ topics: [topic(randomUUID()), bad] })).toEqual(expected);
  });
});

describe('the close codes and subprotocol of contract v2 §F', () => {
  it.each([
    ['GOING_AWAY', 1001, ''],
    ['BACKPRESSURE', 1013, ''],
    ['TRY_AGAIN_LATER', 1013, 'TRY_AGAIN_LATER'],
    ['BAD_MESSAGE', 4400, 'BAD_MESSAGE'],
    ['UNAUTHORIZED', 4401, 'UNAUTHORIZED'],
    ['INVALID_TOKEN', 4401, 'INVALID_TOKEN'],
    ['TOKEN_EXPIRED', 4401, 'TOKEN_EXPIRED'],
    ['IDENTITY_CHANGED', 4403, 'IDENTITY_CHANGED'],
    ['INSUFFICIENT_SCOPE', 4403, 'INSUFFICIENT_SCOPE'],
    ['AUTH_TIMEOUT', 4408, 'AUTH_TIMEOUT'],
    ['SESSION_REVOKED', 4410, 'SESSION_REVOKED'],
    ['TOO_MANY_CONNECTIONS', 4429, 'TOO_MANY_CONNECTIONS'],
    ['TOO_MANY_MESSAGES', 4429, 'TOO_MANY_MESSAGES'],
    ['INTERNAL_ERROR', 4500, 'INTERNAL_ERROR'],
  ] as const)('%s closes with %i %j', (name, code, reason) => {
    expect(CLOSE[name]).toEqual({ code, reason });
  });

  it('speaks the gatehouse.v1 subprotocol', () => {
    expect(SUBPROTOCOL).toBe('gatehouse.v1');
  });
});
