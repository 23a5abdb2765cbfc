import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS, onPostgres } from '../support/env.js';
import { USER_KEYS, login, refreshCookieOf, setCookiesOf, signup, uniqueUsername } from '../support/factories.js';
import { unknownToWrongPasswordRatio } from '../support/login-timing.js';
import { persistentDatabase, startApp, type TestApp } from '../support/test-app.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const emoji = (n: number) => '😀'.repeat(n);
const uniqueEmail = (tag = 'mail') => `${uniqueUsername(tag)}@example.com`;

describe('/auth signup and login', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000' });
  });
  afterAll(async () => t?.close());

  describe('POST /auth/signup', () => {
    it('answers 201 with {user, accessToken, tokenType: "Bearer", expiresIn} and nothing secret in the user', async () => {
      const username = uniqueUsername('Ada');
      const email = uniqueEmail();
      const res = await t.http
        .post('/auth/signup')
        .send({ username, password: 'correct horse battery', email, displayName: 'Ada L.' })
        .expect(201);

      expect(Object.keys(res.body).sort()).toEqual(['accessToken', 'expiresIn', 'tokenType', 'user']);
      expect(res.body.tokenType).toBe('Bearer');
      expect(res.body.expiresIn).toBe(900);
      expect(res.body.accessToken.split('.')).toHaveLength(3);
      const { user } = res.body;
      expect(Object.keys(user).sort()).toEqual(USER_KEYS);
      expect(user).toMatchObject({ username, email, displayName: 'Ada L.', roles: ['user'] });
      expect(user.id).toMatch(UUID);
      expect(user.createdAt).toMatch(ISO);

      const stored = await t.prisma.user.findUniqueOrThrow({ where: { id: user.id } });
      const text = JSON.stringify(res.body);
      expect(text).not.toContain(stored.passwordHash);
      expect(text).not.toMatch(/\$2[aby]\$/);
      expect(text).not.toContain(refreshCookieOf(res)!);
      expect(text).not.toMatch(/password|hash/i);
    });

    it('stores email and displayName as null when they are not given', async () => {
      const res = await t.http
        .post('/auth/signup')
        .send({ username: uniqueUsername(), password: 'long enough' })
        .expect(201);
      expect(res.body.user.email).toBeNull();
      expect(res.body.user.displayName).toBeNull();
    });

    const invalidBodies: Array<[string, Record<string, unknown>]> = [
      ['a 2-character username', { username: 'ab' }],
      ['a 33-character username', { username: 'u'.repeat(33) }],
      ['a username with a space', { username: 'has space' }],
      ['a username with "!"', { username: 'bad!name' }],
      ['a username with a non-ASCII letter', { username: 'émile_x' }],
      ['a username that is not a string', { username: 12345 }],
      ['a missing username', { username: undefined }],
      ['a 7-character password', { password: 'seven77' }],
      ['a 129-character password', { password: 'p'.repeat(129) }],
      ['7 emoji as password (14 UTF-16 units, 7 characters)', { password: emoji(7) }],
      ['129 emoji as password', { password: emoji(129) }],
      ['a password that is not a string', { password: 12345678 }],
      ['a missing password', { password: undefined }],
      ['an invalid email', { email: 'not-an-email' }],
      ['an email without a domain', { email: 'someone@' }],
      ['an email that is not a string', { email: 42 }],
    ];
    it.each(invalidBodies)('refuses %s with 400 VALIDATION_FAILED', async (_label, patch) => {
      const body: Record<string, unknown> = { username: uniqueUsername('v'), password: 'good password', ...patch };
      for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
      const res = await t.http.post('/auth/signup').send(body).expect(400);
      expect(res.body).toMatchObject({ statusCode: 400, error: 'Bad Request', code: 'VALIDATION_FAILED' });
      expect(setCookiesOf(res)).toEqual([]);
    });

    const validEdges: Array<[string, Record<string, unknown>]> = [
      ['a 3-character username', { username: `a${Math.random().toString(36).slice(2, 4)}` }],
      [
        'a 32-character username of every allowed kind',
        { username: `Ab0_.-${uniqueUsername('x')}`.padEnd(32, 'z').slice(0, 32) },
      ],
      ['an 8-character password', { password: 'eight888' }],
      ['a 128-character password', { password: 'p'.repeat(128) }],
      ['8 emoji as password (8 characters)', { password: emoji(8) }],
      ['128 emoji as password (512 bytes)', { password: emoji(128) }],
    ];
    it.each(validEdges)('accepts %s', async (_label, patch) => {
      const body = { username: uniqueUsername('ok'), password: 'good password', ...patch };
      await t.http.post('/auth/signup').send(body).expect(201);
      await t.http.post('/auth/login').send({ username: body.username, password: body.password }).expect(200);
    });

    it.each([
      ['roles', { roles: ['user', 'admin'] }],
      ['id', { id: '00000000-0000-4000-8000-000000000000' }],
      ['disabled', { disabled: false }],
      ['createdAt', { createdAt: '2020-01-01T00:00:00.000Z' }],
      ['passwordHash', { passwordHash: '$2b$04$abcdefghijklmnopqrstuv' }],
    ])('refuses the unknown property %s with 400 and creates no user', async (prop, extra) => {
      const username = uniqueUsername('mass');
      const res = await t.http
        .post('/auth/signup')
        .send({ username, password: 'good password', ...extra })
        .expect(400);
      expect(res.body.code).toBe('VALIDATION_FAILED');
      expect(JSON.stringify(res.body.message)).toContain(prop);
      expect(await t.prisma.user.count({ where: { usernameKey: username.toLowerCase() } })).toBe(0);
    });

    it('refuses a non-JSON body with 415 and malformed JSON with 400', async () => {
      await t.http.post('/auth/signup').set('Content-Type', 'text/plain').send('username=x').expect(415);
      const res = await t.http
        .post('/auth/signup')
        .set('Content-Type', 'application/json')
        .send('{"username": ')
        .expect(400);
      expect(res.body.statusCode).toBe(400);
      expect(typeof res.body.code).toBe('string');
    });

    it('answers 409 USERNAME_TAKEN for a username that differs only in case', async () => {
      const base = uniqueUsername('Case');
      await signup(t, { username: base });
      const res = await t.http
        .post('/auth/signup')
        .send({ username: base.toUpperCase(), password: 'another password' })
        .expect(409);
      expect(res.body).toMatchObject({ statusCode: 409, error: 'Conflict', code: 'USERNAME_TAKEN' });
      expect(setCookiesOf(res)).toEqual([]);
    });

    it('answers 409 EMAIL_TAKEN for an email that differs only in case', async () => {
      const local = uniqueUsername('Mail');
      await signup(t, { email: `${local}@Example.COM` });
      const res = await t.http
        .post('/auth/signup')
        .send({ username: uniqueUsername(), password: 'another password', email: `${local.toLowerCase()}@example.com` })
        .expect(409);
      expect(res.body).toMatchObject({ statusCode: 409, code: 'EMAIL_TAKEN' });
    });

    const racers = onPostgres ? 50 : 10;
    it(`lets exactly one of ${racers} concurrent sign-ups with one username through; the rest get 409`, async () => {
      const username = uniqueUsername('race');
      const results = await Promise.all(
        Array.from({ length: racers }, (_, i) =>
          t.http
            .post('/auth/signup')
            .send({ username: i % 2 ? username : username.toUpperCase(), password: `password-${i}` }),
        ),
      );
      const statuses = results.map((r) => r.status);
      expect(statuses.filter((s) => s >= 500)).toEqual([]);
      expect(statuses.filter((s) => s === 201)).toHaveLength(1);
      expect(statuses.filter((s) => s === 409)).toHaveLength(racers - 1);
      for (const r of results.filter((x) => x.status === 409)) expect(r.body.code).toBe('USERNAME_TAKEN');
      expect(await t.prisma.user.count({ where: { usernameKey: username.toLowerCase() } })).toBe(1);
    }, 120_000);
  });

  describe('passwords are never truncated', () => {
    it('does not let an 80-character password log in with one that shares its first 72 bytes', async () => {
      const stem = 'a'.repeat(79);
      const u = await signup(t, { password: `${stem}1` });
      const wrong = await t.http.post('/auth/login').send({ username: u.username, password: `${stem}2` });
      expect(wrong.status).toBe(401);
      expect(wrong.body.code).toBe('INVALID_CREDENTIALS');
      await t.http
        .post('/auth/login')
        .send({ username: u.username, password: `${stem}1` })
        .expect(200);
    });

    it('does not let 19 emoji + a suffix log in with 19 emoji + another suffix (76 bytes, first 72 equal)', async () => {
      const u = await signup(t, { password: `${emoji(19)}one` });
      await t.http
        .post('/auth/login')
        .send({ username: u.username, password: `${emoji(19)}two` })
        .expect(401);
      await t.http
        .post('/auth/login')
        .send({ username: u.username, password: emoji(19) })
        .expect(401);
      await t.http
        .post('/auth/login')
        .send({ username: u.username, password: `${emoji(19)}one` })
        .expect(200);
    });

    it('re-hashes at the new cost on login after a restart with a higher BCRYPT_COST, and never downgrades', async () => {
      const db = await persistentDatabase();
      try {
        const at4 = await startApp({ ...ROOMY_LIMITS, BCRYPT_COST: '4' }, { databaseUrl: db.url });
        let u;
        try {
          u = await signup(at4);
          expect((await at4.prisma.user.findUniqueOrThrow({ where: { id: u.id } })).passwordHash).toMatch(
            /^\$2[aby]\$04\$/,
          );
        } finally {
          await at4.close();
        }
        const at5 = await startApp({ ...ROOMY_LIMITS, BCRYPT_COST: '5' }, { databaseUrl: db.url });
        try {
          const hashOf = async () => (await at5.prisma.user.findUniqueOrThrow({ where: { id: u.id } })).passwordHash;
          const before = await hashOf();
          await at5.http.post('/auth/login').send({ username: u.username, password: 'wrong password' }).expect(401);
          expect(await hashOf()).toBe(before);
          await login(at5, u.username, u.password);
          expect(await hashOf()).toMatch(/^\$2[aby]\$05\$/);
        } finally {
          await at5.close();
        }
        const back = await startApp({ ...ROOMY_LIMITS, BCRYPT_COST: '4' }, { databaseUrl: db.url });
        try {
          await login(back, u.username, u.password);
          expect((await back.prisma.user.findUniqueOrThrow({ where: { id: u.id } })).passwordHash).toMatch(
            /^\$2[aby]\$05\$/,
          );
        } finally {
          await back.close();
        }
      } finally {
        await db.drop();
      }
    }, 120_000);

    it.runIf(onPostgres)(
      're-hashes on login on an instance started with a higher BCRYPT_COST on the same database',
      async () => {
        const u = await signup(t);
        const second = await startApp({ ...ROOMY_LIMITS, BCRYPT_COST: '5' }, { databaseUrl: t.databaseUrl });
        try {
          await login(second, u.username, u.password);
          const after = await t.prisma.user.findUniqueOrThrow({ where: { id: u.id } });
          expect(after.passwordHash).toMatch(/^\$2[aby]\$05\$/);
          await login(t, u.username, u.password); // the old instance still verifies it
        } finally {
          await second.close();
        }
      },
    );
  });

  describe('POST /auth/login', () => {
    it('logs in by username and by email, case-insensitively, with the signup user in the body', async () => {
      const username = uniqueUsername('Grace');
      const email = `${username}@Example.org`;
      const u = await signup(t, { username, email });
      for (const id of [
        username,
        username.toUpperCase(),
        username.toLowerCase(),
        email,
        email.toUpperCase(),
        email.toLowerCase(),
      ]) {
        const res = await t.http.post('/auth/login').send({ username: id, password: u.password });
        expect(res.status, `login as ${id}`).toBe(200);
        expect(Object.keys(res.body).sort()).toEqual(['accessToken', 'expiresIn', 'tokenType', 'user']);
        expect(res.body.user).toMatchObject({ id: u.id, username, email, roles: ['user'] });
        expect(res.body.tokenType).toBe('Bearer');
        expect(refreshCookieOf(res)).toMatch(/^[A-Za-z0-9_-]{43}$/);
      }
    });

    it('answers 401 INVALID_CREDENTIALS with the same body for an unknown user and a wrong password', async () => {
      const u = await signup(t);
      const unknown = await t.http
        .post('/auth/login')
        .send({ username: uniqueUsername('ghost'), password: u.password });
      const wrong = await t.http.post('/auth/login').send({ username: u.username, password: 'not the password' });
      const unknownEmail = await t.http
        .post('/auth/login')
        .send({ username: 'nobody@example.com', password: u.password });
      expect(unknown.status).toBe(401);
      expect(wrong.status).toBe(401);
      expect(unknown.body).toEqual({
        statusCode: 401,
        error: 'Unauthorized',
        message: expect.any(String),
        code: 'INVALID_CREDENTIALS',
      });
      expect(wrong.body).toEqual(unknown.body);
      expect(unknownEmail.body).toEqual(unknown.body);
      expect(setCookiesOf(unknown)).toEqual([]);
      expect(setCookiesOf(wrong)).toEqual([]);
    });

    it('answers 403 ACCOUNT_DISABLED to a disabled account only with the right password', async () => {
      const u = await signup(t);
      await t.prisma.user.update({ where: { id: u.id }, data: { disabled: true } });
      const wrong = await t.http.post('/auth/login').send({ username: u.username, password: 'not the password' });
      expect(wrong.status).toBe(401);
      expect(wrong.body.code).toBe('INVALID_CREDENTIALS');
      const right = await t.http.post('/auth/login').send({ username: u.username, password: u.password });
      expect(right.status).toBe(403);
      expect(right.body).toMatchObject({ statusCode: 403, error: 'Forbidden', code: 'ACCOUNT_DISABLED' });
      expect(setCookiesOf(right)).toEqual([]);
      expect(JSON.stringify(right.body)).not.toContain('accessToken');
    });

    it('refuses login bodies with unknown properties or missing fields with 400', async () => {
      await t.http
        .post('/auth/login')
        .send({ username: 'x', password: 'y', roles: ['admin'] })
        .expect(400);
      await t.http.post('/auth/login').send({ username: 'x' }).expect(400);
      await t.http.post('/auth/login').send({ password: 'y' }).expect(400);
    });
  });
});

describe('login timing', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, BCRYPT_COST: '8', LOGIN_RATE_LIMIT: '10000' });
  });
  afterAll(async () => t?.close());

  it('takes about as long for an unknown user as for a wrong password (median ratio 0.8–1.25)', async () => {
    const u = await signup(t);
    const { ratio } = await unknownToWrongPasswordRatio(t, u.username, 21);
    expect(ratio).toBeGreaterThan(0.8);
    expect(ratio).toBeLessThan(1.25);
  }, 120_000);
});
