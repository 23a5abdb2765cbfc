// Federation in the browser client, in real Chromium against the real server and a fake OpenID
// provider (test/support/fake-idp.ts, run by the test): the hand-off page
// /federated-signin#subject_token=… that the organisation's sign-in sends the person to (the
// token leaves the address bar at once, is exchanged for a session, and the page becomes the
// signed-in one), its messages when the token is refused, the "Linked sign-ins" card (link with
// a token and the password, unlink) and the deletion of an account without a password.
// `npm run test:browser`; needs /usr/bin/chromium (Debian's `chromium` package).
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeIdp } from '../support/fake-idp.js';
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
const SESSION = '/auth/federated/session';

let gatehouse: Gatehouse;
let browser: Browser;
/** The organisation's provider. */
let idp: FakeIdp;
/** Another configured provider, down at first (its keys cannot be fetched). */
let flaky: FakeIdp;
const contexts: BrowserContext[] = [];
let counter = 0;

const uniqueName = (prefix: string) => `${prefix}_${Date.now().toString(36)}${(counter++).toString(36)}`;

async function context(): Promise<BrowserContext> {
  const c = await newContext(browser, { viewport: { width: 1000, height: 900 } });
  contexts.push(c);
  return c;
}

const visible = (tab: Tab, selector: string) =>
  tab.page.locator(selector).waitFor({ state: 'visible', timeout: 15_000 });
const hidden = (tab: Tab, selector: string) => tab.page.locator(selector).waitFor({ state: 'hidden', timeout: 15_000 });
const text = async (tab: Tab, selector: string) => ((await tab.page.locator(selector).textContent()) ?? '').trim();
const focusedId = (tab: Tab) => tab.page.evaluate('document.activeElement && document.activeElement.id');
const statuses = (tab: Tab, method: string, path: string | RegExp) =>
  tab.responses
    .filter((r) => r.method === method && (typeof path === 'string' ? r.path === path : path.test(r.path)))
    .map((r) => r.status);

/** Opens the hand-off page as the organisation's sign-in does: the token in the fragment. */
async function handOff(tab: Tab, token: string): Promise<void> {
  const res = await tab.page.goto(`${gatehouse.origin}/federated-signin#subject_token=${token}`);
  // The server answers the path with the client's page, as it does the mailed links' paths.
  expect(res?.status()).toBe(200);
  expect(res?.headers()['content-type']).toMatch(/^text\/html/);
}

/** The token must be nowhere the page keeps things: not in the address, nor in web storage. */
async function expectTokenGone(tab: Tab, token: string): Promise<void> {
  expect(tab.page.url()).not.toContain(token);
  expect(await tab.page.evaluate('location.hash')).toBe('');
  const stored = (await tab.page.evaluate(
    'JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])',
  )) as string;
  expect(stored).not.toContain(token);
}

