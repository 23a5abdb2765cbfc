import { createPublicKey, randomUUID, type JsonWebKey } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { FORM, GRANT, basic, form, type Created } from '../clients/oauth-helpers.js';
import { enrol, passwordStep } from '../mfa/mfa-helpers.js';
import { ROOMY_LIMITS } from '../support/env.js';
import { decodeJwt, login, refresh, signup } from '../support/factories.js';
import { es256KeyPair, signEs256, signHs256, unsignedJwt } from '../support/jwt.js';
import { ALLOWED_ORIGIN, startApp, type TestApp } from '../support/test-app.js';
import { WsClient, listen, type Frame } from './ws-helpers.js';

/**
 * WebSocket authentication (contract v2 §F tests 1–4, and 7's Origin and scope cases): the
 * `auth` message and its answer, the auth timeout, refused tokens, expiry and re-auth,
 * client-credentials tokens, the subprotocol and the Origin check at the upgrade. One app;
 * the FakeClock drives every timer.
 */

const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
const KEYS = es256KeyPair();
const ENV = {
  ...ROOMY_LIMITS,
  ...ADMIN,
  LOGIN_RATE_LIMIT: '1000',
  JWT_KEYS: KEYS.pem,
  // This file refuses a dozen tokens on purpose: the per-address limit is tested elsewhere.
  WS_AUTH_FAILURE_LIMIT: '1000',
};

const INVALID_TOKEN = { code: 4401, reason: 'INVALID_TOKEN' };
const TOKEN_EXPIRED = { code: 4401, reason: 'TOKEN_EXPIRED' };

const expOf = (token: string) => decodeJwt(token).payload.exp as number;
const isoOf = (epochSeconds: number) => new Date(epochSeconds * 1000).toISOString();

/** What an upgrade refused before the 101 answered. */
interface Refusal {
  status: number;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
  /** Whether the client saw a 101 (`upgrade`) or an open socket: never, for a refusal. */
  upgraded: boolean;
}

/** Opens a WebSocket that the server must refuse with an HTTP answer (`unexpected-response`). */
function refusedUpgrade(url: string, protocols: string[], options: WebSocket.ClientOptions = {}): Promise<Refusal> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, options);
    let upgraded = false;
    ws.on('upgrade', () => {
      upgraded = true;
    });
    ws.on('open', () => {
      ws.terminate();
      reject(new Error('the upgrade was accepted'));
    });
    ws.on('error', (error) => {
      if (!upgraded) reject(error);
    });
    ws.on('unexpected-response', (req, res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        req.destroy();
        try {
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: JSON.parse(text) as Record<string, unknown>,
            upgraded,
          });
        } catch (error) {
          reject(new Error(`HTTP ${res.statusCode} with a body that is not JSON: ${text} (${String(error)})`));
        }
      });
    });
  });
}

