import { createHmac } from 'node:crypto';
import bcrypt from 'bcrypt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretsService } from '../../src/config/secrets.service.js';
import { ROOMY_LIMITS } from '../support/env.js';
import { signup, uniqueUsername } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

/** "Crème brûlée, café!" with precomposed letters (NFC) and as base letters + combining marks (NFD). */
const COMPOSED = 'Cr\u00e8me br\u00fbl\u00e9e, caf\u00e9!';
const DECOMPOSED = 'Cre\u0300me bru\u0302le\u0301e, cafe\u0301!';

describe('passwords are Unicode-normalised (NFC) before hashing and verifying', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000' });
  });
  afterAll(async () => t?.close());

  const loginStatus = async (username: string, password: string) =>
    (await t.http.post('/auth/login').send({ username, password })).status;

  it('the two forms really differ as strings and are one NFC string', () => {
    expect(DECOMPOSED).not.toBe(COMPOSED);
    expect(DECOMPOSED.normalize('NFC')).toBe(COMPOSED);
  });

  it('signed up with the decomposed form, logs in with the precomposed one (and the same)', async () => {
    const u = await signup(t, { password: DECOMPOSED });
    expect(await loginStatus(u.username, COMPOSED)).toBe(200);
    expect(await loginStatus(u.username, DECOMPOSED)).toBe(200);
    expect(await loginStatus(u.username, 'Creme brulee, cafe!')).toBe(401);
  });

  it('signed up with the precomposed form, logs in with the decomposed one (and the same)', async () => {
    const u = await signup(t, { password: COMPOSED });
    expect(await loginStatus(u.username, DECOMPOSED)).toBe(200);
    expect(await loginStatus(u.username, COMPOSED)).toBe(200);
  });

  it('accepts the other form as the current password of a password change', async () => {
    const u = await signup(t, { password: COMPOSED });
    await t.http
      .post('/users/me/password')
      .set(u.auth)
      .send({ currentPassword: DECOMPOSED, newPassword: DECOMPOSED.toUpperCase() })
      .expect(204);
    expect(await loginStatus(u.username, COMPOSED.toUpperCase())).toBe(200);
  });

  it('still logs in to a hash made before normalisation (from the raw string), and upgrades it to the NFC form', async () => {
    const u = await signup(t, { password: 'placeholder password' });
    const pepper = t.app.get(SecretsService).passwordPepper;
    const legacy = await bcrypt.hash(createHmac('sha256', pepper).update(DECOMPOSED, 'utf8').digest('base64'), 4);
    await t.prisma.user.update({ where: { id: u.id }, data: { passwordHash: legacy } });

    expect(await loginStatus(u.username, DECOMPOSED)).toBe(200); // the form it was made from
    const upgraded = (await t.prisma.user.findUniqueOrThrow({ where: { id: u.id } })).passwordHash;
    expect(upgraded).not.toBe(legacy);
    // Re-hashed from the NFC form: now either form logs in.
    expect(await loginStatus(u.username, COMPOSED)).toBe(200);
    expect(await loginStatus(u.username, DECOMPOSED)).toBe(200);
    expect((await t.prisma.user.findUniqueOrThrow({ where: { id: u.id } })).passwordHash).toBe(upgraded);
  });

  it('keeps the length rule (8–128 characters, counted as sent)', async () => {
    const signupStatus = async (password: string) =>
      (await t.http.post('/auth/signup').send({ username: uniqueUsername(), password })).status;
    // "e" + combining accent is two characters, as before.
    expect(await signupStatus('e\u0301'.repeat(4))).toBe(201); // 8
    expect(await signupStatus(`${'e\u0301'.repeat(3)}x`)).toBe(400); // 7
    expect(await signupStatus('\u00e9'.repeat(8))).toBe(201); // 8
    expect(await signupStatus('\u00e9'.repeat(7))).toBe(400); // 7
    expect(await signupStatus('e\u0301'.repeat(64))).toBe(201); // 128
    expect(await signupStatus(`${'e\u0301'.repeat(64)}x`)).toBe(400); // 129
  });
});
