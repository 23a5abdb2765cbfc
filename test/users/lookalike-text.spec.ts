import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { signup, uniqueUsername } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

/**
 * Security finding 12b: lookalike emails (zero-width characters, mixed scripts) and bidi
 * controls in display names were accepted, on signup and on PATCH /users/me. Each is now a
 * 400 VALIDATION_FAILED naming the field; ordinary non-ASCII text still passes.
 */

const refusedEmails: Array<[string, string]> = [
  ['a zero-width space in the local part', 'ad\u200Bmin@example.com'],
  ['a zero-width joiner in the domain', 'admin@exa\u200Dmple.com'],
  ['a zero-width non-joiner', 'ad\u200Cmin@example.com'],
  ['a byte-order mark inside', 'admin\uFEFF@example.com'],
  ['a soft hyphen', 'ad\u00ADmin@example.com'],
  ['a word joiner', 'admin\u2060@example.com'],
  ['a right-to-left override', 'admin\u202E@example.com'],
  ['a Hangul filler', 'ad\u3164min@example.com'],
  ['an ideographic space', 'ad\u3000min@example.com'],
  ['a Cyrillic "а" among Latin letters in the local part', '\u0430dmin@example.com'],
  ['a Cyrillic "а" among Latin letters in the domain', 'admin@ex\u0430mple.com'],
  ['a Greek "ο" among Latin letters in the domain', 'admin@g\u03BFogle.com'],
  ['a fullwidth "ａ"', '\uFF41dmin@example.com'],
  ['a mathematical bold "𝐚"', '\u{1D41A}dmin@example.com'],
  // Security finding: variation selectors (allowed for emoji in display names) were accepted
  // in emails too, and U+2800 everywhere; both render as nothing (or blank).
  ['a variation selector-16 after a letter (U+FE0F)', 'm1x\uFE0Fy@example.com'],
  ['a variation selector-1 (U+FE00)', 'admin\uFE00@example.com'],
  ['a variation selector-15 in the domain (U+FE0E)', 'admin@exam\uFE0Eple.com'],
  ['a supplementary variation selector (U+E0100)', 'ad\u{E0100}min@example.com'],
  ['the last supplementary variation selector (U+E01EF)', 'admin@example\u{E01EF}.com'],
  ['a Braille pattern blank (U+2800)', 'ad\u2800min@example.com'],
  ['a halfwidth Hangul filler (U+FFA0)', 'ad\uFFA0min@example.com'],
  ['a Hangul choseong filler (U+115F)', 'ad\u115Fmin@example.com'],
  ['a Hangul jungseong filler (U+1160)', 'admin@exa\u1160mple.com'],
  ['a musical symbol null notehead (U+1D159)', 'admin\u{1D159}@example.com'],
];

const acceptedEmails: Array<[string, string]> = [
  ['plain ASCII', 'ada.lovelace+tag@example.com'],
  ['Latin with diacritics', 'zo\u00EB@b\u00FCcher.de'],
  ['all Cyrillic', '\u0438\u0432\u0430\u043D@\u043F\u0440\u0438\u043C\u0435\u0440.\u0440\u0444'],
  ['a Latin local part at a Cyrillic domain', 'ivan@\u043F\u0440\u0438\u043C\u0435\u0440.\u0440\u0444'],
];

const refusedDisplayNames: Array<[string, string]> = [
  ['a right-to-left override (U+202E)', 'Ada\u202Egnp.exe'],
  ['a left-to-right embedding', 'Ada\u202ALovelace'],
  ['bidi isolates', '\u2066admin\u2069'],
  ['a zero-width space', 'Ada\u200BLovelace'],
  ['a zero-width joiner', 'Ada\u200DLovelace'],
  ['a byte-order mark inside', 'Ada\uFEFFLovelace'],
  ['a soft hyphen', 'Ada\u00ADLovelace'],
  ['a tab (control character)', 'Ada\tLovelace'],
  ['a newline (control character)', 'Ada\nLovelace'],
  ['a C1 control character', 'Ada\u0085Lovelace'],
  ['a line separator', 'Ada\u2028Lovelace'],
  ['nothing but a Hangul filler', '\u3164'],
  ['a combining grapheme joiner', 'Ada\u034FLovelace'],
  ['a Braille pattern blank (U+2800)', 'Ada\u2800Lovelace'],
  ['nothing but Braille pattern blanks', '\u2800\u2800\u2800'],
  ['a halfwidth Hangul filler (U+FFA0)', 'Ada\uFFA0Lovelace'],
  ['nothing but a Hangul choseong filler (U+115F)', '\u115F'],
  ['a Hangul jungseong filler (U+1160)', 'Ada\u1160Lovelace'],
  ['a musical symbol null notehead (U+1D159)', 'Ada\u{1D159}'],
];