describe('WebSocket authentication', () => {
  let t: TestApp;
  let url: string;
  const clients: WsClient[] = [];

  beforeAll(async () => {
    t = await startApp(ENV);
    url = await listen(t);
  });
  afterAll(async () => t?.close());
  afterEach(() => {
    t.clock.unfreeze();
    for (const c of clients.splice(0)) if (!c.closed) c.ws.terminate();
  });

  /** A socket of this test (terminated after it). */
  async function connect(options: WebSocket.ClientOptions & { protocols?: string[] } = {}, suffix = '') {
    const c = await WsClient.open(url + suffix, options);
    clients.push(c);
    return c;
  }
  /** An authenticated socket. */
  async function authed(token: string): Promise<WsClient> {
    const c = await connect();
    await c.authenticate(token);
    return c;
  }

  /** A round trip: the socket is open and has every frame sent to it before (WsClient.probe). */
  const probe = (c: WsClient): Promise<void> => c.probe();

  /** Sends `auth` with this `data` and answers how the socket was closed. */
  async function authClose(data: unknown): Promise<{ code: number; reason: string }> {
    const c = await connect();
    c.send({ event: 'auth', data });
    const closed = await c.closing();
    expect(c.all('auth.ok')).toEqual([]);
    return closed;
  }

  const adminAuth = async () => (await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD)).auth;

  describe('auth and personal events (test 1)', () => {
    it('answers auth.ok with userId, sessionId, expiresAt and scopes, echoing the id', async () => {
      const u = await signup(t);
      const { payload } = decodeJwt(u.accessToken);
      const c = await connect();
      c.auth(u.accessToken, 'first-auth');
      const ok = await c.next('auth.ok');
      expect(ok.id).toBe('first-auth');
      expect(Object.keys(ok.data).sort()).toEqual(['expiresAt', 'scopes', 'sessionId', 'userId']);
      expect(ok.data).toEqual({
        userId: u.id,
        sessionId: payload.sid,
        expiresAt: isoOf(payload.exp as number),
        scopes: (payload.scope as string).split(' '),
      });
      expect(ok.data.scopes).toContain('events:read');
      // A numeric id is echoed as a number.
      const again = await login(t, u.username, u.password);
      c.send({ event: 'auth', data: { token: again.accessToken }, id: 7 });
      const second = await c.next('auth.ok');
      expect(second.id).toBe(7);
      expect(second.data.sessionId).toBe(decodeJwt(again.accessToken).payload.sid);
      // Without an id, none comes back.
      const d = await connect();
      d.auth(u.accessToken);
      expect(Object.hasOwn(await d.next('auth.ok'), 'id')).toBe(false);
    });

    it("sends resource.created/updated/deleted to the owner's sockets and never to another user's", async () => {
      const a = await signup(t);
      const b = await signup(t);
      const wa = await authed(a.accessToken);
      const wa2 = await authed(a.accessToken);
      const wb = await authed(b.accessToken);

      const created = await t.http
        .post('/resources')
        .set(a.auth)
        .send({ title: 'shared notes', body: 'x', visibility: 'public' })
        .expect(201);
      for (const w of [wa, wa2]) expect((await w.next('resource.created')).data).toEqual(created.body);

      const updated = await t.http
        .patch(`/resources/${created.body.id}`)
        .set(a.auth)
        .send({ title: 'renamed' })
        .expect(200);
      for (const w of [wa, wa2]) expect((await w.next('resource.updated')).data).toEqual(updated.body);

      await t.http.delete(`/resources/${created.body.id}`).set(a.auth).expect(204);
      for (const w of [wa, wa2]) expect((await w.next('resource.deleted')).data).toEqual({ id: created.body.id });

      // Every frame meant for B would have been sent when A's were: B's round trip comes after them.
      await probe(wb);
      expect(wb.frames.filter((f) => f.event.startsWith('resource.'))).toEqual([]);

      // B's own resource reaches B, and not A.
      const mine = await t.http.post('/resources').set(b.auth).send({ title: 'b only' }).expect(201);
      expect((await wb.next('resource.created')).data).toEqual(mine.body);
      await probe(wa);
      expect(wa.all('resource.created')).toHaveLength(1);
    });
  });

  describe('before auth (test 2)', () => {
    it('closes 4408 AUTH_TIMEOUT at WS_AUTH_TIMEOUT, not before; auth in time cancels the timer', async () => {
      const timeout = t.config.WS_AUTH_TIMEOUT;
      const u = await signup(t);
      const idle = await connect();
      const early = await connect();
      const late = await connect();
      t.clock.advance(timeout - 1);
      // Still open a second before the timeout: auth succeeds ...
      await late.authenticate(u.accessToken);
      // ... and a message other than auth is answered as such (4401), not as a timeout.
      early.send({ event: 'subscribe', data: { topics: [] } });
      expect(await early.closing()).toEqual({ code: 4401, reason: 'UNAUTHORIZED' });
      expect(idle.closed).toBeNull();

      t.clock.advance(2);
      expect(await idle.closing()).toEqual({ code: 4408, reason: 'AUTH_TIMEOUT' });
      expect(idle.frames).toEqual([]);
      // The authenticated socket's auth timer was cancelled.
      await probe(late);
      expect(late.closed).toBeNull();
    });

    it.each([
      ['subscribe', { topics: ['tenant:00000000-0000-4000-8000-000000000000'] }],
      ['unsubscribe', { topics: ['tenant:00000000-0000-4000-8000-000000000000'] }],
    ])('closes 4401 UNAUTHORIZED on %s before auth', async (event, data) => {
      const c = await connect();
      c.send({ event, data, id: 'x' });
      expect(await c.closing()).toEqual({ code: 4401, reason: 'UNAUTHORIZED' });
      expect(c.frames).toEqual([]);
    });

    it('ignores a token in ?access_token=: the socket times out (4408)', async () => {
      const u = await signup(t);
      const c = await connect({}, `?access_token=${encodeURIComponent(u.accessToken)}`);
      t.clock.advance(t.config.WS_AUTH_TIMEOUT + 1);
      expect(await c.closing()).toEqual({ code: 4408, reason: 'AUTH_TIMEOUT' });
      expect(c.frames).toEqual([]);
    });
  });

  describe('refused tokens (test 3)', () => {
    /** A user's valid access token and its parts. */
    async function valid() {
      const u = await signup(t);
      const { header, payload, signature } = decodeJwt(u.accessToken);
      return { u, header, payload, signature };
    }

    const cases: Array<[string, () => Promise<unknown>]> = [
      ['no token', async () => ({})],
      ['data null', async () => null],
      ['an empty token', async () => ({ token: '' })],
      ['a number', async () => ({ token: 12345 })],
      ['an object', async () => ({ token: { value: (await valid()).u.accessToken } })],
      ['a list', async () => ({ token: [(await valid()).u.accessToken] })],
      ['not a JWT', async () => ({ token: 'not.a.jwt' })],
      [
        'alg none',
        async () => {
          const { header, payload } = await valid();
          return { token: `${unsignedJwt({ ...header, alg: 'none' }, payload)}.` };
        },
      ],
      [
        'a flipped signature character',
        async () => {
          const { u, signature } = await valid();
          const [h, p] = u.accessToken.split('.');
          // A character in the middle: every one of its bits is part of the signature.
          const i = 10;
          const flipped = signature[i] === 'A' ? 'B' : 'A';
          return { token: `${h}.${p}.${signature.slice(0, i)}${flipped}${signature.slice(i + 1)}` };
        },
      ],
      [
        'HS256 with the public key as secret (algorithm confusion)',
        async () => {
          const { header, payload } = await valid();
          const jwks = (await t.http.get('/.well-known/jwks.json').expect(200)).body as { keys: JsonWebKey[] };
          const pem = createPublicKey({ key: jwks.keys[0]!, format: 'jwk' })
            .export({ format: 'pem', type: 'spki' })
            .toString();
          return { token: signHs256({ typ: header.typ, kid: header.kid }, payload, pem) };
        },
      ],
      [
        "a foreign key under Gatehouse's kid",
        async () => {
          const { header, payload } = await valid();
          return { token: signEs256({ typ: header.typ, kid: header.kid }, payload, es256KeyPair().privateKey) };
        },
      ],
      [
        'an unknown issuer and key',
        async () => {
          const { header, payload } = await valid();
          return {
            token: signEs256(
              { typ: header.typ, kid: 'elsewhere-1' },
              { ...payload, iss: 'https://idp.elsewhere.example', jti: randomUUID() },
              es256KeyPair().privateKey,
            ),
          };
        },
      ],
      ['the refresh-cookie value', async () => ({ token: (await valid()).u.refreshToken })],
      [
        'an mfaToken',
        async () => {
          t.clock.freeze(); // TOTP codes: no step may end in the middle
          const m = await enrol(t);
          const mfaToken = await passwordStep(t, m);
          t.clock.unfreeze();
          return { token: mfaToken };
        },
      ],
      [
        'the token of a logged-out session',
        async () => {
          const { u } = await valid();
          await t.http.post('/auth/logout').set(u.auth).expect(204);
          return { token: u.accessToken };
        },
      ],
    ];

    it.each(cases)('closes 4401 INVALID_TOKEN for %s', async (_label, data) => {
      expect(await authClose(await data())).toEqual(INVALID_TOKEN);
    });

    it('closes 4401 TOKEN_EXPIRED for a token past its exp', async () => {
      const u = await signup(t);
      t.clock.advance(expOf(u.accessToken) - t.clock.nowMs() / 1000 + 1);
      expect(await authClose({ token: u.accessToken })).toEqual(TOKEN_EXPIRED);
      // Not a matter of the user: a fresh token of theirs is accepted.
      const fresh = await login(t, u.username, u.password);
      await authed(fresh.accessToken);
    });

    it('closes an authenticated socket whose re-auth token is refused', async () => {
      const u = await signup(t);
      const c = await authed(u.accessToken);
      c.auth(u.refreshToken);
      expect(await c.closing()).toEqual(INVALID_TOKEN);
    });
  });

  describe('expiry and re-auth (test 4)', () => {
    /** Freezes the clock on a whole second: `exp − now` is a whole number of seconds. */
    const freezeOnSecond = () => t.clock.freeze(Math.ceil(t.clock.nowMs() / 1000) * 1000);
    const secondsTo = (exp: number) => exp - t.clock.nowMs() / 1000;

    it('warns at exp−WS_EXPIRY_WARNING; re-auth moves the expiry; without renewal 4401 TOKEN_EXPIRED at exp', async () => {
      const warning = t.config.WS_EXPIRY_WARNING;
      freezeOnSecond();
      const u = await signup(t);
      const exp1 = expOf(u.accessToken);
      const c = await connect();
      const ok1 = await c.authenticate(u.accessToken);
      expect(ok1.data.expiresAt).toBe(isoOf(exp1));

      // A second before the warning: nothing yet.
      t.clock.advance(secondsTo(exp1) - warning - 1);
      await probe(c);
      expect(c.all('auth.expiring')).toEqual([]);
      t.clock.advance(1);
      expect((await c.next('auth.expiring')).data).toEqual({ expiresAt: isoOf(exp1), inSeconds: warning });

      // Re-auth with the token of a refresh: a new auth.ok, the same session, a later expiry.
      const refreshed = await refresh(t, u.refreshToken).expect(200);
      const token2 = refreshed.body.accessToken as string;
      const exp2 = expOf(token2);
      expect(exp2).toBeGreaterThan(exp1);
      c.auth(token2, 're-auth');
      const ok2 = await c.next('auth.ok');
      expect(ok2).toMatchObject({
        id: 're-auth',
        data: { userId: u.id, sessionId: ok1.data.sessionId, expiresAt: isoOf(exp2) },
      });

      // Past the first token's exp: still open, and no second warning for it.
      t.clock.advance(secondsTo(exp1) + 1);
      await probe(c);
      expect(c.closed).toBeNull();
      expect(c.all('auth.expiring')).toHaveLength(1);

      // The new token's warning, then its expiry: 4401 TOKEN_EXPIRED exactly at exp.
      t.clock.advance(secondsTo(exp2) - warning);
      expect((await c.next('auth.expiring')).data).toEqual({ expiresAt: isoOf(exp2), inSeconds: warning });
      t.clock.advance(warning - 1);
      await probe(c);
      t.clock.advance(1);
      expect(await c.closing()).toEqual(TOKEN_EXPIRED);
    });

    it('sends auth.expiring right after auth.ok when the token is already inside the warning window', async () => {
      freezeOnSecond();
      const u = await signup(t);
      const exp = expOf(u.accessToken);
      t.clock.advance(secondsTo(exp) - 30);
      const c = await connect();
      await c.authenticate(u.accessToken);
      expect((await c.next('auth.expiring')).data).toEqual({ expiresAt: isoOf(exp), inSeconds: 30 });
      expect(c.frames.map((f: Frame) => f.event)).toEqual(['auth.ok', 'auth.expiring']);
      t.clock.advance(30);
      expect(await c.closing()).toEqual(TOKEN_EXPIRED);
    });

    it("accepts a re-auth with another session of the same user, and closes 4403 IDENTITY_CHANGED on another user's token", async () => {
      const a = await signup(t);
      const b = await signup(t);
      const c = await authed(a.accessToken);
      const other = await login(t, a.username, a.password);
      c.auth(other.accessToken);
      expect((await c.next('auth.ok')).data).toMatchObject({
        userId: a.id,
        sessionId: decodeJwt(other.accessToken).payload.sid,
      });
      c.auth(b.accessToken);
      expect(await c.closing()).toEqual({ code: 4403, reason: 'IDENTITY_CHANGED' });
      expect(c.all('auth.ok')).toHaveLength(2);
    });
  });

  describe('client-credentials tokens', () => {
    async function client(allowedScopes: string[]): Promise<Created> {
      const res = await t.http
        .post('/oauth/clients')
        .set(await adminAuth())
        .send({ name: 'events reader', allowedScopes })
        .expect(201);
      return res.body as Created;
    }
    async function clientToken(c: Created, fields: Record<string, string> = {}): Promise<string> {
      const res = await t.http
        .post('/oauth/token')
        .set('Content-Type', FORM)
        .set(basic(c.client.clientId, c.secret.value))
        .send(form({ ...GRANT, ...fields }));
      expect({ status: res.status, body: res.text }).toMatchObject({ status: 200 });
      return (res.body as { access_token: string }).access_token;
    }

    it('accepts a client token with events:read (auth.ok for its service user)', async () => {
      const c = await client(['events:read', 'resources:read']);
      const token = await clientToken(c);
      const ok = await (await connect()).authenticate(token);
      expect(ok.data).toEqual({
        userId: c.client.serviceUserId,
        sessionId: c.secret.id,
        expiresAt: isoOf(expOf(token)),
        scopes: ['events:read', 'resources:read'],
      });
    });

    it('closes 4403 INSUFFICIENT_SCOPE for a client token without events:read', async () => {
      const without = await client(['resources:read']);
      expect(await authClose({ token: await clientToken(without) })).toEqual({
        code: 4403,
        reason: 'INSUFFICIENT_SCOPE',
      });
      // Allowed, but not asked for: the token does not carry it.
      const allowed = await client(['events:read', 'resources:read']);
      expect(await authClose({ token: await clientToken(allowed, { scope: 'resources:read' }) })).toEqual({
        code: 4403,
        reason: 'INSUFFICIENT_SCOPE',
      });
    });
  });

  describe('upgrade: subprotocol and Origin', () => {
    it('selects gatehouse.v1 when offered (alone or among others)', async () => {
      const u = await signup(t);
      for (const protocols of [['gatehouse.v1'], ['other', 'gatehouse.v1']]) {
        const c = await connect({ protocols });
        expect(c.ws.protocol).toBe('gatehouse.v1');
        expect((await c.authenticate(u.accessToken)).data.userId).toBe(u.id);
      }
    });

    it('accepts a handshake that offers no subprotocol', async () => {
      const u = await signup(t);
      const c = await connect();
      expect(c.ws.protocol).toBe('');
      expect((await c.authenticate(u.accessToken)).data.userId).toBe(u.id);
    });

    it('refuses with HTTP 400 VALIDATION_FAILED, and no 101, subprotocols without gatehouse.v1', async () => {
      for (const protocols of [['other'], ['gatehouse.v2', 'graphql-ws']]) {
        const refusal = await refusedUpgrade(url, protocols);
        expect(refusal.upgraded).toBe(false);
        expect(refusal.status).toBe(400);
        expect(refusal.headers['content-type']).toMatch(/^application\/json/);
        expect(refusal.body).toMatchObject({ statusCode: 400, error: 'Bad Request', code: 'VALIDATION_FAILED' });
        // A list, as VALIDATION_FAILED's message is in every HTTP answer.
        expect(refusal.body.message).toEqual([expect.stringContaining('gatehouse.v1')]);
      }
    });

    it.each([['https://evil.example'], ['http://app.example.test.evil.example'], ['null']])(
      'refuses the Origin %s with HTTP 403 ORIGIN_NOT_ALLOWED and no 101',
      async (origin) => {
        const refusal = await refusedUpgrade(url, [], { headers: { Origin: origin } });
        expect(refusal.upgraded).toBe(false);
        expect(refusal.status).toBe(403);
        expect(refusal.body).toMatchObject({ statusCode: 403, error: 'Forbidden', code: 'ORIGIN_NOT_ALLOWED' });
        // Offering the right subprotocol changes nothing.
        const again = await refusedUpgrade(url, ['gatehouse.v1'], { headers: { Origin: origin } });
        expect(again.status).toBe(403);
      },
    );

    it('accepts the CORS origin, our own origin and no Origin at all', async () => {
      const u = await signup(t);
      for (const headers of [
        { Origin: ALLOWED_ORIGIN },
        { Origin: new URL(t.config.PUBLIC_URL).origin },
        {} as Record<string, string>,
      ]) {
        const c = await connect({ headers });
        expect((await c.authenticate(u.accessToken)).data.userId).toBe(u.id);
      }
    });
  });
});
