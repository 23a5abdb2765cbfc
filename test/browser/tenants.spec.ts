// Tenants in the browser client, in real Chromium against the real server: the switcher (which
// selects the tenant in the session through POST /auth/tenant, so that the resources card lists
// that tenant's), the member list, adding members, invitations by email and their mailed link
// (/accept-invitation#token=…), accepted after signing in.
// With no SMTP_URL the server writes each mail as an .eml file to MAIL_OUTBOX_DIR: the tests
// read the links from there, as a user would from their mailbox.
// `npm run test:browser`; needs /usr/bin/chromium (Debian's `chromium` package).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { outboxReader } from './outbox.js';
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ACCESS_TOKEN_TTL,
  build,
  launchChromium,
  newContext,
  screenshotPath,
  sleep,
  startGatehouse,
  watch,
  type Gatehouse,
  type Tab,
} from './harness.js';

const PASSWORD = 'correct horse battery staple';

let gatehouse: Gatehouse;
let browser: Browser;
let outbox: string;
const contexts: BrowserContext[] = [];
let counter = 0;

const uniqueName = (prefix: string) => `${prefix}_${Date.now().toString(36)}${(counter++).toString(36)}`;
const addressOf = (name: string) => `${name.replace(/_/g, '.')}@example.test`;
const slugOf = (name: string) => name.replace(/_/g, '-').toLowerCase();

