import 'reflect-metadata';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { Controller, Get, Module } from '@nestjs/common';
import type request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Public } from '../src/access/public.decorator.js';
import { ROOMY_LIMITS } from './support/env.js';
import { signup } from './support/factories.js';
import { ALLOWED_ORIGIN, startApp, type TestApp } from './support/test-app.js';

/**
 * The contract's "General" section: JSON only, size and depth limits, the error body,
 * request ids, security headers and CORS. Runs on the real application plus one test-only
 * route that throws an unexpected error.
 */

const SECRET_MARKER = 'secret-internal-detail /srv/app/src/x.ts SELECT * FROM "User"';

@Controller('__test')
class ExplodingController {
  @Public()
  @Get('slow')
  async slow(): Promise<{ ok: true }> {
    await new Promise((resolve) => setTimeout(resolve, 300));
    return { ok: true };
  }

  @Public()
  @Get('boom')
  boom(): never {
    const error = new Error(SECRET_MARKER);
    throw error;
  }
}

@Module({ controllers: [ExplodingController] })
class ExplodingModule {}

type Harness = TestApp;

const startHarness = (): Promise<Harness> => startApp({ ...ROOMY_LIMITS }, { imports: [ExplodingModule] });

const ERROR_KEYS = ['code', 'error', 'message', 'statusCode'];

/** The contract's error body, exactly, and nothing that leaks internals. */
function expectErrorBody(res: request.Response, status: number, code?: string): void {
  expect({ status: res.status, body: res.body as unknown }).toMatchObject({ status });
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(Object.keys(res.body).sort()).toEqual(ERROR_KEYS);
  expect(res.body.statusCode).toBe(status);
  expect(typeof res.body.error).toBe('string');
  expect(res.body.error.length).toBeGreaterThan(0);
  expect(typeof res.body.code).toBe('string');
  expect(res.body.code).toMatch(/^[A-Z][A-Z_]+$/);
  const message = res.body.message as unknown;
  expect(typeof message === 'string' || (Array.isArray(message) && message.every((m) => typeof m === 'string'))).toBe(
    true,
  );
  expect(res.body.code).toBe(code ?? res.body.code);
  expectNoLeak(res.text);
}

