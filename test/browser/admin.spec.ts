// The admin console (web/admin.html, served at /admin) in real Chromium against the real server:
// who may see it, the users screen (search, disable and enable, promote and demote, the
// last-admin rule, ending a user's session), machine clients (a secret shown once), tenants,
// the audit log with its filters, the keyboard, and the main page's "Account activity" card.
// One server for the file; its first admin comes from ADMIN_USERNAME / ADMIN_PASSWORD.
// `npm run test:browser`; needs /usr/bin/chromium (Debian's `chromium` package).
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  build,
  launchChromium,
  newContext,
  screenshotPath,
  startGatehouse,
  watch,
  withoutLiveUpdates,
  type Gatehouse,
  type Tab,
} from './harness.js';

const PASSWORD = 'correct horse battery staple';
const ADMIN = 'root_admin';
const VIEWPORT = { width: 1280, height: 800 };

let gatehouse: Gatehouse;
let browser: Browser;
const contexts: BrowserContext[] = [];
let counter = 0;
/** The administrator's console, signed in once (the first test opens it). */
let console_: Tab;

const uniqueName = (prefix: string) => `${prefix}_${Date.now().toString(36)}${(counter++).toString(36)}`;

async function context(): Promise<BrowserContext> {
  const c = await newContext(browser, { viewport: VIEWPORT });
  contexts.push(c);
  return c;
}

/** Opens `path` in a new page of `ctx` and waits until it has settled on a view. */
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

/** No CSP violation, no uncaught error, no console error but Chromium's line for each 4xx answer. */
async function expectClean(tab: Tab): Promise<void> {
  expect(await tab.page.evaluate('window.__cspViolations')).toEqual([]);
  expect(tab.pageErrors).toEqual([]);
  const unexpected = tab.consoleErrors.filter(
    (m) => !/^Failed to load resource: the server responded with a status of 4\d\d /.test(m),
  );
  expect(unexpected).toEqual([]);
}

async function apiSignup(username: string, email?: string): Promise<{ accessToken: string; user: { id: string } }> {
  const res = await fetch(`${gatehouse.origin}/auth/signup`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD, ...(email ? { email } : {}) }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { accessToken: string; user: { id: string } };
}

async function apiLogin(username: string): Promise<Response> {
  return fetch(`${gatehouse.origin}/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD }),
  });
}

async function api(method: string, path: string, token: string, body?: unknown): Promise<Response> {
  return fetch(gatehouse.origin + path, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** POST /oauth/token with client_secret_basic: the status. */
async function clientToken(clientId: string, secret: string): Promise<number> {
  const res = await fetch(`${gatehouse.origin}/oauth/token`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      Authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`,
    },
    body: 'grant_type=client_credentials',
  });
  return res.status;
}

async function logIn(tab: Tab, username: string): Promise<void> {
  await tab.page.locator('#login-form').getByLabel('Username or email').fill(username);
  await tab.page.locator('#login-form').getByLabel('Password').fill(PASSWORD);
  await tab.page.getByRole('button', { name: 'Sign in' }).click();
  await visible(tab, '#app-view');
}

/** Presses Tab until the element `#id` has the focus (at most `max` times): the keyboard's way there. */
async function tabTo(tab: Tab, id: string, max = 40): Promise<void> {
  for (let i = 0; i < max; i += 1) {
    if ((await focusedId(tab)) === id) return;
    await tab.page.keyboard.press('Tab');
  }
  throw new Error(`Tab never reached #${id}`);
}

/** Confirms the console's dialog with its button `name`. */
async function confirmDialog(tab: Tab, name: string): Promise<void> {
  const dialog = tab.page.locator('#confirm-dialog');
  await dialog.waitFor({ state: 'visible' });
  expect(await focusedId(tab)).toBe('confirm-cancel');
  await dialog.getByRole('button', { name, exact: true }).click();
  await dialog.waitFor({ state: 'hidden' });
}

const userRow = (tab: Tab, username: string) => tab.page.locator('#user-rows tr', { hasText: username });