const acceptedDisplayNames: Array<[string, string]> = [
  ['Latin with diacritics', 'Zo\u00EB \u00DCnal'],
  ['Han', '\u674E\u5C0F\u9F8D'],
  ['Arabic', '\u0639\u0627\u0626\u0634\u0629'],
  ['an emoji with a variation selector', '\u2764\uFE0F Ada'],
  ['a symbol with the text-style variation selector', '\u2764\uFE0E Ada'],
  ['an emoji', 'Ada \u{1F600}'],
];

describe('lookalike and invisible characters in emails, display names and usernames', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, EMAIL_CHANGE_MODE: 'immediate' }); // PATCH /users/me {email} as in v1
  });
  afterAll(async () => t?.close());

  const problemWith = (field: string) =>
    expect.objectContaining({
      statusCode: 400,
      error: 'Bad Request',
      code: 'VALIDATION_FAILED',
      message: expect.arrayContaining([expect.stringMatching(new RegExp(`^${field} must not `))]),
    });

  it.each(refusedEmails)('refuses an email with %s: 400 on signup and on PATCH /users/me', async (_name, email) => {
    const username = uniqueUsername('mail');
    const res = await t.http.post('/auth/signup').send({ username, password: 'correct horse battery', email });
    expect(res.status).toBe(400);
    expect(res.body).toEqual(problemWith('email'));
    // Nothing was created: the username is still free.
    await signup(t, { username });

    const u = await signup(t);
    const patch = await t.http.patch('/users/me').set(u.auth).send({ email });
    expect(patch.status).toBe(400);
    expect(patch.body).toEqual(problemWith('email'));
    expect((await t.http.get('/users/me').set(u.auth).expect(200)).body.email).toBeNull();
  });

  it.each(acceptedEmails)('still accepts an email in %s, on signup and on PATCH /users/me', async (_name, email) => {
    const a = await signup(t, { email });
    expect((await t.http.get('/users/me').set(a.auth).expect(200)).body.email).toBe(email);
    await t.http.patch('/users/me').set(a.auth).send({ email: null }).expect(200);
    const b = await signup(t);
    const res = await t.http.patch('/users/me').set(b.auth).send({ email }).expect(200);
    expect(res.body.email).toBe(email);
  });

  it.each(refusedDisplayNames)(
    'refuses a display name with %s: 400 on signup and on PATCH /users/me',
    async (_name, displayName) => {
      const username = uniqueUsername('name');
      const res = await t.http.post('/auth/signup').send({ username, password: 'correct horse battery', displayName });
      expect(res.status).toBe(400);
      expect(res.body).toEqual(problemWith('displayName'));
      await signup(t, { username });

      const u = await signup(t, { displayName: 'Before' });
      const patch = await t.http.patch('/users/me').set(u.auth).send({ displayName });
      expect(patch.status).toBe(400);
      expect(patch.body).toEqual(problemWith('displayName'));
      expect((await t.http.get('/users/me').set(u.auth).expect(200)).body.displayName).toBe('Before');
    },
  );

  it.each(acceptedDisplayNames)('still accepts a display name in %s', async (_name, displayName) => {
    const u = await signup(t, { displayName });
    expect((await t.http.get('/users/me').set(u.auth).expect(200)).body.displayName).toBe(displayName);
    const res = await t.http
      .patch('/users/me')
      .set(u.auth)
      .send({ displayName: `${displayName}!` })
      .expect(200);
    expect(res.body.displayName).toBe(`${displayName}!`);
  });

  it.each([
    ['a zero-width space', 'ad\u200Bmin_x'],
    ['a right-to-left override', 'admin_x\u202E'],
    ['a Cyrillic "а"', '\u0430dmin_x'],
    ['a fullwidth letter', '\uFF41dmin_x'],
  ])('refuses a username with %s (usernames are ASCII only)', async (_name, username) => {
    const res = await t.http.post('/auth/signup').send({ username, password: 'correct horse battery' });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ statusCode: 400, error: 'Bad Request', code: 'VALIDATION_FAILED' });
    expect(res.body.message).toEqual(expect.arrayContaining([expect.stringMatching(/^username may contain only /)]));
  });
});
