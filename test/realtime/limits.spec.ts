import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, type ClientOptions } from 'ws';
import { RealtimeGateway } from '../../src/realtime/realtime.gateway.js';
import { closeWebSockets } from '../../src/app.setup.js';
import { ROOMY_LIMITS } from '../support/env.js';
import { login, signup, type SignedUp } from '../support/factories.js';
import { ALLOWED_ORIGIN, startApp, type TestApp } from '../support/test-app.js';
import { WsClient, listen } from './ws-helpers.js';

/**
 * Contract v2 §F test 7 (limits and hostile input), the upgrade rules (path, query string,
 * per-address caps, WS_ENABLED), liveness and shutdown. Every close is checked with its exact
 * code and reason.
 */

interface Upgrade {
  /** The server answered 101 and the socket opened. */
  opened: boolean;
  /** The HTTP status of a refused upgrade (null: no HTTP answer at all). */
  status: number | null;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Tries an upgrade that should be refused, and tells what the server answered. */
function tryUpgrade(url: string, options: ClientOptions = {}): Promise<Upgrade> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, [], options);
    let settled = false;
    const finish = (u: Upgrade) => {
      if (settled) return;
      settled = true;
      resolve(u);
    };
    ws.on('error', () => finish({ opened: false, status: null, headers: {}, body: '' }));
    ws.on('open', () => {
      ws.terminate();
      finish({ opened: true, status: 101, headers: {}, body: '' });
    });
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        finish({ opened: false, status: res.statusCode ?? null, headers: res.headers, body });
        req.destroy();
      });
    });
  });
}

/** The contract's error body of a refused upgrade. */
function errorBody(u: Upgrade): unknown {
  return JSON.parse(u.body) as unknown;
}

const topic = () => `tenant:${randomUUID()}`;

/** Waits for the answer (by id) to a message sent on this socket. */
async function answered(w: WsClient, event: string, id: string): Promise<void> {
  for (;;) if ((await w.next(event)).id === id) return;
}

/** What became of an `auth`: `auth.ok`, or the close ("code reason") that came instead. */
function authOutcome(w: WsClient): Promise<string> {
  return new Promise((resolve) => {
    const check = () => {
      if (w.all('auth.ok').length > 0) resolve('auth.ok');
      else if (w.closed) resolve(`${w.closed.code} ${w.closed.reason}`);
    };
    // Registered after WsClient's own listeners: frames and closed are up to date here.
    w.ws.on('message', check);
    w.ws.on('close', check);
    check();
  });
}

/** Sockets opened by a test, closed after it; then waits until the server has forgotten them. */
function socketPool(app: () => TestApp) {
  const open: WsClient[] = [];
  return {
    track(w: WsClient): WsClient {
      open.push(w);
      return w;
    },
    async release(): Promise<void> {
      for (const w of open.splice(0)) if (!w.closed) w.close();
      await drained(app());
    },
  };
}

/**
 * Until the server holds no connection: a socket closed by the client is forgotten when the
 * server sees its TCP connection end, which no frame tells the client about.
 */
async function drained(t: TestApp, expected = 0): Promise<void> {
  const gateway = t.app.get(RealtimeGateway);
  for (let i = 0; i < 500 && gateway.size > expected; i++) await new Promise((r) => setTimeout(r, 10));
  expect(gateway.size).toBe(expected);
}