/** A bearer call of the API (for what the test checks behind the page's back). */
async function api(
  method: string,
  path: string,
  token: string,
): Promise<{ status: number; body: Record<string, unknown> | null }> {
  const res = await fetch(gatehouse.origin + path, { method, headers: { Authorization: `Bearer ${token}` } });
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

/** No CSP violation, no uncaught error, no console error but Chromium's line for each 4xx (and 503) answer. */
async function expectClean(tab: Tab): Promise<void> {
  expect(await tab.page.evaluate('window.__cspViolations')).toEqual([]);
  expect(tab.pageErrors).toEqual([]);
  const unexpected = tab.consoleErrors.filter(
    (m) => !/^Failed to load resource: the server responded with a status of (4\d\d|503) /.test(m),
  );
  expect(unexpected).toEqual([]);
}

describe('federated sign-in in the browser client', () => {
  beforeAll(async () => {
    build();
    idp = await FakeIdp.start();
    flaky = await FakeIdp.start({ path: '/realms/flaky' });
    flaky.mode = 'down';
    gatehouse = await startGatehouse({
      env: { FEDERATION_ISSUERS: JSON.stringify([idp.entry(), flaky.entry({ name: 'flaky-idp' })]) },
    });
    browser = await launchChromium();
  }, 300_000);

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await gatehouse?.stop();
    await idp?.close();
    await flaky?.close();
  }, 60_000);

  it('signs in from /federated-signin#subject_token=…, keeps the session on reload, lists the identity, deletes the account by its username', async () => {
    const username = uniqueName('fed');
    const subject = `sub-${username}`;
    const token = await idp.sign({ sub: subject, preferred_username: username, name: 'Fiona Federated' });
    const ctx = await context();
    // Notes the address bar at the moment the page POSTs the token (the client binds `fetch` when made).
    await ctx.addInitScript({
      content: `{
        const send = window.fetch.bind(window);
        window.fetch = (input, init) => {
          if (String(input).endsWith(${JSON.stringify(SESSION)})) window.__addressAtExchange = location.href;
          return send(input, init);
        };
      }`,
    });
    const tab = watch(await ctx.newPage());
    const { page } = tab;

    const exchanged = page.waitForResponse((r) => new URL(r.url()).pathname === SESSION);
    await handOff(tab, token);
    const answer = await exchanged;
    expect(answer.status()).toBe(200);
    const userId = ((await answer.json()) as { user: { id: string } }).user.id;

    // Signed in, on the usual page; the hand-off's address (and its token) is gone.
    await visible(tab, '#app-view');
    await page.locator('#profile-username', { hasText: username }).waitFor();
    expect(await text(tab, '#whoami')).toBe('Fiona Federated');
    expect(page.url()).toBe(`${gatehouse.origin}/`);
    await expectTokenGone(tab, token);
    expect(statuses(tab, 'POST', SESSION)).toEqual([200]);
    // Out of the address bar before it was even sent.
    expect(await page.evaluate('window.__addressAtExchange')).toBe(`${gatehouse.origin}/federated-signin`);

    // The linked sign-in, listed; no link form for an account without a password.
    const rows = page.locator('#identity-list > li');
    await rows.first().waitFor();
    expect(await rows.count()).toBe(1);
    expect(await rows.locator('h3').textContent()).toBe('test-idp');
    expect(await rows.locator('code').textContent()).toBe(subject);
    expect(await rows.locator('.meta').textContent()).toMatch(/^linked \S.* · last used \S/);
    expect(await page.locator('#identity-link-form').isVisible()).toBe(false);
    await visible(tab, '#identity-link-passwordless');

    // A reload restores the session through the refresh cookie.
    const refreshes = statuses(tab, 'POST', '/auth/refresh').length;
    await page.reload();
    await visible(tab, '#app-view');
    await page.locator('#profile-username', { hasText: username }).waitFor();
    expect(statuses(tab, 'POST', '/auth/refresh').slice(refreshes)[0]).toBe(200);
    await rows.first().waitFor();

    // Its only way to sign in cannot be unlinked: the row says so, and stays.
    await rows.getByRole('button', { name: /^Unlink/ }).click();
    const refused = rows.locator('.form-error');
    await refused.waitFor({ state: 'visible', timeout: 15_000 });
    expect(await refused.textContent()).toMatch(/only way to sign in.*cannot be unlinked/);
    expect(statuses(tab, 'DELETE', /^\/users\/me\/identities\//)).toEqual([409]);
    expect(await rows.count()).toBe(1);

    // Deleting the account asks for the username, not a password.
    const form = page.locator('#delete-form');
    expect(await page.locator('#delete-password-field').isVisible()).toBe(false);
    expect(await text(tab, '#delete-confirm-username')).toBe(username);
    await form.getByLabel('Your username, to confirm').fill(`not-${username}`);
    await form.getByRole('button', { name: 'Delete my account' }).click();
    await visible(tab, '#delete-confirm-error');
    expect(await text(tab, '#delete-confirm-error')).toMatch(/does not match/);
    expect(statuses(tab, 'DELETE', '/users/me')).toEqual([400]);
    await form.getByLabel('Your username, to confirm').fill(username);
    await form.getByRole('button', { name: 'Delete my account' }).click();
    await visible(tab, '#login-view');
    expect(await text(tab, '#login-notice')).toBe('Your account has been deleted.');
    expect(statuses(tab, 'DELETE', '/users/me')).toEqual([400, 204]);

    // Gone: the provider's next sign-in makes a new account, not the old one.
    const me = await api('GET', '/users/me', await idp.sign({ sub: subject, preferred_username: username }));
    expect(me.status).toBe(200);
    expect(me.body?.id).not.toBe(userId);
    await expectClean(tab);
  });

  it('says why a hand-off was refused (used, invalid, provider down), with the way back, and tries again once the provider is back', async () => {
    const ctx = await context();
    const tab = watch(await ctx.newPage());
    const { page } = tab;

    // A token already exchanged (a replay, or the hand-off opened twice): refused.
    const spent = await idp.sign({ sub: `sub-${uniqueName('spent')}` });
    const first = await fetch(gatehouse.origin + SESSION, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ subjectToken: spent }),
    });
    expect(first.status).toBe(200);
    await handOff(tab, spent);
    await visible(tab, '#federated-problem');
    expect(await text(tab, '#federated-problem-text')).toMatch(/already used/);
    expect(await focusedId(tab)).toBe('federated-problem-text');
    expect(page.url()).toBe(`${gatehouse.origin}/federated-signin`);
    await expectTokenGone(tab, spent);
    expect(await page.getByRole('link', { name: 'Back to sign in' }).getAttribute('href')).toBe('/');
    expect(await page.locator('#federated-retry').isVisible()).toBe(false);
    expect(await page.locator('#app-view').isVisible()).toBe(false);
    expect(statuses(tab, 'POST', SESSION)).toEqual([401]);

    // A token for another audience: invalid. A new hand-off in the same tab changes only the fragment.
    const foreign = await idp.sign({ sub: 'someone', aud: 'another-api' });
    await page.evaluate((t) => (location.hash = `subject_token=${t}`), foreign);
    await page.locator('#federated-problem-text', { hasText: 'could not be accepted' }).waitFor({ timeout: 15_000 });
    await expectTokenGone(tab, foreign);
    expect(statuses(tab, 'POST', SESSION)).toEqual([401, 401]);

    // The other provider is down: nothing could be checked, the token is not used up: "Try again".
    const username = uniqueName('late');
    const pending = await flaky.sign({ sub: `sub-${username}`, preferred_username: username });
    await page.evaluate((t) => (location.hash = `subject_token=${t}`), pending);
    await page.locator('#federated-problem-text', { hasText: 'cannot be reached' }).waitFor({ timeout: 15_000 });
    await expectTokenGone(tab, pending);
    await visible(tab, '#federated-retry');
    expect(statuses(tab, 'POST', SESSION)).toEqual([401, 401, 503]);
    expect((await ctx.cookies()).some((c) => c.name === 'refresh_token')).toBe(false);

    flaky.mode = 'up';
    await sleep(1_500); // after a failed key fetch the server answers 503 at once for 1 s
    await page.getByRole('button', { name: 'Try again' }).click();
    await visible(tab, '#app-view');
    await page.locator('#profile-username', { hasText: username }).waitFor();
    expect(page.url()).toBe(`${gatehouse.origin}/`);
    expect(statuses(tab, 'POST', SESSION)).toEqual([401, 401, 503, 200]);
    expect((await ctx.cookies()).some((c) => c.name === 'refresh_token')).toBe(true);
    await hidden(tab, '#federated-view');
    await expectClean(tab);
  });

  it('links a sign-in to a local account with a token and the password, lists it, and unlinks it', async () => {
    const tab = watch(await (await context()).newPage());
    const { page } = tab;
    await page.goto(`${gatehouse.origin}/`);
    await visible(tab, '#login-view');
    const username = uniqueName('local');
    await signUp(tab, username);

    // Nothing linked yet; the form asks for the password (and so does the deletion).
    await visible(tab, '#identities-empty');
    await visible(tab, '#identity-link-form');
    expect(await page.locator('#identity-link-passwordless').isVisible()).toBe(false);
    expect(await page.locator('#delete-password-field').isVisible()).toBe(true);
    expect(await page.locator('#delete-confirm-field').isVisible()).toBe(false);

    const subject = `sub-${username}`;
    const token = await idp.sign({ sub: subject, preferred_username: 'someone-else' });
    const form = page.locator('#identity-link-form');
    await form.getByLabel('Token from your provider').fill(`${token}\n`);
    await form.getByLabel('Current password').fill('not my password');
    await form.getByRole('button', { name: 'Link sign-in' }).click();
    await visible(tab, '#identity-link-password-error');
    expect(await text(tab, '#identity-link-password-error')).toMatch(/not your current password/);
    expect(statuses(tab, 'POST', '/users/me/identities')).toEqual([403]);

    // The wrong password used nothing up: the same token, with the right one.
    await form.getByLabel('Current password').fill(PASSWORD);
    await form.getByRole('button', { name: 'Link sign-in' }).click();
    const rows = page.locator('#identity-list > li');
    await rows.first().waitFor({ timeout: 15_000 });
    expect(await rows.count()).toBe(1);
    expect(await rows.locator('h3').textContent()).toBe('test-idp');
    expect(await rows.locator('code').textContent()).toBe(subject);
    expect(await page.locator('#identities-empty').isVisible()).toBe(false);
    expect(await form.getByLabel('Token from your provider').inputValue()).toBe('');
    expect(statuses(tab, 'POST', '/users/me/identities')).toEqual([403, 201]);

    // Signing in through the provider now opens this account.
    const linked = await api('GET', '/users/me', await idp.sign({ sub: subject }));
    expect([linked.status, linked.body?.username]).toEqual([200, username]);

    // The same token again: used up, said under the field; the session is not touched.
    await form.getByLabel('Token from your provider').fill(token);
    await form.getByLabel('Current password').fill(PASSWORD);
    await form.getByRole('button', { name: 'Link sign-in' }).click();
    await visible(tab, '#identity-link-subjectToken-error');
    expect(await text(tab, '#identity-link-subjectToken-error')).toMatch(/already used/);
    expect(statuses(tab, 'POST', '/users/me/identities')).toEqual([403, 201, 401]);
    expect(await page.locator('#app-view').isVisible()).toBe(true);

    // Unlink: the row goes, and the provider's sign-in no longer opens this account.
    await rows.getByRole('button', { name: /^Unlink/ }).click();
    await rows.first().waitFor({ state: 'detached', timeout: 15_000 });
    await visible(tab, '#identities-empty');
    expect(statuses(tab, 'DELETE', /^\/users\/me\/identities\//)).toEqual([204]);
    const after = await api('GET', '/users/me', await idp.sign({ sub: subject }));
    expect(after.status).toBe(200);
    expect(after.body?.username).not.toBe(username);
    await expectClean(tab);
  });
});
