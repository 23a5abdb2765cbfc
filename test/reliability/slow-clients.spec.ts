// Scenario 6 — slow clients. 200 connections trickle one byte every 200 ms: 100 never finish
// their headers, 100 send headers and then a body that never completes. Meanwhile a normal
// client's GET /health stays fast, and the server's timeouts (headersTimeout 10 s,
// requestTimeout 30 s in src/main.ts) eventually cut every trickler.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseEnv, killAll, sharedSecrets, startApp, type AppProcess } from './support/app.js';
import { call, keepAliveAgent, type Outcome } from './support/http.js';
import { percentile, round, sleep } from './support/net.js';
import { trickle, type Trickler } from './support/raw.js';
import { freshSharedDatabase } from './support/shared-db.js';
import { signupAccount } from './support/users.js';

const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** How late after its timeout a connection may be cut (Node checks timeouts periodically). */
const CUT_SLACK_MS = 5_000;

let app: AppProcess;

beforeAll(async () => {
  const databaseUrl = await freshSharedDatabase('slow');
  app = await startApp(baseEnv({ DATABASE_URL: databaseUrl, MIGRATE_ON_START: 'true', ...sharedSecrets() }));
});

afterAll(() => {
  killAll();
  app?.cleanup();
});

describe('slow clients', () => {
  it('200 trickling connections neither slow down a normal client nor stay open past the server timeouts', async () => {
    const user = await signupAccount(app.url, 'slow');
    const host = `Host: 127.0.0.1:${app.port}\r\n`;
    const maxMs = REQUEST_TIMEOUT_MS + CUT_SLACK_MS + 10_000;
    const headerTricklers: Trickler[] = [];
    const bodyTricklers: Trickler[] = [];
    for (let i = 0; i < 100; i++) {
      headerTricklers.push(trickle(app.port, `GET /health HTTP/1.1\r\n${host}X-Slow: ${'h'.repeat(400)}`, 200, maxMs));
      bodyTricklers.push(
        trickle(
          app.port,
          `{"username":"${'b'.repeat(3960)}`,
          200,
          maxMs,
          `POST /auth/login HTTP/1.1\r\n${host}Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n`,
        ),
      );
    }
    await sleep(1_000);

    // The normal client, while all 200 trickle (before the first cut at headersTimeout):
    // GET /health every 50 ms for 8 s, and a login every 10th time. Its latencies include this
    // test process's own work of feeding 200 sockets a byte every 200 ms.
    const agent = keepAliveAgent(4);
    const health: Outcome[] = [];
    const logins: Outcome[] = [];
    const until = performance.now() + 8_000;
    let n = 0;
    while (performance.now() < until) {
      n += 1;
      health.push(await call(app.url, 'GET', '/health', { agent, timeoutMs: 10_000 }));
      if (n % 10 === 0)
        logins.push(
          await call(app.url, 'POST', '/auth/login', {
            json: { username: user.username, password: user.password },
            agent,
            timeoutMs: 10_000,
          }),
        );
      await sleep(50);
    }
    agent.destroy();

    const [headerEnds, bodyEnds] = await Promise.all([
      Promise.all(headerTricklers.map((t) => t.ended)),
      Promise.all(bodyTricklers.map((t) => t.ended)),
    ]);
    const latencies = health.map((o) => o.ms);
    const cut = (ends: typeof headerEnds) => ends.filter((e) => e.how !== 'timeout');
    const summary = {
      slow_connections: headerTricklers.length + bodyTricklers.length,
      normal_requests: health.length + logins.length,
      normal_non_2xx: [...health, ...logins].filter((o) => o.status !== 200).length,
      health_p50_ms: round(percentile(latencies, 50)),
      health_p99_ms: round(percentile(latencies, 99)),
      health_max_ms: round(Math.max(...latencies)),
      login_max_ms: round(Math.max(...logins.map((o) => o.ms))),
      header_tricklers_cut: `${cut(headerEnds).length}/100 after ${round(Math.min(...headerEnds.map((e) => e.ms)) / 1000, 1)}–${round(Math.max(...headerEnds.map((e) => e.ms)) / 1000, 1)} s (${[...new Set(headerEnds.map((e) => e.response.split('\r\n')[0] || e.how))].join(', ')})`,
      body_tricklers_cut: `${cut(bodyEnds).length}/100 after ${round(Math.min(...bodyEnds.map((e) => e.ms)) / 1000, 1)}–${round(Math.max(...bodyEnds.map((e) => e.ms)) / 1000, 1)} s (${[...new Set(bodyEnds.map((e) => e.response.split('\r\n')[0] || e.how))].join(', ')})`,
      alive: !app.dead,
    };
    console.log(`[slow-clients] ${JSON.stringify(summary)}`);

    expect([...health, ...logins].filter((o) => o.status !== 200).map((o) => o.status ?? o.error)).toEqual([]);
    expect(health.length).toBeGreaterThan(40);
    expect(percentile(latencies, 99)).toBeLessThan(500);
    // Every trickler was cut by the server, not left to our own deadline, and in time.
    expect(cut(headerEnds).length).toBe(100);
    expect(cut(bodyEnds).length).toBe(100);
    expect(Math.max(...headerEnds.map((e) => e.ms))).toBeLessThan(HEADERS_TIMEOUT_MS + CUT_SLACK_MS);
    expect(Math.max(...bodyEnds.map((e) => e.ms))).toBeLessThan(REQUEST_TIMEOUT_MS + CUT_SLACK_MS);
    // Not before their time either: the timeouts cut slow clients, not merely slow networks.
    expect(Math.min(...headerEnds.map((e) => e.ms))).toBeGreaterThan(HEADERS_TIMEOUT_MS - 1_000);
    // Each is told why before the close: 408 REQUEST_TIMEOUT in the contract's shape when the
    // request being answered is known not to be HEAD (its headers were received: the body
    // tricklers); with no body at all when it is not known (the header tricklers: the server
    // cannot tell a HEAD, to which a body must not be sent).
    const answers = (ends: typeof headerEnds) => [...new Set(ends.map((e) => e.response || e.how))];
    expect(answers(headerEnds)).toEqual([
      'HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
    ]);
    const body = JSON.stringify({
      statusCode: 408,
      error: 'Request Timeout',
      message: 'The request was not received in time',
      code: 'REQUEST_TIMEOUT',
    });
    expect(answers(bodyEnds)).toEqual([
      'HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    ]);
    expect(app.dead).toBe(false);
    expect((await call(app.url, 'GET', '/health')).status).toBe(200);
  });
});
