// Live events in the browser client (web/src/realtime.ts, views/live-view.ts), in real Chromium
// against the real server: two browser contexts (two "browsers", each with its own cookie jar)
// signed in as the same user. A sign-in on the second shows a notice on the first; resources
// created, changed and deleted over HTTP show up in the list without a reload; "Sign out
// everywhere" on the second closes the first's socket with 4410 and sends it to the login form
// with no action there; a role change closes it with 4401 and the page reconnects on its own,
// subscribed again to the tenant it works in.
// The reconnection backoff and a final close are driven through a mocked socket.
// `npm run test:browser`; needs /usr/bin/chromium (Debian's `chromium` package).
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  build,
  launchChromium,
  newContext,
  sleep,
  startGatehouse,
  watch,
  type Gatehouse,
  type Tab,
} from './harness.js';

const PASSWORD = 'correct horse battery staple';
const ADMIN = 'live_admin';
const SAFARI_ON_MAC =
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15';

/**
 * Runs before the page's scripts: records each WebSocket the page opens (URL, subprotocol, the
 * events received with their data's id, the close's code and reason), listening before the page does.
 */
const RECORD_SOCKETS = `{
  const Native = window.WebSocket;
  const sockets = (window.__sockets = []);
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      const record = { url: String(url), protocol: null, received: [], close: null };
      sockets.push(record);
      this.addEventListener('open', () => { record.protocol = this.protocol; });
      this.addEventListener('message', (e) => {
        try {
          const m = JSON.parse(e.data);
          record.received.push({ event: m.event, id: (m.data && m.data.id) || null });
        } catch {
          record.received.push({ event: '(not JSON)', id: null });
        }
      });
      this.addEventListener('close', (e) => { record.close = { code: e.code, reason: e.reason }; });
    }
  };
}`;

interface SocketRecord {
  url: string;
  protocol: string | null;
  received: Array<{ event: string; id: string | null }>;
  close: { code: number; reason: string } | null;
}

let gatehouse: Gatehouse;
let browser: Browser;
const contexts: BrowserContext[] = [];
let counter = 0;

const uniqueName = (prefix: string) => `${prefix}_${Date.now().toString(36)}${(counter++).toString(36)}`;

/** A new "browser": its own cookie jar, storage and channel; its sockets recorded unless `record` is false. */
async function context(options: Parameters<typeof newContext>[1] = {}, record = true): Promise<BrowserContext> {
  const c = await newContext(browser, { viewport: { width: 1000, height: 900 }, ...options });
  if (record) await c.addInitScript({ content: RECORD_SOCKETS });
  contexts.push(c);
  return c;
}

async function open(ctx: BrowserContext): Promise<Tab> {
  const tab = watch(await ctx.newPage());
  await tab.page.goto(gatehouse.origin + '/');
  await tab.page.locator('#loading-view').waitFor({ state: 'hidden' });
  return tab;
}

const visible = (tab: Tab, selector: string) =>
  tab.page.locator(selector).waitFor({ state: 'visible', timeout: 15_000 });
const text = async (tab: Tab, selector: string) => ((await tab.page.locator(selector).textContent()) ?? '').trim();
const sockets = (tab: Tab) => tab.page.evaluate('window.__sockets') as Promise<SocketRecord[]>;
/** The page's live connection is authenticated (`auth.ok`). */
const live = (tab: Tab) => tab.page.locator('#app-view[data-live="live"]').waitFor({ timeout: 15_000 });

/**
 * Resolves once a socket of the page has received `event` (about `id`, when given); with
 * `after`, a socket opened after the first `after` ones.
 */
async function received(tab: Tab, event: string, { id, after = 0 }: { id?: string; after?: number } = {}) {
  await tab.page.waitForFunction(
    ([name, about, skip]) =>
      (window as unknown as { __sockets: SocketRecord[] }).__sockets
        .slice(skip as number)
        .some((s) => s.received.some((r) => r.event === name && (about === null || r.id === about))),
    [event, id ?? null, after] as const,
    { timeout: 15_000 },
  );
}

