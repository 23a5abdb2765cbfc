import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateEs256Pem, keySetFromKeys } from '../src/config/signing-keys.js';
import { parseConfig } from '../src/config/config.schema.js';
import { problemsOf } from './support/config-problems.js';
import { ROOMY_LIMITS } from './support/env.js';
import { decodeJwt, signup } from './support/factories.js';
import { PROJECT_ROOT } from './support/private-build.js';
import { startApp, type TestApp } from './support/test-app.js';

/**
 * Security finding 13: without PASSWORD_PEPPER and JWT_KEYS/JWT_SECRETS every instance
 * generated its own into its DATA_DIR, even with NODE_ENV=production, so instances silently
 * disagreed. Production now refuses to start without them, and `npm run keys` prints a fresh
 * signing key and pepper that the configuration and the server accept.
 */

const PEPPER = 'pepper-0123456789-0123456789-0123456789';
const KEY_PEM = generateEs256Pem();
const SECRET = 'hs256-secret-0123456789-0123456789-0123';

describe('NODE_ENV=production without shared keys and pepper', () => {
  it.each([
    ['nothing', {}, ['PASSWORD_PEPPER and JWT_KEYS (or JWT_SECRETS)']],
    ['only JWT_KEYS', { JWT_KEYS: KEY_PEM }, ['PASSWORD_PEPPER']],
    ['only JWT_SECRETS', { JWT_SECRETS: SECRET }, ['PASSWORD_PEPPER']],
    ['only PASSWORD_PEPPER', { PASSWORD_PEPPER: PEPPER }, ['JWT_KEYS (or JWT_SECRETS)']],
    ['blank values', { PASSWORD_PEPPER: '  ', JWT_KEYS: '' }, ['PASSWORD_PEPPER and JWT_KEYS (or JWT_SECRETS)']],
  ])('is refused with one line naming what to set and how to generate it (%s)', (_name, env, [missing]) => {
    const problems = problemsOf({ NODE_ENV: 'production', ...env });
    expect(problems).toEqual([
      `environment: NODE_ENV=production requires ${missing}, the same on every instance: generate them with \`npm run keys\``,
    ]);
    expect(problems[0]).not.toContain('\n');
  });

  it('is reported together with the other invalid variables', () => {
    const problems = problemsOf({ NODE_ENV: 'production', PORT: 'eighty', BCRYPT_COST: '99' });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^PORT: /),
        expect.stringMatching(/^BCRYPT_COST: /),
        expect.stringMatching(/^environment: NODE_ENV=production requires PASSWORD_PEPPER and JWT_KEYS/),
      ]),
    );
  });

  it('is accepted with PASSWORD_PEPPER and JWT_KEYS, or PASSWORD_PEPPER and JWT_SECRETS', () => {
    expect(parseConfig({ NODE_ENV: 'production', PASSWORD_PEPPER: PEPPER, JWT_KEYS: KEY_PEM }).isProduction).toBe(true);
    expect(parseConfig({ NODE_ENV: 'production', PASSWORD_PEPPER: PEPPER, JWT_SECRETS: SECRET }).isProduction).toBe(
      true,
    );
  });

  it('development and test still run without them (generated into DATA_DIR)', () => {
    expect(parseConfig({}).NODE_ENV).toBe('development');
    expect(parseConfig({ NODE_ENV: 'test' }).PASSWORD_PEPPER).toBeUndefined();
  });
});

/** `node scripts/keys.mjs`, then its output evaluated by a POSIX shell as the values it sets. */
function runKeysScript(): {
  output: string;
  env: { JWT_KEYS: string; PASSWORD_PEPPER: string; MFA_ENCRYPTION_KEYS: string };
} {
  const script = spawnSync(process.execPath, [join(PROJECT_ROOT, 'scripts', 'keys.mjs')], { encoding: 'utf8' });
  expect(script.status).toBe(0);
  expect(script.stderr).toBe('');
  const shell = spawnSync(
    'sh',
    [
      '-c',
      'eval "$1" && printf "%s\\0%s\\0%s" "$JWT_KEYS" "$PASSWORD_PEPPER" "$MFA_ENCRYPTION_KEYS"',
      'sh',
      script.stdout,
    ],
    {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '' },
    },
  );
  expect(shell.status).toBe(0);
  const [JWT_KEYS = '', PASSWORD_PEPPER = '', MFA_ENCRYPTION_KEYS = ''] = shell.stdout.split('\0');
  return { output: script.stdout, env: { JWT_KEYS, PASSWORD_PEPPER, MFA_ENCRYPTION_KEYS } };
}

