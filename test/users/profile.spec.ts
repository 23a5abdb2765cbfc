import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { ME_KEYS, USER_KEYS, bearer, login, signup, uniqueEmail, uniqueUsername } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

describe('/users/me: the caller profile', () => {
  let t: TestApp;
  beforeAll(async () => {
    // v1's PATCH /users/me {email}: the immediate email-change mode (the default, verified, answers 400).
    t = await startApp({ ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', EMAIL_CHANGE_MODE: 'immediate' });
  });
  afterAll(async () => t?.close());

  describe('GET /users/me', () => {
    it('answers 200 with exactly the User fields of the caller', async () => {
      const email = uniqueEmail();
      const u = await signup(t, { email, displayName: 'Grace H.' });
      const res = await t.http.get('/users/me').set(u.auth).expect(200);

      expect(Object.keys(res.body).sort()).toEqual(ME_KEYS);
      expect(res.body).toEqual({
        id: u.id,
        username: u.username,
        email,
        emailVerified: false,
        displayName: 'Grace H.',
        roles: ['user'],
        kind: 'person',
        mfaEnabled: false,
        createdAt: expect.stringMatching(ISO),
        pendingEmail: null,
        hasPassword: true,
        identities: [],
      });
      expect(res.body.id).toMatch(UUID);
      expect(Number.isNaN(Date.parse(res.body.createdAt))).toBe(false);
    });

    it('never includes a password hash or any token', async () => {
      const u = await signup(t);
      const res = await t.http.get('/users/me').set(u.auth).expect(200);
      const stored = await t.prisma.user.findUniqueOrThrow({ where: { id: u.id } });
      // hasPassword (a boolean) is the one field named like a password, and only here (§0.5).
      const { hasPassword, ...rest } = res.body;
      expect(hasPassword).toBe(true);
      const text = JSON.stringify(rest);
      expect(text).not.toContain(stored.passwordHash);
      expect(text).not.toMatch(/\$2[aby]\$/);
      expect(text).not.toContain(u.accessToken);
      expect(text).not.toContain(u.refreshToken);
      expect(text).not.toMatch(/password|hash|token|disabled/i);
    });

    it('reports null email and displayName when the user has none', async () => {
      const u = await signup(t);
      const res = await t.http.get('/users/me').set(u.auth).expect(200);
      expect(res.body.email).toBeNull();
      expect(res.body.displayName).toBeNull();
    });

    it('answers 401 with a Bearer challenge without a token', async () => {
      const res = await t.http.get('/users/me').expect(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
      expect(res.body).toMatchObject({ statusCode: 401, error: 'Unauthorized', code: expect.any(String) });
    });

    it('answers 401 to a tampered access token', async () => {
      const u = await signup(t);
      const [h, p, s] = u.accessToken.split('.');
      const flipped = `${s!.slice(0, -2)}${s!.endsWith('AA') ? 'BB' : 'AA'}`;
      const res = await t.http
        .get('/users/me')
        .set(bearer(`${h}.${p}.${flipped}`))
        .expect(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    });
  });

  describe('PATCH /users/me', () => {
    it('sets the display name and answers the updated User', async () => {
      const u = await signup(t);
      const res = await t.http.patch('/users/me').set(u.auth).send({ displayName: 'Ada Lovelace' }).expect(200);
      expect(Object.keys(res.body).sort()).toEqual(USER_KEYS);
      expect(res.body).toMatchObject({
        id: u.id,
        username: u.username,
        displayName: 'Ada Lovelace',
        email: null,
        roles: ['user'],
      });
      const me = await t.http.get('/users/me').set(u.auth).expect(200);
      expect(me.body.displayName).toBe('Ada Lovelace');
    });

    it('sets the email, which then works as a login name', async () => {
      const u = await signup(t);
      const email = uniqueEmail('new');
      const res = await t.http.patch('/users/me').set(u.auth).send({ email }).expect(200);
      expect(res.body.email).toBe(email);
      expect((await t.http.get('/users/me').set(u.auth).expect(200)).body.email).toBe(email);
      const byEmail = await login(t, email, u.password);
      expect(byEmail.id).toBe(u.id);
    });

    it('changes only the fields that are sent', async () => {
      const email = uniqueEmail();
      const u = await signup(t, { email, displayName: 'Before' });
      await t.http.patch('/users/me').set(u.auth).send({ displayName: 'After' }).expect(200);
      const me = (await t.http.get('/users/me').set(u.auth).expect(200)).body;
      expect(me).toMatchObject({ email, displayName: 'After' });

      const email2 = uniqueEmail();
      await t.http.patch('/users/me').set(u.auth).send({ email: email2 }).expect(200);
      const me2 = (await t.http.get('/users/me').set(u.auth).expect(200)).body;
      expect(me2).toMatchObject({ email: email2, displayName: 'After' });
    });

    it('clears displayName and email with null', async () => {
      const email = uniqueEmail();
      const u = await signup(t, { email, displayName: 'Someone' });
      const res = await t.http.patch('/users/me').set(u.auth).send({ displayName: null, email: null }).expect(200);
      expect(res.body).toMatchObject({ displayName: null, email: null });
      const me = (await t.http.get('/users/me').set(u.auth).expect(200)).body;
      expect(me).toMatchObject({ displayName: null, email: null });
      // The cleared address is free again.
      await signup(t, { email });
    });

    it('answers 409 EMAIL_TAKEN for an email another user has, whatever its case', async () => {
      const local = uniqueUsername('Taken');
      const owner = await signup(t, { email: `${local}@Example.com` });
      const other = await signup(t, { email: uniqueEmail('mine') });
      const before = (await t.http.get('/users/me').set(other.auth).expect(200)).body;

      for (const email of [
        `${local}@Example.com`,
        `${local.toUpperCase()}@EXAMPLE.COM`,
        `${local.toLowerCase()}@example.com`,
      ]) {
        const res = await t.http.patch('/users/me').set(other.auth).send({ email }).expect(409);
        expect(res.body).toMatchObject({ statusCode: 409, code: 'EMAIL_TAKEN' });
      }
      const after = (await t.http.get('/users/me').set(other.auth).expect(200)).body;
      expect(after.email).toBe(before.email);
      expect((await t.http.get('/users/me').set(owner.auth).expect(200)).body.email).toBe(`${local}@Example.com`);
    });

    it('lets a user re-case their own email', async () => {
      const local = uniqueUsername('case');
      const u = await signup(t, { email: `${local}@example.com` });
      const res = await t.http
        .patch('/users/me')
        .set(u.auth)
        .send({ email: `${local.toUpperCase()}@example.com` })
        .expect(200);
      expect(res.body.email).toBe(`${local.toUpperCase()}@example.com`);
    });

    const forbiddenProps: Array<[string, Record<string, unknown>]> = [
      ['roles', { roles: ['user', 'admin'] }],
      ['id', { id: '00000000-0000-4000-8000-000000000000' }],
      ['disabled', { disabled: true }],
      ['username', { username: 'renamed_user' }],
      ['passwordHash', { passwordHash: 'x' }],
      ['createdAt', { createdAt: '2000-01-01T00:00:00.000Z' }],
      ['roles beside an allowed field', { displayName: 'ok', roles: ['admin'] }],
    ];
    it.each(forbiddenProps)('answers 400 to the unknown property %s and changes nothing', async (_name, body) => {
      const u = await signup(t, { displayName: 'Unchanged' });
      const before = (await t.http.get('/users/me').set(u.auth).expect(200)).body;
      const res = await t.http.patch('/users/me').set(u.auth).send(body).expect(400);
      expect(res.body).toMatchObject({ statusCode: 400, error: 'Bad Request', code: 'VALIDATION_FAILED' });
      const after = (await t.http.get('/users/me').set(u.auth).expect(200)).body;
      expect(after).toEqual(before);
      expect(after.roles).toEqual(['user']);
    });

    it.each([['not-an-email'], ['missing-at.example.com'], ['trailing@'], ['@example.com'], [42]])(
      'answers 400 to the invalid email %s',
      async (email) => {
        const u = await signup(t);
        const res = await t.http.patch('/users/me').set(u.auth).send({ email }).expect(400);
        expect(res.body.code).toBe('VALIDATION_FAILED');
        expect((await t.http.get('/users/me').set(u.auth).expect(200)).body.email).toBeNull();
      },
    );

    it('answers 400 to a displayName that is not a string', async () => {
      const u = await signup(t);
      await t.http.patch('/users/me').set(u.auth).send({ displayName: 12345 }).expect(400);
      await t.http
        .patch('/users/me')
        .set(u.auth)
        .send({ displayName: { first: 'A' } })
        .expect(400);
    });

    it('answers 401 without a token', async () => {
      const res = await t.http.patch('/users/me').send({ displayName: 'x' }).expect(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    });
  });
});