async function signUp(tab: Tab, username: string): Promise<void> {
  const { page } = tab;
  await page.getByRole('link', { name: 'Create an account' }).click();
  await visible(tab, '#signup-view');
  await page.locator('#signup-form').getByLabel('Username', { exact: true }).fill(username);
  await page.locator('#signup-form').getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await visible(tab, '#app-view');
  await page.locator('#profile-username', { hasText: username }).waitFor();
}

async function logIn(tab: Tab, username: string): Promise<void> {
  await tab.page.locator('#login-form').getByLabel('Username or email').fill(username);
  await tab.page.locator('#login-form').getByLabel('Password').fill(PASSWORD);
  await tab.page.getByRole('button', { name: 'Sign in' }).click();
  await visible(tab, '#app-view');
}

type Json = Record<string, unknown>;

/** A bearer call of the API, from outside the browsers. */
async function api(
  method: string,
  path: string,
  token: string | null,
  body?: unknown,
  extraHeaders: Record<string, string> = {},
): Promise<{ status: number; body: Json }> {
  const headers: Record<string, string> = { ...extraHeaders };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(gatehouse.origin + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const raw = await res.text();
  return { status: res.status, body: (raw ? JSON.parse(raw) : {}) as Json };
}

/** A session of `username` opened over the API (another device, as far as the pages know). */
async function apiLogin(username: string): Promise<{ token: string; userId: string }> {
  const res = await api('POST', '/auth/login', null, { username, password: PASSWORD });
  expect(res.status).toBe(200);
  const { accessToken, user } = res.body as { accessToken: string; user: { id: string } };
  return { token: accessToken, userId: user.id };
}

/** No CSP violation (the socket included), no uncaught error, no console error but Chromium's line for a 4xx. */
async function expectClean(tab: Tab): Promise<void> {
  expect(await tab.page.evaluate('window.__cspViolations')).toEqual([]);
  expect(tab.pageErrors).toEqual([]);
  const unexpected = tab.consoleErrors.filter(
    (m) => !/^Failed to load resource: the server responded with a status of 4\d\d /.test(m),
  );
  expect(unexpected).toEqual([]);
}

describe('live events in the browser client', () => {
  beforeAll(async () => {
    build();
    gatehouse = await startGatehouse({ env: { ADMIN_USERNAME: ADMIN, ADMIN_PASSWORD: PASSWORD } });
    browser = await launchChromium();
  }, 300_000);

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await gatehouse?.stop();
  }, 60_000);

  it('shows a sign-in on another device, and resources created, changed and deleted over HTTP, without a reload', async () => {
    const username = uniqueName('live');
    const laptop = await open(await context());
    await signUp(laptop, username);
    await live(laptop);
    // On the page's own host, with the subprotocol; the token goes in a message, not in the URL.
    const [first] = await sockets(laptop);
    expect(first).toMatchObject({ url: `${gatehouse.origin.replace(/^http/, 'ws')}/ws`, protocol: 'gatehouse.v1' });
    expect(first?.received[0]?.event).toBe('auth.ok');

    // The same account in a second browser: the first is told, in its live region.
    const phone = await open(await context({ userAgent: SAFARI_ON_MAC }));
    await logIn(phone, username);
    const notice = laptop.page.locator('#live-notices .live-notice', { hasText: 'Signed in on a new device' });
    await notice.waitFor({ timeout: 15_000 });
    expect(await notice.textContent()).toMatch(/^Signed in on a new device: Safari on macOS, from \S+, at /);
    expect(await laptop.page.getAttribute('#live-notices', 'role')).toBe('status');
    expect(await laptop.page.getAttribute('#live-notices', 'aria-live')).toBe('polite');
    await live(phone);
    // Its own sign-in is no news to the phone.
    expect(await phone.page.locator('#live-notices .live-notice').count()).toBe(0);
    // Dismissed, it is gone; focus goes back to the page's heading.
    await notice.getByRole('button', { name: 'Dismiss this notice' }).click();
    await notice.waitFor({ state: 'detached' });
    expect(await laptop.page.evaluate('document.activeElement.id')).toBe('app-title');

    // A resource made over HTTP (a third session, from outside the browsers) appears in both lists.
    const { token } = await apiLogin(username);
    laptop.requests.length = 0;
    phone.requests.length = 0;
    const created = await api('POST', '/resources', token, {
      title: 'Made elsewhere',
      body: 'Over HTTP',
      visibility: 'private',
    });
    expect(created.status).toBe(201);
    const item = (tab: Tab) => tab.page.locator(`#resource-list > li[data-id="${String(created.body.id)}"]`);
    for (const tab of [laptop, phone]) {
      await item(tab).locator('h3', { hasText: 'Made elsewhere' }).waitFor({ timeout: 15_000 });
      expect(await item(tab).locator('.item-body').textContent()).toBe('Over HTTP');
      expect(await tab.page.isVisible('#resources-empty')).toBe(false);
      // Marked, to tell a redraw in place from a reload of the list (which makes new items).
      await item(tab).evaluate((li) => ((li as HTMLElement).dataset.mark = 'same item'));
    }
    await laptop.page.locator('#announcer', { hasText: 'New resource: “Made elsewhere”.' }).waitFor();

    // Changed over HTTP: redrawn in place.
    const patched = await api('PATCH', `/resources/${String(created.body.id)}`, token, {
      title: 'Renamed elsewhere',
      visibility: 'public',
    });
    expect(patched.status).toBe(200);
    for (const tab of [laptop, phone]) {
      await item(tab).locator('h3', { hasText: 'Renamed elsewhere' }).waitFor({ timeout: 15_000 });
      expect(await item(tab).locator('.badge').textContent()).toBe('Public');
      expect(await item(tab).getAttribute('data-mark')).toBe('same item');
    }
    await laptop.page.locator('#announcer', { hasText: '“Renamed elsewhere” was changed.' }).waitFor();

    // Deleted over HTTP: taken out, and the list says it is empty.
    expect((await api('DELETE', `/resources/${String(created.body.id)}`, token)).status).toBe(204);
    for (const tab of [laptop, phone]) {
      await item(tab).waitFor({ state: 'detached', timeout: 15_000 });
      await visible(tab, '#resources-empty');
    }
    await laptop.page.locator('#announcer', { hasText: '“Renamed elsewhere” was deleted.' }).waitFor();
    expect(phone.page.url()).toBe(`${gatehouse.origin}/`);

    // Made in the laptop's own form: listed once there (its event finds it listed), live on the phone.
    await laptop.page.locator('#resource-title').fill('From the laptop');
    await laptop.page.getByRole('button', { name: 'Create resource' }).click();
    const mine = phone.page.locator('#resource-list > li', { hasText: 'From the laptop' });
    await mine.waitFor({ timeout: 15_000 });
    const mineId = (await mine.getAttribute('data-id')) ?? '';
    await received(laptop, 'resource.created', { id: mineId });
    expect(await laptop.page.locator('#resource-list > li', { hasText: 'From the laptop' }).count()).toBe(1);

    // Signing out closes the socket; no other one is opened.
    await laptop.page.locator('#account-bar').getByRole('button', { name: 'Sign out' }).click();
    await visible(laptop, '#login-view');
    expect(await text(laptop, '#login-notice')).toBe('You have signed out.');
    await laptop.page.waitForFunction(() =>
      (window as unknown as { __sockets: SocketRecord[] }).__sockets.every((s) => s.close !== null),
    );
    const opened = (await sockets(laptop)).length;
    await sleep(1_500); // longer than the first reconnection delay could be
    expect((await sockets(laptop)).length).toBe(opened);
    expect(await laptop.page.getAttribute('#app-view', 'data-live')).toBe('off');
    expect(await laptop.page.locator('#live-notices > *').count()).toBe(0);
    // The phone's session lives on.
    expect(await phone.page.isVisible('#app-view')).toBe(true);
    for (const tab of [laptop, phone]) await expectClean(tab);
  });

  it('"Sign out everywhere" in one browser closes the other\'s socket with 4410: its login form shows, no retry', async () => {
    const username = uniqueName('everywhere');
    const laptop = await open(await context());
    await signUp(laptop, username);
    await live(laptop);
    const phone = await open(await context({ userAgent: SAFARI_ON_MAC }));
    await logIn(phone, username);
    await live(phone);

    // The laptop renews its token (ACCESS_TOKEN_TTL is 4 s here) about every 3 s: a renewal that
    // met the end first would sign it out by its refresh's 401 and close its socket itself (1000).
    // Just after one, the next is seconds away, so the end reaches the laptop by its socket.
    await laptop.page.waitForResponse((r) => r.url().endsWith('/auth/refresh') && r.ok(), { timeout: 15_000 });
    const beforeEnd = laptop.requests.length;
    await phone.page.getByRole('button', { name: 'Sign out everywhere' }).click();
    await visible(phone, '#login-view');
    // The phone asked for it: its own socket's 4410 is its own sign-out.
    expect(await text(phone, '#login-notice')).toBe('You have signed out.');

    // The laptop, untouched, is on its login form at once.
    await visible(laptop, '#login-view');
    expect(await text(laptop, '#login-notice')).toBe('Your session has ended. Please sign in again.');
    expect(await laptop.page.isVisible('#app-view')).toBe(false);
    expect(await laptop.page.isVisible('#account-bar')).toBe(false);
    expect(await text(laptop, '#whoami')).toBe('');
    expect(laptop.requests.slice(beforeEnd)).toEqual([]);
    const closed = await sockets(laptop);
    expect(closed.at(-1)?.close).toEqual({ code: 4410, reason: 'SESSION_REVOKED' });
    expect(closed.every((s) => s.close !== null)).toBe(true);
    // No retry: no new socket, no refresh, after more than the first backoff's longest delay.
    const requests = laptop.requests.length;
    await sleep(1_500);
    expect((await sockets(laptop)).length).toBe(closed.length);
    expect(laptop.requests.slice(requests)).toEqual([]);
    expect(await laptop.page.getAttribute('#app-view', 'data-live')).toBe('off');
    // The session is gone on the server too: a reload stays signed out.
    await laptop.page.reload();
    await visible(laptop, '#login-view');
    for (const tab of [laptop, phone]) await expectClean(tab);
  });

  it('reconnects on its own after a 4401 (a role change ends every token): still signed in, subscribed again, still live', async () => {
    const username = uniqueName('promoted');
    const laptop = await open(await context());
    await signUp(laptop, username);
    await live(laptop);
    // Working in a tenant: the page subscribes to its topic, and lists its resources only.
    const slug = `live-${Date.now().toString(36)}${(counter++).toString(36)}`;
    const form = laptop.page.locator('#tenant-form');
    await form.getByLabel('Name').fill('Live Works');
    await form.getByLabel('Slug').fill(slug);
    await form.getByRole('button', { name: 'Create tenant' }).click();
    await visible(laptop, '#tenant-form-done');
    await laptop.page.getByLabel('Working in').selectOption({ label: `Live Works (${slug})` });
    await laptop.page.locator('#resources-title', { hasText: 'Resources of Live Works' }).waitFor();
    await received(laptop, 'subscribed');

    const { userId } = await apiLogin(username);
    const admin = await apiLogin(ADMIN);
    const before = await sockets(laptop);
    laptop.requests.length = 0;
    const changed = await api('PATCH', `/users/${userId}`, admin.token, { roles: ['user', 'admin'] });
    expect(changed.status).toBe(200);
    expect(changed.body.roles).toEqual(['user', 'admin']);

    // The socket is closed with 4401; a new one, with a refreshed token, subscribes again.
    await received(laptop, 'subscribed', { after: before.length });
    const all = await sockets(laptop);
    expect(all.slice(before.length - 1).map((s) => s.close)).toContainEqual({ code: 4401, reason: 'INVALID_TOKEN' });
    expect(all.at(-1)?.close).toBeNull();
    expect(laptop.requests).toContain('POST /auth/refresh');
    await live(laptop);
    expect(await laptop.page.isVisible('#app-view')).toBe(true);
    expect(await laptop.page.isVisible('#login-view')).toBe(false);

    // Events still arrive on the new socket: the tenant's new resource is listed; a personal one
    // (its event comes too) is not, in the tenant's list.
    const { token } = await apiLogin(username);
    const tenants = await api('GET', '/tenants', token);
    const tenantId = (tenants.body.items as Array<{ id: string }>)[0]?.id ?? '(none)';
    const personal = await api('POST', '/resources', token, { title: 'Personal, not listed here' });
    expect(personal.status).toBe(201);
    const shared = await api('POST', '/resources', token, { title: 'For the tenant' }, { 'X-Tenant-Id': tenantId });
    expect(shared.status).toBe(201);
    expect(shared.body.tenantId).toBe(tenantId);
    await received(laptop, 'resource.created', { id: String(shared.body.id), after: before.length });
    await laptop.page.locator('#resource-list h3', { hasText: 'For the tenant' }).waitFor();
    await received(laptop, 'resource.created', { id: String(personal.body.id), after: before.length });
    expect(await laptop.page.locator('#resource-list h3').allTextContents()).toEqual(['For the tenant']);
    // And the page's own calls work with the refreshed token.
    await laptop.page.locator('#resource-title').fill('Made by the admin');
    await laptop.page.getByRole('button', { name: 'Create resource' }).click();
    await laptop.page.locator('#resource-list h3', { hasText: 'Made by the admin' }).waitFor();
    expect(await laptop.page.locator('#resource-list h3').allTextContents()).toEqual([
      'Made by the admin',
      'For the tenant',
    ]);
    await expectClean(laptop);
  });

  it('tries again after a 1013 with a backoff, and stops with a notice on 4429', async () => {
    const ctx = await context({}, false);
    // The socket is played by the test: the first attempt is told to try later, the second refused.
    const attempts: Array<{ openedAt: number; closedAt: number | null; auth: boolean }> = [];
    await ctx.routeWebSocket(/\/ws$/, (ws) => {
      const attempt = { openedAt: Date.now(), closedAt: null as number | null, auth: false };
      attempts.push(attempt);
      const n = attempts.length;
      ws.onMessage((message) => {
        const { event, data } = JSON.parse(String(message)) as { event: string; data: { token?: string } };
        if (event !== 'auth' || !data.token) return;
        attempt.auth = true;
        attempt.closedAt = Date.now();
        if (n === 1) void ws.close({ code: 1013, reason: 'TRY_AGAIN_LATER' });
        else void ws.close({ code: 4429, reason: 'TOO_MANY_CONNECTIONS' });
      });
    });
    const tab = await open(ctx);
    await signUp(tab, uniqueName('backoff'));
    const stopped = tab.page.locator('#live-notices .live-notice.stopped');
    await stopped.waitFor({ timeout: 15_000 });
    expect(await stopped.locator('p').textContent()).toBe(
      'Live updates are off: too many windows are open on your account. Reload the page to turn them back on.',
    );
    expect(await tab.page.getAttribute('#app-view', 'data-live')).toBe('stopped');
    expect(attempts.length).toBe(2);
    expect(attempts.every((a) => a.auth)).toBe(true);
    // The second attempt waited at least half of the first delay (1 s, with jitter).
    expect(attempts[1]!.openedAt - attempts[0]!.closedAt!).toBeGreaterThanOrEqual(450);
    // Stopped for good: no third attempt; the page itself works on.
    await sleep(1_500);
    expect(attempts.length).toBe(2);
    expect(await tab.page.isVisible('#app-view')).toBe(true);
    await tab.page.locator('#resource-title').fill('Without live updates');
    await tab.page.getByRole('button', { name: 'Create resource' }).click();
    await tab.page.locator('#resource-list h3', { hasText: 'Without live updates' }).waitFor();
    await expectClean(tab);
  });
});