describe('real-time limits at their defaults', () => {
  let t: TestApp;
  let url: string;
  let stopped = false;
  const pool = socketPool(() => t);
  const open = async (target = url, options: ClientOptions = {}) => pool.track(await WsClient.open(target, options));
  const authed = async (user: SignedUp) => {
    const w = await open();
    await w.authenticate(user.accessToken);
    return w;
  };

  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000' });
    url = await listen(t);
  });
  afterEach(async () => {
    if (!stopped) await pool.release();
  });
  afterAll(async () => {
    if (!stopped) await t?.close();
  });

  it('the 11th authenticated socket of a user gets 4429 TOO_MANY_CONNECTIONS; the first 10 stay open', async () => {
    expect(t.config.WS_MAX_CONNECTIONS_PER_USER).toBe(10);
    const u = await signup(t);
    const sockets: WsClient[] = [];
    for (let i = 0; i < 11; i++) sockets.push(await open()); // unauthenticated sockets do not count
    for (const w of sockets.slice(0, 10)) expect((await w.authenticate(u.accessToken)).data.userId).toBe(u.id);
    const eleventh = sockets[10]!;
    eleventh.auth(u.accessToken);
    expect(await eleventh.closing()).toEqual({ code: 4429, reason: 'TOO_MANY_CONNECTIONS' });
    expect(eleventh.all('auth.ok')).toEqual([]);

    // The ten still answer.
    for (const [i, w] of sockets.slice(0, 10).entries()) {
      w.send({ event: 'unsubscribe', data: { topics: [topic()] }, id: `still-${i}` });
      await answered(w, 'unsubscribed', `still-${i}`);
      expect(w.closed).toBeNull();
    }
    // The cap is per user, whatever the session: another login of u is refused too ...
    const again = await login(t, u.username, u.password);
    const other = await open();
    other.auth(again.accessToken);
    expect(await other.closing()).toEqual({ code: 4429, reason: 'TOO_MANY_CONNECTIONS' });
    // ... while another user connects.
    const v = await signup(t);
    await authed(v);

    // A socket that goes frees its place.
    sockets[0]!.close();
    await sockets[0]!.closing();
    await drained(t, 10);
    const replacement = await open();
    expect((await replacement.authenticate(again.accessToken)).data.userId).toBe(u.id);
  });

  it('a frame over WS_MAX_MESSAGE_BYTES (4096) closes with 1009, before and after auth; 4096 bytes are read', async () => {
    expect(t.config.WS_MAX_MESSAGE_BYTES).toBe(4096);
    const u = await signup(t);
    /** A subscribe message of exactly `bytes` bytes. */
    const sized = (bytes: number) => {
      const empty = JSON.stringify({ event: 'subscribe', data: { topics: [], pad: '' } });
      const message = JSON.stringify({
        event: 'subscribe',
        data: { topics: [], pad: 'x'.repeat(bytes - empty.length) },
      });
      expect(Buffer.byteLength(message)).toBe(bytes);
      return message;
    };

    const atLimit = await open();
    atLimit.send(sized(4096)); // read: a message other than auth before auth
    expect(await atLimit.closing()).toEqual({ code: 4401, reason: 'UNAUTHORIZED' });

    const overBy1 = await open();
    overBy1.send(sized(4097));
    expect(await overBy1.closing()).toEqual({ code: 1009, reason: '' });

    const before = await open();
    before.send({ event: 'auth', data: { token: u.accessToken, pad: 'x'.repeat(5 * 1024) } });
    expect(await before.closing()).toEqual({ code: 1009, reason: '' });
    expect(before.all('auth.ok')).toEqual([]);

    const after = await authed(u);
    after.send(sized(5 * 1024));
    expect(await after.closing()).toEqual({ code: 1009, reason: '' });
  });

  it('31 messages within 10 s close with 4429 TOO_MANY_MESSAGES; 30 do not, and the next window accepts 30 again', async () => {
    expect(t.config.WS_MESSAGE_RATE_LIMIT).toBe(30);
    const u = await signup(t);
    t.clock.freeze();
    try {
      const unsubscribe = (w: WsClient, id: string) =>
        w.send({ event: 'unsubscribe', data: { topics: [topic()] }, id });

      const w = await authed(u); // message 1
      for (let i = 2; i <= 30; i++) unsubscribe(w, `a${i}`);
      await answered(w, 'unsubscribed', 'a30');
      expect(w.all('unsubscribed')).toHaveLength(29);
      expect(w.closed).toBeNull();

      t.clock.advance(10); // a new window
      for (let i = 1; i <= 30; i++) unsubscribe(w, `b${i}`);
      await answered(w, 'unsubscribed', 'b30');
      expect(w.all('unsubscribed')).toHaveLength(59);
      expect(w.closed).toBeNull();
      unsubscribe(w, 'b31');
      expect(await w.closing()).toEqual({ code: 4429, reason: 'TOO_MANY_MESSAGES' });
      expect(w.frames.filter((f) => f.id === 'b31')).toEqual([]);

      // The window is 10 s: 9.9 s later the count still runs.
      const x = await authed(u);
      for (let i = 2; i <= 30; i++) unsubscribe(x, `c${i}`);
      await answered(x, 'unsubscribed', 'c30');
      t.clock.advance(9.9);
      unsubscribe(x, 'c31');
      expect(await x.closing()).toEqual({ code: 4429, reason: 'TOO_MANY_MESSAGES' });
    } finally {
      t.clock.unfreeze();
    }
  });

  describe('frames that break the protocol close with 4400 BAD_MESSAGE', () => {
    const cases: Array<[string, (token: string) => string | Buffer]> = [
      ['not JSON', (token) => `{"event":"auth","data":{"token":"${token}"}`],
      ['an empty frame', () => ''],
      ['an unknown event', () => JSON.stringify({ event: 'hello', data: {} })],
      ['an event in upper case', (token) => JSON.stringify({ event: 'AUTH', data: { token } })],
      ['a binary frame', (token) => Buffer.from(JSON.stringify({ event: 'auth', data: { token } }))],
      ['a JSON array', (token) => JSON.stringify([{ event: 'auth', data: { token } }])],
      ['JSON null', () => 'null'],
      ['a JSON string', () => '"auth"'],
      ['missing data', () => JSON.stringify({ event: 'subscribe' })],
      ['an event that is not a string', (token) => JSON.stringify({ event: ['auth'], data: { token } })],
      ['an id that is an object', (token) => JSON.stringify({ event: 'auth', data: { token }, id: {} })],
      ['an id of 65 characters', (token) => JSON.stringify({ event: 'auth', data: { token }, id: 'x'.repeat(65) })],
      ['an id that is a boolean', (token) => JSON.stringify({ event: 'auth', data: { token }, id: true })],
    ];
    let u: SignedUp;
    beforeAll(async () => {
      u = await signup(t);
    });

    it.each(cases)('%s, before auth', async (_name, frame) => {
      const w = await open();
      w.ws.send(frame(u.accessToken));
      expect(await w.closing()).toEqual({ code: 4400, reason: 'BAD_MESSAGE' });
      expect(w.frames).toEqual([]);
    });

    it.each(cases)('%s, after auth', async (_name, frame) => {
      const w = await authed(u);
      w.ws.send(frame(u.accessToken));
      expect(await w.closing()).toEqual({ code: 4400, reason: 'BAD_MESSAGE' });
      expect(w.all('auth.ok')).toHaveLength(1);
    });

    it('(the same message, well-formed, is answered)', async () => {
      const w = await open();
      w.send({ event: 'auth', data: { token: u.accessToken }, id: 'x'.repeat(64) });
      expect((await w.next('auth.ok')).id).toBe('x'.repeat(64));
    });
  });

  it('ignores the query string: a token there authenticates nothing, and the path still matches', async () => {
    const u = await signup(t);
    const withToken = await open(`${url}?access_token=${u.accessToken}&token=${u.accessToken}`);
    withToken.send({ event: 'subscribe', data: { topics: [topic()] } });
    expect(await withToken.closing()).toEqual({ code: 4401, reason: 'UNAUTHORIZED' });
    expect(withToken.all('auth.ok')).toEqual([]);

    const withQuery = await open(`${url}?foo=bar`);
    expect((await withQuery.authenticate(u.accessToken)).data.userId).toBe(u.id);
  });

  it.each(['/ws/', '/wsx', '/WS', '/ws/extra', '/', '/other'])('answers no 101 on %s (not WS_PATH)', async (path) => {
    const upgrade = await tryUpgrade(url.replace(/\/ws$/, path));
    expect(upgrade.opened).toBe(false);
    expect(upgrade.status).not.toBe(101);
  });

  it('refuses a foreign Origin with HTTP 403 ORIGIN_NOT_ALLOWED and no 101; accepts an allowed one', async () => {
    const refused = await tryUpgrade(url, { headers: { Origin: 'https://evil.example' } });
    expect(refused.opened).toBe(false);
    expect(refused.status).toBe(403);
    expect(errorBody(refused)).toEqual({
      statusCode: 403,
      error: 'Forbidden',
      message: expect.any(String),
      code: 'ORIGIN_NOT_ALLOWED',
    });
    const allowed = await open(url, { headers: { Origin: ALLOWED_ORIGIN } });
    expect(allowed.closed).toBeNull();
  });

  // Last: it stops the app.
  it('shutdown sends 1001 to every open socket, authenticated or not', async () => {
    const u = await signup(t);
    const signedIn = await authed(u);
    const anonymous = await open();
    stopped = true;
    await t.close();
    expect(await signedIn.closing()).toEqual({ code: 1001, reason: '' });
    expect(await anonymous.closing()).toEqual({ code: 1001, reason: '' });
  });
});

