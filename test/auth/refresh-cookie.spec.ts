import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { bearer, refresh, refreshCookieOf, setCookiesOf, signup } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

const COOKIE = /^refresh_token=([A-Za-z0-9_-]{43}); Max-Age=(\d+); Path=\/auth; HttpOnly; Secure; SameSite=Strict$/;
const CLEARED = /^refresh_token=; Max-Age=0; Path=\/auth; HttpOnly; Secure; SameSite=Strict$/;
const REFRESH_TOKEN_TTL = 14 * 24 * 3600;

/** The one Set-Cookie of a response, checked to be the only one. */
function onlyCookie(res: { headers: Record<string, unknown> }): string {
  const cookies = setCookiesOf(res);
  expect(cookies).toHaveLength(1);
  return cookies[0]!;
}

describe('the refresh cookie', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS });
    t.clock.freeze();
  });
  afterAll(async () => t?.close());

  it('is set exactly once on signup as refresh_token=<43 base64url>; Max-Age; Path=/auth; HttpOnly; Secure; SameSite=Strict', async () => {
    const res = await t.http
      .post('/auth/signup')
      .send({ username: 'cookie_signup', password: 'good password' })
      .expect(201);
    const m = COOKIE.exec(onlyCookie(res));
    expect(m, `cookie: ${onlyCookie(res)}`).not.toBeNull();
    expect(Number(m![2])).toBe(REFRESH_TOKEN_TTL);
  });

  it('is set exactly once on login and on refresh, with a new value each time', async () => {
    const u = await signup(t);
    const loginRes = await t.http.post('/auth/login').send({ username: u.username, password: u.password }).expect(200);
    const fromLogin = COOKIE.exec(onlyCookie(loginRes));
    expect(fromLogin).not.toBeNull();
    expect(Number(fromLogin![2])).toBe(REFRESH_TOKEN_TTL);

    const refreshRes = await refresh(t, fromLogin![1]!).expect(200);
    const fromRefresh = COOKIE.exec(onlyCookie(refreshRes));
    expect(fromRefresh).not.toBeNull();
    expect(Number(fromRefresh![2])).toBe(REFRESH_TOKEN_TTL);
    expect(new Set([u.refreshToken, fromLogin![1], fromRefresh![1]]).size).toBe(3);
  });

  it('is cleared with Max-Age=0 on logout', async () => {
    const u = await signup(t);
    const res = await t.http.post('/auth/logout').set('Cookie', `refresh_token=${u.refreshToken}`).expect(204);
    expect(onlyCookie(res)).toMatch(CLEARED);
  });

  it.each([
    ['a missing cookie', undefined, 'REFRESH_TOKEN_MISSING'],
    ['a garbage cookie', 'garbage', 'REFRESH_TOKEN_INVALID'],
    ['an unknown well-formed token', 'A'.repeat(43), 'REFRESH_TOKEN_INVALID'],
  ])('is cleared with Max-Age=0 when refresh fails with 401 for %s', async (_label, token, code) => {
    const req = t.http.post('/auth/refresh');
    const res = await (token === undefined ? req : req.set('Cookie', `refresh_token=${token}`));
    expect(res.status).toBe(401);
    expect(res.body.code).toBe(code);
    expect(onlyCookie(res)).toMatch(CLEARED);
  });

  it('is cleared with Max-Age=0 when refresh fails with 401 for reuse and for an expired session', async () => {
    const u = await signup(t);
    const rotated = refreshCookieOf(await refresh(t, u.refreshToken).expect(200))!;
    t.clock.advance(11);
    const reused = await refresh(t, u.refreshToken);
    expect(reused.status).toBe(401);
    expect(reused.body.code).toBe('REFRESH_TOKEN_REUSED');
    expect(onlyCookie(reused)).toMatch(CLEARED);

    const v = await signup(t);
    t.clock.advance(REFRESH_TOKEN_TTL + 1);
    const expired = await refresh(t, v.refreshToken);
    expect(expired.status).toBe(401);
    expect(onlyCookie(expired)).toMatch(CLEARED);
    expect(rotated).not.toBe(u.refreshToken);
  });

  it('is never stored: the sessions table holds only its SHA-256', async () => {
    const u = await signup(t);
    const next = refreshCookieOf(await refresh(t, u.refreshToken).expect(200))!;
    const sha = (s: string) => createHash('sha256').update(s, 'utf8').digest();
    const session = await t.prisma.session.findFirstOrThrow({ where: { userId: u.id } });
    expect(Buffer.from(session.tokenHash).equals(sha(next))).toBe(true);
    expect(Buffer.from(session.previousTokenHash!).equals(sha(u.refreshToken))).toBe(true);

    const rows = await t.prisma.$queryRaw<Array<{ row: string }>>`
      SELECT row_to_json(s)::text AS row FROM sessions s
      UNION ALL SELECT row_to_json(a)::text FROM audit_events a
      UNION ALL SELECT row_to_json(u)::text FROM users u`;
    const dump = rows.map((r) => r.row).join('\n');
    expect(dump).toContain(u.id); // the dump is real
    for (const token of [u.refreshToken, next]) {
      const raw = Buffer.from(token, 'base64url');
      for (const form of [token, raw.toString('hex'), raw.toString('base64')]) expect(dump).not.toContain(form);
    }
  });

  it('is not set on a failed login nor on calls that are not login, signup or refresh', async () => {
    const u = await signup(t);
    const failed = await t.http
      .post('/auth/login')
      .send({ username: u.username, password: 'wrong password' })
      .expect(401);
    expect(setCookiesOf(failed)).toEqual([]);
    const list = await t.http.get('/auth/sessions').set(bearer(u.accessToken)).expect(200);
    expect(setCookiesOf(list)).toEqual([]);
  });
});

describe('the refresh cookie with COOKIE_SECURE=false', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, COOKIE_SECURE: 'false' });
  });
  afterAll(async () => t?.close());

  it('drops Secure and keeps the other attributes on signup, refresh and logout', async () => {
    const res = await t.http
      .post('/auth/signup')
      .send({ username: 'insecure_cookie', password: 'good password' })
      .expect(201);
    const plain = /^refresh_token=([A-Za-z0-9_-]{43}); Max-Age=(\d+); Path=\/auth; HttpOnly; SameSite=Strict$/;
    const first = plain.exec(onlyCookie(res));
    expect(first, `cookie: ${onlyCookie(res)}`).not.toBeNull();
    const refreshed = await refresh(t, first![1]!).expect(200);
    const second = plain.exec(onlyCookie(refreshed));
    expect(second).not.toBeNull();
    const out = await t.http.post('/auth/logout').set('Cookie', `refresh_token=${second![1]}`).expect(204);
    expect(onlyCookie(out)).toBe('refresh_token=; Max-Age=0; Path=/auth; HttpOnly; SameSite=Strict');
  });
});