async function context(): Promise<BrowserContext> {
  const c = await newContext(browser, { viewport: { width: 1000, height: 900 } });
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

async function apiSignup(username: string, email?: string): Promise<{ accessToken: string }> {
  const res = await fetch(`${gatehouse.origin}/auth/signup`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD, ...(email ? { email } : {}) }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { accessToken: string };
}

/** A fresh access token (they last ACCESS_TOKEN_TTL seconds only). */
async function apiToken(username: string): Promise<string> {
  const res = await fetch(`${gatehouse.origin}/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { accessToken: string }).accessToken;
}

/** A bearer call of the API (for what the test checks behind the page's back). */
async function api(
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> | null }> {
  const res = await fetch(gatehouse.origin + path, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const raw = await res.text();
  return { status: res.status, body: raw ? (JSON.parse(raw) as Record<string, unknown>) : null };
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
}

/** Creates a tenant through the form; the switcher then offers it. */
async function createTenant(tab: Tab, name: string, slug: string): Promise<void> {
  const form = tab.page.locator('#tenant-form');
  await form.getByLabel('Name').fill(name);
  await form.getByLabel('Slug').fill(slug);
  await form.getByRole('button', { name: 'Create tenant' }).click();
  await visible(tab, '#tenant-form-done');
  expect(await text(tab, '#tenant-form-done')).toContain(`Created ${name} (${slug}); you are its owner.`);
}

/** The switcher's options, as shown. */
const switcherOptions = (tab: Tab) =>
  tab.page.locator('#tenant-select option').evaluateAll((options) => options.map((o) => o.textContent ?? ''));

/**
 * Chooses `label` in the switcher: POST /auth/tenant answers 200, then the page shows that
 * tenant's panel (or the personal note) and the resources card says whose resources it lists.
 */
async function switchTo(tab: Tab, label: string, tenantName: string | null): Promise<void> {
  // (A 401 first, when the access token ran out: the client refreshes and sends it again.)
  const answer = tab.page.waitForResponse((r) => r.url().endsWith('/auth/tenant') && r.status() !== 401);
  await tab.page.getByLabel('Working in').selectOption({ label });
  expect((await answer).status()).toBe(200);
  if (tenantName === null) {
    await visible(tab, '#tenant-personal');
    await tab.page.locator('#resources-title', { hasText: /^Your resources$/ }).waitFor();
  } else {
    await tab.page.locator('#tenant-panel-title', { hasText: tenantName }).waitFor();
    await tab.page.locator('#resources-title', { hasText: `Resources of ${tenantName}` }).waitFor();
  }
}

async function createResource(tab: Tab, title: string): Promise<void> {
  await tab.page.locator('#resource-title').fill(title);
  await tab.page.getByRole('button', { name: 'Create resource' }).click();
  await tab.page.locator('#resource-list h3', { hasText: title }).waitFor();
}

/** The titles of the resources card, once the list for the current context is in (not aria-busy). */
async function resourceTitles(tab: Tab): Promise<string[]> {
  await tab.page.locator('#resource-list:not([aria-busy])').waitFor({ state: 'attached' });
  return tab.page.locator('#resource-list h3').allTextContents();
}

/** A member's item (its text names the username, also while its roles are being edited). */
const memberItem = (tab: Tab, username: string) => tab.page.locator('#member-list li', { hasText: username });

/** Mails of this file's server, each handed out once. */
const mailTo = outboxReader(() => outbox);

const tokenOf = (link: string) =>
  decodeURIComponent(new URLSearchParams(new URL(link).hash.slice(1)).get('token') ?? '');

/** Confirms `email` through its mailed verification link, as its owner would (API only). */
async function verifyByMail(email: string): Promise<void> {
  const mail = await mailTo(email, /confirm your email address/);
  const res = await fetch(`${gatehouse.origin}/auth/email/verify`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token: tokenOf(mail.link) }),
  });
  expect(res.status).toBe(200);
}

/**
 * Opens an invitation link: the token came from the fragment only and has left the address
 * bar, and nothing that carries it was sent (the page only asks whether there is a session).
 */
async function openInvitation(tab: Tab, link: string): Promise<void> {
  const token = tokenOf(link);
  expect(token).not.toBe('');
  tab.requests.length = 0;
  const urls: string[] = [];
  const record = (request: { url(): string; postData(): string | null }) =>
    urls.push(`${request.url()} ${request.postData() ?? ''}`);
  tab.page.on('request', record);
  await tab.page.goto(link);
  await visible(tab, '#invitation-view');
  await tab.page.locator('#invitation-checking').waitFor({ state: 'hidden' });
  await sleep(300); // time for anything the page would do on its own
  tab.page.off('request', record);
  await tab.page.waitForFunction('location.hash === ""');
  expect(tab.page.url()).toBe(`${gatehouse.origin}/accept-invitation`);
  expect(tab.requests.filter((r) => r.startsWith('POST') && r !== 'POST /auth/refresh')).toEqual([]);
  expect(urls.filter((u) => u.includes(token) || u.includes(encodeURIComponent(token)))).toEqual([]);
  const storage = String(await tab.page.evaluate('JSON.stringify([{ ...localStorage }, { ...sessionStorage }])'));
  expect(storage).not.toContain(token);
}

describe('tenants in the browser client', () => {
  beforeAll(async () => {
    build();
    outbox = mkdtempSync(join(tmpdir(), 'gatehouse-outbox-'));
    gatehouse = await startGatehouse({ env: { MAIL_OUTBOX_DIR: outbox } });
    browser = await launchChromium();
  }, 300_000);

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await gatehouse?.stop();
    if (outbox) rmSync(outbox, { recursive: true, force: true });
  }, 60_000);

  it('creates a tenant, adds a member, and keeps each tenant’s resources apart from the personal ones', async () => {
    const alice = uniqueName('alice');
    const bob = uniqueName('bob');
    await apiSignup(bob);
    const tenantName = `Acme ${alice}`;
    const slug = slugOf(`acme-${alice}`);

    // A signs up; the switcher offers only "Personal".
    const ctxA = await context();
    const tabA = await open(ctxA);
    const { page } = tabA;
    await signUp(tabA, alice);
    expect(await switcherOptions(tabA)).toEqual(['Personal']);
    expect(await page.getByLabel('Working in').inputValue()).toBe('');
    expect(await page.isVisible('#tenant-personal')).toBe(true);
    expect(await page.isVisible('#tenant-panel')).toBe(false);
    await createResource(tabA, 'Alice personal note');

    // The slug follows the name until it is edited.
    await page.locator('#tenant-form').getByLabel('Name').fill('Ünïted Wïdgets, Inc.');
    expect(await page.locator('#tenant-form').getByLabel('Slug').inputValue()).toBe('united-widgets-inc');

    // A taken slug is refused under the field; a malformed one with the rule.
    await createTenant(tabA, tenantName, slug);
    expect(await switcherOptions(tabA)).toEqual(['Personal', `${tenantName} (${slug})`]);
    await page.locator('#tenant-form').getByLabel('Name').fill('Another');
    await page.locator('#tenant-form').getByLabel('Slug').fill(slug);
    await page.getByRole('button', { name: 'Create tenant' }).click();
    await visible(tabA, '#tenant-slug-error');
    expect(await text(tabA, '#tenant-slug-error')).toBe('That slug is already taken: choose another.');
    expect(await focusedId(tabA)).toBe('tenant-slug');
    await page.locator('#tenant-form').getByLabel('Slug').fill('-Bad');
    await page.getByRole('button', { name: 'Create tenant' }).click();
    await page.locator('#tenant-slug-error', { hasText: /^Slug must be 3–40 lower-case letters/ }).waitFor();
    await page.locator('#tenant-form').getByLabel('Name').fill('');
    await page.locator('#tenant-form').getByLabel('Slug').fill('');

    // Switching to the tenant: its panel, A as owner, and its (empty) resource list.
    await switchTo(tabA, `${tenantName} (${slug})`, tenantName);
    expect(await page.getByLabel('Working in').inputValue()).not.toBe('');
    expect(await text(tabA, '#tenant-panel-meta')).toBe(`Slug ${slug} · your role: Owner`);
    await memberItem(tabA, alice).waitFor();
    expect(await memberItem(tabA, alice).locator('.badge').allTextContents()).toEqual(['You', 'Owner']);
    expect(await page.locator('#member-list li').count()).toBe(1);
    // The only owner is not offered to leave, and is told why.
    expect(await memberItem(tabA, alice).getByRole('button', { name: 'Leave this tenant' }).isVisible()).toBe(false);
    expect(await text(tabA, '#members-note')).toMatch(/^You are the only owner/);
    expect(await resourceTitles(tabA)).toEqual([]);
    expect(await text(tabA, '#resource-private-label')).toBe(`Private: members of ${tenantName}`);

    // Adding: an unknown username is refused under the field; then B is added as a member.
    const addForm = page.locator('#member-form');
    expect(await addForm.getByLabel('Role').locator('option').allTextContents()).toEqual(['Owner', 'Admin', 'Member']);
    await addForm.getByLabel('Username').fill(uniqueName('nobody'));
    await addForm.getByRole('button', { name: 'Add member' }).click();
    await visible(tabA, '#member-username-error');
    expect(await text(tabA, '#member-username-error')).toBe('There is no account with that username.');
    await addForm.getByLabel('Username').fill(bob);
    expect(await addForm.getByLabel('Role').inputValue()).toBe('member');
    await addForm.getByRole('button', { name: 'Add member' }).click();
    await memberItem(tabA, bob).waitFor();
    expect(await memberItem(tabA, bob).locator('.badge').allTextContents()).toEqual(['Member']);
    expect(await page.locator('#member-list li').count()).toBe(2);
    await addForm.getByLabel('Username').fill(bob);
    await addForm.getByRole('button', { name: 'Add member' }).click();
    await page
      .locator('#member-username-error', { hasText: 'That person is already a member of this tenant.' })
      .waitFor();

    // A resource made while in the tenant belongs to it.
    await createResource(tabA, 'Acme plan');
    await page.screenshot({ path: screenshotPath('tenants-owner-desktop.png'), fullPage: true });

    // Back to personal: the personal note, not the tenant's plan.
    await switchTo(tabA, 'Personal', null);
    expect(await resourceTitles(tabA)).toEqual(['Alice personal note']);
    expect(await text(tabA, '#resource-private-label')).toBe('Private: only you');

    // The choice is the session's: after a reload (a refresh), the page is in the tenant again.
    await switchTo(tabA, `${tenantName} (${slug})`, tenantName);
    expect(await resourceTitles(tabA)).toEqual(['Acme plan']);
    await page.reload();
    await visible(tabA, '#app-view');
    await page.locator('#tenant-panel-title', { hasText: tenantName }).waitFor();
    expect(await page.locator('#tenant-select option:checked').textContent()).toBe(`${tenantName} (${slug})`);
    await page.locator('#resource-list h3', { hasText: 'Acme plan' }).waitFor();
    expect(await resourceTitles(tabA)).toEqual(['Acme plan']);

    // The access token runs out: the refreshed one is still in the tenant. (The live connection
    // renews it before it expires; without one, the call's 401 does.)
    tabA.requests.length = 0;
    await sleep((ACCESS_TOKEN_TTL + 1) * 1000);
    await createResource(tabA, 'Acme roadmap');
    expect(tabA.requests).toContain('POST /auth/refresh');
    expect(await text(tabA, '#resources-title')).toBe(`Resources of ${tenantName}`);

    // Another tab of the same session follows a switch made in this one.
    const tabA2 = await open(ctxA);
    await tabA2.page.locator('#tenant-panel-title', { hasText: tenantName }).waitFor();
    expect(await resourceTitles(tabA2)).toEqual(['Acme roadmap', 'Acme plan']);
    await switchTo(tabA, 'Personal', null);
    await visible(tabA2, '#tenant-personal');
    await tabA2.page.locator('#resources-title', { hasText: /^Your resources$/ }).waitFor();
    expect(await tabA2.page.getByLabel('Working in').inputValue()).toBe('');
    expect(await resourceTitles(tabA2)).toEqual(['Alice personal note']);
    await switchTo(tabA, `${tenantName} (${slug})`, tenantName);
    await tabA2.page.locator('#tenant-panel-title', { hasText: tenantName }).waitFor();
    await expectClean(tabA2);
    await tabA2.page.close();
    await page.bringToFront(); // a background tab's timers are throttled

    // B: the tenant in the switcher; the personal list has none of its resources.
    const tabB = await open(await context());
    await logIn(tabB, bob);
    await visible(tabB, '#app-view');
    await tabB.page.locator('#profile-username', { hasText: bob }).waitFor();
    // The tenant list loads beside the profile: the option comes when it has.
    await tabB.page
      .locator('#tenant-select option', { hasText: `${tenantName} (${slug})` })
      .waitFor({ state: 'attached' });
    expect(await switcherOptions(tabB)).toEqual(['Personal', `${tenantName} (${slug})`]);
    expect(await tabB.page.getByLabel('Working in').inputValue()).toBe('');
    expect(await resourceTitles(tabB)).toEqual([]);

    await switchTo(tabB, `${tenantName} (${slug})`, tenantName);
    await tabB.page.locator('#resource-list h3', { hasText: 'Acme roadmap' }).waitFor();
    expect(await resourceTitles(tabB)).toEqual(['Acme roadmap', 'Acme plan']);
    expect(await text(tabB, '#tenant-panel-meta')).toBe(`Slug ${slug} · your role: Member`);
    await memberItem(tabB, alice).waitFor();
    expect(await tabB.page.locator('#member-list li').count()).toBe(2);
    // A member may neither add, invite, nor remove anyone; but may leave.
    expect(await tabB.page.isVisible('#member-form')).toBe(false);
    expect(await tabB.page.isVisible('#invitations')).toBe(false);
    expect(await memberItem(tabB, alice).getByRole('button').count()).toBe(0);
    expect(await memberItem(tabB, bob).getByRole('button', { name: 'Leave this tenant' }).isVisible()).toBe(true);
    await tabB.page.screenshot({ path: screenshotPath('tenants-member-desktop.png'), fullPage: true });

    await switchTo(tabB, 'Personal', null);
    expect(await resourceTitles(tabB)).toEqual([]);

    // A makes B an admin, then removes B; B's page, back in the tenant, no longer lists it.
    const bobItem = memberItem(tabA, bob);
    await bobItem.getByRole('button', { name: `Change roles of ${bob}` }).click();
    await bobItem.getByLabel('Admin').check();
    await bobItem.getByLabel('Member').uncheck();
    await bobItem.getByRole('button', { name: 'Save roles' }).click();
    await bobItem.locator('.badge', { hasText: 'Admin' }).waitFor();
    expect(await bobItem.locator('.badge').allTextContents()).toEqual(['Admin']);

    await bobItem.getByRole('button', { name: `Remove ${bob}` }).click();
    await bobItem.getByRole('button', { name: 'Yes, remove' }).click();
    await bobItem.waitFor({ state: 'detached' });
    expect(await focusedId(tabA)).toBe('members-title');
    expect(await tabA.page.locator('#member-list li').count()).toBe(1);

    const listed = tabB.page.waitForResponse((r) => new URL(r.url()).pathname === '/tenants');
    await tabB.page.reload();
    await visible(tabB, '#app-view');
    await tabB.page.locator('#profile-username', { hasText: bob }).waitFor();
    expect((await listed).status()).toBe(200);
    expect(await switcherOptions(tabB)).toEqual(['Personal']);
    await expectClean(tabA);
    await expectClean(tabB);
  });

  it('invites by email, revokes, and the invited account accepts through the mailed link after signing in', async () => {
    const owner = uniqueName('owner');
    const invitee = uniqueName('invitee');
    const inviteeEmail = addressOf(invitee);
    const tenantName = `Globex ${owner}`;
    const slug = slugOf(`globex-${owner}`);
    // B has the invited address, verified through its mailed link.
    await apiSignup(invitee, inviteeEmail);
    await verifyByMail(inviteeEmail);

    const tabA = await open(await context());
    const { page } = tabA;
    await signUp(tabA, owner);
    await createTenant(tabA, tenantName, slug);
    await switchTo(tabA, `${tenantName} (${slug})`, tenantName);
    await visible(tabA, '#invite-form');
    await visible(tabA, '#invitations-empty');

    // An invitation that is then revoked; and B's.
    const invite = async (email: string, role: string) => {
      const form = page.locator('#invite-form');
      await form.getByLabel('Email address').fill(email);
      await form.getByLabel('Role').selectOption(role);
      await form.getByRole('button', { name: 'Send invitation' }).click();
      await page.locator('#invite-done', { hasText: `Invitation sent to ${email}` }).waitFor();
      await page.locator('#invitation-list li .item-title', { hasText: email }).waitFor();
    };
    const revoked = addressOf(uniqueName('revoked'));
    await invite(revoked, 'member');
    await invite(inviteeEmail, 'admin');
    expect(await page.locator('#invitation-list .item-title').allTextContents()).toEqual([inviteeEmail, revoked]);
    expect(await page.isVisible('#invitations-empty')).toBe(false);
    const revokedMail = await mailTo(revoked, /join/);
    await page.getByRole('button', { name: `Revoke the invitation to ${revoked}` }).click();
    await page.locator('#invitation-list li .item-title', { hasText: revoked }).waitFor({ state: 'detached' });
    expect(await page.locator('#invitation-list .item-title').allTextContents()).toEqual([inviteeEmail]);
    await page.screenshot({ path: screenshotPath('tenants-invitations-desktop.png'), fullPage: true });

    const mail = await mailTo(inviteeEmail, /join/);
    expect(mail.subject).toBe(`Gatehouse: join ${tenantName}`);
    expect(mail.link.startsWith(`${gatehouse.origin}/accept-invitation#token=`)).toBe(true);

    // B opens the link signed out: asked to sign in first; the token stays in memory only.
    const tabB = await open(await context());
    await openInvitation(tabB, mail.link);
    await visible(tabB, '#invitation-signin');
    expect(await tabB.page.isVisible('#invitation-accept')).toBe(false);
    await tabB.page.screenshot({ path: screenshotPath('invitation-signed-out-desktop.png'), fullPage: true });
    await tabB.page.getByRole('button', { name: 'Sign in' }).click();
    await visible(tabB, '#login-view');
    expect(await text(tabB, '#login-notice')).toBe('Sign in to accept the invitation: you come back to it afterwards.');
    expect(tabB.page.url()).toBe(`${gatehouse.origin}/accept-invitation`);
    await logIn(tabB, invitee);

    // Back on the invitation, signed in: accept.
    await visible(tabB, '#invitation-start');
    expect(await focusedId(tabB)).toBe('invitation-title');
    await tabB.page.locator('#invitation-user', { hasText: `${invitee}, ${inviteeEmail} (verified)` }).waitFor();
    await tabB.page.screenshot({ path: screenshotPath('invitation-signed-in-desktop.png'), fullPage: true });
    const accepted = tabB.page.waitForResponse((r) => r.url().endsWith('/tenants/invitations/accept'));
    await tabB.page.getByRole('button', { name: 'Accept invitation' }).click();
    expect((await accepted).status()).toBe(200);
    await visible(tabB, '#invitation-result');
    expect(await text(tabB, '#invitation-result-text')).toBe(`You joined ${tenantName} (${slug}) as admin.`);
    expect(await focusedId(tabB)).toBe('invitation-result-text');

    // "Work in …": the app, in that tenant; the switcher shows it.
    await tabB.page.getByRole('button', { name: `Work in ${tenantName} now` }).click();
    await visible(tabB, '#app-view');
    expect(tabB.page.url()).toBe(`${gatehouse.origin}/`);
    await tabB.page.locator('#tenant-panel-title', { hasText: tenantName }).waitFor();
    expect(await switcherOptions(tabB)).toEqual(['Personal', `${tenantName} (${slug})`]);
    expect(await tabB.page.locator('#tenant-select option:checked').textContent()).toBe(`${tenantName} (${slug})`);
    expect(await text(tabB, '#tenant-panel-meta')).toBe(`Slug ${slug} · your role: Admin`);
    // An admin may invite, but not grant `owner`.
    await visible(tabB, '#invite-form');
    expect(await tabB.page.locator('#invite-role option').allTextContents()).toEqual(['Admin', 'Member']);

    // A's member list now has B; the invitation is no longer pending.
    await switchTo(tabA, 'Personal', null);
    await switchTo(tabA, `${tenantName} (${slug})`, tenantName);
    await memberItem(tabA, invitee).waitFor();
    expect(await memberItem(tabA, invitee).locator('.badge').allTextContents()).toEqual(['Admin']);
    await visible(tabA, '#invitations-empty');
    expect(await page.locator('#invitation-list li').count()).toBe(0);

    // B leaves: the session goes back to personal, and the switcher no longer offers the tenant.
    const self = memberItem(tabB, invitee);
    await self.getByRole('button', { name: 'Leave this tenant' }).click();
    await self.getByRole('button', { name: 'Stay' }).click();
    expect(await tabB.page.evaluate('document.activeElement && document.activeElement.textContent')).toBe(
      'Leave this tenant',
    );
    await self.getByRole('button', { name: 'Leave this tenant' }).click();
    const left = tabB.page.waitForResponse((r) => r.request().method() === 'DELETE' && r.url().includes('/members/'));
    await self.getByRole('button', { name: 'Yes, leave' }).click();
    expect((await left).status()).toBe(204);
    await visible(tabB, '#tenant-personal');
    await tabB.page.locator('#resources-title', { hasText: /^Your resources$/ }).waitFor();
    expect(await switcherOptions(tabB)).toEqual(['Personal']);
    expect(await tabB.page.getByLabel('Working in').inputValue()).toBe('');
    expect(await tabB.page.isVisible('#tenant-panel')).toBe(false);

    // The used link, and the revoked one: said in words, no button to press again.
    await openInvitation(tabB, mail.link);
    await tabB.page.getByRole('button', { name: 'Accept invitation' }).click();
    await visible(tabB, '#invitation-problem');
    expect(await text(tabB, '#invitation-problem-text')).toBe(
      'This invitation link is not valid: it was already used, revoked, or replaced by a newer invitation.',
    );
    expect(await tabB.page.isVisible('#invitation-accept')).toBe(false);
    await openInvitation(tabB, revokedMail.link);
    await tabB.page.getByRole('button', { name: 'Accept invitation' }).click();
    await tabB.page.locator('#invitation-problem-text', { hasText: /^This invitation link is not valid/ }).waitFor();

    // A link without its token.
    await tabB.page.goto(`${gatehouse.origin}/accept-invitation`);
    await visible(tabB, '#invitation-problem');
    expect(await text(tabB, '#invitation-problem-text')).toBe(
      'This page needs the link from your invitation mail: open that link again.',
    );
    await expectClean(tabA);
    await expectClean(tabB);
  });

  it('explains a wrong or unverified address, lets the address be confirmed, then accepts; and an expired link', async () => {
    const owner = uniqueName('boss');
    const other = uniqueName('other');
    const invitee = uniqueName('late');
    const inviteeEmail = addressOf(invitee);
    await apiSignup(owner);
    await apiSignup(other, addressOf(other));
    await verifyByMail(addressOf(other));
    // The invited address belongs to an account that has not confirmed it yet.
    await apiSignup(invitee, inviteeEmail);
    const confirm = await mailTo(inviteeEmail, /confirm your email address/); // the signup's, unopened yet

    const slug = slugOf(`initech-${owner}`);
    const ownerToken = await apiToken(owner);
    const created = await api('POST', '/tenants', ownerToken, { name: 'Initech', slug });
    expect(created.status).toBe(201);
    const sent = await api('POST', `/tenants/${String(created.body?.id)}/invitations`, ownerToken, {
      email: inviteeEmail,
      roles: ['member'],
    });
    expect(sent.status).toBe(201);
    const mail = await mailTo(inviteeEmail, /join Initech/);

    // Signed in as another account (whose verified address is not the invited one).
    const ctx = await context();
    const tab = await open(ctx);
    await logIn(tab, other);
    await visible(tab, '#app-view');
    await openInvitation(tab, mail.link);
    await visible(tab, '#invitation-start');
    await tab.page.locator('#invitation-user', { hasText: `${other}, ${addressOf(other)} (verified)` }).waitFor();
    await tab.page.getByRole('button', { name: 'Accept invitation' }).click();
    await visible(tab, '#invitation-error');
    expect(await text(tab, '#invitation-error')).toMatch(/^This invitation is for another email address/);
    expect(await tab.page.isVisible('#invitation-verify')).toBe(false); // their address is verified
    expect(await tab.page.isVisible('#invitation-accept')).toBe(true);
    await tab.page.screenshot({ path: screenshotPath('invitation-mismatch-desktop.png'), fullPage: true });

    // "Use another account": signed out, then signed in as the invited one (not verified yet).
    await tab.page.getByRole('button', { name: 'Use another account' }).click();
    await visible(tab, '#invitation-signin');
    await tab.page.getByRole('button', { name: 'Sign in' }).click();
    await visible(tab, '#login-view');
    await logIn(tab, invitee);
    await visible(tab, '#invitation-start');
    await tab.page.locator('#invitation-user', { hasText: `${invitee}, ${inviteeEmail} (not verified yet)` }).waitFor();
    await tab.page.getByRole('button', { name: 'Accept invitation' }).click();
    await visible(tab, '#invitation-verify');
    expect(await text(tab, '#invitation-error')).toMatch(/^This invitation is for another email address/);
    expect(await text(tab, '#invitation-verify-text')).toContain(`Your address ${inviteeEmail} is not verified yet.`);

    // A link to confirm it (the server sends at most one a minute: the signup's is still the one
    // to open); opened in another tab, then this tab accepts.
    const resent = tab.page.waitForResponse((r) => r.url().endsWith('/auth/email/verify-request'));
    await tab.page.getByRole('button', { name: 'Send me a confirmation link' }).click();
    expect((await resent).status()).toBe(202);
    await tab.page
      .locator('#invitation-verify-text', { hasText: `A confirmation link is on its way to ${inviteeEmail}` })
      .waitFor();
    expect(await tab.page.isVisible('#invitation-verify-send')).toBe(false);
    const otherTab = watch(await ctx.newPage());
    await otherTab.page.goto(confirm.link);
    await otherTab.page.getByRole('button', { name: 'Confirm my email address' }).click();
    await otherTab.page.locator('#verify-result-text', { hasText: 'Your email address is verified.' }).waitFor();
    await tab.page.getByRole('button', { name: 'Accept invitation' }).click();
    await visible(tab, '#invitation-result');
    expect(await text(tab, '#invitation-result-text')).toBe(`You joined Initech (${slug}) as member.`);

    // "Continue to Gatehouse": the tenant is in the switcher (still personal: not chosen).
    await tab.page.getByRole('link', { name: 'Continue to Gatehouse' }).click();
    await visible(tab, '#app-view');
    await tab.page.locator('#tenant-select option', { hasText: `Initech (${slug})` }).waitFor({ state: 'attached' });
    expect(await switcherOptions(tab)).toEqual(['Personal', `Initech (${slug})`]);
    expect(await tab.page.getByLabel('Working in').inputValue()).toBe('');

    // An expired invitation (48 h cannot be waited for here: the answer is played).
    await tab.page.route('**/tenants/invitations/accept', (route) =>
      route.fulfill({
        status: 400,
        contentType: 'application/json',
        body: JSON.stringify({
          statusCode: 400,
          error: 'Bad Request',
          code: 'INVITATION_EXPIRED',
          message: 'The invitation has expired',
        }),
      }),
    );
    await openInvitation(tab, `${gatehouse.origin}/accept-invitation#token=an-old-token`);
    await tab.page.getByRole('button', { name: 'Accept invitation' }).click();
    await visible(tab, '#invitation-problem');
    expect(await text(tab, '#invitation-problem-text')).toBe('This invitation has expired: ask for a new one.');
    await expectClean(tab);
    await expectClean(otherTab);
  });
});
