import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import {
  bearer,
  login,
  protectedStatus,
  refresh,
  refreshCookieOf,
  setCookiesOf,
  signup,
} from '../support/factories.js';
import { ALLOWED_ORIGIN, startApp, type TestApp } from '../support/test-app.js';

const maxAgeOf = (res: { headers: Record<string, unknown> }): number => {
  const m = /Max-Age=(\d+)/.exec(setCookiesOf(res)[0] ?? '');
  if (!m) throw new Error('no Max-Age');
  return Number(m[1]);
};

describe('POST /auth/refresh: rotation and reuse', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, REFRESH_REUSE_GRACE: '10' });
    t.clock.freeze();
  });
  afterAll(async () => t?.close());

  it('answers 200 with a TokenResponse (no user) and a rotated cookie that works in turn', async () => {
    const u = await signup(t);
    const res = await refresh(t, u.refreshToken).expect(200);
    expect(Object.keys(res.body).sort()).toEqual(['accessToken', 'expiresIn', 'tokenType']);
    expect(res.body.tokenType).toBe('Bearer');
    expect(res.body.expiresIn).toBe(900);
    expect(res.body.accessToken).not.toBe(u.accessToken);
    expect(await protectedStatus(t, res.body.accessToken)).toBe(200);
    const next = refreshCookieOf(res)!;
    expect(next).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(next).not.toBe(u.refreshToken);
    const again = await refresh(t, next).expect(200);
    expect(refreshCookieOf(again)).not.toBe(next);
  });

  it('keeps the same session across rotations', async () => {
    const u = await signup(t);
    const sid = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).sid as string;
    const r1 = await refresh(t, u.refreshToken).expect(200);
    const r2 = await refresh(t, refreshCookieOf(r1)!).expect(200);
    expect(sid(r1.body.accessToken)).toBe(sid(u.accessToken));
    expect(sid(r2.body.accessToken)).toBe(sid(u.accessToken));
    const sessions = await t.http.get('/auth/sessions').set(bearer(r2.body.accessToken)).expect(200);
    expect(sessions.body).toHaveLength(1);
  });

  it('gives the same successor again for the just-rotated token within REFRESH_REUSE_GRACE', async () => {
    const u = await signup(t);
    const first = await refresh(t, u.refreshToken).expect(200);
    const successor = refreshCookieOf(first)!;
    t.clock.advance(9);
    const second = await refresh(t, u.refreshToken).expect(200);
    expect(refreshCookieOf(second)).toBe(successor);
    expect(await protectedStatus(t, second.body.accessToken)).toBe(200);
    // The session is still alive and rotates on from that successor.
    const third = await refresh(t, successor).expect(200);
    expect(refreshCookieOf(third)).not.toBe(successor);
  });

  it('treats the rotated-away token after the grace window as reuse: 401 REFRESH_TOKEN_REUSED and the session is revoked', async () => {
    const u = await signup(t);
    const other = await login(t, u.username, u.password); // a second session of the same user
    const rotated = await refresh(t, u.refreshToken).expect(200);
    const newer = refreshCookieOf(rotated)!;
    t.clock.advance(11);

    const reuse = await refresh(t, u.refreshToken);
    expect(reuse.status).toBe(401);
    expect(reuse.body).toMatchObject({ statusCode: 401, error: 'Unauthorized', code: 'REFRESH_TOKEN_REUSED' });

    // Its newer refresh token fails too, and so do its access tokens, old and new.
    const newerRes = await refresh(t, newer);
    expect(newerRes.status).toBe(401);
    expect(newerRes.body.code).toBe('REFRESH_TOKEN_REUSED');
    expect(await protectedStatus(t, u.accessToken)).toBe(401);
    expect(await protectedStatus(t, rotated.body.accessToken)).toBe(401);
    const stored = await t.prisma.session.findFirstOrThrow({ where: { userId: u.id, revokedAt: { not: null } } });
    expect(stored.revokedAt).not.toBeNull();

    // The user's other session is untouched.
    expect(await protectedStatus(t, other.accessToken)).toBe(200);
    const list = await t.http.get('/auth/sessions').set(other.auth).expect(200);
    expect(list.body.map((s: { id: string }) => s.id)).not.toContain(stored.id);
    await refresh(t, other.refreshToken).expect(200);
  });

  it('treats a token rotated away two steps ago as reuse, even inside the grace window, and revokes the session', async () => {
    const u = await signup(t);
    // The thief refreshes twice with a stolen token: t0 -> t1 -> t2.
    const r1 = await refresh(t, u.refreshToken).expect(200);
    const r2 = await refresh(t, refreshCookieOf(r1)!).expect(200);
    const thiefToken = refreshCookieOf(r2)!;
    // The owner then presents t0: it is neither current nor the just-rotated one.
    const reuse = await refresh(t, u.refreshToken);
    expect(reuse.status).toBe(401);
    expect(reuse.body.code).toBe('REFRESH_TOKEN_REUSED');
    // The thief's chain and access tokens die with the session.
    expect((await refresh(t, thiefToken)).status).toBe(401);
    expect(await protectedStatus(t, r2.body.accessToken)).toBe(401);
    // Only hashes of the retired tokens are stored.
    const retired = await t.prisma.retiredRefreshToken.findMany({ where: { session: { userId: u.id } } });
    expect(retired).toHaveLength(2);
    expect(retired.every((r) => r.tokenHash.length === 32)).toBe(true);
  });

  it('answers 10 parallel refreshes with one token with 200 and the same successor, and the session lives on', async () => {
    const u = await signup(t);
    const results = await Promise.all(Array.from({ length: 10 }, () => refresh(t, u.refreshToken)));
    expect(results.map((r) => r.status)).toEqual(Array(10).fill(200));
    const successors = new Set(results.map((r) => refreshCookieOf(r)));
    expect(successors.size).toBe(1);
    const [successor] = [...successors];
    expect(successor).not.toBe(u.refreshToken);
    for (const r of results) expect(await protectedStatus(t, r.body.accessToken)).toBe(200);
    await refresh(t, successor!).expect(200);
    expect(await t.prisma.session.count({ where: { userId: u.id, revokedAt: null } })).toBe(1);
  });

  it('answers 401 REFRESH_TOKEN_MISSING without a cookie (or with an empty one)', async () => {
    const none = await t.http.post('/auth/refresh');
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({ statusCode: 401, code: 'REFRESH_TOKEN_MISSING' });
    const empty = await t.http.post('/auth/refresh').set('Cookie', 'refresh_token=');
    expect(empty.status).toBe(401);
    expect(empty.body.code).toBe('REFRESH_TOKEN_MISSING');
  });

  it.each([
    ['garbage', 'garbage'],
    ['a well-formed unknown token', 'x'.repeat(43)],
    ['a token one character too long', 'A'.repeat(44)],
    ['SQL in the cookie', encodeURIComponent("' OR 1=1 --")],
  ])('answers 401 REFRESH_TOKEN_INVALID for %s', async (_label, value) => {
    const res = await t.http.post('/auth/refresh').set('Cookie', `refresh_token=${value}`);
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('REFRESH_TOKEN_INVALID');
  });

  it('refuses an access token presented as the refresh cookie', async () => {
    const u = await signup(t);
    const res = await refresh(t, u.accessToken);
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('REFRESH_TOKEN_INVALID');
    await refresh(t, u.refreshToken).expect(200); // the session itself is fine
  });

  it('refuses a refresh token presented as the bearer token', async () => {
    const u = await signup(t);
    const res = await t.http.get('/auth/sessions').set(bearer(u.refreshToken));
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer .*error="invalid_token"/);
  });

  it('refuses to refresh the session of a disabled account', async () => {
    const u = await signup(t);
    await t.prisma.user.update({ where: { id: u.id }, data: { disabled: true } });
    const res = await refresh(t, u.refreshToken);
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('REFRESH_TOKEN_INVALID');
  });

  describe('Origin check (CSRF defence in depth)', () => {
    it('refuses refresh from a foreign Origin with 403 ORIGIN_NOT_ALLOWED and does not rotate', async () => {
      const u = await signup(t);
      const res = await refresh(t, u.refreshToken, { Origin: 'https://evil.example' });
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ statusCode: 403, error: 'Forbidden', code: 'ORIGIN_NOT_ALLOWED' });
      // A foreign page must not be able to end the session: the cookie is left alone.
      expect(refreshCookieOf(res)).toBeUndefined();
      // The token was not consumed: it still rotates normally.
      await refresh(t, u.refreshToken).expect(200);
    });

    it('refuses an origin that only resembles the allowed one', async () => {
      const u = await signup(t);
      for (const origin of [`${ALLOWED_ORIGIN}.evil.example`, ALLOWED_ORIGIN.replace('http:', 'https:'), 'null']) {
        const res = await refresh(t, u.refreshToken, { Origin: origin });
        expect(res.status, `Origin: ${origin}`).toBe(403);
      }
    });

    it('allows refresh from the allowed Origin and without an Origin header', async () => {
      const u = await signup(t);
      const withOrigin = await refresh(t, u.refreshToken, { Origin: ALLOWED_ORIGIN }).expect(200);
      await refresh(t, refreshCookieOf(withOrigin)!).expect(200);
    });

    it('refuses logout from a foreign Origin with 403 and leaves the session alive', async () => {
      const u = await signup(t);
      const res = await t.http
        .post('/auth/logout')
        .set('Origin', 'https://evil.example')
        .set('Cookie', `refresh_token=${u.refreshToken}`)
        .set(u.auth);
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('ORIGIN_NOT_ALLOWED');
      expect(await protectedStatus(t, u.accessToken)).toBe(200);
      await refresh(t, u.refreshToken).expect(200);
    });

    it('allows logout from the allowed Origin and without an Origin header', async () => {
      const a = await signup(t);
      await t.http
        .post('/auth/logout')
        .set('Origin', ALLOWED_ORIGIN)
        .set('Cookie', `refresh_token=${a.refreshToken}`)
        .expect(204);
      expect(await protectedStatus(t, a.accessToken)).toBe(401);
      const b = await signup(t);
      await t.http.post('/auth/logout').set('Cookie', `refresh_token=${b.refreshToken}`).expect(204);
      expect(await protectedStatus(t, b.accessToken)).toBe(401);
    });
  });
});