describe('real-time limits set low, a custom WS_PATH and fast pings', () => {
  let t: TestApp;
  let url: string;
  const pool = socketPool(() => t);
  const open = async (target = url, options: ClientOptions = {}) => pool.track(await WsClient.open(target, options));

  beforeAll(async () => {
    t = await startApp({
      ...ROOMY_LIMITS,
      WS_PATH: '/realtime/v1',
      WS_MAX_PENDING_PER_IP: '3',
      WS_AUTH_FAILURE_LIMIT: '3',
      WS_PING_INTERVAL: '1',
    });
    url = await listen(t);
  });
  afterEach(async () => pool.release());
  afterAll(async () => t?.close());

  it('serves WS_PATH, and nothing on /ws', async () => {
    expect(url).toMatch(/\/realtime\/v1$/);
    const u = await signup(t);
    const w = await open();
    expect((await w.authenticate(u.accessToken)).data.userId).toBe(u.id);
    const old = await tryUpgrade(url.replace(/\/realtime\/v1$/, '/ws'));
    expect(old.opened).toBe(false);
    expect(old.status).not.toBe(101);
    await t.http.get('/health').expect(200);
  });

  it('refuses the upgrade past WS_MAX_PENDING_PER_IP unauthenticated sockets with HTTP 429; authenticating frees a slot', async () => {
    const u = await signup(t);
    const pending = [await open(), await open(), await open()];
    const refused = await tryUpgrade(url);
    expect(refused.opened).toBe(false);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(errorBody(refused)).toEqual({
      statusCode: 429,
      error: 'Too Many Requests',
      message: expect.any(String),
      code: 'TOO_MANY_REQUESTS',
    });

    await pending[0]!.authenticate(u.accessToken);
    const fourth = await open(); // a slot is free again
    expect(fourth.closed).toBeNull();
    expect((await tryUpgrade(url)).status).toBe(429); // and taken

    // A socket the server closes frees its slot too.
    pending[1]!.send('not json');
    expect(await pending[1]!.closing()).toEqual({ code: 4400, reason: 'BAD_MESSAGE' });
    await drained(t, 3); // the slot is held until its TCP connection ends
    const fifth = await open();
    expect((await fifth.authenticate(u.accessToken)).data.userId).toBe(u.id);
  });

  it('holds the cap when handshakes race: of 8 at once, exactly WS_MAX_PENDING_PER_IP (3) stay open', async () => {
    const u = await signup(t);
    const attempts = await Promise.allSettled(Array.from({ length: 8 }, () => WsClient.open(url)));
    const outcomes: string[] = [];
    for (const a of attempts) {
      if (a.status === 'rejected') {
        outcomes.push(String(a.reason));
        continue;
      }
      const w = pool.track(a.value);
      w.auth(u.accessToken);
      outcomes.push(await authOutcome(w));
    }
    expect(outcomes.filter((o) => o === 'auth.ok')).toHaveLength(3);
    for (const o of outcomes.filter((x) => x !== 'auth.ok')) {
      expect(['Error: HTTP 429', '4429 TOO_MANY_CONNECTIONS']).toContain(o);
    }
  });

  it('terminates a client that does not answer pings (1006), and keeps one that does', async () => {
    const [a, b] = [await signup(t), await signup(t)];
    const lively = await open();
    await lively.authenticate(a.accessToken);
    const deaf = await open(url, { autoPong: false });
    await deaf.authenticate(b.accessToken);
    let livelyPings = 0;
    let deafPings = 0;
    lively.ws.on('ping', () => livelyPings++);
    deaf.ws.on('ping', () => deafPings++);

    expect(await deaf.closing(5000)).toEqual({ code: 1006, reason: '' });
    expect(deafPings).toBeGreaterThanOrEqual(1);
    // One more ping to the lively client: sent only because it answered the previous one.
    const seen = livelyPings;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no ping within 3 s')), 3000);
      lively.ws.once('ping', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    expect(livelyPings).toBeGreaterThan(seen);
    expect(livelyPings).toBeGreaterThanOrEqual(2);
    lively.send({ event: 'unsubscribe', data: { topics: [topic()] }, id: 'alive' });
    await answered(lively, 'unsubscribed', 'alive');
    expect(lively.closed).toBeNull();
  });

  it('spreads the pings over WS_PING_INTERVAL (not all sockets in one burst), each socket still pinged once per interval', async () => {
    const u = await signup(t);
    // Four sockets opened one after the other fall in four consecutive ping slots (a quarter
    // of the 1 s interval each): their first pings come at four different ticks.
    const pings: number[][] = [];
    for (let i = 0; i < 4; i++) {
      const w = await open();
      await w.authenticate(u.accessToken);
      const times: number[] = [];
      pings.push(times);
      w.ws.on('ping', () => times.push(performance.now()));
    }
    await new Promise((resolve) => setTimeout(resolve, 2600));
    for (const times of pings) {
      expect(times.length).toBeGreaterThanOrEqual(2);
      // Each socket has the whole interval to answer (timer jitter aside).
      for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThan(700);
    }
    const firsts = pings.map((times) => times[0]!);
    // One burst would ping all four within a few milliseconds; slots 250 ms apart span 750 ms.
    expect(Math.max(...firsts) - Math.min(...firsts)).toBeGreaterThanOrEqual(400);
  });

  // Last: it blocks the address until the clock moves 15 minutes.
  it('refuses the upgrade with HTTP 429 after WS_AUTH_FAILURE_LIMIT failed auths, until 15 min after the last', async () => {
    t.clock.freeze();
    try {
      const badAuths: unknown[] = [{ token: 'not-a-token' }, {}, { token: 'a.b.c' }];
      for (const data of badAuths) {
        const w = await open(); // fewer than 3 failures so far: still admitted
        w.send({ event: 'auth', data });
        expect(await w.closing()).toEqual({ code: 4401, reason: 'INVALID_TOKEN' });
        await drained(t); // its pending slot is held until its TCP connection ends
      }
      const refused = await tryUpgrade(url);
      expect(refused.opened).toBe(false);
      expect(refused.status).toBe(429);
      expect(errorBody(refused)).toMatchObject({ statusCode: 429, code: 'TOO_MANY_REQUESTS' });
      const retryAfter = Number(refused.headers['retry-after']);
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(15 * 60);

      t.clock.advance(15 * 60 - 1);
      const stillRefused = await tryUpgrade(url);
      expect(stillRefused.status).toBe(429);
      expect(stillRefused.headers['retry-after']).toBe('1');

      t.clock.advance(1);
      const u = await signup(t);
      const w = await open();
      expect((await w.authenticate(u.accessToken)).data.userId).toBe(u.id);
    } finally {
      t.clock.unfreeze();
    }
  });

  // Last: the app takes no more WebSockets afterwards.
  it("SIGTERM's first step sends 1001 to open sockets and answers new upgrades 503, while HTTP still works", async () => {
    const u = await signup(t);
    const signedIn = await open();
    await signedIn.authenticate(u.accessToken);
    const anonymous = await open();
    closeWebSockets(t.app, t.config);
    expect(await signedIn.closing()).toEqual({ code: 1001, reason: '' });
    expect(await anonymous.closing()).toEqual({ code: 1001, reason: '' });
    const refused = await tryUpgrade(url);
    expect(refused.opened).toBe(false);
    expect(refused.status).toBe(503);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(errorBody(refused)).toMatchObject({ statusCode: 503, code: 'SERVICE_UNAVAILABLE' });
    await t.http.get('/auth/sessions').set(u.auth).expect(200);
  });
});

describe('WS_ENABLED=false', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ WS_ENABLED: 'false' });
  });
  afterAll(async () => t?.close());

  it('serves no WebSocket, and the HTTP API still works', async () => {
    const url = await listen(t);
    const upgrade = await tryUpgrade(url);
    expect(upgrade.opened).toBe(false);
    expect(upgrade.status).not.toBe(101);
    await t.http.get('/health').expect(200);
    const u = await signup(t);
    await t.http.get('/auth/sessions').set(u.auth).expect(200);
  });
});