function expectNoLeak(text: string): void {
  expect(text).not.toMatch(/\bat .+:\d+:\d+/); // stack frame
  expect(text).not.toMatch(/stack/i);
  expect(text).not.toMatch(/\/work\/|\/src\/|\/dist\/|node_modules|\.ts\b|file:\/\//);
  expect(text).not.toMatch(/\bSELECT\b|\bINSERT\b|\bprisma\b/i);
  expect(text).not.toContain('secret-internal-detail');
}

describe('HTTP basics', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => h?.close());

  describe('request bodies must be JSON', () => {
    it.each([
      ['text/plain', 'text/plain', '{"username":"a","password":"b"}'],
      ['form-urlencoded', 'application/x-www-form-urlencoded', 'username=alice&password=whatever1'],
      [
        'multipart',
        'multipart/form-data; boundary=x',
        '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--x--\r\n',
      ],
      ['XML', 'application/xml', '<login/>'],
    ])('refuses a %s body with 415 UNSUPPORTED_MEDIA_TYPE', async (_label, type, body) => {
      const res = await h.http.post('/auth/login').set('Content-Type', type).send(body);
      expectErrorBody(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    });

    it('refuses a body sent without any Content-Type with 415', async () => {
      // supertest always adds a type for a string body; build the request by hand.
      const raw = await rawRequest(
        h,
        'POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 37\r\nConnection: close\r\n\r\n{"username":"abc","password":"abcde"}',
      );
      expect(raw.status).toBe(415);
      const body = JSON.parse(raw.body) as Record<string, unknown>;
      expect(Object.keys(body).sort()).toEqual(ERROR_KEYS);
      expect(body.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    });

    it('refuses the 415 before looking at the route, also on signup', async () => {
      const res = await h.http.post('/auth/signup').set('Content-Type', 'text/plain').send('hello');
      expectErrorBody(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    });

    it('accepts application/json with a charset parameter', async () => {
      const res = await h.http
        .post('/auth/login')
        .set('Content-Type', 'application/json; charset=utf-8')
        .send(JSON.stringify({ username: 'nobody_here', password: 'wrong password' }));
      expectErrorBody(res, 401, 'INVALID_CREDENTIALS');
    });

    it('refuses a JSON body in a charset other than UTF-8 with 415', async () => {
      const res = await h.http
        .post('/auth/login')
        .set('Content-Type', 'application/json; charset=koi8-r')
        .send(JSON.stringify({ username: 'nobody_here', password: 'wrong password' }));
      expectErrorBody(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    });

    it('accepts a bodiless POST without Content-Type (logout without credentials is 204)', async () => {
      const res = await h.http.post('/auth/logout');
      expect(res.status).toBe(204);
    });
  });

  describe('size, syntax and depth', () => {
    it('refuses a flat body of 17 KiB and one of 100 KiB with 413 PAYLOAD_TOO_LARGE', async () => {
      for (const size of [17 * 1024, 100 * 1024]) {
        const res = await h.http
          .post('/auth/login')
          .set('Content-Type', 'application/json')
          .send(JSON.stringify({ username: 'x'.repeat(size), password: 'y' }));
        expectErrorBody(res, 413, 'PAYLOAD_TOO_LARGE');
      }
    });

    it('refuses a body over 16 KiB with 413 PAYLOAD_TOO_LARGE', async () => {
      const body = JSON.stringify({ username: 'someone', password: 'x'.repeat(16 * 1024) });
      expect(Buffer.byteLength(body)).toBeGreaterThan(16 * 1024);
      const res = await h.http.post('/auth/login').set('Content-Type', 'application/json').send(body);
      expectErrorBody(res, 413, 'PAYLOAD_TOO_LARGE');
    });

    it('refuses an over-16-KiB body with 413 even when Content-Length is not announced (chunked)', async () => {
      const chunk = `{"username":"someone","password":"${'x'.repeat(20 * 1024)}"}`;
      const raw = await rawRequest(
        h,
        `POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n` +
          `${Buffer.byteLength(chunk).toString(16)}\r\n${chunk}\r\n0\r\n\r\n`,
      );
      expect(raw.status).toBe(413);
      expect(JSON.parse(raw.body).code).toBe('PAYLOAD_TOO_LARGE');
    });

    it('accepts a body just under 16 KiB (the limit is not lower than promised)', async () => {
      const filler = 'x'.repeat(16 * 1024 - 200);
      const res = await h.http.post('/auth/login').send({ username: 'nobody_here', password: filler });
      // Parsed and validated (password longer than 1024 chars): a 400 from validation, not 413.
      expectErrorBody(res, 400, 'VALIDATION_FAILED');
    });

    it.each([
      ['a truncated object', '{"username":"abc",'],
      ['single quotes', "{'username':'abc'}"],
      ['a trailing comma', '{"username":"abc",}'],
      ['plain garbage', 'not json at all'],
    ])('refuses malformed JSON (%s) with 400', async (_label, body) => {
      const res = await h.http.post('/auth/login').set('Content-Type', 'application/json').send(body);
      expectErrorBody(res, 400, 'MALFORMED_JSON');
    });

    it.each([
      ['a bare string', '"just a string"'],
      ['a number', '42'],
      ['null', 'null'],
      ['an array', '[{"username":"abc","password":"abcdefgh"}]'],
    ])('refuses a JSON body that is not an object (%s) with 400', async (_label, body) => {
      const res = await h.http.post('/auth/login').set('Content-Type', 'application/json').send(body);
      expectErrorBody(res, 400);
    });

    it.each([
      ['arrays', (n: number) => '['.repeat(n) + ']'.repeat(n)],
      ['objects', (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n)],
    ])('refuses deeply nested %s that fit in 16 KiB with 400, and keeps serving', async (_label, make) => {
      // As deep as still fits under the size limit, so that it is the depth check that answers.
      let depth = 10_000;
      while (Buffer.byteLength(make(depth)) > 16 * 1024 - 16) depth -= 100;
      expect(depth).toBeGreaterThan(2000);
      const res = await h.http.post('/auth/login').set('Content-Type', 'application/json').send(make(depth));
      expectErrorBody(res, 400, 'MALFORMED_JSON');
      await h.http.get('/health').expect(200, { status: 'ok' });
    });

    it.each([
      ['arrays', '['.repeat(10_000) + ']'.repeat(10_000)],
      ['objects', '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000)],
    ])('refuses a 10,000-level nested body of %s with 400 (never 500), and keeps serving', async (_label, body) => {
      for (const path of ['/auth/login', '/auth/signup']) {
        const res = await h.http.post(path).set('Content-Type', 'application/json').send(body);
        // Over 16 KiB too, but nesting is the more precise diagnosis: it is checked first.
        expectErrorBody(res, 400, 'MALFORMED_JSON');
      }
      await h.http.get('/health').expect(200, { status: 'ok' });
    });

    it('refuses objects and arrays where strings are expected with 400 (no operator injection)', async () => {
      const res = await h.http.post('/auth/login').send({ username: { $gt: '' }, password: ['a'] });
      expectErrorBody(res, 400, 'VALIDATION_FAILED');
      expect(Array.isArray(res.body.message)).toBe(true);
    });
  });

  describe('no mass assignment', () => {
    it.each([
      ['roles', { roles: ['user', 'admin'] }],
      ['id', { id: '00000000-0000-4000-8000-000000000000' }],
      ['disabled', { disabled: false }],
      ['createdAt', { createdAt: '2020-01-01T00:00:00.000Z' }],
      ['__proto__', '{"__proto__":{"roles":["admin"]}}'],
      ['constructor', '{"constructor":{"prototype":{"roles":["admin"]}}}'],
      ['nested __proto__', '{"email":{"__proto__":{"x":1}}}'],
    ])('refuses a signup carrying an unknown property (%s) with 400 naming it', async (name, extra) => {
      const username = `mass_${Math.random().toString(36).slice(2, 10)}`;
      const fields = typeof extra === 'string' ? extra.slice(1, -1) : JSON.stringify(extra).slice(1, -1);
      const res = await h.http
        .post('/auth/signup')
        .set('Content-Type', 'application/json')
        .send(`{"username":"${username}","password":"good password",${fields}}`);
      expectErrorBody(res, 400, 'VALIDATION_FAILED');
      expect(JSON.stringify(res.body.message)).toContain(name.replace('nested ', ''));
      // And nothing was created: the same username can still sign up cleanly.
      await h.http.post('/auth/signup').send({ username, password: 'good password' }).expect(201);
    });

    it('names a value of the wrong type once, not with every check of its text', async () => {
      const login = await h.http.post('/auth/login').send({ username: 5, password: 'x' });
      expectErrorBody(login, 400, 'VALIDATION_FAILED');
      expect(login.body.message).toEqual(['username must be a string']);
      for (const email of [null, 5, ['ada@example.com'], 'not an address']) {
        const res = await h.http.post('/auth/email/verify-request').send({ email });
        expectErrorBody(res, 400, 'VALIDATION_FAILED');
        expect({ email, message: res.body.message }).toEqual({
          email,
          message: ['email must be a valid email address'],
        });
      }
      // An address over 254 characters is no address (RFC 5321 §4.5.3.1.3): said once.
      const long = await h.http
        .post('/auth/email/verify-request')
        .send({ email: `${'a'.repeat(64)}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.example` });
      expectErrorBody(long, 400, 'VALIDATION_FAILED');
      expect(long.body.message).toEqual(['email must be a valid email address']);
      // A list that is not one is said to be no list; a list's items keep each of their problems.
      const owner = await signup(h);
      const tenant = await h.http
        .post('/tenants')
        .set(owner.auth)
        .send({ name: 'Wrong types', slug: `wt-${Math.random().toString(36).slice(2, 10)}` })
        .expect(201);
      const members = `/tenants/${tenant.body.id}/members`;
      for (const roles of [5, null, {}, 'member']) {
        const res = await h.http.post(members).set(owner.auth).send({ username: 'someone', roles });
        expectErrorBody(res, 400, 'VALIDATION_FAILED');
        expect({ roles, message: res.body.message }).toEqual({ roles, message: ['roles must be an array'] });
      }
      const items = await h.http
        .post(members)
        .set(owner.auth)
        .send({ username: 'someone', roles: [5, 'Not A Role'] });
      expectErrorBody(items, 400, 'VALIDATION_FAILED');
      expect(items.body.message).toHaveLength(2);
      expect(items.body.message).toEqual(
        expect.arrayContaining(['roles: each role must be a role name', 'roles: each value in roles must be a string']),
      );
      // A length that is the only problem is still said.
      const short = await h.http.post('/auth/signup').send({ username: 'ab', password: 'good password' });
      expectErrorBody(short, 400, 'VALIDATION_FAILED');
      expect(short.body.message).toEqual([
        expect.stringMatching(/^username must be longer than or equal to 3 characters/),
      ]);
    });

    it('refuses names every object inherits (toString, hasOwnProperty, …) as unknown properties, in bodies and queries', async () => {
      const u = await signup(h);
      for (const name of ['toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', '__lookupGetter__']) {
        const login = await h.http.post('/auth/login').send({ username: u.username, password: u.password, [name]: 1 });
        expectErrorBody(login, 400, 'VALIDATION_FAILED');
        expect(login.body.message).toEqual([`${name}: property ${name} should not exist`]);
        const patch = await h.http
          .patch('/users/me')
          .set(u.auth)
          .send({ displayName: 'Ada', [name]: [] });
        expectErrorBody(patch, 400, 'VALIDATION_FAILED');
        const list = await h.http.get(`/resources?${name}=1`).set(u.auth);
        expectErrorBody(list, 400, 'VALIDATION_FAILED');
        expect(list.body.message).toEqual([`${name}: property ${name} should not exist`]);
      }
      for (const name of ['__proto__', 'constructor', 'prototype']) {
        expectErrorBody(await h.http.get(`/resources?${name}=1`).set(u.auth), 400, 'VALIDATION_FAILED');
        // In a body they are refused as it is parsed, in the same words.
        const body = await h.http
          .post('/auth/login')
          .set('Content-Type', 'application/json')
          .send(`{"username":"x_y_z","password":"good password","${name}":{}}`);
        expectErrorBody(body, 400, 'VALIDATION_FAILED');
        expect(body.body.message).toEqual([`${name}: property ${name} should not exist`]);
      }
      // Still a plain unknown property, and the display name was never changed.
      expectErrorBody(await h.http.get('/resources?foo=1').set(u.auth), 400, 'VALIDATION_FAILED');
      expect((await h.http.get('/users/me').set(u.auth).expect(200)).body.displayName).toBeNull();
    });

    it('refuses a login carrying an unknown property with 400', async () => {
      const res = await h.http.post('/auth/login').send({ username: 'abc', password: 'abcdefgh', remember: true });
      expectErrorBody(res, 400, 'VALIDATION_FAILED');
    });

    it('reports validation errors as an array of messages', async () => {
      const res = await h.http.post('/auth/signup').send({ username: 'x', password: 'short' });
      expectErrorBody(res, 400, 'VALIDATION_FAILED');
      expect(Array.isArray(res.body.message)).toBe(true);
      expect(res.body.message.length).toBeGreaterThanOrEqual(2);
    });
  });

  describe('error bodies', () => {
    it('answers an unknown route with a JSON 404 NOT_FOUND', async () => {
      for (const req of [h.http.get('/no/such/route'), h.http.post('/no/such/route'), h.http.delete('/auth')]) {
        const res = await req;
        expectErrorBody(res, 404, 'NOT_FOUND');
        expect(res.headers['x-request-id']).toBeTruthy();
      }
    });

    it('answers a path whose percent-encoding is malformed with 400 VALIDATION_FAILED, its message a list', async () => {
      const u = await signup(h);
      for (const path of ['/users/%ZZ', '/resources/%E0%A4%A', '/tenants/%ZZ/members', '/no/such/route/%ZZ']) {
        const res = await h.http.get(path).set(u.auth);
        expectErrorBody(res, 400, 'VALIDATION_FAILED');
        expect(res.body.message).toEqual([expect.stringMatching(/^Failed to decode param/)]);
      }
    });

    it("answers what Node's HTTP parser refuses in the same shape, and closes the connection", async () => {
      const head = (lines: string) => `${lines}\r\nConnection: close\r\n\r\n`;
      const refused: Array<[string, number, string]> = [
        [head(`GET /health HTTP/1.1\r\nHost: x\r\nX-Filler: ${'a'.repeat(20_000)}`), 431, 'HEADERS_TOO_LARGE'],
        [
          head('POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked') + '{}',
          400,
          'MALFORMED_REQUEST',
        ],
        [head('GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2'), 400, 'MALFORMED_REQUEST'],
        [head('GET /health HTTP/1.1\r\nHost: x\r\nBad Header: 1'), 400, 'MALFORMED_REQUEST'],
        [head('GET health HTTP/1.1\r\nHost: x'), 400, 'MALFORMED_REQUEST'],
      ];
      for (const [payload, status, code] of refused) {
        const raw = await rawRequest(h, payload);
        expect({ status: raw.status, type: raw.headers['content-type'], connection: raw.headers.connection }).toEqual({
          status,
          type: 'application/json; charset=utf-8',
          connection: 'close',
        });
        const body = JSON.parse(raw.body) as Record<string, unknown>;
        expect(Object.keys(body).sort()).toEqual(ERROR_KEYS);
        expect(body).toMatchObject({ statusCode: status, code });
        expect(Buffer.byteLength(raw.body)).toBe(Number(raw.headers['content-length']));
      }
    });

    it("answers a HEAD request the parser refuses with the same head and no body, which Node's client reads", async () => {
      const filler = 'a'.repeat(20_000);
      for (const [payload, status] of [
        [`HEAD /health HTTP/1.1\r\nHost: x\r\nX-Filler: ${filler}\r\n\r\n`, 431],
        ['HEAD /health HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n', 400],
      ] as const) {
        const raw = await rawRequest(h, payload);
        expect({ status: raw.status, type: raw.headers['content-type'], body: raw.body }).toEqual({
          status,
          type: 'application/json; charset=utf-8',
          body: '',
        });
      }
      // What a client sees: the status, not a transport error about bytes after the answer,
      // whether the request reaches the server in one read or in two.
      for (const split of [false, true]) expect(await nodeHeadStatus(h, filler, split)).toBe(431);
    });

    it('answers without any body when it cannot tell that the request is not HEAD (its start in an earlier read)', async () => {
      const filler = 'a'.repeat(20_000);
      for (const [pieces, status] of [
        [['HEAD /health HTTP/1.1\r\nHost: x\r\n', `X-Filler: ${filler}\r\n\r\n`], 431],
        [['GET /health HTTP/1.1\r\nHost: x\r\n', `X-Filler: ${filler}\r\n\r\n`], 431],
        [['HEAD /health HTTP/1.1\r\nHost: x\r\n', 'Bad Header: 1\r\n\r\n'], 400],
      ] as const) {
        const raw = await rawRequest(h, [...pieces]);
        expect({ status: raw.status, length: raw.headers['content-length'], body: raw.body }).toEqual({
          status,
          length: '0',
          body: '',
        });
      }
      // A later read that looks like a request line is not taken for one: here the rest of a
      // HEAD's header value, then of a GET's.
      const pad = `X-Pad: ${filler}\r\n\r\n`;
      for (const [first, second] of [
        ['HEAD /health HTTP/1.1\r\nHost: x\r\nX-Original: ', `GET /a HTTP/1.1\r\n${pad}`],
        ['GET /health HTTP/1.1\r\nHost: x\r\nX-Original: ', `HEAD /a HTTP/1.1\r\n${pad}`],
      ]) {
        const raw = await rawRequest(h, [first!, second!]);
        expect({ status: raw.status, length: raw.headers['content-length'], body: raw.body }).toEqual({
          status: 431,
          length: '0',
          body: '',
        });
      }
      // Nor the unread body of a request answered before, on a kept-alive connection (415: not JSON).
      const leftover = await rawRequest(
        h,
        [
          'POST /health HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 17\r\n\r\n',
          'GET / HTTP/1.1\r\nXHEAD /health HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n',
        ],
        300,
      );
      expect(leftover.status).toBe(415);
      expect(leftover.text.endsWith('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')).toBe(
        true,
      );
      // Empty lines before a request line are skipped (RFC 9112 §2.2): a HEAD is still seen.
      const blank = await rawRequest(h, `\r\nHEAD /health HTTP/1.1\r\nHost: x\r\nX-Filler: ${filler}\r\n\r\n`);
      expect({ status: blank.status, type: blank.headers['content-type'], body: blank.body }).toEqual({
        status: 431,
        type: 'application/json; charset=utf-8',
        body: '',
      });
    });

    it('shapes the answer for the request still being answered, which the client pairs it with', async () => {
      const bad = 'Host: x\r\nBad Header: 1\r\n\r\n';
      // A slow GET in flight, then a malformed HEAD: the client reads the 400 as the GET's answer.
      const afterGet = await rawRequest(h, [
        'GET /__test/slow HTTP/1.1\r\nHost: x\r\n\r\n',
        `HEAD /health HTTP/1.1\r\n${bad}`,
      ]);
      expect(afterGet.status).toBe(400);
      expect(JSON.parse(afterGet.body)).toMatchObject({ statusCode: 400, code: 'MALFORMED_REQUEST' });
      // A slow HEAD in flight, then a malformed GET: no body, the client reads it as the HEAD's.
      const afterHead = await rawRequest(h, [
        'HEAD /__test/slow HTTP/1.1\r\nHost: x\r\n\r\n',
        `GET /health HTTP/1.1\r\n${bad}`,
      ]);
      expect({ status: afterHead.status, type: afterHead.headers['content-type'], body: afterHead.body }).toEqual({
        status: 400,
        type: 'application/json; charset=utf-8',
        body: '',
      });
    });

    it('answers an unexpected error with a generic 500 INTERNAL_ERROR carrying the request id and no internals', async () => {
      const res = await h.http.get('/__test/boom').set('X-Request-Id', 'boom-request-1');
      expectErrorBody(res, 500, 'INTERNAL_ERROR');
      expect(res.body.error).toBe('Internal Server Error');
      expect(res.headers['x-request-id']).toBe('boom-request-1');
      expect(res.body.message).toContain('boom-request-1');
    });

    it('puts the generated request id in a 500 message when the client sent none', async () => {
      const res = await h.http.get('/__test/boom');
      expectErrorBody(res, 500, 'INTERNAL_ERROR');
      const id = res.headers['x-request-id'] as string;
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(res.body.message).toContain(id);
      // The server is fine afterwards.
      await h.http.get('/health').expect(200);
    });

    it('keeps the contract shape for 401 from a protected route (with WWW-Authenticate)', async () => {
      const res = await h.http.get('/users/me');
      expectErrorBody(res, 401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    });
  });

  describe('X-Request-Id', () => {
    it('is generated (a UUID) on every response when the client sends none, fresh for each request', async () => {
      const responses = await Promise.all([
        h.http.get('/health'),
        h.http.get('/nowhere'),
        h.http.post('/auth/login').set('Content-Type', 'text/plain').send('x'),
        h.http.post('/auth/login').send({ username: 'abc', password: 'wrong password' }),
        h.http.get('/docs-json'),
        h.http.options('/auth/login').set('Origin', ALLOWED_ORIGIN).set('Access-Control-Request-Method', 'POST'),
      ]);
      const ids = responses.map((r) => r.headers['x-request-id'] as string);
      for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(new Set(ids).size).toBe(ids.length);
    });

    it.each([
      ['a UUID', '7d0c1e0e-4b8e-4c57-9d0c-4b0e5c1e0e7d'],
      ['a short token', 'abc123'],
      ['dots, colons and dashes', 'trace:span.1-2_3'],
      ['128 characters', 'a'.repeat(128)],
    ])('echoes a well-formed incoming id (%s)', async (_label, id) => {
      const res = await h.http.get('/health').set('X-Request-Id', id);
      expect(res.headers['x-request-id']).toBe(id);
    });

    it('echoes a well-formed id also on error responses', async () => {
      const res = await h.http
        .post('/auth/login')
        .set('X-Request-Id', 'err-id-42')
        .set('Content-Type', 'text/plain')
        .send('x');
      expect(res.status).toBe(415);
      expect(res.headers['x-request-id']).toBe('err-id-42');
    });

    it.each([
      ['300 characters', 'a'.repeat(300)],
      ['129 characters', 'a'.repeat(129)],
      ['spaces', 'has some spaces'],
      ['a tab', 'tab\there'],
      ['markup', '<script>alert(1)</script>'],
      ['quotes and semicolons', 'a";b'],
      ['percent-encoded newline', 'a%0d%0aSet-Cookie:x=1'],
      ['an empty value', ''],
    ])('replaces a malformed incoming id (%s) with a generated one', async (_label, id) => {
      const res = await h.http.get('/health').set('X-Request-Id', id);
      const got = res.headers['x-request-id'] as string;
      expect(got).not.toBe(id);
      expect(got).toMatch(/^[0-9a-f-]{36}$/);
    });

    it('replaces an id carrying raw non-ASCII bytes', async () => {
      const raw = await rawRequest(
        h,
        Buffer.concat([
          Buffer.from('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-Id: caf'),
          Buffer.from([0xc3, 0xa9]),
          Buffer.from('-id\r\n\r\n'),
        ]),
      );
      expect(raw.status).toBe(200);
      expect(raw.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    });
  });

  describe('security headers', () => {
    it.each([['/health'], ['/nowhere'], ['/auth/login']])(
      'are set by helmet on %s, without X-Powered-By',
      async (path) => {
        const res = path === '/auth/login' ? await h.http.post(path).send({}) : await h.http.get(path);
        expect(res.headers['x-content-type-options']).toBe('nosniff');
        expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
        expect(res.headers['strict-transport-security']).toMatch(/max-age=\d+/);
        expect(res.headers['content-security-policy']).toContain("default-src 'self'");
        expect(res.headers['referrer-policy']).toBe('no-referrer');
        expect(res.headers['cross-origin-opener-policy']).toBe('same-origin');
        expect(res.headers['x-dns-prefetch-control']).toBe('off');
        expect(res.headers['x-permitted-cross-domain-policies']).toBe('none');
        expect(res.headers['x-xss-protection']).toBe('0');
        expect(res.headers['x-powered-by']).toBeUndefined();
      },
    );

    it('sends no ETag (responses carry tokens and user data)', async () => {
      const res = await h.http.get('/health');
      expect(res.headers.etag).toBeUndefined();
    });
  });

  describe('CORS', () => {
    it('answers a preflight from an allowed origin with that origin and credentials', async () => {
      const res = await h.http
        .options('/auth/login')
        .set('Origin', ALLOWED_ORIGIN)
        .set('Access-Control-Request-Method', 'POST')
        .set('Access-Control-Request-Headers', 'content-type,authorization');
      expect(res.status).toBe(204);
      expect(res.headers['access-control-allow-origin']).toBe(ALLOWED_ORIGIN);
      expect(res.headers['access-control-allow-credentials']).toBe('true');
      expect(res.headers['access-control-allow-methods']).toMatch(/POST/);
      expect(res.headers['access-control-allow-headers']?.toLowerCase()).toContain('authorization');
      expect(res.headers.vary).toMatch(/Origin/i);
    });

    it('lets an allowed origin read the response of a real request, with credentials and exposed headers', async () => {
      const u = await signup(h as unknown as TestApp);
      const res = await h.http
        .post('/auth/login')
        .set('Origin', ALLOWED_ORIGIN)
        .send({ username: u.username, password: u.password });
      expect(res.status).toBe(200);
      expect(res.headers['access-control-allow-origin']).toBe(ALLOWED_ORIGIN);
      expect(res.headers['access-control-allow-credentials']).toBe('true');
      expect(res.headers['access-control-expose-headers']?.toLowerCase()).toContain('x-request-id');
      expect(res.headers.vary).toMatch(/Origin/i);
    });

    it('gives an allowed origin CORS headers on error responses too', async () => {
      const res = await h.http
        .post('/auth/login')
        .set('Origin', ALLOWED_ORIGIN)
        .send({ username: 'nobody_x', password: 'wrong password' });
      expect(res.status).toBe(401);
      expect(res.headers['access-control-allow-origin']).toBe(ALLOWED_ORIGIN);
    });

    it.each([
      ['a foreign origin', 'http://evil.example.test'],
      ['a look-alike suffix', `${ALLOWED_ORIGIN}.evil.test`],
      ['another scheme', ALLOWED_ORIGIN.replace('http:', 'https:')],
      ['another port', `${ALLOWED_ORIGIN}:8080`],
      ['null', 'null'],
    ])('gives %s no Access-Control-Allow-Origin, on preflight or request', async (_label, origin) => {
      const pre = await h.http
        .options('/auth/login')
        .set('Origin', origin)
        .set('Access-Control-Request-Method', 'POST');
      expect(pre.headers['access-control-allow-origin']).toBeUndefined();
      expect(pre.headers['access-control-allow-credentials']).toBeUndefined();
      const res = await h.http
        .post('/auth/login')
        .set('Origin', origin)
        .send({ username: 'nobody_x', password: 'wrong password' });
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
      expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    });

    it('never answers with a wildcard origin', async () => {
      const res = await h.http.get('/health').set('Origin', ALLOWED_ORIGIN);
      expect(res.headers['access-control-allow-origin']).toBe(ALLOWED_ORIGIN);
      const none = await h.http.get('/health');
      expect(none.headers['access-control-allow-origin']).toBeUndefined();
    });
  });

  describe('API documentation', () => {
    it('serves the OpenAPI UI at /docs as HTML whose scripts load', async () => {
      const res = await h.http.get('/docs');
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.text).toMatch(/swagger-ui/i);
      const scripts = [...res.text.matchAll(/<(?:script[^>]+src|link[^>]+href)="([^"]+)"/g)].map((m) => m[1]!);
      expect(scripts.length).toBeGreaterThan(0);
      for (const src of scripts) {
        const path = new URL(src, 'http://gatehouse.test/docs').pathname;
        const asset = await h.http.get(path);
        expect({ path, status: asset.status }).toEqual({ path, status: 200 });
      }
    });

    it('serves the OpenAPI 3 document at /docs-json listing the contract routes', async () => {
      const res = await h.http.get('/docs-json');
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body.openapi).toMatch(/^3\.\d+\.\d+$/);
      const paths = Object.keys(res.body.paths as Record<string, unknown>);
      for (const p of [
        '/auth/signup',
        '/auth/login',
        '/auth/refresh',
        '/auth/logout',
        '/health',
        '/users/me',
        '/resources',
      ]) {
        expect(paths).toContain(p);
      }
    });
  });
});

/** The port of the harness's server, listening on loopback from the first call. */
async function listeningPort(h: Harness): Promise<number> {
  const server = h.app.getHttpServer();
  if (!server.listening) await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

/** The status Node's own client sees for a HEAD with oversized headers (or its transport error's code). */
async function nodeHeadStatus(h: Harness, filler: string, split: boolean): Promise<number | string> {
  const port = await listeningPort(h);
  return new Promise<number | string>((resolve) => {
    const req = httpRequest({
      port,
      host: '127.0.0.1',
      method: 'HEAD',
      path: '/health',
      headers: { 'x-filler': filler },
    });
    req.on('socket', (socket) => {
      if (!split) return;
      // The request in two reads, as over a real link: its first 1,400 bytes, the rest later.
      socket.setNoDelay(true);
      const write = socket.write.bind(socket) as (chunk: unknown, ...rest: unknown[]) => boolean;
      let first = true;
      socket.write = ((chunk: unknown, ...rest: unknown[]) => {
        if (!first || !(typeof chunk === 'string' || Buffer.isBuffer(chunk))) return write(chunk, ...rest);
        first = false;
        const bytes = Buffer.from(chunk);
        write(bytes.subarray(0, 1_400));
        setTimeout(() => write(bytes.subarray(1_400), ...rest), 50);
        return true;
      }) as typeof socket.write;
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    req.end();
  });
}

/** A hand-written HTTP/1.1 request over a socket, for what supertest cannot send. */
async function rawRequest(
  h: Harness,
  payload: string | Buffer | string[],
  gapMs = 50,
): Promise<{ status: number; headers: Record<string, string>; body: string; text: string }> {
  const port = await listeningPort(h);
  // Pieces of a list are written gapMs apart: they reach the server in separate reads.
  const pieces = Array.isArray(payload) ? payload : [payload];
  const data = await new Promise<Buffer>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('raw request timed out')));
    pieces.forEach((piece, i) =>
      setTimeout(() => {
        if (!socket.destroyed) socket.write(piece);
      }, i * gapMs),
    );
  });
  const text = data.toString('utf8');
  const [head = '', ...rest] = text.split('\r\n\r\n');
  const [statusLine = '', ...headerLines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = rest.join('\r\n\r\n');
  if (headers['transfer-encoding'] === 'chunked') body = dechunk(body);
  return { status: Number(statusLine.split(' ')[1]), headers, body, text };
}

function dechunk(body: string): string {
  let out = '';
  let rest = body;
  for (;;) {
    const nl = rest.indexOf('\r\n');
    const size = parseInt(rest.slice(0, nl), 16);
    if (!size) return out;
    out += rest.slice(nl + 2, nl + 2 + size);
    rest = rest.slice(nl + 2 + size + 2);
  }
}
