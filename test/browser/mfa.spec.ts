/// <reference lib="dom" />
// Two-step sign-in (TOTP + recovery codes) in the browser client, in real Chromium against the
// real server, with real time: set up an authenticator from the page (the QR code drawn on a
// canvas, the setup key as text), save the recovery codes, sign in with a code from the
// "authenticator" (otpauth, here) and with a recovery code, make new codes, turn it off.
// Authenticator codes are single use per 30 s step: a code of the next step is accepted at once
// (the server's window of one step either side), and the test waits (at most ~30 s) only when it
// has already used that one.
// `npm run test:browser`; needs /usr/bin/chromium (Debian's `chromium` package).
import { readFileSync } from 'node:fs';
import { Secret, TOTP } from 'otpauth';
import type { Browser, BrowserContext } from 'playwright-core';
import { encode } from 'uqr';
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
const ADMIN = 'root_admin';
const PERIOD_MS = 30_000;
/** `XXXXX-XXXXX`, Crockford base32 (no I, L, O, U). */
const RECOVERY_CODE = /^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$/;
/** What the page draws: 5 px per module, 4 modules of quiet zone. */
const SCALE = 5;
const QUIET_ZONE = 4;

let gatehouse: Gatehouse;
let browser: Browser;
const contexts: BrowserContext[] = [];
let counter = 0;

const uniqueName = (prefix: string) => `${prefix}_${Date.now().toString(36)}${(counter++).toString(36)}`;

const visible = (tab: Tab, selector: string) =>
  tab.page.locator(selector).waitFor({ state: 'visible', timeout: 15_000 });
const hidden = (tab: Tab, selector: string) => tab.page.locator(selector).waitFor({ state: 'hidden', timeout: 15_000 });
const text = async (tab: Tab, selector: string) => ((await tab.page.locator(selector).textContent()) ?? '').trim();
const focusedId = (tab: Tab) => tab.page.evaluate(() => document.activeElement?.id ?? null);
const count = (tab: Tab, request: string) => tab.requests.filter((r) => r === request).length;
const LOGIN_MFA = 'POST /auth/login/mfa';

/**
 * The authenticator app: a code of a step after `usedStep` (codes are single use per step). The
 * server accepts the codes of one step either side of its own (MFA_TOTP_WINDOW=1, for a phone
 * whose clock is a little off), so the next step's code is typed at once when the current one is
 * used; the wait is only for a step further on.
 */
async function codeAfter(secret: string, usedStep: number): Promise<{ code: string; step: number }> {
  const step = Math.max(usedStep + 1, Math.floor(Date.now() / PERIOD_MS));
  const wait = (step - 1) * PERIOD_MS - Date.now();
  if (wait > 0) await sleep(wait + 50); // the server runs on this machine's clock
  return { code: TOTP.generate({ secret: Secret.fromBase32(secret), timestamp: step * PERIOD_MS }), step };
}

