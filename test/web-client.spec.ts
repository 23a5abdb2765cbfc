/// <reference lib="dom" />
// The browser client's type declarations use the DOM's (IndexedDB, MessageEvent<T> ...); the
// test itself runs in Node, where those APIs are missing or partial.
//
// The browser client (web/src/gatehouse-client.ts) in Node, driven through an injected fetch
// that plays Gatehouse: the 401 → refresh → retry rules, single flight, what ends a session
// and what does not, start(), and the browser-only APIs it must do without.
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ApiError,
  GatehouseClient,
  type GatehouseClientOptions,
  type SignedInDetail,
  type SignedOutDetail,
  type User,
} from '../web/src/gatehouse-client.js';

const USER: User = {
  id: 'u-1',
  username: 'ada',
  email: null,
  emailVerified: false,
  displayName: null,
  roles: ['user'],
  createdAt: '2026-01-01T00:00:00.000Z',
};

interface Call {
  method: string;
  path: string;
  /** `token#N` for the Nth token the fake issued, else the raw header (or null). */
  bearer: string | null;
  credentials: RequestCredentials | undefined;
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

const unauthorized = () => json(401, { statusCode: 401, code: 'UNAUTHORIZED', message: 'Invalid access token' });

/** A JWT-shaped token: the client reads (never verifies) `sub` and `sid`. */
function token(n: number, sid = 's-1'): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'EdDSA', typ: 'JWT' })}.${part({ sub: USER.id, sid, n })}.signature`;
}

/** The URL a fetch() call asks for, relative to the fake server's origin. */
function urlOf(input: Parameters<typeof fetch>[0]): URL {
  return new URL(
    typeof input === 'string' ? input : input instanceof URL ? input.href : input.url,
    'http://gatehouse.test',
  );
}

/**
 * Gatehouse as the client sees it. The API takes one access token (`accepted`) and answers
 * 401 to any other; POST /auth/refresh issues the next token unless `refresh` says otherwise.
 */
class FakeGatehouse {
  readonly calls: Call[] = [];
  accepted: string | null = null;
  /** Set: every token is refused (the session was revoked), fresh ones included. */
  revoked = false;
  refresh: (init: RequestInit) => Response | Promise<Response> = () => this.issue();
  #issued: string[] = [];

  issue(): Response {
    const value = token(this.#issued.length + 1);
    this.#issued.push(value);
    this.accepted = value;
    return json(200, { accessToken: value, tokenType: 'Bearer', expiresIn: 900 });
  }

  /** The access token expires: the API refuses it from now on. */
  expire(): void {
    this.accepted = null;
  }

  /** `METHOD /path token#N` for each call, in order. */
  log(): string[] {
    return this.calls.map((c) => [c.method, c.path, c.bearer].filter(Boolean).join(' '));
  }

  count(method: string, path: string): number {
    return this.calls.filter((c) => c.method === method && c.path === path).length;
  }

  readonly fetch: typeof fetch = async (input, init = {}) => {
    const url = urlOf(input);
    const method = init.method ?? 'GET';
    const authorization = new Headers(init.headers).get('Authorization');
    const bearer = authorization?.replace(/^Bearer /, '') ?? null;
    const n = bearer === null ? -1 : this.#issued.indexOf(bearer);
    this.calls.push({
      method,
      path: url.pathname,
      bearer: n >= 0 ? `token#${n + 1}` : authorization,
      credentials: init.credentials,
    });
    await Promise.resolve(); // answers arrive later than the call, as over a network
    if (method === 'POST' && url.pathname === '/auth/login') {
      const tokens = (await this.issue().json()) as object;
      return json(200, { ...tokens, user: USER });
    }
    if (method === 'POST' && url.pathname === '/auth/refresh') return this.refresh(init);
    if (this.revoked || bearer === null || bearer !== this.accepted) return unauthorized();
    if (url.pathname === '/users/me') return json(200, USER);
    return json(200, { method, path: url.pathname });
  };
}

const clients: GatehouseClient[] = [];
let channels = 0;

