// The browser client (web/, served at /) in real Chromium against the real server.
// `npm run test:browser`; needs /usr/bin/chromium (Debian's `chromium` package).
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ACCESS_TOKEN_TTL,
  build,
  launchChromium,
  newContext,
  screenshotPath,
  sleep,
  startForeignSite,
  startGatehouse,
  watch,
  withoutLiveUpdates,
  type ForeignSite,
  type Gatehouse,
  type Tab,
} from './harness.js';

const PASSWORD = 'correct horse battery staple';
const SAFARI_ON_MAC =
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15';

let gatehouse: Gatehouse;
let foreign: ForeignSite;
let browser: Browser;
const contexts: BrowserContext[] = [];
let counter = 0;

const uniqueName = (prefix: string) => `${prefix}_${Date.now().toString(36)}${(counter++).toString(36)}`;

async function context(options: Parameters<typeof newContext>[1] = {}): Promise<BrowserContext> {
  const c = await newContext(browser, options);
  contexts.push(c);
  return c;
}

/** Opens the app in a new page of `ctx` and waits until it has settled on a view. */
async function open(ctx: BrowserContext, path = '/'): Promise<Tab> {
  const tab = watch(await ctx.newPage());
  await tab.page.goto(gatehouse.origin + path);
  await tab.page.locator('#loading-view').waitFor({ state: 'hidden' });
  return tab;
}

const visible = (tab: Tab, selector: string) =>
  tab.page.locator(selector).waitFor({ state: 'visible', timeout: 15_000 });
const text = async (tab: Tab, selector: string) => ((await tab.page.locator(selector).textContent()) ?? '').trim();
const focusedId = (tab: Tab) => tab.page.evaluate('document.activeElement && document.activeElement.id');
const count = (tab: Tab, request: string) => tab.requests.filter((r) => r === request).length;
const REFRESH = 'POST /auth/refresh';

async function signUp(tab: Tab, username: string, displayName?: string): Promise<void> {
  const { page } = tab;
  await page.getByRole('link', { name: 'Create an account' }).click();
  await visible(tab, '#signup-view');
  await page.locator('#signup-form').getByLabel('Username', { exact: true }).fill(username);
  await page.locator('#signup-form').getByLabel('Password', { exact: true }).fill(PASSWORD);
  if (displayName) await page.locator('#signup-form').getByLabel('Display name').fill(displayName);
  await page.getByRole('button', { name: 'Create account' }).click();
  await visible(tab, '#app-view');
  await tab.page.locator('#profile-username', { hasText: username }).waitFor();
}

async function logIn(tab: Tab, username: string, password = PASSWORD): Promise<void> {
  await tab.page.locator('#login-form').getByLabel('Username or email').fill(username);
  await tab.page.locator('#login-form').getByLabel('Password').fill(password);
  await tab.page.getByRole('button', { name: 'Sign in' }).click();
}

async function createResource(
  tab: Tab,
  title: string,
  options: { body?: string; visibility?: 'public' | 'private' } = {},
) {
  const { page } = tab;
  await page.locator('#resource-title').fill(title);
  if (options.body) await page.locator('#resource-body').fill(options.body);
  if (options.visibility === 'public')
    await page
      .locator('#resource-form')
      .getByLabel(/Public:/)
      .check();
  await page.getByRole('button', { name: 'Create resource' }).click();
  await page.locator('#resource-list h3', { hasText: title }).waitFor();
}

/**
 * No CSP violation, no uncaught error, and no console error but Chromium's own log line for
 * each HTTP error answer (the expected 400s and 401s).
 */
async function expectClean(tab: Tab): Promise<void> {
  const violations = await tab.page.evaluate('window.__cspViolations');
  expect(violations).toEqual([]);
  expect(tab.pageErrors).toEqual([]);
  const unexpected = tab.consoleErrors.filter(
    (m) => !/^Failed to load resource: the server responded with a status of 4\d\d /.test(m),
  );
  expect(unexpected).toEqual([]);
}

async function apiSignup(username: string): Promise<number> {
  const res = await fetch(`${gatehouse.origin}/auth/signup`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD }),
  });
  return res.status;
}