/** A 6-digit code that is none of the codes the window around now accepts. */
function wrongCode(secret: string): string {
  const now = Date.now();
  const valid = new Set(
    [-2, -1, 0, 1, 2].map((d) => TOTP.generate({ secret: Secret.fromBase32(secret), timestamp: now + d * PERIOD_MS })),
  );
  for (let n = 0; ; n++) {
    const code = String(n * 111_111 + 123_456).slice(-6);
    if (!valid.has(code)) return code;
  }
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

async function signOut(tab: Tab): Promise<void> {
  await tab.page.locator('#logout-button').click();
  await visible(tab, '#login-view');
}

/** Resolves once `selector` (a form) has handled its submit: a submit meanwhile would be ignored. */
const settled = (tab: Tab, selector: string) =>
  tab.page.waitForFunction((s) => document.querySelector(s)?.getAttribute('aria-busy') !== 'true', selector);

/** The codes on show in the recovery-codes panel. */
async function shownCodes(tab: Tab): Promise<string[]> {
  await visible(tab, '#mfa-codes');
  return (await tab.page.locator('#mfa-code-list li').allTextContents()).map((c) => c.trim());
}

/** Both steps of a sign-in through the API (another device), the second with a recovery code: its status. */
async function apiRecoveryLogin(username: string, recoveryCode: string): Promise<number> {
  const post = (path: string, body: object) =>
    fetch(`${gatehouse.origin}${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  const first = await post('/auth/login', { username, password: PASSWORD });
  const { code, mfaToken } = (await first.json()) as { code?: string; mfaToken?: string };
  expect([first.status, code]).toEqual([403, 'MFA_REQUIRED']);
  return (await post('/auth/login/mfa', { mfaToken, recoveryCode })).status;
}

/** No CSP violation, no uncaught error, no console error but Chromium's line for each 4xx answer. */
async function expectClean(tab: Tab): Promise<void> {
  expect(await tab.page.evaluate('window.__cspViolations')).toEqual([]);
  expect(tab.pageErrors).toEqual([]);
  const unexpected = tab.consoleErrors.filter(
    (m) => !/^Failed to load resource: the server responded with a status of 4\d\d /.test(m),
  );
  expect(unexpected).toEqual([]);
}

describe('two-step sign-in in the browser client', () => {
  beforeAll(async () => {
    build();
    // An admin (aal1 after a password) whose admin routes want a second factor: STEP_UP_REQUIRED.
    gatehouse = await startGatehouse({
      // MFA_TOTP_WINDOW: codeAfter() types the next step's code, which the window of one accepts.
      env: { ADMIN_REQUIRE_MFA: 'true', ADMIN_USERNAME: ADMIN, ADMIN_PASSWORD: PASSWORD, MFA_TOTP_WINDOW: '1' },
    });
    browser = await launchChromium();
  }, 300_000);

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await gatehouse?.stop();
  }, 60_000);

  it('serves the QR code library as a JavaScript module', async () => {
    const res = await fetch(`${gatehouse.origin}/vendor/uqr.js`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^(text|application)\/javascript\b/);
    expect(await res.text()).toContain('function encode(');
  });

  it('keeps the session on a 403 STEP_UP_REQUIRED and on the 401s of the second step: no refresh, no sign-out', async () => {
    const ctx = await newContext(browser);
    contexts.push(ctx);
    const tab = watch(await ctx.newPage());
    await tab.page.goto(`${gatehouse.origin}/`);
    await tab.page.locator('#loading-view').waitFor({ state: 'hidden' });
    // The page's own client module, in a client of its own (its own channel and lock: the
    // page's client stays out of it). A string: the test's transform would rewrite import().
    const seen = await tab.page.evaluate(`(async () => {
      const { GatehouseClient } = await import('/gatehouse-client.js');
      const client = new GatehouseClient({ channelName: 'step-up-test', lockName: 'step-up-test' });
      const signedOut = [];
      client.addEventListener('signedout', () => signedOut.push('signedout'));
      const caught = async (call) => {
        try {
          await call();
          return null;
        } catch (e) {
          return { status: e.status, code: e.code };
        }
      };
      const login = await client.login(${JSON.stringify(ADMIN)}, ${JSON.stringify(PASSWORD)});
      const error = await caught(() => client.request('GET', '/users'));
      const me = await client.me();
      const mfaError = await caught(() => client.loginMfa('not-a-challenge', { code: '123456' }));
      return { login: login.status, error, signedIn: client.signedIn, signedOut, me: me.username, mfaError };
    })()`);
    expect(seen).toEqual({
      login: 'signed-in',
      error: { status: 403, code: 'STEP_UP_REQUIRED' },
      signedIn: true,
      signedOut: [],
      me: ADMIN,
      mfaError: { status: 401, code: 'MFA_TOKEN_INVALID' },
    });
    expect(count(tab, 'POST /auth/refresh')).toBe(1); // the page's start(), none since
    await expectClean(tab);
  });

  it('sets up an authenticator, signs in with a code and with a recovery code, makes new codes, turns it off', async () => {
    const ctx = await newContext(browser, { viewport: { width: 1000, height: 1000 }, acceptDownloads: true });
    contexts.push(ctx);
    await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: gatehouse.origin });
    const tab = watch(await ctx.newPage());
    const { page } = tab;
    await page.goto(`${gatehouse.origin}/`);
    await page.locator('#loading-view').waitFor({ state: 'hidden' });
    const username = uniqueName('otp');
    await signUp(tab, username);

    // ---- off, at first ----
    await page.locator('#mfa-state', { hasText: 'Off' }).waitFor();
    await visible(tab, '#mfa-enrol-form');
    expect(await page.isVisible('#mfa-manage')).toBe(false);

    // ---- set up: a wrong password first, under its field ----
    const enrol = page.locator('#mfa-enrol-form');
    await enrol.getByLabel('Current password').fill('not my password');
    await enrol.getByRole('button', { name: 'Set up an authenticator app' }).click();
    await visible(tab, '#mfa-enrol-password-error');
    expect(await text(tab, '#mfa-enrol-password-error')).toBe('That is not your current password.');
    expect(await focusedId(tab)).toBe('mfa-enrol-password');

    await enrol.getByLabel('Current password').fill(PASSWORD);
    const enrolResponse = page.waitForResponse(
      (r) => r.url().endsWith('/auth/mfa/totp') && r.request().method() === 'POST',
    );
    await enrol.getByRole('button', { name: 'Set up an authenticator app' }).click();
    const { otpauthUri } = (await (await enrolResponse).json()) as { otpauthUri: string };
    await visible(tab, '#mfa-setup');
    expect(await focusedId(tab)).toBe('mfa-setup-title');

    // The setup key, as a person would copy it (grouped by 4): the URI's secret.
    const shownKey = await text(tab, '#mfa-secret');
    expect(shownKey).toMatch(/^([A-Z2-7]{4} )+[A-Z2-7]{1,4}$/);
    const secret = shownKey.replace(/\s+/g, '');
    expect(secret).toHaveLength(32);
    expect(new URL(otpauthUri).searchParams.get('secret')).toBe(secret);
    expect(await text(tab, '#mfa-secret-details')).toBe('Time-based, 6 digits, a new code every 30 seconds.');

    // The QR code: pure black and white, white quiet zone, and module for module the URI's symbol.
    const drawn = await page.evaluate(
      ({ scale }) => {
        const canvas = document.getElementById('mfa-qr') as HTMLCanvasElement;
        const { data, width, height } = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height);
        let black = 0;
        let white = 0;
        for (let i = 0; i < data.length; i += 4) {
          const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
          if (a === 255 && r === 0 && g === 0 && b === 0) black++;
          else if (a === 255 && r === 255 && g === 255 && b === 255) white++;
        }
        const modules = Math.floor(width / scale);
        const grid: boolean[][] = [];
        for (let y = 0; y < modules; y++) {
          const row: boolean[] = [];
          for (let x = 0; x < modules; x++) {
            const i = ((y * scale + Math.floor(scale / 2)) * width + x * scale + Math.floor(scale / 2)) * 4;
            row.push(data[i] === 0);
          }
          grid.push(row);
        }
        const box = canvas.getBoundingClientRect();
        return { width, height, black, white, grid, shown: { width: box.width, height: box.height } };
      },
      { scale: SCALE },
    );
    expect(drawn.width).toBeGreaterThan(0);
    expect(drawn.height).toBe(drawn.width);
    expect(drawn.width % SCALE).toBe(0);
    expect(drawn.shown.width).toBeGreaterThan(0);
    expect(drawn.black + drawn.white).toBe(drawn.width * drawn.height); // nothing but black and white
    expect(drawn.black / (drawn.width * drawn.height)).toBeGreaterThan(0.2); // not blank
    const side = drawn.grid.length;
    for (let i = 0; i < side; i++) {
      for (const q of [0, 1, 2, 3]) {
        expect(drawn.grid[q]?.[i], 'quiet zone').toBe(false);
        expect(drawn.grid[side - 1 - q]?.[i], 'quiet zone').toBe(false);
        expect(drawn.grid[i]?.[q], 'quiet zone').toBe(false);
        expect(drawn.grid[i]?.[side - 1 - q], 'quiet zone').toBe(false);
      }
    }
    const symbols = (['L', 'M', 'Q', 'H'] as const).map((ecc) => encode(otpauthUri, { ecc, border: QUIET_ZONE }).data);
    expect(symbols.some((symbol) => JSON.stringify(symbol) === JSON.stringify(drawn.grid))).toBe(true);

    await page
      .locator('section[aria-labelledby="mfa-title"]')
      .screenshot({ path: screenshotPath('mfa-enrolment.png') });

    // ---- confirm: a code of the wrong shape is refused here; the right one turns it on ----
    const confirm = page.locator('#mfa-confirm-form');
    expect(await confirm.getByLabel('Code from the app').getAttribute('inputmode')).toBe('numeric');
    expect(await confirm.getByLabel('Code from the app').getAttribute('autocomplete')).toBe('one-time-code');
    await confirm.getByLabel('Code from the app').fill('12345');
    await confirm.getByRole('button', { name: 'Turn on' }).click();
    await visible(tab, '#mfa-confirm-code-error');
    expect(await text(tab, '#mfa-confirm-code-error')).toBe('Code must be the 6 digits your authenticator app shows.');
    expect(count(tab, 'POST /auth/mfa/totp/confirm')).toBe(0);

    const afterConfirm = tab.responses.length;
    const enrolled = await codeAfter(secret, -1);
    await confirm.getByLabel('Code from the app').fill(enrolled.code);
    const confirmResponse = page.waitForResponse((r) => r.url().endsWith('/auth/mfa/totp/confirm'));
    await confirm.getByRole('button', { name: 'Turn on' }).click();
    expect((await confirmResponse).status()).toBe(200);

    // ---- the recovery codes, once, with Copy and Download ----
    const codes = await shownCodes(tab);
    expect(codes).toHaveLength(10);
    for (const code of codes) expect(code).toMatch(RECOVERY_CODE);
    expect(new Set(codes).size).toBe(10);
    expect(await focusedId(tab)).toBe('mfa-codes-title');
    // The setup key and the QR code are gone from the page.
    expect(await text(tab, '#mfa-secret')).toBe('');
    expect(await page.evaluate(() => (document.getElementById('mfa-qr') as HTMLCanvasElement).width)).toBe(0);
    await page
      .locator('section[aria-labelledby="mfa-title"]')
      .screenshot({ path: screenshotPath('mfa-recovery-codes.png') });

    await page.getByRole('button', { name: 'Copy the recovery codes' }).click();
    await page.locator('#mfa-codes-status', { hasText: 'Copied' }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(codes.join('\n'));

    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Download the recovery codes' }).click();
    const file = await download;
    expect(file.suggestedFilename()).toBe('gatehouse-recovery-codes.txt');
    const saved = readFileSync(await file.path(), 'utf8');
    for (const code of codes) expect(saved).toContain(code);
    expect(saved).not.toContain(secret);

    // The session was upgraded in place: this page is still signed in, with the new token.
    await page.getByRole('button', { name: 'I saved them' }).click();
    await hidden(tab, '#mfa-codes');
    expect(await page.locator('#mfa-code-list li').count()).toBe(0);
    expect(await focusedId(tab)).toBe('mfa-title');
    await page.locator('#mfa-state', { hasText: 'On' }).waitFor();
    await page.locator('#mfa-status-text', { hasText: '10 unused recovery codes left' }).waitFor();
    await visible(tab, '#mfa-manage');
    expect(tab.responses.slice(afterConfirm).filter((r) => r.status === 401)).toEqual([]);

    // ---- sign in: password, then the second step ----
    await signOut(tab);
    await logIn(tab, username);
    await visible(tab, '#mfa-login-form');
    expect(await page.isVisible('#login-form')).toBe(false);
    expect(await focusedId(tab)).toBe('mfa-login-code');
    const codeField = page.locator('#mfa-login-form').getByLabel('Authentication code');
    expect(await codeField.getAttribute('inputmode')).toBe('numeric');
    expect(await codeField.getAttribute('autocomplete')).toBe('one-time-code');

    // A wrong code: said under the field, which keeps the focus.
    const before = count(tab, LOGIN_MFA);
    await codeField.fill('12 34');
    await page.keyboard.press('Enter');
    await page.locator('#mfa-login-code-error', { hasText: '6 digits' }).waitFor();
    expect(count(tab, LOGIN_MFA)).toBe(before); // not sent: it would cost one of the few tries
    await codeField.fill(wrongCode(secret));
    await page.keyboard.press('Enter');
    await page.locator('#mfa-login-code-error', { hasText: 'That code is not valid' }).waitFor();
    expect(await focusedId(tab)).toBe('mfa-login-code');
    expect(await page.getAttribute('#mfa-login-code', 'aria-invalid')).toBe('true');

    // Too many wrong codes kill the attempt: back to the password, saying why.
    for (let i = 0; i < 5; i++) {
      if (!(await page.isVisible('#mfa-login-form'))) break;
      const answered = page.waitForResponse((r) => r.url().endsWith('/auth/login/mfa'));
      await codeField.fill(wrongCode(secret));
      await page.keyboard.press('Enter');
      await answered;
      await settled(tab, '#mfa-login-form');
    }
    await visible(tab, '#login-form');
    await page.locator('#login-form-error', { hasText: 'Enter your password again' }).waitFor();
    expect(await page.isVisible('#mfa-login-form')).toBe(false);
    expect(await page.inputValue('#login-username')).toBe(username);
    expect(await page.inputValue('#login-password')).toBe('');
    expect(await page.isVisible('#app-view')).toBe(false);

    // Again, with the next step's code (the enrolment's step is spent).
    await logIn(tab, username);
    await visible(tab, '#mfa-login-form');
    await page.screenshot({ path: screenshotPath('mfa-login-code.png'), fullPage: true });
    const signedInWithCode = await codeAfter(secret, enrolled.step);
    await codeField.fill(signedInWithCode.code);
    await page.keyboard.press('Enter');
    await visible(tab, '#app-view');
    await page.locator('#profile-username', { hasText: username }).waitFor();
    await page.locator('#mfa-state', { hasText: 'On' }).waitFor();
    expect(await page.isVisible('#recovery-notice')).toBe(false);

    // ---- new recovery codes (for a code of a later step): the old set dies ----
    const regenerate = page.locator('#mfa-regenerate-form');
    const regenerated = await codeAfter(secret, signedInWithCode.step);
    await regenerate.getByLabel('Authentication code').fill(regenerated.code);
    await regenerate.getByRole('button', { name: 'Make new codes' }).click();
    await page.locator('#mfa-code-list li').first().waitFor();
    const newCodes = await shownCodes(tab);
    expect(newCodes).toHaveLength(10);
    expect(newCodes.filter((c) => codes.includes(c))).toEqual([]);
    await page.getByRole('button', { name: 'I saved them' }).click();
    await hidden(tab, '#mfa-codes');

    // ---- sign in with a recovery code ----
    await signOut(tab);
    await logIn(tab, username);
    await visible(tab, '#mfa-login-form');
    await page.getByRole('button', { name: 'Use a recovery code instead' }).click();
    expect(await focusedId(tab)).toBe('mfa-login-recoveryCode');
    expect(await page.isVisible('#mfa-login-code')).toBe(false);
    const recoveryField = page.locator('#mfa-login-form').getByLabel('Recovery code');
    await recoveryField.fill(codes[0]!); // from the old set: dead
    await page.keyboard.press('Enter');
    await page.locator('#mfa-login-recoveryCode-error', { hasText: 'That code is not valid' }).waitFor();
    await recoveryField.fill(newCodes[0]!);
    await page.keyboard.press('Enter');
    await visible(tab, '#app-view');
    await visible(tab, '#recovery-notice');
    expect(await text(tab, '#recovery-notice-text')).toBe(
      'You signed in with a recovery code, which no longer works. 9 unused recovery codes left.',
    );
    await page.locator('#mfa-status-text', { hasText: '9 unused recovery codes left' }).waitFor();
    expect(await page.isVisible('#recovery-notice-action')).toBe(false);

    // Down to 3 codes (used elsewhere), one more here: 2 left, a warning, a way to new codes.
    for (const code of newCodes.slice(1, 7)) expect(await apiRecoveryLogin(username, code)).toBe(200);
    await signOut(tab);
    await logIn(tab, username);
    await visible(tab, '#mfa-login-form');
    await page.getByRole('button', { name: 'Use a recovery code instead' }).click();
    await recoveryField.fill(newCodes[7]!.toLowerCase().replace('-', '')); // as hand-copied: the server normalises
    await page.keyboard.press('Enter');
    await visible(tab, '#recovery-notice.warning');
    expect(await text(tab, '#recovery-notice-text')).toMatch(
      /^You signed in with a recovery code, which no longer works\. Only 2 unused recovery codes left: make new ones/,
    );
    await page.locator('#mfa-status-text', { hasText: '2 unused recovery codes left' }).waitFor();
    await page.screenshot({ path: screenshotPath('mfa-signed-in-with-recovery-code.png') });
    await page.getByRole('button', { name: 'Make new recovery codes' }).click();
    expect(await focusedId(tab)).toBe('mfa-regenerate-code');

    // ---- turn it off: password and a code (here a recovery code) ----
    const disable = page.locator('#mfa-disable-form');
    await disable.getByLabel('Current password').fill('not my password');
    await disable.getByLabel('Authentication code or recovery code').fill(newCodes[8]!);
    await disable.getByRole('button', { name: 'Turn off two-step sign-in' }).click();
    await page.locator('#mfa-disable-password-error', { hasText: 'That is not your current password.' }).waitFor();
    await disable.getByLabel('Current password').fill(PASSWORD);
    await disable.getByRole('button', { name: 'Turn off two-step sign-in' }).click();
    await page.locator('#mfa-notice', { hasText: 'Two-step sign-in is off' }).waitFor();
    await page.locator('#mfa-state', { hasText: 'Off' }).waitFor();
    await visible(tab, '#mfa-enrol-form');
    expect(await page.isVisible('#mfa-manage')).toBe(false);
    expect(await page.isVisible('#recovery-notice')).toBe(false);

    // The password alone signs in again.
    await signOut(tab);
    await logIn(tab, username);
    await visible(tab, '#app-view');
    expect(await page.isVisible('#mfa-login-form')).toBe(false);
    await expectClean(tab);
  }, 240_000);
});