/** A client on `server`, with its own channel name (no cross-talk between tests), and its events. */
function clientOf(server: FakeGatehouse, options: GatehouseClientOptions = {}) {
  const client = new GatehouseClient({
    fetch: server.fetch,
    channelName: `gatehouse-test-${process.pid}-${++channels}`,
    ...options,
  });
  clients.push(client);
  const events: string[] = [];
  client.addEventListener('signedin', (event) => {
    events.push(`signedin:${(event as CustomEvent<SignedInDetail>).detail.source}`);
  });
  client.addEventListener('signedout', (event) => {
    events.push(`signedout:${(event as CustomEvent<SignedOutDetail>).detail.reason}`);
  });
  return { client, events };
}

/** Signed in (token#1); the log and the events start empty. */
async function signedIn(options: GatehouseClientOptions = {}) {
  const server = new FakeGatehouse();
  const { client, events } = clientOf(server, options);
  await client.login('ada', 'correct horse battery staple');
  expect(client.signedIn).toBe(true);
  server.calls.length = 0;
  events.length = 0;
  return { server, client, events };
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to reject');
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * A token renewal the server has renewed (the next token) but whose answer waits until the
 * returned function is called. With `sessionOver`, the API keeps taking the token it took:
 * the renewed session has ended meanwhile, and its token changes nothing.
 */
function holdRenewal(server: FakeGatehouse, { sessionOver = false } = {}): () => void {
  const answered = deferred();
  server.refresh = async () => {
    await answered.promise;
    const current = server.accepted;
    const answer = server.issue();
    if (sessionOver) server.accepted = current;
    return answer;
  };
  return answered.resolve;
}

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
  vi.unstubAllGlobals();
});

