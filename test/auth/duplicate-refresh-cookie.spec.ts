import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { bearer, refresh, setCookiesOf, signup } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

/**
 * Security finding 12c: with two `refresh_token` cookies in one request, cookie-parser kept
 * the first and the server used it. A cookie planted ahead of the victim's (by a sibling
 * subdomain, say) then decided whose session a refresh continued, or which one a logout ended.
 * A duplicated refresh cookie is now never used: refresh answers 401 REFRESH_TOKEN_INVALID
 * and rotates nothing; logout treats it as no cookie.
 */

describe('a request carrying the refresh_token cookie twice', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS });
  });
  afterAll(async () => t?.close());

  /** Both sessions are untouched: each token, presented alone, still rotates (200). */
  async function expectBothStillLive(...tokens: string[]) {
    for (const token of tokens) await refresh(t, token).expect(200);
  }

  function expectRejected(res: { status: number; body: unknown; headers: Record<string, unknown> }) {
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ statusCode: 401, error: 'Unauthorized', code: 'REFRESH_TOKEN_INVALID' });
    expect((res.body as Record<string, unknown>).accessToken).toBeUndefined();
    const cookies = setCookiesOf(res);
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatch(/^refresh_token=; Max-Age=0;/);
  }

  it("refresh: the attacker's cookie planted before the victim's is refused with 401 REFRESH_TOKEN_INVALID", async () => {
    const attacker = await signup(t);
    const victim = await signup(t);
    const res = await t.http
      .post('/auth/refresh')
      .set('Cookie', `refresh_token=${attacker.refreshToken}; refresh_token=${victim.refreshToken}`);
    expectRejected(res);
    await expectBothStillLive(attacker.refreshToken, victim.refreshToken);
  });

  it.each([
    ['the same token twice', (a: string) => `refresh_token=${a}; refresh_token=${a}`],
    ['a valid token, then garbage', (a: string) => `refresh_token=${a}; refresh_token=garbage`],
    [
      'among other cookies, with spaces around the names',
      (a: string) => `theme=dark; refresh_token=${a};  refresh_token =x; lang=en`,
    ],
    ['a second one without a value', (a: string) => `refresh_token=${a}; refresh_token=`],
  ])('refresh: %s is refused with 401 REFRESH_TOKEN_INVALID', async (_name, header) => {
    const u = await signup(t);
    expectRejected(await t.http.post('/auth/refresh').set('Cookie', header(u.refreshToken)));
    await expectBothStillLive(u.refreshToken);
  });

  it('refresh: two Cookie header lines, one cookie each, are refused as well', async () => {
    const a = await signup(t);
    const b = await signup(t);
    const res = await t.http
      .post('/auth/refresh')
      .set('Cookie', [`refresh_token=${a.refreshToken}`, `refresh_token=${b.refreshToken}`]);
    expectRejected(res);
    await expectBothStillLive(a.refreshToken, b.refreshToken);
  });

  it('refresh: one refresh_token among other cookies still works (200)', async () => {
    const u = await signup(t);
    const res = await t.http
      .post('/auth/refresh')
      .set('Cookie', `theme=dark; refresh_token=${u.refreshToken}; refresh_token_hint=1`)
      .expect(200);
    expect(typeof res.body.accessToken).toBe('string');
  });

  it('logout: a duplicated cookie is treated as no cookie: neither session is revoked (204)', async () => {
    const a = await signup(t);
    const b = await signup(t);
    await t.http
      .post('/auth/logout')
      .set('Cookie', `refresh_token=${a.refreshToken}; refresh_token=${b.refreshToken}`)
      .expect(204);
    await expectBothStillLive(a.refreshToken, b.refreshToken);
  });

  it("logout: with a duplicated cookie and a bearer token, only the bearer's session ends", async () => {
    const a = await signup(t);
    const b = await signup(t);
    await t.http
      .post('/auth/logout')
      .set(bearer(b.accessToken))
      .set('Cookie', `refresh_token=${a.refreshToken}; refresh_token=${b.refreshToken}`)
      .expect(204);
    await refresh(t, b.refreshToken).expect(401);
    await expectBothStillLive(a.refreshToken);
  });
});
