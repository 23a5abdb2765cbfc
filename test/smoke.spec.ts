import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signup } from './support/factories.js';
import { startApp, type TestApp } from './support/test-app.js';

describe('smoke', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp();
  });
  afterAll(async () => t?.close());

  it('health and signup', async () => {
    await t.http.get('/health').expect(200, { status: 'ok' });
    const u = await signup(t);
    const res = await t.http.post('/auth/refresh').set('Cookie', `refresh_token=${u.refreshToken}`);
    expect(res.status).toBe(200);
  });
});