describe('GatehouseClient: 401 → refresh → retry', () => {
  it('answers a 401 with exactly one POST /auth/refresh and one retry with the new token', async () => {
    const { server, client, events } = await signedIn();
    server.expire();

    await expect(client.me()).resolves.toEqual(USER);

    expect(server.log()).toEqual(['GET /users/me token#1', 'POST /auth/refresh', 'GET /users/me token#2']);
    // The refresh carries the cookie (credentials) and no bearer; the API calls do not send cookies cross-origin.
    expect(server.calls[1]).toMatchObject({ bearer: null, credentials: 'include' });
    expect(server.calls[2]).toMatchObject({ credentials: 'same-origin' });
    expect(client.signedIn).toBe(true);
    expect(events).toEqual([]); // the same session (sub, sid): no new `signedin`

    // The new token is kept: the next call needs no refresh.
    await expect(client.me()).resolves.toEqual(USER);
    expect(server.log().slice(3)).toEqual(['GET /users/me token#2']);
  });

  it('shares one refresh among ten concurrent 401s (single flight), then retries each once', async () => {
    const { server, client, events } = await signedIn();
    server.expire();
    const gate = deferred();
    server.refresh = async () => {
      await gate.promise; // the refresh is still on the way while all ten calls fail
      return server.issue();
    };

    const calls = Array.from({ length: 10 }, (_, i) => client.request<{ path: string }>('GET', `/resources/r${i}`));
    await vi.waitFor(() => expect(server.count('POST', '/auth/refresh')).toBe(1));
    // Every call has had its 401 and time to ask for a refresh of its own.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(server.log().filter((line) => line.endsWith('token#1'))).toHaveLength(10);
    gate.resolve();

    const results = await Promise.all(calls);
    expect(results.map((r) => r.path)).toEqual(Array.from({ length: 10 }, (_, i) => `/resources/r${i}`));
    expect(server.count('POST', '/auth/refresh')).toBe(1);
    const log = server.log();
    expect(log.filter((line) => line.startsWith('GET') && line.endsWith('token#1'))).toHaveLength(10);
    expect(log.filter((line) => line.startsWith('GET') && line.endsWith('token#2'))).toHaveLength(10);
    expect(log).toHaveLength(21);
    expect(events).toEqual([]);
  });

  it('ends the session when the retry with a fresh token is refused too: `signedout` (expired), token dropped', async () => {
    const { server, client, events } = await signedIn();
    server.expire();
    server.revoked = true; // the refresh still works, but the session was revoked meanwhile

    const error = await rejectionOf(client.me());

    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 401, code: 'UNAUTHORIZED', messages: ['Invalid access token'] });
    expect(server.log()).toEqual(['GET /users/me token#1', 'POST /auth/refresh', 'GET /users/me token#2']);
    expect(events).toEqual(['signedout:expired']);
    expect(client.signedIn).toBe(false);

    // The token is gone: the next call does not send it, it asks for a session first.
    server.calls.length = 0;
    server.refresh = unauthorized;
    const next = await rejectionOf(client.me());
    expect(next).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    expect(server.log()).toEqual(['POST /auth/refresh']);
    expect(events).toEqual(['signedout:expired']); // not signed out twice
  });

  it.each([401, 403])(
    'ends the session when the refresh answers %i, rejecting with the original 401',
    async (status) => {
      const { server, client, events } = await signedIn();
      server.expire();
      server.refresh = () => json(status, { statusCode: status, code: 'REFRESH_TOKEN_INVALID', message: 'No session' });

      const error = await rejectionOf(client.me());

      expect(error).toBeInstanceOf(ApiError);
      expect(error).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
      expect(server.log()).toEqual(['GET /users/me token#1', 'POST /auth/refresh']);
      expect(events).toEqual(['signedout:expired']);
      expect(client.signedIn).toBe(false);
    },
  );

  const passing: Array<[string, (init: RequestInit) => Response | Promise<Response>, Partial<ApiError>]> = [
    [
      '429 with Retry-After',
      () =>
        json(
          429,
          { statusCode: 429, code: 'TOO_MANY_REQUESTS', message: 'Too many requests' },
          { 'Retry-After': '30' },
        ),
      { status: 429, code: 'TOO_MANY_REQUESTS', retryAfter: 30, messages: ['Too many requests'] },
    ],
    [
      '503 with Retry-After and a request id',
      () =>
        json(
          503,
          { statusCode: 503, code: 'DATABASE_UNAVAILABLE', message: 'The database is unavailable; retry shortly' },
          { 'Retry-After': '5', 'X-Request-Id': 'req-42' },
        ),
      { status: 503, code: 'DATABASE_UNAVAILABLE', retryAfter: 5, requestId: 'req-42' },
    ],
    [
      '500',
      () => json(500, { statusCode: 500, code: 'INTERNAL_ERROR', message: 'Internal server error' }),
      { status: 500, code: 'INTERNAL_ERROR', retryAfter: null },
    ],
    [
      '502 from a proxy, not JSON',
      () => new Response('<html>Bad Gateway</html>', { status: 502, headers: { 'Content-Type': 'text/html' } }),
      { status: 502, code: 'HTTP_502', retryAfter: null, messages: [] },
    ],
    [
      'network error',
      () => {
        throw new TypeError('fetch failed');
      },
      { status: 0, code: 'NETWORK_ERROR', retryAfter: null, cause: expect.any(TypeError) },
    ],
  ];

  it.each(passing)(
    'keeps the session when the refresh fails with a %s, rejecting with its ApiError',
    async (_, failure, expected) => {
      const { server, client, events } = await signedIn();
      server.expire();
      server.refresh = failure;

      const error = await rejectionOf(client.me());

      expect(error).toBeInstanceOf(ApiError);
      expect(error).toMatchObject(expected);
      expect(server.log()).toEqual(['GET /users/me token#1', 'POST /auth/refresh']);
      expect(client.signedIn).toBe(true);
      expect(events).toEqual([]);

      // Still signed in with the same token: once Gatehouse is back, the next call recovers.
      server.calls.length = 0;
      server.refresh = () => server.issue();
      await expect(client.me()).resolves.toEqual(USER);
      expect(server.log()).toEqual(['GET /users/me token#1', 'POST /auth/refresh', 'GET /users/me token#2']);
      expect(events).toEqual([]);
    },
  );

  it('treats a refresh that outlasts refreshTimeoutMs as a network error, keeping the session', async () => {
    const { server, client, events } = await signedIn({ refreshTimeoutMs: 50 });
    server.expire();
    server.refresh = ({ signal }) =>
      new Promise<Response>((_, reject) => {
        signal?.addEventListener('abort', () => reject(signal.reason as Error));
      });

    const error = await rejectionOf(client.me());

    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 0, code: 'NETWORK_ERROR' });
    expect((error as ApiError).cause).toMatchObject({ name: 'TimeoutError' });
    expect(client.signedIn).toBe(true);
    expect(events).toEqual([]);
  });
});

