import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signup } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';
import { WsClient, listen } from './ws-helpers.js';

describe('realtime smoke', () => {
  let t: TestApp;
  let url: string;
  beforeAll(async () => {
    t = await startApp();
    url = await listen(t);
  });
  afterAll(async () => t.close());

  it('auth.ok, resource.created to owner only, logout closes 4410', async () => {
    const a = await signup(t);
    const b = await signup(t);
    const wa = await WsClient.open(url);
    const wb = await WsClient.open(url);
    const ok = await wa.authenticate(a.accessToken);
    expect(ok.data.userId).toBe(a.id);
    await wb.authenticate(b.accessToken);
    const res = await t.http.post('/resources').set(a.auth).send({ title: 'x' }).expect(201);
    const ev = await wa.next('resource.created');
    expect(ev.data.id).toBe(res.body.id);
    await new Promise((r) => setTimeout(r, 100));
    expect(wb.all('resource.created')).toHaveLength(0);
    await t.http.post('/auth/logout').set(a.auth).expect(204);
    expect(await wa.closing()).toEqual({ code: 4410, reason: 'SESSION_REVOKED' });
    wb.close();
  });

  it('no auth: 4408 on advance', async () => {
    const w = await WsClient.open(url);
    t.clock.advance(11);
    expect(await w.closing()).toEqual({ code: 4408, reason: 'AUTH_TIMEOUT' });
  });
});