describe('npm run keys (scripts/keys.mjs)', () => {
  const { output, env } = runKeysScript();

  it('prints only comments and three shell-ready assignments, JWT_KEYS, PASSWORD_PEPPER and MFA_ENCRYPTION_KEYS, one line each', () => {
    const lines = output.trimEnd().split('\n');
    // A value is single-quoted or has nothing a shell would split or expand.
    for (const line of lines) expect(line).toMatch(/^(# .*|[A-Z_]+=('[^']*'|[A-Za-z0-9_-]+))$/);
    expect(lines.filter((l) => !l.startsWith('#')).map((l) => l.split('=')[0])).toEqual([
      'JWT_KEYS',
      'PASSWORD_PEPPER',
      'MFA_ENCRYPTION_KEYS',
    ]);
  });

  it('gives a 32-byte MFA encryption key in hex, which the configuration accepts', () => {
    expect(env.MFA_ENCRYPTION_KEYS).toMatch(/^[0-9a-f]{64}$/);
    expect(parseConfig({ MFA_ENCRYPTION_KEYS: env.MFA_ENCRYPTION_KEYS }).MFA_ENCRYPTION_KEYS).toBe(
      env.MFA_ENCRYPTION_KEYS,
    );
  });

  it('gives a P-256 private key (PEM) for JWT_KEYS and a 32-byte base64url pepper', () => {
    expect(env.JWT_KEYS).toMatch(/^-----BEGIN PRIVATE KEY-----\\n[A-Za-z0-9+/=\\n]+-----END PRIVATE KEY-----$/);
    const key = createPrivateKey(env.JWT_KEYS.replace(/\\n/g, '\n'));
    expect(key.asymmetricKeyType).toBe('ec');
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(keySetFromKeys(env.JWT_KEYS).algorithm).toBe('ES256');
    expect(env.PASSWORD_PEPPER).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(env.PASSWORD_PEPPER, 'base64url')).toHaveLength(32);
  });

  it('prints new values every time', () => {
    const again = runKeysScript().env;
    expect(again.JWT_KEYS).not.toBe(env.JWT_KEYS);
    expect(again.PASSWORD_PEPPER).not.toBe(env.PASSWORD_PEPPER);
    expect(again.MFA_ENCRYPTION_KEYS).not.toBe(env.MFA_ENCRYPTION_KEYS);
  });

  it('keeps working on one line when two printed keys are put together for rotation', () => {
    const next = runKeysScript().env.JWT_KEYS;
    const set = keySetFromKeys(`${next}\\n${env.JWT_KEYS}`);
    expect(set.verification.size).toBe(2);
    expect(keySetFromKeys(next).signing.kid).toBe(set.signing.kid);
  });

  it('is accepted by parseConfig with NODE_ENV=production', () => {
    const config = parseConfig({ NODE_ENV: 'production', ...env });
    expect(config.isProduction).toBe(true);
    expect(config.JWT_KEYS).toBe(env.JWT_KEYS);
    expect(config.PASSWORD_PEPPER).toBe(env.PASSWORD_PEPPER);
  });

  describe('a production server configured with them', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await startApp({ ...ROOMY_LIMITS, NODE_ENV: 'production', ...env });
    });
    afterAll(async () => t?.close());

    it('signs access tokens with the printed key: they verify against its public key and on the server', async () => {
      const u = await signup(t);
      expect(decodeJwt(u.accessToken).header.alg).toBe('ES256');
      const [h, p, s] = u.accessToken.split('.');
      const publicKey = createPublicKey(createPrivateKey(env.JWT_KEYS.replace(/\\n/g, '\n')));
      const valid = cryptoVerify(
        'sha256',
        Buffer.from(`${h}.${p}`),
        { key: publicKey, dsaEncoding: 'ieee-p1363' },
        Buffer.from(s!, 'base64url'),
      );
      expect(valid).toBe(true);
      const me = await t.http.get('/users/me').set(u.auth).expect(200);
      expect(me.body.username).toBe(u.username);
      // The printed pepper is the one in use: the password works for a login.
      await t.http.post('/auth/login').send({ username: u.username, password: u.password }).expect(200);
    });
  });
});