describe('GatehouseClient: signing out', () => {
  it('reports its own "sign out everywhere" when a token renewal is refused while it is on its way, not an expiry', async () => {
    const renewalAnswered = deferred();
    const signOutAnswered = deferred();
    const server = new FakeGatehouse();
    // POST /auth/logout-all is held until the renewal has had its answer.
    const fetchHeld: typeof fetch = async (input, init) => {
      const answer = server.fetch(input, init);
      if (urlOf(input).pathname === '/auth/logout-all') await signOutAnswered.promise;
      return answer;
    };
    const { client, events } = clientOf(server, { fetch: fetchHeld });
    await client.login('ada', 'correct horse battery staple');
    events.length = 0;
    server.refresh = async () => {
      await renewalAnswered.promise;
      return json(401, { statusCode: 401, code: 'REFRESH_TOKEN_INVALID', message: 'No session' });
    };

    const signingOut = client.logoutAll();
    const renewal = client.refresh(); // a live connection's renewal, met by the end of every session
    renewalAnswered.resolve();
    expect(await renewal).toBe(false);
    signOutAnswered.resolve();
    await signingOut;

    expect(events).toEqual(['signedout:logout']);
    expect(client.signedIn).toBe(false);
    expect(server.count('POST', '/auth/logout-all')).toBe(1);
  });

  it('stays signed out when a token renewal on its way at the sign-out is answered after it', async () => {
    const { server, client, events } = await signedIn();
    // The renewal reached the server first (a new token for the session), the sign-out ended
    // that session, and the renewal's answer comes last.
    const answerRenewal = holdRenewal(server);

    const renewal = client.refresh(); // a live connection's renewal
    await client.logout();
    expect(events).toEqual(['signedout:logout']);
    answerRenewal();

    expect(await renewal).toBe(false);
    expect(events).toEqual(['signedout:logout']); // no `signedin`: the page does not come back
    expect(client.signedIn).toBe(false);
    expect(server.count('POST', '/auth/refresh')).toBe(1);
    expect(server.count('POST', '/auth/logout')).toBe(1);
  });

  it('takes the session of a sign-in made while an older renewal was on its way, not the renewal', async () => {
    const { server, client, events } = await signedIn();
    const answerRenewal = holdRenewal(server, { sessionOver: true });

    const renewal = client.refresh();
    await client.logout();
    await client.login('ada', 'correct horse battery staple'); // token#2
    answerRenewal(); // token#3, for the session the sign-out ended

    expect(await renewal).toBe(true); // signed in, with the sign-in's token
    expect(events).toEqual(['signedout:logout', 'signedin:this-tab']);
    await expect(client.me()).resolves.toEqual(USER);
    expect(server.log().at(-1)).toBe('GET /users/me token#2');
  });

  it('takes no token another tab got for the session it saw end; a token of another session it takes', async () => {
    const channelName = `gatehouse-test-${process.pid}-${++channels}`;
    const { server, client, events } = await signedIn({ channelName });
    await client.logout(); // ends session s-1
    const otherTab = new BroadcastChannel(channelName);
    const expiresAt = Date.now() + 900_000;
    /** What another tab's client posts when it got a token (BroadcastChannel: no target origin). */
    const tokenFromOtherTab = (sid: string) =>
      // eslint-disable-next-line unicorn/require-post-message-target-origin
      otherTab.postMessage({ type: 'token', accessToken: token(100, sid), expiresAt });
    try {
      // Its refresh was answered before it heard of the sign-out: a token of the ended session.
      tokenFromOtherTab('s-1');
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(client.signedIn).toBe(false);
      expect(events).toEqual(['signedout:logout']);

      // A sign-in in the other tab: a new session, taken.
      tokenFromOtherTab('s-2');
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(client.signedIn).toBe(true);
      expect(events).toEqual(['signedout:logout', 'signedin:other-tab']);
    } finally {
      otherTab.close();
    }
    expect(server.count('POST', '/auth/refresh')).toBe(0);
  });
});

