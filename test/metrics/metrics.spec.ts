import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MetricsServer } from '../../src/metrics/metrics-server.js';
import { ACTIVE_SESSIONS_SAMPLE_MS } from '../../src/metrics/database-metrics.js';
import { enrol, loginMfa, passwordStep, wrongCode, advanceToFreshStep } from '../mfa/mfa-helpers.js';
import { listen, WsClient } from '../realtime/ws-helpers.js';
import { freePort } from '../reliability/support/net.js';
import { onPostgres, ROOMY_LIMITS } from '../support/env.js';
import { bearer, refresh, refreshCookieOf, signup } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { delta, labelSetsOf, parseSamples, sampleKey, type Samples } from './scrape.js';

/**
 * Prometheus metrics (docs/operations.md#metrics) on a real application listening on the
 * loopback, with its metrics endpoint on a port of its own. The FakeClock is frozen: the
 * login back-off never runs out, and the live-session sample moves only with advance().
 */

const HTTP_TOTAL = 'gatehouse_http_requests_total';
const HTTP_COUNT = 'gatehouse_http_request_duration_seconds_count';

/** True when nothing accepts a TCP connection on 127.0.0.1:port. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('metrics endpoint', () => {
  let t: TestApp;
  let metricsPort: number;
  let beforeListen: boolean;
  let address: unknown;
  let wsUrl: string;

  const metricsUrl = (path = '/metrics') => `http://127.0.0.1:${metricsPort}${path}`;
  const scrape = async (): Promise<Samples> => {
    const res = await fetch(metricsUrl());
    expect(res.status).toBe(200);
    return parseSamples(await res.text());
  };

  beforeAll(async () => {
    metricsPort = await freePort();
    t = await startApp({
      ...ROOMY_LIMITS,
      METRICS_PORT: String(metricsPort),
      LOGIN_RATE_LIMIT: '2',
      REFRESH_REUSE_GRACE: '0',
    });
    t.clock.freeze();
    // Initialised but not listening yet: no metrics endpoint either.
    beforeListen = await refused(metricsPort);
    wsUrl = await listen(t);
    address = await t.app.get(MetricsServer).listening();
  });
  afterAll(async () => t?.close());

  it('opens only once the API listens, on METRICS_HOST:METRICS_PORT', async () => {
    expect(beforeListen).toBe(true);
    expect(address).toMatchObject({ address: '127.0.0.1', port: metricsPort });
    expect(await refused(metricsPort)).toBe(false);
  });

  it('serves GET /metrics in the text format with the registry content type; HEAD without a body', async () => {
    const res = await fetch(metricsUrl());
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    expect(text).toContain('# TYPE gatehouse_http_requests_total counter');
    expect(text).toContain('# TYPE gatehouse_http_request_duration_seconds histogram');
    expect(text).toContain('# TYPE gatehouse_active_sessions gauge');
    const head = await fetch(metricsUrl(), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    // A query string does not matter.
    expect((await fetch(metricsUrl('/metrics?x=1'))).status).toBe(200);
  });

  it('answers 404 in plain text on any other path, 405 to other methods', async () => {
    for (const path of ['/', '/metrics/', '/health', '/metricsx']) {
      const res = await fetch(metricsUrl(path));
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(await res.text()).toBe('Not Found\n');
    }
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const res = await fetch(metricsUrl(), { method });
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe('GET, HEAD');
      await res.arrayBuffer();
    }
  });

  it('is never served on the API port: GET /metrics there is the API 404 error body', async () => {
    const res = await t.http.get('/metrics').expect(404);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toMatchObject({ statusCode: 404, code: 'NOT_FOUND' });
    expect(Object.keys(res.body).sort()).toEqual(['code', 'error', 'message', 'statusCode']);
  });

  it('includes the process metrics under their standard names, event-loop lag among them', async () => {
    const samples = await scrape();
    for (const name of [
      'nodejs_eventloop_lag_seconds',
      'nodejs_eventloop_lag_p99_seconds',
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
    ]) {
      expect({ name, present: samples.has(sampleKey(name)) }).toEqual({ name, present: true });
    }
  });

  it('counts every answer by method, route pattern and status: 2xx, guard 401s, 404s, body-parser 400s, static files', async () => {
    const before = await scrape();
    const u = await signup(t);
    await t.http.get('/users/me').set(u.auth).expect(200);
    await t.http.get('/users/me').expect(401);
    const missing = '00000000-0000-4000-8000-000000000000';
    await t.http.get(`/resources/${missing}`).set(u.auth).expect(404);
    await t.http.get(`/no/such/path/${missing}`).expect(404);
    await t.http.post('/auth/login').set('Content-Type', 'application/json').send('{"username":').expect(400);
    await t.http.post(`/no/such/path`).set('Content-Type', 'application/json').send('{').expect(400);
    await t.http.get('/docs/swagger-ui.css').expect(200);
    await t.http.get('/health').expect(200);
    const after = await scrape();

    const expected: Array<[string, string, number]> = [
      ['POST', '/auth/signup', 201],
      ['GET', '/users/me', 200],
      ['GET', '/users/me', 401],
      ['GET', '/resources/:id', 404],
      ['GET', 'unmatched', 404],
      ['POST', '/auth/login', 400],
      ['POST', 'unmatched', 400],
      ['GET', 'static', 200],
      ['GET', '/health', 200],
    ];
    for (const [method, route, status] of expected) {
      const labels = { method, route, status };
      expect({ labels, requests: delta(before, after, HTTP_TOTAL, labels) }).toEqual({ labels, requests: 1 });
      expect({ labels, timed: delta(before, after, HTTP_COUNT, labels) }).toEqual({ labels, timed: 1 });
    }
    // Nothing else moved: the scrapes themselves are not API requests.
    const moved = [...after].filter(([k, v]) => k.startsWith(`${HTTP_TOTAL}{`) && v !== (before.get(k) ?? 0));
    expect(moved).toHaveLength(expected.length);
    // Never a raw path: no id, no unknown path in any label.
    const text = [...after.keys()].join('\n');
    expect(text).not.toContain(missing);
    expect(text).not.toContain('/no/such');
  });

  it('keeps the label values bounded: unusual methods are `other`, a route path with a method it does not take is `unmatched`', async () => {
    const before = await scrape();
    const id = '00000000-0000-4000-8000-000000000000';
    // Refused before routing (415, 400): a client must not add a series per method and route.
    for (const method of ['MERGE', 'PROPFIND', 'MKCOL', 'REPORT']) {
      await t.http[method.toLowerCase() as 'merge'](`/users/${id}`).set('Content-Type', 'text/plain').send('x');
    }
    await t.http.put(`/users/${id}`).set('Content-Type', 'application/json').send('{');
    await t.http.post('/auth/refresh').set('Content-Type', 'text/plain').send('x');
    const after = await scrape();
    const moved = [...after]
      .filter(([k, v]) => k.startsWith(`${HTTP_TOTAL}{`) && v !== (before.get(k) ?? 0))
      .map(([k]) => k);
    const methods = new Set(moved.map((k) => /method=([^,}]*)/.exec(k)?.[1]));
    expect(methods).toEqual(new Set(['POST', 'PUT', 'other']));
    expect(delta(before, after, HTTP_TOTAL, { method: 'other', route: 'unmatched', status: 415 })).toBe(4);
    expect(moved.filter((k) => k.includes('method=PUT'))).toEqual([
      sampleKey(HTTP_TOTAL, { method: 'PUT', route: 'unmatched', status: 400 }),
    ]);
    // A route's own method keeps its pattern.
    expect(delta(before, after, HTTP_TOTAL, { method: 'POST', route: '/auth/refresh', status: 415 })).toBe(1);
  });

  it('times requests in the histogram: cumulative buckets from 5 ms to 2.5 s, +Inf equal to the count', async () => {
    const samples = await scrape();
    const labels = { method: 'POST', route: '/auth/signup', status: '201' };
    const name = 'gatehouse_http_request_duration_seconds';
    const bounds = ['0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '+Inf'];
    const buckets = bounds.map((le) => samples.get(sampleKey(`${name}_bucket`, { ...labels, le })));
    expect(buckets.every((b) => typeof b === 'number')).toBe(true);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!).toBeGreaterThanOrEqual(buckets[i - 1]!);
    const count = samples.get(sampleKey(`${name}_count`, labels))!;
    expect(count).toBeGreaterThan(0);
    expect(buckets.at(-1)).toBe(count);
    expect(samples.get(sampleKey(`${name}_sum`, labels))!).toBeGreaterThan(0);
    expect(labelSetsOf(samples, `${name}_bucket`).filter((l) => l.includes('le=5,'))).toEqual([]);
  });

  it('counts sign-in outcomes: succeeded, failed, throttled, and the two-step ones', async () => {
    const before = await scrape();
    for (const outcome of ['succeeded', 'failed', 'throttled', 'mfa_required', 'mfa_succeeded', 'mfa_failed']) {
      expect({ outcome, present: before.has(sampleKey('gatehouse_logins_total', { outcome })) }).toEqual({
        outcome,
        present: true,
      });
    }
    const u = await signup(t);
    await t.http.post('/auth/login').send({ username: u.username, password: u.password }).expect(200);
    // LOGIN_RATE_LIMIT=2: two wrong passwords, then the back-off (the clock is frozen).
    const guesser = await signup(t);
    for (let i = 0; i < 2; i++) {
      await t.http.post('/auth/login').send({ username: guesser.username, password: 'wrong password!' }).expect(401);
    }
    for (let i = 0; i < 3; i++) {
      await t.http.post('/auth/login').send({ username: guesser.username, password: 'wrong password!' }).expect(429);
    }
    // Two-step sign-in: the password step, a wrong code, then the right one.
    const m = await enrol(t);
    const mfaToken = await passwordStep(t, m);
    await loginMfa(t, mfaToken, { code: wrongCode(t, m.secret) }).expect(401);
    await loginMfa(t, mfaToken, { code: advanceToFreshStep(t, m.secret) }).expect(200);
    const after = await scrape();
    const logins = (outcome: string) => delta(before, after, 'gatehouse_logins_total', { outcome });
    expect({
      succeeded: logins('succeeded'),
      failed: logins('failed'),
      throttled: logins('throttled'),
      mfa_required: logins('mfa_required'),
      mfa_succeeded: logins('mfa_succeeded'),
      mfa_failed: logins('mfa_failed'),
    }).toEqual({ succeeded: 1, failed: 2, throttled: 3, mfa_required: 1, mfa_succeeded: 1, mfa_failed: 1 });
    expect(delta(before, after, HTTP_TOTAL, { method: 'POST', route: '/auth/login', status: 429 })).toBe(3);
    expect(delta(before, after, HTTP_TOTAL, { method: 'POST', route: '/auth/login/mfa', status: 401 })).toBe(1);
  });

  it('counts refreshes by outcome and refresh-token reuse', async () => {
    const before = await scrape();
    const u = await signup(t);
    const rotated = await refresh(t, u.refreshToken).expect(200);
    await refresh(t, refreshCookieOf(rotated)!).expect(200);
    // REFRESH_REUSE_GRACE=0: the first token again is reuse (the session is revoked).
    await refresh(t, u.refreshToken).expect(401);
    await refresh(t, 'A'.repeat(43)).expect(401);
    await t.http.post('/auth/refresh').expect(401);
    const after = await scrape();
    const refreshes = (outcome: string) => delta(before, after, 'gatehouse_token_refreshes_total', { outcome });
    expect({
      rotated: refreshes('rotated'),
      refused: refreshes('refused'),
      throttled: refreshes('throttled'),
      error: refreshes('error'),
    }).toEqual({ rotated: 2, refused: 3, throttled: 0, error: 0 });
    expect(delta(before, after, 'gatehouse_refresh_reuse_detected_total')).toBe(1);
    expect(delta(before, after, HTTP_TOTAL, { method: 'POST', route: '/auth/refresh', status: 401 })).toBe(3);
  });

  it('samples live sessions: one count per interval, shared by concurrent scrapes, then the new number', async () => {
    const live = () =>
      t.prisma.session.count({
        where: { revokedAt: null, expiresAt: { gt: t.clock.now() }, absoluteExpiresAt: { gt: t.clock.now() } },
      });
    t.clock.advance(ACTIVE_SESSIONS_SAMPLE_MS / 1000);
    const first = (await scrape()).get(sampleKey('gatehouse_active_sessions'));
    expect(first).toBe(await live());
    expect(first).toBeGreaterThan(0);

    const a = await signup(t);
    await signup(t);
    await t.http.post('/auth/logout').set(bearer(a.accessToken)).expect(204);
    // Within the interval: the cached count, no query.
    const count = vi.spyOn(t.prisma.session, 'count');
    try {
      t.clock.advance(ACTIVE_SESSIONS_SAMPLE_MS / 1000 - 1);
      expect((await scrape()).get(sampleKey('gatehouse_active_sessions'))).toBe(first);
      expect(count).not.toHaveBeenCalled();
      t.clock.advance(1);
      const scrapes = await Promise.all([scrape(), scrape(), scrape()]);
      expect(count).toHaveBeenCalledTimes(1);
      for (const s of scrapes) expect(s.get(sampleKey('gatehouse_active_sessions'))).toBe(first! + 1);
    } finally {
      count.mockRestore();
    }
    expect(await live()).toBe(first! + 1);
  });

  it(`reports the PostgreSQL pool's connections (${onPostgres ? 'PostgreSQL' : 'PGlite: absent'})`, async () => {
    const samples = await scrape();
    const state = (s: string) => samples.get(sampleKey('gatehouse_db_pool_connections', { state: s }));
    const [total, idle, waiting] = [state('total'), state('idle'), state('waiting')];
    // At most the pool's 10, at least the one the live-session count used; idle among them.
    const consistent = total === undefined || (total >= 1 && total <= 10 && idle !== undefined && idle <= total);
    expect({ states: labelSetsOf(samples, 'gatehouse_db_pool_connections').sort(), waiting, consistent }).toEqual(
      onPostgres
        ? { states: ['{state=idle}', '{state=total}', '{state=waiting}'], waiting: 0, consistent: true }
        : { states: [], waiting: undefined, consistent: true },
    );
  });

  it('reports open WebSocket connections', async () => {
    const gauge = async () => (await scrape()).get(sampleKey('gatehouse_websocket_connections'));
    const before = await gauge();
    expect(before).toBe(0);
    const ws = await WsClient.open(wsUrl);
    try {
      expect(await gauge()).toBe(1);
    } finally {
      ws.ws.terminate();
    }
    await expect.poll(gauge).toBe(0);
  });
});
