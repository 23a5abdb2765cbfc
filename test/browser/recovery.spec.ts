// Account recovery in the browser client, in real Chromium against the real server: forgot →
// mailed link → reset → sign in; dead links; email verification and change from the profile.
// With no SMTP_URL the server writes each mail as an .eml file to MAIL_OUTBOX_DIR: the tests
// read the link from there, as a user would from their mailbox.
// `npm run test:browser`; needs /usr/bin/chromium (Debian's `chromium` package).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { outboxReader } from './outbox.js';
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
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
const NEW_PASSWORD = 'a brand new passphrase';
const NEUTRAL = 'If the account exists and has an email address, a reset link has been sent.';

let gatehouse: Gatehouse;
let browser: Browser;
let outbox: string;
const contexts: BrowserContext[] = [];
let counter = 0;

const uniqueName = (prefix: string) => `${prefix}_${Date.now().toString(36)}${(counter++).toString(36)}`;
const addressOf = (name: string) => `${name.replace(/_/g, '.')}@example.test`;

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

async function apiSignup(username: string, email?: string): Promise<void> {
  const res = await fetch(`${gatehouse.origin}/auth/signup`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD, ...(email ? { email } : {}) }),
  });
  expect(res.status).toBe(201);
}

async function apiLogin(username: string, password: string): Promise<number> {
  const res = await fetch(`${gatehouse.origin}/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  return res.status;
}

async function logIn(tab: Tab, username: string, password: string): Promise<void> {
  await tab.page.locator('#login-form').getByLabel('Username or email').fill(username);
  await tab.page.locator('#login-form').getByLabel('Password').fill(password);
  await tab.page.getByRole('button', { name: 'Sign in' }).click();
}

/** Mails of this file's server, each handed out once. */
const mailTo = outboxReader(() => outbox);

/**
 * Opens a mailed link and checks what the brief asks of the page: the token came from the
 * fragment only and has left the address bar, and loading the page used nothing up (no POST,
 * nothing that carries the token, no session refresh).
 */
async function openLink(tab: Tab, link: string, view: '#reset-view' | '#verify-view'): Promise<void> {
  const { pathname, hash } = new URL(link);
  const token = decodeURIComponent(new URLSearchParams(hash.slice(1)).get('token') ?? '');
  expect(token).not.toBe('');
  // A link to another path than the page shown is a new page load: that page goes first, so
  // that nothing it still sends as it is left (a refresh of its own session, seen once in CI)
  // is counted as the link page's.
  if (new URL(tab.page.url()).pathname !== pathname) await tab.page.goto('about:blank');
  tab.requests.length = 0;
  const urls: string[] = [];
  const record = (request: { url(): string }) => urls.push(request.url());
  tab.page.on('request', record);
  await tab.page.goto(link);
  await visible(tab, view);
  await sleep(300); // time for anything the page would do on its own
  tab.page.off('request', record);
  // Another link in the same tab only changes the fragment: wait for the page to take it.
  await tab.page.waitForFunction('location.hash === ""');
  expect(tab.page.url()).toBe(gatehouse.origin + pathname);
  expect(tab.requests.filter((r) => r.startsWith('POST'))).toEqual([]);
  expect(urls.filter((u) => u.includes(token) || u.includes(encodeURIComponent(token)))).toEqual([]);
}

describe('account recovery in the browser client', () => {
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

  it('forgot password → mailed link → new password → signs in with it', async () => {
    const username = uniqueName('reset');
    const email = addressOf(username);
    await apiSignup(username, email);
    const ctx = await context();
    const tab = await open(ctx);
    const { page } = tab;

    await page.getByRole('link', { name: 'Forgot password?' }).click();
    await visible(tab, '#forgot-view');
    expect(await focusedId(tab)).toBe('forgot-title');

    /** Submits the forgot form for `login`: the answer's status and what the page then says. */
    const forgot = async (login: string) => {
      await page.locator('#forgot-form').getByLabel('Username or email').fill(login);
      const answer = page.waitForResponse((r) => r.url().endsWith('/auth/password/forgot'));
      await page.getByRole('button', { name: 'Send me a reset link' }).click();
      const status = (await answer).status();
      await page.locator('#forgot-form:not([aria-busy])').waitFor();
      await visible(tab, '#forgot-done');
      return { status, shown: await text(tab, '#forgot-done') };
    };

    // An unknown login gets the very same answer (no account enumeration).
    const unknown = await forgot(uniqueName('nobody'));
    expect(unknown.status).toBe(202);
    expect(unknown.shown).toContain(NEUTRAL);
    expect(await forgot(username)).toEqual(unknown);
    await page.screenshot({ path: screenshotPath('forgot-sent-desktop.png'), fullPage: true });

    const mail = await mailTo(email, /reset your password/);
    expect(mail.link.startsWith(`${gatehouse.origin}/reset-password#token=`)).toBe(true);

    await openLink(tab, mail.link, '#reset-view');
    expect(await page.isVisible('#reset-form')).toBe(true);
    expect(await page.isVisible('#reset-problem')).toBe(false);

    // The password rule, from the 400, under the field.
    await page.locator('#reset-form').getByLabel('New password').fill('short');
    await page.getByRole('button', { name: 'Change my password' }).click();
    await visible(tab, '#reset-newPassword-error');
    expect(await text(tab, '#reset-newPassword-error')).toBe('New password must be 8–128 characters.');
    expect(await focusedId(tab)).toBe('reset-newPassword');
    await page.screenshot({ path: screenshotPath('reset-password-error-desktop.png'), fullPage: true });

    await page.locator('#reset-form').getByLabel('New password').fill(NEW_PASSWORD);
    const reset = page.waitForResponse((r) => r.url().endsWith('/auth/password/reset'));
    await page.getByRole('button', { name: 'Change my password' }).click();
    expect((await reset).status()).toBe(204);
    await visible(tab, '#login-view');
    expect(await text(tab, '#login-notice')).toBe('Your password was changed; sign in with the new one.');
    expect(page.url()).toBe(`${gatehouse.origin}/`);
    await page.screenshot({ path: screenshotPath('reset-done-desktop.png'), fullPage: true });

    expect(await apiLogin(username, PASSWORD)).toBe(401);
    await logIn(tab, username, NEW_PASSWORD);
    await visible(tab, '#app-view');
    await page.locator('#profile-username', { hasText: username }).waitFor();
    await expectClean(tab);

    // (b) The same link again: the page cannot tell, the server can.
    const again = await open(await context());
    await openLink(again, mail.link, '#reset-view');
    await again.page.locator('#reset-form').getByLabel('New password').fill('yet another passphrase');
    await again.page.getByRole('button', { name: 'Change my password' }).click();
    await visible(again, '#reset-problem');
    expect(await text(again, '#reset-problem-text')).toBe('This link is invalid or was already used.');
    expect(await again.page.isVisible('#reset-form')).toBe(false);
    await again.page.screenshot({ path: screenshotPath('reset-used-link-desktop.png'), fullPage: true });
    expect(await apiLogin(username, NEW_PASSWORD)).toBe(200);

    // "Ask for a new link" leads to the forgot form.
    await again.page.getByRole('link', { name: 'Ask for a new link' }).click();
    await visible(again, '#forgot-view');
    expect(again.page.url()).toBe(`${gatehouse.origin}/#forgot`);
    await expectClean(again);
  });

  it('explains an expired link, a link without its token, and a 429 with its Retry-After', async () => {
    const ctx = await context();
    const tab = await open(ctx);
    const { page } = tab;

    // Expiry cannot be waited for here (PASSWORD_RESET_TTL ≥ 60 s): the answer is played.
    await page.route('**/auth/password/reset', (route) =>
      route.fulfill({
        status: 400,
        contentType: 'application/json',
        body: JSON.stringify({
          statusCode: 400,
          error: 'Bad Request',
          code: 'RESET_TOKEN_EXPIRED',
          message: 'The reset link has expired',
        }),
      }),
    );
    await openLink(tab, `${gatehouse.origin}/reset-password#token=an-old-token`, '#reset-view');
    await page.locator('#reset-form').getByLabel('New password').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Change my password' }).click();
    await visible(tab, '#reset-problem');
    expect(await text(tab, '#reset-problem-text')).toBe('This link has expired: ask for a new one.');
    expect(await page.getByRole('link', { name: 'Ask for a new link' }).getAttribute('href')).toBe('/#forgot');
    await page.screenshot({ path: screenshotPath('reset-expired-link-desktop.png'), fullPage: true });
    await page.unroute('**/auth/password/reset');

    // A reload (the token left the address bar on the first load, unused): no form to fail.
    await page.reload();
    await visible(tab, '#reset-problem');
    expect(await text(tab, '#reset-problem-text')).toMatch(/^This page needs the link from your mail/);
    expect(await page.isVisible('#reset-form')).toBe(false);

    // A token in the query is not a token: only the fragment counts.
    tab.requests.length = 0;
    await page.goto(`${gatehouse.origin}/verify-email?token=from-the-query`);
    await visible(tab, '#verify-problem');
    expect(await page.isVisible('#verify-button')).toBe(false);
    expect(tab.requests.filter((r) => r.startsWith('POST'))).toEqual([]);

    // 429 on the forgot form: "try again in N seconds".
    await page.route('**/auth/password/forgot', (route) =>
      route.fulfill({
        status: 429,
        contentType: 'application/json',
        headers: { 'Retry-After': '42' },
        body: JSON.stringify({
          statusCode: 429,
          error: 'Too Many Requests',
          code: 'TOO_MANY_REQUESTS',
          message: 'Too many requests',
        }),
      }),
    );
    await page.goto(`${gatehouse.origin}/#forgot`);
    await visible(tab, '#forgot-view');
    await page.locator('#forgot-form').getByLabel('Username or email').fill('someone');
    await page.getByRole('button', { name: 'Send me a reset link' }).click();
    await visible(tab, '#forgot-form-error');
    expect(await text(tab, '#forgot-form-error')).toBe('Too many attempts. Try again in 42 seconds.');
    expect(await page.isVisible('#forgot-done')).toBe(false);
    await expectClean(tab);
  });

  it('verifies the address and changes it from the profile, through the mailed links', async () => {
    const username = uniqueName('mail');
    const first = addressOf(username);
    const second = addressOf(`${username}_new`);
    const ctx = await context();
    const tab = await open(ctx, '/#signup');
    const { page } = tab;
    await visible(tab, '#signup-view');
    await page.locator('#signup-form').getByLabel('Username', { exact: true }).fill(username);
    await page.locator('#signup-form').getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.locator('#signup-form').getByLabel('Email').fill(first);
    await page.getByRole('button', { name: 'Create account' }).click();
    await visible(tab, '#app-view');
    await page.locator('#profile-email', { hasText: first }).waitFor();
    expect(await text(tab, '#profile-email-state')).toBe('Not verified');

    // "Verify": a link to the current address.
    await page.getByRole('button', { name: 'Verify my email address' }).click();
    await visible(tab, '#email-notice');
    expect(await text(tab, '#email-notice')).toContain(first);
    await page.screenshot({ path: screenshotPath('profile-unverified-desktop.png'), fullPage: true });
    const verification = await mailTo(first, /confirm your email address/);
    expect(verification.link.startsWith(`${gatehouse.origin}/verify-email#token=`)).toBe(true);

    await openLink(tab, verification.link, '#verify-view');
    expect(await page.isVisible('#verify-button')).toBe(true);
    await page.screenshot({ path: screenshotPath('verify-email-desktop.png'), fullPage: true });
    await page.getByRole('button', { name: 'Confirm my email address' }).click();
    await visible(tab, '#verify-result');
    expect(await text(tab, '#verify-result-text')).toBe('Your email address is verified. Thank you!');

    // Back in the account (the refresh cookie restores the session): verified.
    await page.getByRole('link', { name: 'Continue to Gatehouse' }).click();
    await visible(tab, '#app-view');
    await page.locator('#profile-email-state', { hasText: /^Verified$/ }).waitFor();
    expect(await page.isVisible('#email-unverified')).toBe(false);

    // The change form: the current password is checked first.
    const form = page.locator('#email-form');
    await form.getByLabel('New email address').fill(second);
    await form.getByLabel('Current password').fill('not my password');
    await form.getByRole('button', { name: 'Change email address' }).click();
    await visible(tab, '#email-password-error');
    expect(await text(tab, '#email-password-error')).toBe('That is not your current password.');

    await form.getByLabel('Current password').fill(PASSWORD);
    await form.getByRole('button', { name: 'Change email address' }).click();
    await visible(tab, '#email-pending');
    expect(await text(tab, '#email-pending-address')).toBe(second);
    // The current address is verified: both addresses must confirm.
    expect(await text(tab, '#email-pending-needs')).toContain(`to ${second} and to your current address, ${first}`);
    expect(await text(tab, '#profile-email')).toBe(first);
    await page.screenshot({ path: screenshotPath('profile-email-pending-desktop.png'), fullPage: true });

    // The new address confirms first: the change waits for the other link.
    const toNew = await mailTo(second, /confirm your new email address/);
    const toCurrent = await mailTo(first, /confirm the change of your email address/);
    await openLink(tab, toNew.link, '#verify-view');
    await page.getByRole('button', { name: 'Confirm my email address' }).click();
    await visible(tab, '#verify-result');
    expect(await text(tab, '#verify-result-text')).toMatch(/^This address is confirmed\. The change applies once/);

    await openLink(tab, toCurrent.link, '#verify-view');
    await page.getByRole('button', { name: 'Confirm my email address' }).click();
    await visible(tab, '#verify-result');
    expect(await text(tab, '#verify-result-text')).toMatch(/^Your email address has been changed/);
    await page.screenshot({ path: screenshotPath('verify-email-changed-desktop.png'), fullPage: true });

    await page.getByRole('link', { name: 'Continue to Gatehouse' }).click();
    await visible(tab, '#app-view');
    await page.locator('#profile-email', { hasText: second }).waitFor();
    expect(await page.isVisible('#email-pending')).toBe(false);
    await page.screenshot({ path: screenshotPath('profile-email-changed-desktop.png'), fullPage: true });

    // (b) A used verification link.
    await openLink(tab, verification.link, '#verify-view');
    await page.getByRole('button', { name: 'Confirm my email address' }).click();
    await visible(tab, '#verify-problem');
    expect(await text(tab, '#verify-problem-text')).toBe('This link is invalid or was already used.');
    await page.screenshot({ path: screenshotPath('verify-used-link-desktop.png'), fullPage: true });
    await expectClean(tab);
  });

  it('cancels a pending change: its link stops working', async () => {
    const username = uniqueName('cancel');
    await apiSignup(username);
    const target = addressOf(`${username}_x`);
    const ctx = await context();
    const tab = await open(ctx);
    const { page } = tab;
    await logIn(tab, username, PASSWORD);
    await visible(tab, '#app-view');
    await page.locator('#profile-username', { hasText: username }).waitFor();
    expect(await text(tab, '#profile-email')).toBe('—');
    expect(await text(tab, '#email-form-title')).toBe('Add an email address');

    const form = page.locator('#email-form');
    await form.getByLabel('New email address').fill(target);
    await form.getByLabel('Current password').fill(PASSWORD);
    await form.getByRole('button', { name: 'Add email address' }).click();
    await visible(tab, '#email-pending');
    // No current address: only the new one confirms.
    expect(await text(tab, '#email-pending-needs')).toBe(
      `open the link we mailed to ${target}: the address changes once it is confirmed.`,
    );
    const mail = await mailTo(target, /confirm your new email address/);

    // Still pending after a reload (GET /users/me says so).
    await page.reload();
    await visible(tab, '#app-view');
    await visible(tab, '#email-pending');
    expect(await text(tab, '#email-pending-address')).toBe(target);

    await page.getByRole('button', { name: 'Cancel the change of email address' }).click();
    await page.locator('#email-pending').waitFor({ state: 'hidden' });
    expect(await text(tab, '#email-notice')).toMatch(/^The change of email address was cancelled/);

    await openLink(tab, mail.link, '#verify-view');
    await page.getByRole('button', { name: 'Confirm my email address' }).click();
    await visible(tab, '#verify-problem');
    expect(await text(tab, '#verify-problem-text')).toBe('This link is invalid or was already used.');
    await expectClean(tab);
  });
});