describe('POST /auth/refresh: idle and absolute expiry', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, REFRESH_TOKEN_TTL: '100', SESSION_MAX_AGE: '250', ACCESS_TOKEN_TTL: '60' });
    t.clock.freeze();
  });
  afterAll(async () => t?.close());

  it('keeps a session alive while it is used within REFRESH_TOKEN_TTL', async () => {
    const u = await signup(t);
    t.clock.advance(99);
    const res = await refresh(t, u.refreshToken).expect(200);
    expect(maxAgeOf(res)).toBe(100);
  });

  it('ends a session after REFRESH_TOKEN_TTL of inactivity', async () => {
    const u = await signup(t);
    t.clock.advance(101);
    const res = await refresh(t, u.refreshToken);
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('REFRESH_TOKEN_INVALID');
  });

  it('ends a session at SESSION_MAX_AGE whatever the refreshes, shrinking the cookie Max-Age towards it', async () => {
    const u = await signup(t);
    const created = t.clock.nowMs();
    let token = u.refreshToken;
    const ages: number[] = [];
    for (const step of [90, 90, 60]) {
      t.clock.advance(step);
      const res = await refresh(t, token).expect(200);
      ages.push(maxAgeOf(res));
      token = refreshCookieOf(res)!;
      const list = await t.http.get('/auth/sessions').set(bearer(res.body.accessToken)).expect(200);
      expect(Date.parse(list.body[0].expiresAt)).toBeLessThanOrEqual(created + 250_000);
    }
    // t=90: idle limit 190 < 250; t=180: capped at 250 (70 left); t=240: 10 left.
    expect(ages).toEqual([100, 70, 10]);
    t.clock.advance(11); // t=251
    const late = await refresh(t, token);
    expect(late.status).toBe(401);
    expect(setCookiesOf(late)[0]).toMatch(/^refresh_token=; Max-Age=0;/);
  });

  it('lets an access token expire at ACCESS_TOKEN_TTL even while its session lives on', async () => {
    const u = await signup(t);
    t.clock.advance(59);
    expect(await protectedStatus(t, u.accessToken)).toBe(200);
    t.clock.advance(2);
    expect(await protectedStatus(t, u.accessToken)).toBe(401);
    const res = await refresh(t, u.refreshToken).expect(200);
    expect(await protectedStatus(t, res.body.accessToken)).toBe(200);
  });
});