describe('GatehouseClient.start()', () => {
  it.each([401, 403])('resolves false when the refresh answers %i: no session, no event', async (status) => {
    const server = new FakeGatehouse();
    server.refresh = () => json(status, { statusCode: status, code: 'REFRESH_TOKEN_MISSING', message: 'No session' });
    const { client, events } = clientOf(server);

    await expect(client.start()).resolves.toBe(false);

    expect(server.log()).toEqual(['POST /auth/refresh']);
    expect(server.calls[0]?.credentials).toBe('include');
    expect(client.signedIn).toBe(false);
    expect(events).toEqual([]);
  });

  it('resolves true and fires `signedin` when the cookie restores a session; the token is then used', async () => {
    const server = new FakeGatehouse();
    const { client, events } = clientOf(server);

    await expect(client.start()).resolves.toBe(true);
    expect(events).toEqual(['signedin:this-tab']);
    await expect(client.me()).resolves.toEqual(USER);
    await expect(client.start()).resolves.toBe(true); // already signed in: no second refresh

    expect(server.log()).toEqual(['POST /auth/refresh', 'GET /users/me token#1']);
  });

  it('rejects with the ApiError for a passing failure (the session may still be alive)', async () => {
    const server = new FakeGatehouse();
    server.refresh = () =>
      json(503, { statusCode: 503, code: 'SERVICE_UNAVAILABLE', message: 'Try again' }, { 'Retry-After': '5' });
    const { client, events } = clientOf(server);

    const error = await rejectionOf(client.start());

    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 503, code: 'SERVICE_UNAVAILABLE', retryAfter: 5 });
    expect(client.signedIn).toBe(false);
    expect(events).toEqual([]);
  });
});

describe('GatehouseClient without the browser-only APIs', () => {
  /** Sign-in, a 401 with its refresh and retry, a logout: the whole cycle, in one environment. */
  async function fullCycle(options: GatehouseClientOptions = {}) {
    const server = new FakeGatehouse();
    const { client, events } = clientOf(server, options);
    await expect(client.start()).resolves.toBe(true);
    server.expire();
    await expect(client.me()).resolves.toEqual(USER);
    await client.logout();
    expect(server.log()).toEqual([
      'POST /auth/refresh',
      'GET /users/me token#1',
      'POST /auth/refresh',
      'GET /users/me token#2',
      'POST /auth/logout token#2',
    ]);
    expect(events).toEqual(['signedin:this-tab', 'signedout:logout']);
    expect(client.signedIn).toBe(false);
    return client;
  }

  it('works with no Web Locks, no BroadcastChannel and no IndexedDB at all', async () => {
    vi.stubGlobal('navigator', undefined);
    vi.stubGlobal('BroadcastChannel', undefined);
    vi.stubGlobal('indexedDB', undefined);
    const client = await fullCycle();
    expect(() => client.forget()).not.toThrow();
    expect(() => client.close()).not.toThrow();
  });

  it('works with a navigator that has no `locks`, and a BroadcastChannel but no IndexedDB', async () => {
    vi.stubGlobal('navigator', {});
    vi.stubGlobal('indexedDB', undefined);
    expect(typeof BroadcastChannel).toBe('function'); // Node's own: the refresh consults the (missing) note
    await fullCycle();
  });

  it('runs each refresh under the Web Lock when navigator.locks is there', async () => {
    const held: string[] = [];
    let inside = 0;
    const request = async (name: string, callback: () => Promise<boolean>) => {
      held.push(name);
      inside += 1;
      try {
        return await callback();
      } finally {
        inside -= 1;
      }
    };
    vi.stubGlobal('navigator', { locks: { request } });
    const server = new FakeGatehouse();
    const refresh = server.refresh;
    const insideAtRefresh: number[] = [];
    server.refresh = (init) => {
      insideAtRefresh.push(inside);
      return refresh(init);
    };
    const { client } = clientOf(server, { lockName: 'test-lock' });

    await expect(client.start()).resolves.toBe(true);
    server.expire();
    await expect(client.me()).resolves.toEqual(USER);

    expect(held).toEqual(['test-lock', 'test-lock']);
    expect(insideAtRefresh).toEqual([1, 1]);
  });
});