async function searchUser(tab: Tab, username: string): Promise<void> {
  await tab.page.getByLabel('Search users').fill(username);
  await tab.page.getByRole('button', { name: 'Search', exact: true }).click();
  await tab.page.locator('#users-summary', { hasText: `matching “${username}”` }).waitFor();
}

async function openUser(tab: Tab, username: string): Promise<void> {
  await searchUser(tab, username);
  await userRow(tab, username).getByRole('button', { name: username, exact: true }).click();
  await tab.page.locator('#user-detail-title', { hasText: username }).waitFor();
  expect(await focusedId(tab)).toBe('user-detail-title');
}

describe('admin console', () => {
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

  it('asks a visitor to sign in on the main page, and shows a signed-in non-admin only a refusal', async () => {
    const ctx = await context();
    const tab = await open(ctx, '/admin');
    await visible(tab, '#signed-out-view');
    expect(await tab.page.title()).toBe('Sign in · Admin console · Gatehouse');
    expect(await tab.page.getByRole('link', { name: 'Sign in on the main page' }).getAttribute('href')).toBe('/');
    expect(await tab.page.isVisible('#console-view')).toBe(false);

    // A person without the admin role: the main page offers no link, the console only a refusal.
    await tab.page.getByRole('link', { name: 'Sign in on the main page' }).click();
    await visible(tab, '#login-view');
    const name = uniqueName('plain');
    await apiSignup(name);
    await logIn(tab, name);
    expect(await tab.page.isVisible('#admin-link')).toBe(false);
    tab.requests.length = 0;
    await tab.page.goto(`${gatehouse.origin}/admin`);
    await visible(tab, '#forbidden-view');
    expect(await text(tab, '#forbidden-view')).toBe('This page is for administrators');
    for (const hidden of ['#console-view', '#account-bar', '#signed-out-view']) {
      expect(await tab.page.isVisible(hidden)).toBe(false);
    }
    // It asked the API for nothing an administrator would see.
    expect(tab.requests.filter((r) => /^GET \/(users|audit-events|oauth\/clients|tenants)/.test(r))).toEqual([]);
    await expectClean(tab);
  });

  it('finds a user, ends one of their sessions (their next refresh fails), disables, enables, promotes and demotes them, and keeps the last admin', async () => {
    // The admin signs in on the main page, which links to the console.
    const adminContext = await context();
    const main = await open(adminContext);
    await logIn(main, ADMIN);
    await visible(main, '#admin-link');
    await main.page.getByRole('link', { name: 'Admin console' }).click();
    await main.page.waitForURL(`${gatehouse.origin}/admin`);
    console_ = main;
    await visible(main, '#users-screen');
    expect(await main.page.getAttribute('#nav-users', 'aria-current')).toBe('page');
    await main.page.locator('#whoami', { hasText: ADMIN }).waitFor();

    // Bob: signed up over HTTP, and signed in in a browser of his own (no live updates: that
    // page learns of the ended session only when its refresh fails).
    const bob = uniqueName('bob');
    const { user: bobUser } = await apiSignup(bob, `${bob.replace(/_/g, '.')}@example.test`);
    const bobTab = await open(await withoutLiveUpdates(await context()));
    await logIn(bobTab, bob);

    await main.page.reload();
    await visible(main, '#users-screen');
    await userRow(main, bob).waitFor();
    await main.page.screenshot({ path: screenshotPath('admin-users.png') });

    await openUser(main, bob);
    expect(await main.page.locator('#user-rows tr').count()).toBe(1);
    expect(await text(main, '#last-admin-rule')).toBe(
      'Gatehouse always keeps at least one enabled administrator: the last one cannot be demoted or disabled.',
    );
    // Two sessions: the sign-up over HTTP and the browser.
    const sessions = main.page.locator('#user-session-list > li');
    await sessions.nth(1).waitFor();
    expect(await sessions.count()).toBe(2);
    await main.page.locator('#user-detail').screenshot({ path: screenshotPath('admin-user-detail.png') });
    const browserSession = sessions.filter({ hasText: 'Chrome on Linux' });
    await browserSession.getByRole('button', { name: /^End session/ }).click();
    await browserSession.waitFor({ state: 'detached' });
    expect(await sessions.count()).toBe(1);
    expect(await focusedId(main)).toBe('user-sessions-title');
    await main.page.locator('#announcer', { hasText: `Ended ${bob}'s session on Chrome on Linux.` }).waitFor();

    // Bob's browser: its next refresh is refused, and it shows the sign-in form.
    const refreshed = bobTab.page.waitForResponse((r) => r.url().endsWith('/auth/refresh'));
    await bobTab.page.reload();
    expect((await refreshed).status()).toBe(401);
    await visible(bobTab, '#login-view');

    // Disable: confirmed in a dialog; he is signed out and cannot sign in.
    await main.page.getByRole('button', { name: 'Disable account' }).click();
    await main.page.locator('#confirm-title', { hasText: `Disable ${bob}?` }).waitFor();
    await confirmDialog(main, 'Disable account');
    await main.page.locator('#user-account-text', { hasText: /^Disabled:/ }).waitFor();
    expect(await focusedId(main)).toBe('user-toggle-disabled');
    expect(await text(main, '#user-toggle-disabled')).toBe('Enable account');
    await visible(main, '#user-sessions-empty');
    expect((await apiLogin(bob)).status).toBe(403);

    await main.page.getByRole('button', { name: 'Enable account' }).click();
    await main.page.locator('#user-account-text', { hasText: /^Enabled:/ }).waitFor();
    expect((await apiLogin(bob)).status).toBe(200);

    // Promote, then demote.
    await main.page.getByRole('button', { name: 'Make administrator' }).click();
    await confirmDialog(main, 'Make administrator');
    await userRow(main, bob).locator('.badge', { hasText: 'Admin' }).waitFor();
    expect(await text(main, '#user-role-text')).toBe('Administrator: may use this console and every admin call.');
    await main.page.getByRole('button', { name: 'Remove administrator' }).click();
    await confirmDialog(main, 'Remove administrator');
    await userRow(main, bob)
      .locator('.badge', { hasText: /^User$/ })
      .waitFor();

    // The admin, alone, tries to demote themselves: the server refuses, the panel says why.
    await openUser(main, ADMIN);
    expect(await main.page.isVisible('#user-toggle-disabled')).toBe(false);
    expect(await text(main, '#user-self-note')).toBe('This is your own account: another administrator can disable it.');
    const refused = main.page.waitForResponse((r) => r.request().method() === 'PATCH' && r.status() !== 401);
    await main.page.getByRole('button', { name: 'Remove administrator' }).click();
    await confirmDialog(main, 'Remove administrator');
    const answer = await refused;
    expect(answer.status()).toBe(403);
    expect(((await answer.json()) as { code: string }).code).toBe('LAST_ADMIN');
    await visible(main, '#user-role-error');
    expect(await text(main, '#user-role-error')).toBe(
      'You are the last enabled administrator, and Gatehouse always keeps one: make another account an administrator first.',
    );
    expect(await main.page.isVisible('#console-view')).toBe(true);
    await main.page.screenshot({ path: screenshotPath('admin-last-admin.png') });

    // The audit log of Bob, from his panel: what the admin did, with the admin as actor.
    await openUser(main, bob);
    await main.page.getByRole('link', { name: /^Audit events for this user/ }).click();
    await visible(main, '#audit-screen');
    expect(await focusedId(main)).toBe('audit-title');
    expect(await main.page.inputValue('#audit-userId')).toBe(bobUser.id);
    const row = (type: string) => main.page.locator(`#audit-rows tr[data-type="${type}"]`);
    await row('account.disabled').first().waitFor();
    for (const type of ['account.disabled', 'account.enabled', 'roles.changed', 'session.revoked']) {
      const cells = row(type).first().locator('td');
      expect(await cells.nth(2).textContent()).toContain(bob);
      expect(await cells.nth(3).textContent()).toContain(ADMIN);
    }
    expect(await row('roles.changed').count()).toBe(2);
    expect(await text(main, '#audit-summary')).toMatch(new RegExp(`^\\d+ events about ${bob}, newest first\\.$`));
    // Newest first.
    const times = await main.page
      .locator('#audit-rows time')
      .evaluateAll((ts) => ts.map((t) => t.getAttribute('datetime') ?? ''));
    expect(times.toSorted().toReversed()).toEqual(times);
    await main.page.evaluate('window.scrollTo(0, 0)');
    await main.page.screenshot({ path: screenshotPath('admin-audit.png') });
    // Details: the event as text, escaped.
    const first = main.page.locator('#audit-rows tr').first();
    await first.getByText('Show').click();
    const json = JSON.parse((await first.locator('pre.json').textContent()) ?? '') as Record<string, unknown>;
    expect(json).toMatchObject({ userId: bobUser.id, username: bob });

    // A family: only sign-ins of Bob's.
    await main.page.getByLabel('Event types').fill('login.*');
    await main.page.getByRole('button', { name: 'Show events' }).click();
    await main.page.locator('#audit-summary', { hasText: 'of type login.*' }).waitFor();
    const types = await main.page
      .locator('#audit-rows tr')
      .evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-type') ?? ''));
    expect(types.length).toBeGreaterThan(0);
    expect(types.every((t) => t.startsWith('login.'))).toBe(true);
    expect(types).toContain('login.succeeded');
    expect(main.page.url()).toContain('type=login.*');

    // A malformed filter: the server's 400 under its field.
    await main.page.getByLabel('Event types').fill('not a type!');
    await main.page.getByRole('button', { name: 'Show events' }).click();
    await visible(main, '#audit-type-error');
    await expectClean(main);
    await expectClean(bobTab);
  });

  it('is usable with the keyboard: Tab to the search, Enter, Tab to a user, Enter, Tab to Disable, Enter; Escape cancels', async () => {
    const tab = console_;
    const carol = uniqueName('carol');
    await apiSignup(carol);
    await tab.page.goto(`${gatehouse.origin}/admin#users`);
    await visible(tab, '#users-screen');
    await tab.page.locator('#user-rows tr').first().waitFor();

    await tabTo(tab, 'user-search-q');
    await tab.page.keyboard.type(carol);
    await tab.page.keyboard.press('Enter');
    await tab.page.locator('#users-summary', { hasText: `1 account matching “${carol}”.` }).waitFor();
    await tab.page.keyboard.press('Tab'); // the Search button
    await tab.page.keyboard.press('Tab'); // Carol's row
    expect(await tab.page.evaluate('document.activeElement.textContent')).toBe(carol);
    await tab.page.keyboard.press('Enter');
    await tab.page.locator('#user-detail-title', { hasText: carol }).waitFor();
    expect(await focusedId(tab)).toBe('user-detail-title');
    // The button shows once GET /users/:id has said whether the account is disabled.
    await tab.page.locator('#user-toggle-disabled', { hasText: 'Disable account' }).waitFor();

    await tabTo(tab, 'user-toggle-disabled');
    await tab.page.keyboard.press('Enter');
    await visible(tab, '#confirm-dialog');
    expect(await focusedId(tab)).toBe('confirm-cancel');
    await tab.page.keyboard.press('Tab');
    expect(await focusedId(tab)).toBe('confirm-ok');
    await tab.page.keyboard.press('Enter');
    await tab.page.locator('#user-account-text', { hasText: /^Disabled:/ }).waitFor();
    expect(await focusedId(tab)).toBe('user-toggle-disabled');
    await tab.page.locator('#announcer', { hasText: `${carol} is disabled and signed out.` }).waitFor();

    // Enable again (no question), then Disable once more and Escape: nothing happens.
    await tab.page.keyboard.press('Enter');
    await tab.page.locator('#user-toggle-disabled', { hasText: 'Disable account' }).waitFor();
    expect(await focusedId(tab)).toBe('user-toggle-disabled');
    await tab.page.keyboard.press('Enter');
    await visible(tab, '#confirm-dialog');
    await tab.page.keyboard.press('Escape');
    await tab.page.locator('#confirm-dialog').waitFor({ state: 'hidden' });
    expect(await focusedId(tab)).toBe('user-toggle-disabled');
    expect(await text(tab, '#user-toggle-disabled')).toBe('Disable account');
    expect(await text(tab, '#user-account-text')).toBe('Enabled: can sign in.');
    await expectClean(tab);
  });

  it('creates a machine client and shows its secret once, adds and revokes secrets', async () => {
    const tab = console_;
    await tab.page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: gatehouse.origin });
    await tab.page.getByRole('link', { name: 'Machine clients' }).click();
    await visible(tab, '#clients-screen');
    expect(await focusedId(tab)).toBe('clients-title');
    expect(await tab.page.getAttribute('#nav-clients', 'aria-current')).toBe('page');

    const name = uniqueName('nightly export');
    const form = tab.page.locator('#client-form');
    await form.getByLabel('Name').fill(name);
    await form.getByLabel('Description').fill('Exports resources every night');
    await form.getByRole('checkbox', { name: /^resources:read/ }).check();
    await form.getByRole('checkbox', { name: /^profile/ }).check();
    await form.getByRole('button', { name: 'Create client' }).click();

    await visible(tab, '#secret-once');
    expect(await focusedId(tab)).toBe('secret-once-title');
    expect(await text(tab, '#secret-once .warning')).toContain('will not be shown again');
    const secret = await text(tab, '#secret-once-value');
    const clientId = await text(tab, '#secret-once-client-id');
    expect(secret).toMatch(/^gcs_[A-Za-z0-9_-]{43}$/);
    expect(clientId).toMatch(/^c_[A-Z2-7]{20}$/);
    await tab.page.locator('#client-detail-title', { hasText: name }).waitFor();
    await tab.page.screenshot({ path: screenshotPath('admin-clients-secret.png') });
    await tab.page.getByRole('button', { name: 'Copy secret' }).click();
    await tab.page.locator('#secret-once-copied', { hasText: 'Copied to the clipboard.' }).waitFor();
    expect(await tab.page.evaluate('navigator.clipboard.readText()')).toBe(secret);
    expect(await clientToken(clientId, secret)).toBe(200);

    await tab.page.getByRole('button', { name: /^I have stored it/ }).click();
    expect(await tab.page.isVisible('#secret-once')).toBe(false);
    expect(await text(tab, '#secret-once-value')).toBe('');

    // After a reload the client is listed, its secret nowhere.
    await tab.page.reload();
    await visible(tab, '#clients-screen');
    const clientRow = tab.page.locator('#client-rows tr', { hasText: name });
    await clientRow.getByRole('button', { name }).click();
    await tab.page.locator('#client-detail-title', { hasText: name }).waitFor();
    await tab.page.locator('#client-secret-list > li').first().waitFor();
    expect(await tab.page.locator('body').innerText()).not.toContain(secret);
    expect(await tab.page.content()).not.toContain(secret);

    // A second secret (the rotation's first step), shown once too.
    await tab.page.locator('#secret-form').getByLabel('Label').fill('rotation');
    await tab.page.getByRole('button', { name: 'Add secret' }).click();
    await visible(tab, '#secret-once');
    const second = await text(tab, '#secret-once-value');
    expect(second).toMatch(/^gcs_/);
    expect(second).not.toBe(secret);
    await tab.page.getByRole('button', { name: /^I have stored it/ }).click();
    const items = tab.page.locator('#client-secret-list > li');
    await items.nth(1).waitFor();

    // Revoke the first: its tokens and itself stop working; the second goes on.
    await items
      .first()
      .getByRole('button', { name: /^Revoke/ })
      .click();
    await confirmDialog(tab, 'Revoke secret');
    await items.first().locator('.badge', { hasText: 'Revoked' }).waitFor();
    expect(await clientToken(clientId, secret)).toBe(401);
    expect(await clientToken(clientId, second)).toBe(200);

    // An expiry for the second, then none again.
    await items
      .nth(1)
      .getByRole('button', { name: /^Set expiry/ })
      .click();
    await items.nth(1).getByLabel('Expires').fill('2099-01-02T03:04');
    await items.nth(1).getByRole('button', { name: 'Save expiry' }).click();
    await items.nth(1).locator('time[datetime^="2099-01-0"]').waitFor();
    await items
      .nth(1)
      .getByRole('button', { name: /^Set expiry/ })
      .click();
    await items.nth(1).getByRole('button', { name: 'Never expires' }).click();
    await items.nth(1).locator('.meta', { hasText: 'expires never' }).waitFor();

    // Disabled, the client cannot authenticate; deleted, it is gone from the list.
    await tab.page.getByRole('button', { name: 'Disable client' }).click();
    await confirmDialog(tab, 'Disable client');
    await clientRow.locator('.badge.disabled').waitFor();
    expect(await clientToken(clientId, second)).toBe(401);
    await tab.page.getByRole('button', { name: 'Delete client' }).click();
    await confirmDialog(tab, 'Delete client');
    await clientRow.waitFor({ state: 'detached' });
    expect(await tab.page.isVisible('#client-detail')).toBe(false);
    await expectClean(tab);
  });

  it('lists every tenant with its members and invitations; revokes an invitation', async () => {
    const tab = console_;
    const owner = uniqueName('owner');
    const { accessToken } = await apiSignup(owner);
    const slug = `acme-${Date.now().toString(36)}`;
    const created = await api('POST', '/tenants', accessToken, { name: 'Acme Corporation', slug });
    expect(created.status).toBe(201);
    const tenant = (await created.json()) as { id: string };
    const invited = await api('POST', `/tenants/${tenant.id}/invitations`, accessToken, {
      email: 'new.hire@example.test',
      roles: ['member'],
    });
    expect(invited.status).toBe(201);

    await tab.page.getByRole('link', { name: 'Tenants' }).click();
    await visible(tab, '#tenants-screen');
    expect(await focusedId(tab)).toBe('tenants-title');
    const tenantRow = tab.page.locator('#tenant-rows tr', { hasText: slug });
    await tenantRow.getByRole('button', { name: 'Acme Corporation' }).click();
    await tab.page.locator('#tenant-detail-title', { hasText: 'Acme Corporation' }).waitFor();
    const member = tab.page.locator('#tenant-member-list > li', { hasText: owner });
    await member.locator('.badge', { hasText: 'Owner' }).waitFor();
    const invitation = tab.page.locator('#tenant-invitation-list > li', { hasText: 'new.hire@example.test' });
    await invitation.waitFor();
    await tab.page.screenshot({ path: screenshotPath('admin-tenants.png') });

    await invitation.getByRole('button', { name: /^Revoke/ }).click();
    await confirmDialog(tab, 'Revoke invitation');
    await invitation.waitFor({ state: 'detached' });
    await visible(tab, '#tenant-invitations-empty');
    expect(await focusedId(tab)).toBe('tenant-invitations-title');
    await expectClean(tab);
  });

  it("shows a user's own activity on the main page, in words, with what an administrator did", async () => {
    const dave = uniqueName('dave');
    const { user } = await apiSignup(dave);
    const badLogin = await fetch(`${gatehouse.origin}/auth/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: dave, password: 'not the password' }),
    });
    expect(badLogin.status).toBe(401);
    // An administrator ends every session of Dave's (over HTTP; the console's own test is above).
    const adminLogin = await apiLogin(ADMIN);
    const { accessToken } = (await adminLogin.json()) as { accessToken: string };
    expect((await api('DELETE', `/users/${user.id}/sessions`, accessToken)).status).toBe(204);

    const tab = await open(await context());
    await logIn(tab, dave);
    const list = tab.page.locator('#activity-list');
    await list.locator('li', { hasText: 'Signed in' }).first().waitFor();
    const entries = await list.locator('li .item-title').evaluateAll((els) => els.map((el) => el.textContent ?? ''));
    expect(entries[0]).toBe('Signed in');
    expect(entries).toEqual(expect.arrayContaining(['Failed sign-in attempt', 'Account created']));
    await list.locator('li', { hasText: 'By an administrator' }).first().waitFor();
    await list.locator('li .badge', { hasText: 'This session' }).first().waitFor();
    const card = tab.page.locator('section.card', { has: tab.page.locator('#activity-title') });
    await card.scrollIntoViewIfNeeded();
    await card.screenshot({ path: screenshotPath('admin-activity.png') });
    await expectClean(tab);
  });
});
