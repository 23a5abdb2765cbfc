// Browser-test harness: builds the app, runs the real server (`node dist/main.js`) as a
// child process, serves a page from a foreign origin, and drives Debian's Chromium
// through playwright-core. Used by test/browser/*.spec.ts (`npm run test:browser`).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const SCREENSHOTS = join(ROOT, 'test', 'browser', 'screenshots');
export const CHROMIUM = '/usr/bin/chromium';
/** Seconds; short so that the tests can wait an access token out. */
export const ACCESS_TOKEN_TTL = 4;

export { sleep };

export async function freePort(): Promise<number> {
  const server = createNetServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/**
 * `npm run build` (server and browser client), once per run. BROWSER_TEST_NO_BUILD=1 skips
 * it, for re-running the tests against an unchanged dist/.
 */
export function build(): void {
  if (process.env.BROWSER_TEST_NO_BUILD === '1') return;
  const result = spawnSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(`npm run build failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  }
}

export interface Gatehouse {
  /** http://localhost:PORT: the app's own origin, the only one in CORS_ORIGINS. */
  origin: string;
  /** The server's DATA_DIR (a fresh temporary directory, removed by stop()). */
  dataDir: string;
  output(): string;
  stop(): Promise<void>;
}

export interface GatehouseOptions {
  /** Added to (or replacing) the server's environment, e.g. MAIL_OUTBOX_DIR. */
  env?: Record<string, string>;
}

export async function startGatehouse(options: GatehouseOptions = {}): Promise<Gatehouse> {
  const port = await freePort();
  const origin = `http://localhost:${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-browser-'));
  let output = '';
  // A clean environment: nothing from the caller's shell (DATABASE_URL, REDIS_URL, JWT_* ...) leaks in.
  const child: ChildProcess = spawn(process.execPath, ['dist/main.js'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL: 'memory://',
      DATA_DIR: dataDir,
      ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL),
      BCRYPT_COST: '4',
      LOG_LEVEL: 'warn',
      CORS_ORIGINS: origin,
      ...options.env,
    },
  });
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, 'exit');

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`the server exited with ${child.exitCode}:\n${output}`);
    }
    try {
      const res = await fetch(`${origin}/health`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the server did not become healthy in 90 s:\n${output}`);
    }
    await sleep(100);
  }
  return { origin, dataDir, output: () => output, stop };
}

/** A page on another origin (not in CORS_ORIGINS) whose script calls the API with credentials. */
export interface ForeignSite {
  origin: string;
  close(): Promise<void>;
}

export async function startForeignSite(apiOrigin: string): Promise<ForeignSite> {
  const port = await freePort();
  const origin = `http://localhost:${port}`;
  const page = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Elsewhere</title></head>
<body><h1>Another site</h1><script>
const api = ${JSON.stringify(apiOrigin)};
const probes = {};
async function probe(name, path, init) {
  try {
    const res = await fetch(api + path, { credentials: 'include', ...init });
    probes[name] = { read: true, status: res.status, body: await res.text() };
  } catch (error) {
    probes[name] = { read: false, error: String(error) };
  }
}
(async () => {
  await probe('health', '/health');
  await probe('refresh', '/auth/refresh', { method: 'POST' });
  await probe('me', '/users/me');
  await probe('sessions', '/auth/sessions');
  await probe('signup', '/auth/signup', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'foreign_probe', password: 'correct horse battery' }),
  });
  window.__probes = probes;
  document.body.dataset.done = 'true';
})();
</script></body></html>`;
  const server: Server = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(page);
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return {
    origin,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

// Runs before any page script (injected over CDP, so the page's CSP does not apply to it).
const WATCH_CSP = `
  window.__cspViolations = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || '(inline)'));
  });
`;

/**
 * Takes WebSocket away from the pages of a context (before any page script runs): the client
 * then works without live events (web/src/realtime.ts), as in a browser or network without
 * WebSockets. For tests of what the page does by itself when its access token runs out, or
 * when its session ended elsewhere: a live connection renews the token before it expires, and
 * hears of a revoked session at once (test/browser/realtime.spec.ts).
 */
export async function withoutLiveUpdates(context: BrowserContext): Promise<BrowserContext> {
  await context.addInitScript({ content: 'window.WebSocket = undefined;' });
  return context;
}

export async function newContext(browser: Browser, options: BrowserContextOptions = {}): Promise<BrowserContext> {
  const context = await browser.newContext(options);
  await context.addInitScript({ content: WATCH_CSP });
  return context;
}

export interface Exchange {
  method: string;
  path: string;
  status: number;
}

/** A page with a record of what it did: requests, responses, errors. */
export interface Tab {
  page: Page;
  /** Every request the page sent, as "METHOD /path". */
  requests: string[];
  responses: Exchange[];
  pageErrors: string[];
  consoleErrors: string[];
}

export function watch(page: Page): Tab {
  const tab: Tab = { page, requests: [], responses: [], pageErrors: [], consoleErrors: [] };
  page.on('request', (request) => tab.requests.push(`${request.method()} ${new URL(request.url()).pathname}`));
  page.on('response', (response) =>
    tab.responses.push({
      method: response.request().method(),
      path: new URL(response.url()).pathname,
      status: response.status(),
    }),
  );
  page.on('pageerror', (error) => tab.pageErrors.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') tab.consoleErrors.push(message.text());
  });
  return tab;
}

export function screenshotPath(name: string): string {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return join(SCREENSHOTS, name);
}