describe('browser client', () => {
  beforeAll(async () => {
    build();
    gatehouse = await startGatehouse();
    foreign = await startForeignSite(gatehouse.origin);
    browser = await launchChromium();
  }, 300_000);

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await foreign?.close();
    await gatehouse?.stop();
  }, 60_000);

  it('signs up through the form, with the API validation shown inline; the refresh token stays out of scripts', async () => {
    const ctx = await context();
    const tab = watch(await ctx.newPage());
    const first = await tab.page.goto(`${gatehouse.origin}/`);
    expect(first?.status()).toBe(200);
    expect(first?.headers()['content-security-policy']).toContain("script-src 'self'");
    await visible(tab, '#login-view');

    await tab.page.getByRole('link', { name: 'Create an account' }).click();
    await visible(tab, '#signup-view');
    expect(await focusedId(tab)).toBe('signup-title');

    // Invalid input: the 400's message array, under each field, focus on the first.
    await tab.page.locator('#signup-form').getByLabel('Username', { exact: true }).fill('ab');
    await tab.page.locator('#signup-form').getByLabel('Password', { exact: true }).fill('short');
    await tab.page.getByRole('button', { name: 'Create account' }).click();
    await visible(tab, '#signup-username-error');
    expect(await text(tab, '#signup-username-error')).toMatch(/^Username must be longer than or equal to 3 characters/);
    expect(await text(tab, '#signup-password-error')).toBe('Password must be 8–128 characters.');
    expect(await tab.page.getAttribute('#signup-username', 'aria-invalid')).toBe('true');
    expect(await tab.page.getAttribute('#signup-username', 'aria-describedby')).toContain('signup-username-error');
    expect(await focusedId(tab)).toBe('signup-username');

    // A taken name: the 409's code, under the username.
    const taken = uniqueName('taken');
    expect(await apiSignup(taken)).toBe(201);
    await tab.page.locator('#signup-form').getByLabel('Username', { exact: true }).fill(taken);
    await tab.page.locator('#signup-form').getByLabel('Password', { exact: true }).fill(PASSWORD);
    await tab.page.getByRole('button', { name: 'Create account' }).click();
    await tab.page.locator('#signup-username-error', { hasText: 'That username is already taken.' }).waitFor();
    expect(await tab.page.locator('#signup-password-error').count()).toBe(0);

    const username = uniqueName('ada');
    await tab.page.locator('#signup-form').getByLabel('Username', { exact: true }).fill(username);
    const signupResponse = tab.page.waitForResponse((r) => r.url().endsWith('/auth/signup'));
    await tab.page.getByRole('button', { name: 'Create account' }).click();
    const { accessToken } = (await (await signupResponse).json()) as { accessToken: string };
    await visible(tab, '#app-view');
    await tab.page.locator('#whoami', { hasText: username }).waitFor();
    expect(await text(tab, '#profile-username')).toBe(username);
    expect(await text(tab, '#whoami')).toBe(username);
    expect(await focusedId(tab)).toBe('app-title');

    const jar = await ctx.cookies();
    const refresh = jar.find((c) => c.name === 'refresh_token');
    expect(refresh).toMatchObject({ httpOnly: true, path: '/auth', sameSite: 'Strict', secure: true });
    const cookie = String(await tab.page.evaluate('document.cookie'));
    expect(cookie).not.toContain('refresh_token');
    expect(cookie).not.toContain(refresh?.value ?? '(none)');
    expect(cookie).not.toContain(accessToken);
    const storage = String(await tab.page.evaluate('JSON.stringify([{ ...localStorage }, { ...sessionStorage }])'));
    expect(storage).not.toContain(accessToken);
    expect(storage).not.toContain(refresh?.value ?? '(none)');
    await expectClean(tab);
  });

  it('restores the session through the refresh cookie on reload', async () => {
    const ctx = await context();
    const tab = await open(ctx);
    const username = uniqueName('reload');
    await signUp(tab, username);
    await createResource(tab, 'Survives a reload');

    tab.requests.length = 0;
    tab.responses.length = 0;
    await tab.page.reload();
    await visible(tab, '#app-view');
    await tab.page.locator('#resource-list h3', { hasText: 'Survives a reload' }).waitFor();
    expect(await text(tab, '#profile-username')).toBe(username);
    expect(count(tab, REFRESH)).toBe(1);
    expect(tab.responses.find((r) => r.path === '/auth/refresh')?.status).toBe(200);
    expect(tab.requests.filter((r) => r.endsWith('/auth/login') || r.endsWith('/auth/signup'))).toEqual([]);
    expect(await tab.page.isVisible('#login-view')).toBe(false);
    await expectClean(tab);
  });

  it('creates, edits and deletes resources, by keyboard, with focus kept in place', async () => {
    const ctx = await context();
    const tab = await open(ctx);
    await signUp(tab, uniqueName('keys'));
    const { page } = tab;
    await visible(tab, '#resources-empty');

    // An empty title: the API's message under the field.
    await page.getByRole('button', { name: 'Create resource' }).click();
    await visible(tab, '#resource-title-error');
    expect(await text(tab, '#resource-title-error')).toMatch(/^Title must be longer than or equal to 1 characters/);
    expect(await focusedId(tab)).toBe('resource-title');

    await page.keyboard.type('First draft');
    await page.keyboard.press('Enter'); // submits the form
    await page.locator('#resource-list > li', { hasText: 'First draft' }).waitFor();
    const id = await page.locator('#resource-list > li', { hasText: 'First draft' }).getAttribute('data-id');
    const item = page.locator(`#resource-list > li[data-id="${id}"]`);
    expect(await page.locator('#resource-title-error').count()).toBe(0);
    expect(await focusedId(tab)).toBe('resource-title');
    expect(await item.locator('.badge').textContent()).toBe('Private');

    // Edit, then Escape: nothing changes and focus returns to the Edit button.
    await item.getByRole('button', { name: /^Edit/ }).focus();
    await page.keyboard.press('Enter');
    const editor = item.locator('form.editor');
    await editor.waitFor();
    expect(await page.evaluate('document.activeElement.name')).toBe('title');
    await page.keyboard.type(' (changed)');
    await page.keyboard.press('Escape');
    await editor.waitFor({ state: 'detached' });
    expect(await item.locator('h3').textContent()).toBe('First draft');
    expect(await page.evaluate('document.activeElement.textContent')).toMatch(/^Edit/);

    // Edit for real: new title, public.
    await page.keyboard.press('Enter');
    await editor.waitFor();
    await page.keyboard.press('End');
    await page.keyboard.type(', revised');
    await editor.getByLabel('Public').check();
    await editor.getByRole('button', { name: 'Save changes' }).click();
    const revised = item;
    await revised.locator('.badge', { hasText: 'Public' }).waitFor();
    expect(await revised.locator('h3').textContent()).toBe('First draft, revised');
    const anonymous = await fetch(`${gatehouse.origin}/resources/${id}`);
    expect(anonymous.status).toBe(200);
    expect(await anonymous.json()).toMatchObject({ title: 'First draft, revised', visibility: 'public' });

    // Delete asks first; "Keep it" restores, "Yes, delete" removes and moves focus.
    await revised.getByRole('button', { name: /^Delete/ }).click();
    expect(await page.evaluate('document.activeElement.textContent')).toBe('Keep it');
    await page.keyboard.press('Enter');
    expect(await page.evaluate('document.activeElement.textContent')).toMatch(/^Delete/);
    await revised.getByRole('button', { name: /^Delete/ }).click();
    await revised.getByRole('button', { name: /^Yes, delete/ }).click();
    await revised.waitFor({ state: 'detached' });
    await visible(tab, '#resources-empty');
    expect(await focusedId(tab)).toBe('resources-title');
    expect((await fetch(`${gatehouse.origin}/resources/${id}`)).status).toBe(404);
    await expectClean(tab);
  });

  it('pages the resource list with "Load more", sends no unchanged profile, and signs out from the account bar', async () => {
    // 22 resources made through the API: a first page of 20, then 2 more.
    const username = uniqueName('pages');
    const signup = await fetch(`${gatehouse.origin}/auth/signup`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username, password: PASSWORD, displayName: 'Pager' }),
    });
    expect(signup.status).toBe(201);
    const { accessToken } = (await signup.json()) as { accessToken: string };
    for (let i = 1; i <= 22; i++) {
      const res = await fetch(`${gatehouse.origin}/resources`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${accessToken}` },
        body: JSON.stringify({ title: `Page item ${i}`, body: '', visibility: 'private' }),
      });
      expect(res.status).toBe(201);
    }

    const tab = await open(await context());
    await logIn(tab, username);
    await visible(tab, '#app-view');
    const { page } = tab;
    const items = page.locator('#resource-list > li');
    await items.nth(19).waitFor();
    expect(await items.count()).toBe(20);
    await visible(tab, '#resources-more');

    await page.getByRole('button', { name: 'Load more' }).click();
    await items.nth(21).waitFor();
    expect(await items.count()).toBe(22);
    await page.locator('#resources-more').waitFor({ state: 'hidden' });
    // Focus on the first newly loaded item, and no title twice.
    expect(await focusedId(tab)).toBe(await items.nth(20).locator('h3').getAttribute('id'));
    const titles = await page.locator('#resource-list h3').allTextContents();
    expect(new Set(titles).size).toBe(22);

    // Saving the display name unchanged sends nothing.
    await page.locator('#whoami', { hasText: 'Pager' }).waitFor();
    tab.requests.length = 0;
    await page.locator('#profile-form').getByRole('button', { name: 'Save' }).click();
    await page.locator('#announcer', { hasText: 'Nothing to save.' }).waitFor();
    expect(tab.requests.filter((r) => r.startsWith('PATCH'))).toEqual([]);

    // "Sign out" in the account bar: the login form, its notice, and nothing of the user left.
    await page.locator('#account-bar').getByRole('button', { name: 'Sign out' }).click();
    await visible(tab, '#login-view');
    expect(await text(tab, '#login-notice')).toBe('You have signed out.');
    expect(await focusedId(tab)).toBe('login-title');
    expect(await page.isVisible('#account-bar')).toBe(false);
    expect(await items.count()).toBe(0);
    expect(await page.locator('#session-list > li').count()).toBe(0);
    expect(await text(tab, '#whoami')).toBe('');
    await page.reload();
    await visible(tab, '#login-view');
    await expectClean(tab);
  });

  it('renews an expired access token with exactly one refresh, shared by concurrent calls', async () => {
    // No live connection: it would renew the token before it expires.
    const ctx = await withoutLiveUpdates(await context());
    const tab = await open(ctx);
    await signUp(tab, uniqueName('expiry'));
    await tab.page.locator('#profile-displayName').fill('Grace H.');
    await tab.page.locator('#resource-title').fill('Written after expiry');

    await sleep((ACCESS_TOKEN_TTL + 1.5) * 1000);
    tab.requests.length = 0;
    tab.responses.length = 0;
    // Two calls leave in the same task, both with the expired token.
    await tab.page.evaluate(`
      document.querySelector('#profile-form button[type=submit]').click();
      document.querySelector('#resource-form button[type=submit]').click();
    `);
    await tab.page.locator('#whoami', { hasText: 'Grace H.' }).waitFor();
    await tab.page.locator('#resource-list h3', { hasText: 'Written after expiry' }).waitFor();

    expect(count(tab, REFRESH)).toBe(1);
    const statuses = (method: string, path: string) =>
      tab.responses.filter((r) => r.method === method && r.path === path).map((r) => r.status);
    expect(statuses('PATCH', '/users/me')).toEqual([401, 200]);
    expect(statuses('POST', '/resources')).toEqual([401, 201]);
    expect(statuses('POST', '/auth/refresh')).toEqual([200]);
    expect(await tab.page.isVisible('#app-view')).toBe(true);
    await expectClean(tab);
  });

  it('keeps two tabs signed in when both act at the same moment after expiry', async () => {
    // No live connection: it would renew the token before it expires.
    const ctx = await withoutLiveUpdates(await context());
    const refreshes: number[] = [];
    ctx.on('request', (request) => {
      if (request.method() === 'POST' && new URL(request.url()).pathname === '/auth/refresh')
        refreshes.push(Date.now());
    });
    const refreshStatuses: number[] = [];
    ctx.on('response', (response) => {
      if (new URL(response.url()).pathname === '/auth/refresh') refreshStatuses.push(response.status());
    });
    const a = await open(ctx);
    await signUp(a, uniqueName('tabs'));
    const b = await open(ctx); // restored through the cookie in the shared jar
    await visible(b, '#app-view');
    await a.page.locator('#resource-title').fill('From tab A');
    await b.page.locator('#resource-title').fill('From tab B');

    await sleep((ACCESS_TOKEN_TTL + 1.5) * 1000);
    refreshes.length = 0;
    refreshStatuses.length = 0;
    const click = `document.querySelector('#resource-form button[type=submit]').click()`;
    await Promise.all([a.page.evaluate(click), b.page.evaluate(click)]);
    await a.page.locator('#resource-list h3', { hasText: 'From tab A' }).waitFor();
    await b.page.locator('#resource-list h3', { hasText: 'From tab B' }).waitFor();

    // One tab refreshed under the Web Lock; the other took the token it broadcast.
    expect(refreshes.length).toBe(1);
    expect(refreshStatuses).toEqual([200]);
    for (const tab of [a, b]) {
      expect(await tab.page.isVisible('#app-view')).toBe(true);
      expect(await tab.page.isVisible('#login-view')).toBe(false);
      await expectClean(tab);
    }
    // And both still work afterwards.
    await b.page.getByRole('button', { name: 'Refresh list' }).click();
    await a.page.getByRole('button', { name: 'Refresh list' }).click();
    await b.page.locator('#resource-list h3', { hasText: 'From tab B' }).waitFor();
    expect(await b.page.isVisible('#app-view')).toBe(true);
    expect(await a.page.isVisible('#app-view')).toBe(true);
  });

  it('signs another device out from the session list; a wrong password is refused with the API code', async () => {
    const username = uniqueName('devices');
    const laptop = await open(await context());
    await signUp(laptop, username);

    // The phone has no live connection, which would hear of the sign-out at once (realtime.spec.ts).
    const phone = await open(await withoutLiveUpdates(await context({ userAgent: SAFARI_ON_MAC })));
    await visible(phone, '#login-view');
    await logIn(phone, username, 'not the password');
    await phone.page.locator('#login-form-error', { hasText: 'The username or password is incorrect.' }).waitFor();
    expect(await focusedId(phone)).toBe('login-form-error');
    await logIn(phone, username);
    await visible(phone, '#app-view');

    await laptop.page.getByRole('button', { name: 'Refresh list' }).click();
    await laptop.page.locator('#session-list > li').nth(1).waitFor();
    expect(await laptop.page.locator('#session-list > li').count()).toBe(2);
    const other = laptop.page.locator('#session-list > li', { hasText: 'Safari on macOS' });
    expect(await other.count()).toBe(1);
    expect(await laptop.page.locator('#session-list > li.current').count()).toBe(1);
    await other.getByRole('button', { name: /Sign out this device/ }).click();
    await other.waitFor({ state: 'detached' });
    expect(await focusedId(laptop)).toBe('sessions-title');

    // The phone finds out at its next action.
    phone.requests.length = 0;
    phone.responses.length = 0;
    await phone.page.getByRole('button', { name: 'Refresh list' }).click();
    await visible(phone, '#login-view');
    expect(await text(phone, '#login-notice')).toBe('Your session has ended. Please sign in again.');
    expect(count(phone, REFRESH)).toBe(1);
    expect(phone.responses.filter((r) => r.path === '/auth/refresh').map((r) => r.status)).toEqual([401]);

    // The laptop is untouched.
    await laptop.page.getByRole('button', { name: 'Refresh list' }).click();
    await sleep(300);
    expect(await laptop.page.isVisible('#app-view')).toBe(true);
    expect(await laptop.page.locator('#session-list > li').count()).toBe(1);
    await expectClean(laptop);
    await expectClean(phone);
  });

  it('"sign out everywhere" in one tab sends the other tab and the other devices to the login form', async () => {
    const username = uniqueName('everywhere');
    // No live connections: each page would hear of the sign-out at once (realtime.spec.ts);
    // here the tabs' channel and the next call tell them.
    const ctx = await withoutLiveUpdates(await context());
    const a = await open(ctx);
    await signUp(a, username);
    const b = await open(ctx);
    await visible(b, '#app-view');
    const device = await open(await withoutLiveUpdates(await context({ userAgent: SAFARI_ON_MAC })));
    await logIn(device, username);
    await visible(device, '#app-view');
    // The signed-in page shows before it reads what it lists (app.ts, enterApp): a read that
    // reached the server after the sign-out below would send this page to the login form
    // before its next action. Each of them has its answer first.
    const reads = ['/users/me', '/auth/mfa', '/tenants', '/resources', '/auth/sessions', '/users/me/activity'];
    await expect
      .poll(() => reads.every((path) => device.responses.some((r) => r.method === 'GET' && r.path === path)), {
        timeout: 15_000,
      })
      .toBe(true);

    await a.page.getByRole('button', { name: 'Sign out everywhere' }).click();
    await visible(a, '#login-view');
    expect(await text(a, '#login-notice')).toBe('You have signed out.');
    expect(await focusedId(a)).toBe('login-title');
    expect((await ctx.cookies()).find((c) => c.name === 'refresh_token')).toBeUndefined();

    // The other tab: told over the BroadcastChannel, it is on the login form by its next action.
    if (await b.page.isVisible('#app-view')) await b.page.getByRole('button', { name: 'Refresh list' }).click();
    await visible(b, '#login-view');
    expect(await b.page.isVisible('#app-view')).toBe(false);

    // Another device (no channel to it): its next action meets the revoked session.
    expect(await device.page.isVisible('#app-view')).toBe(true);
    device.requests.length = 0;
    device.responses.length = 0;
    await device.page.locator('#resource-title').fill('Too late');
    await device.page.getByRole('button', { name: 'Create resource' }).click();
    await visible(device, '#login-view');
    expect(await text(device, '#login-notice')).toBe('Your session has ended. Please sign in again.');
    expect(device.responses.filter((r) => r.method === 'POST' && r.path === '/resources').map((r) => r.status)).toEqual(
      [401],
    );
    expect(device.responses.filter((r) => r.path === '/auth/refresh').map((r) => r.status)).toEqual([401]);

    // A reload of the other tab stays signed out: the cookie is gone.
    await b.page.reload();
    await visible(b, '#login-view');
    for (const tab of [a, b, device]) await expectClean(tab);
  });

  it('gives a page from an origin outside CORS_ORIGINS no API response, and no refresh', async () => {
    const ctx = await context();
    const app = await open(ctx);
    await signUp(app, uniqueName('victim'));
    const before = (await ctx.cookies()).find((c) => c.name === 'refresh_token')?.value;
    expect(before).toBeTruthy();

    // Same site (localhost), other origin: the SameSite=Strict cookie does go along, so
    // only the server's Origin check and CORS stand in the way. Playwright reports no
    // response for a CORS-blocked fetch; the DevTools protocol shows what was on the wire.
    const evil = watch(await ctx.newPage());
    const cdp = await ctx.newCDPSession(evil.page);
    await cdp.send('Network.enable');
    interface Wire {
      url: string;
      method: string;
      status: number;
      headers: Record<string, string>;
      cookiesSent: string[];
      corsError: string | undefined;
    }
    const wire = new Map<string, Partial<Wire>>();
    const entry = (id: string): Partial<Wire> => {
      let found = wire.get(id);
      if (!found) wire.set(id, (found = {}));
      return found;
    };
    cdp.on('Network.requestWillBeSent', (e) =>
      Object.assign(entry(e.requestId), { url: e.request.url, method: e.request.method }),
    );
    cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
      entry(e.requestId).cookiesSent = e.associatedCookies
        .filter((c) => c.blockedReasons.length === 0)
        .map((c) => c.cookie.name);
    });
    cdp.on('Network.responseReceivedExtraInfo', (e) =>
      Object.assign(entry(e.requestId), { status: e.statusCode, headers: e.headers }),
    );
    cdp.on('Network.loadingFailed', (e) => {
      entry(e.requestId).corsError = e.corsErrorStatus?.corsError;
    });
    await evil.page.goto(`${foreign.origin}/`);
    await evil.page.locator('body[data-done="true"]').waitFor({ timeout: 15_000 });

    // The page's script could read nothing: every fetch rejected.
    const probes = (await evil.page.evaluate('window.__probes')) as Record<
      string,
      { read: boolean; status?: number; error?: string }
    >;
    expect(Object.keys(probes).sort()).toEqual(['health', 'me', 'refresh', 'sessions', 'signup']);
    for (const [name, result] of Object.entries(probes)) {
      expect({ name, read: result.read }).toEqual({ name, read: false });
      expect(result.error).toMatch(/TypeError/);
    }
    const api = [...wire.values()].filter((w) => w.url?.startsWith(gatehouse.origin));
    expect(api.length).toBeGreaterThanOrEqual(5);
    const allowed = api.filter((w) =>
      Object.keys(w.headers ?? {}).some((h) => h.toLowerCase() === 'access-control-allow-origin'),
    );
    expect(allowed.map((w) => w.url)).toEqual([]);
    expect(api.filter((w) => w.method !== 'OPTIONS' && !w.corsError).map((w) => w.url)).toEqual([]);

    // The refresh left (a "simple" request needs no preflight) with the cookie, and the
    // server refused it (403 ORIGIN_NOT_ALLOWED): no new refresh token was minted.
    const refresh = api.filter((w) => w.url?.endsWith('/auth/refresh'));
    expect(refresh.map((w) => [w.method, w.status])).toEqual([['POST', 403]]);
    expect(refresh[0]?.cookiesSent).toContain('refresh_token');
    const setCookie =
      Object.entries(refresh[0]?.headers ?? {}).find(([h]) => h.toLowerCase() === 'set-cookie')?.[1] ?? '';
    expect(setCookie).not.toMatch(/refresh_token=[^;]/);
    const after = (await ctx.cookies()).find((c) => c.name === 'refresh_token')?.value;
    expect(after === undefined || after === before).toBe(true);

    // The JSON sign-up needed a preflight, which failed: the POST itself never left.
    const signup = api.filter((w) => w.method === 'POST' && w.url?.endsWith('/auth/signup'));
    expect(signup.map((w) => w.corsError)).toEqual(['PreflightMissingAllowOriginHeader']);
    expect(await apiSignup('foreign_probe')).toBe(201);
  });

  it('saves screenshots of the login page and of the signed-in view', async () => {
    const desktop = await context({ viewport: { width: 1280, height: 800 } });
    const login = await open(desktop);
    await visible(login, '#login-view');
    await login.page.screenshot({ path: screenshotPath('login-desktop.png'), fullPage: true });

    const phone = await context({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    const small = await open(phone, '/#signup');
    await visible(small, '#signup-view');
    await small.page.locator('#signup-form').getByLabel('Username', { exact: true }).fill('x');
    await small.page.getByRole('button', { name: 'Create account' }).click();
    await visible(small, '#signup-password-error');
    await small.page.screenshot({ path: screenshotPath('signup-errors-phone.png'), fullPage: true });
    await small.page.getByRole('link', { name: 'Sign in' }).click();
    await visible(small, '#login-view');
    await small.page.screenshot({ path: screenshotPath('login-phone.png'), fullPage: true });

    const signedIn = await open(desktop);
    const username = uniqueName('ada');
    await signUp(signedIn, username, 'Ada Lovelace');
    await createResource(signedIn, 'Notes on the Analytical Engine', {
      body: 'The engine weaves algebraic patterns just as the Jacquard loom weaves flowers and leaves.',
      visibility: 'public',
    });
    await createResource(signedIn, 'Private drafts', { body: 'Bernoulli numbers, table A.' });

    // The same account on the phone: a second session in the list.
    await logIn(small, username);
    await visible(small, '#app-view');
    await small.page.locator('#resource-list h3', { hasText: 'Private drafts' }).waitFor();
    await small.page.locator('#session-list > li').nth(0).waitFor();
    await small.page.screenshot({ path: screenshotPath('signed-in-phone.png'), fullPage: true });

    await signedIn.page.getByRole('button', { name: 'Refresh list' }).click();
    await signedIn.page.locator('#session-list > li').nth(1).waitFor();
    await signedIn.page.screenshot({ path: screenshotPath('signed-in-desktop.png'), fullPage: true });

    // Readable at phone width: nothing wider than the viewport.
    const overflow = await small.page.evaluate(
      'document.documentElement.scrollWidth - document.documentElement.clientWidth',
    );
    expect(overflow).toBe(0);
    for (const tab of [login, small, signedIn]) await expectClean(tab);
  });
});
