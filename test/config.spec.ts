import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/config.schema.js';
import { problemsOf } from './support/config-problems.js';

/** The environment contract ("Configuration"): defaults, accepted forms, and errors that name the variable. */

const DAY = 24 * 3600;

function expectRejected(env: Record<string, string>, variable: string): string[] {
  const problems = problemsOf(env);
  expect(problems).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^${variable}: `))]));
  return problems;
}

describe('configuration defaults (nothing set)', () => {
  const config = parseConfig({});

  it.each([
    ['PORT', 3000],
    ['ACCESS_TOKEN_TTL', 900],
    ['REFRESH_TOKEN_TTL', 14 * DAY],
    ['REFRESH_REUSE_GRACE', 10],
    ['SESSION_MAX_AGE', 30 * DAY],
    ['BCRYPT_COST', 12],
    ['COOKIE_SECURE', true],
    ['LOGIN_RATE_LIMIT', 10],
    ['TRUST_PROXY', false],
    ['NODE_ENV', 'development'],
    ['DATA_DIR', './data'],
  ] as const)('%s defaults to %s', (name, value) => {
    expect(config[name]).toBe(value);
  });

  it('runs on the embedded database in ./data/pglite', () => {
    expect(config.database).toEqual({ kind: 'pglite', dataDir: './data/pglite' });
  });

  it('has no CORS origins, no admin, no Redis, no configured keys, and is not production', () => {
    expect(config.CORS_ORIGINS).toEqual([]);
    expect(config.ADMIN_USERNAME).toBeUndefined();
    expect(config.ADMIN_PASSWORD).toBeUndefined();
    expect(config.REDIS_URL).toBeUndefined();
    expect(config.JWT_KEYS).toBeUndefined();
    expect(config.JWT_SECRETS).toBeUndefined();
    expect(config.isProduction).toBe(false);
  });

  it('treats empty variables as unset (PORT= does not mean a random port)', () => {
    const blank = parseConfig({
      PORT: '',
      ACCESS_TOKEN_TTL: '  ',
      BCRYPT_COST: '',
      DATABASE_URL: '',
      CORS_ORIGINS: '',
      TRUST_PROXY: '',
      NODE_ENV: '',
    });
    expect(blank.PORT).toBe(3000);
    expect(blank.ACCESS_TOKEN_TTL).toBe(900);
    expect(blank.BCRYPT_COST).toBe(12);
    expect(blank.database).toEqual({ kind: 'pglite', dataDir: './data/pglite' });
    expect(blank.CORS_ORIGINS).toEqual([]);
    expect(blank.TRUST_PROXY).toBe(false);
    expect(blank.NODE_ENV).toBe('development');
  });

  it('ignores variables it does not know (the whole process environment is passed in)', () => {
    expect(parseConfig({ PATH: '/usr/bin', HOME: '/root', SOMETHING_ELSE: 'x' }).PORT).toBe(3000);
  });
});

describe('configuration values that are accepted', () => {
  it('reads numbers and durations', () => {
    const c = parseConfig({
      PORT: '8080',
      ACCESS_TOKEN_TTL: '300',
      REFRESH_TOKEN_TTL: String(7 * DAY),
      REFRESH_REUSE_GRACE: '0',
      SESSION_MAX_AGE: String(7 * DAY),
      BCRYPT_COST: '10',
      LOGIN_RATE_LIMIT: '5',
    });
    expect(c).toMatchObject({
      PORT: 8080,
      ACCESS_TOKEN_TTL: 300,
      REFRESH_TOKEN_TTL: 7 * DAY,
      REFRESH_REUSE_GRACE: 0,
      SESSION_MAX_AGE: 7 * DAY,
      BCRYPT_COST: 10,
      LOGIN_RATE_LIMIT: 5,
    });
  });

  it.each([
    ['false', false],
    ['0', false],
    ['no', false],
    ['true', true],
    ['1', true],
    ['yes', true],
  ])('reads COOKIE_SECURE=%s as %s', (value, expected) => {
    expect(parseConfig({ COOKIE_SECURE: value }).COOKIE_SECURE).toBe(expected);
  });

  it('reads NODE_ENV=production as production', () => {
    // Production also needs its keys and pepper configured (see test/production-secrets.spec.ts).
    const secrets = { PASSWORD_PEPPER: 'p'.repeat(32), JWT_SECRETS: 's'.repeat(32) };
    expect(parseConfig({ NODE_ENV: 'production', ...secrets }).isProduction).toBe(true);
  });

  describe('DATABASE_URL', () => {
    it.each([
      ['file:./somewhere/db', { kind: 'pglite', dataDir: './somewhere/db' }],
      ['file:/var/lib/gatehouse', { kind: 'pglite', dataDir: '/var/lib/gatehouse' }],
      ['file:///var/lib/gatehouse', { kind: 'pglite', dataDir: '/var/lib/gatehouse' }],
      ['file:', { kind: 'pglite', dataDir: './data/pglite' }],
      ['memory://', { kind: 'pglite', dataDir: undefined }],
      [
        'postgres://u:p@db.example:5432/gatehouse',
        { kind: 'postgres', url: 'postgres://u:p@db.example:5432/gatehouse' },
      ],
      [
        'postgresql://u@127.0.0.1/gatehouse?sslmode=require',
        { kind: 'postgres', url: 'postgresql://u@127.0.0.1/gatehouse?sslmode=require' },
      ],
      [
        'postgresql:///gatehouse?host=/var/run/postgresql',
        { kind: 'postgres', url: 'postgresql:///gatehouse?host=/var/run/postgresql' },
      ],
    ])('reads %s', (url, target) => {
      expect(parseConfig({ DATABASE_URL: url }).database).toEqual(target);
    });

    it('puts the default embedded database under DATA_DIR', () => {
      expect(parseConfig({ DATA_DIR: '/tmp/gh' }).database).toEqual({ kind: 'pglite', dataDir: '/tmp/gh/pglite' });
      expect(parseConfig({ DATA_DIR: '/tmp/gh', DATABASE_URL: 'file:' }).database).toEqual({
        kind: 'pglite',
        dataDir: '/tmp/gh/pglite',
      });
    });
  });

  describe('CORS_ORIGINS', () => {
    it('splits a comma-separated list, trimming blanks and empty entries', () => {
      const c = parseConfig({
        CORS_ORIGINS: ' https://app.example.com ,http://localhost:5173,, https://b.example.org:8443 ',
      });
      expect(c.CORS_ORIGINS).toEqual([
        'https://app.example.com',
        'http://localhost:5173',
        'https://b.example.org:8443',
      ]);
    });

    it('reads a single origin', () => {
      expect(parseConfig({ CORS_ORIGINS: 'https://app.example.com' }).CORS_ORIGINS).toEqual([
        'https://app.example.com',
      ]);
    });

    it.each([
      ['a trailing slash', 'https://app.example.com/'],
      ['a path', 'https://app.example.com/app'],
      ['no scheme', 'app.example.com'],
      ['a wildcard', '*'],
      ['a query', 'https://app.example.com?x=1'],
    ])('refuses an entry with %s, naming CORS_ORIGINS and the entry', (_label, origin) => {
      const problems = expectRejected({ CORS_ORIGINS: `https://ok.example.com,${origin}` }, 'CORS_ORIGINS');
      expect(problems.join('\n')).toContain(origin);
    });
  });

  describe('TRUST_PROXY', () => {
    it.each([
      ['false', false],
      ['0', false],
      ['true', true],
      ['1', 1],
      ['2', 2],
    ] as const)('reads TRUST_PROXY=%s as %s', (value, expected) => {
      expect(parseConfig({ TRUST_PROXY: value }).TRUST_PROXY).toBe(expected);
    });

    it.each([['yes please'], ['-1'], ['1.5'], ['loopback, 10.0.0.0/8']])(
      'refuses TRUST_PROXY=%s naming it',
      (value) => {
        expectRejected({ TRUST_PROXY: value }, 'TRUST_PROXY');
      },
    );
  });
});

describe('invalid configuration', () => {
  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['ACCESS_TOKEN_TTL', 'abc'],
    ['ACCESS_TOKEN_TTL', '0'],
    ['ACCESS_TOKEN_TTL', '-5'],
    ['ACCESS_TOKEN_TTL', '1.5'],
    ['ACCESS_TOKEN_TTL', '15m'],
    ['ACCESS_TOKEN_TTL', '999999999999'],
    ['REFRESH_TOKEN_TTL', 'forever'],
    ['REFRESH_TOKEN_TTL', '0'],
    ['REFRESH_REUSE_GRACE', '-1'],
    ['SESSION_MAX_AGE', 'x'],
    ['BCRYPT_COST', '3'],
    ['BCRYPT_COST', '32'],
    ['BCRYPT_COST', 'high'],
    ['COOKIE_SECURE', 'maybe'],
    ['MIGRATE_ON_START', 'sometimes'],
    ['LOGIN_RATE_LIMIT', '0'],
    ['LOGIN_RATE_LIMIT', 'lots'],
    ['NODE_ENV', 'staging'],
    ['DATABASE_URL', 'mysql://u@host/db'],
    ['DATABASE_URL', 'sqlite:./x.db'],
    ['DATABASE_URL', './data/pglite'],
    ['DATABASE_URL', 'postgresql://u:p@[not-a-host/db'],
    ['DATABASE_URL', 'file://remote-host/share'],
    ['REDIS_URL', 'http://cache:6379'],
    ['REDIS_URL', 'redis://[broken'],
    ['JWT_ALGORITHM', 'none'],
    ['JWT_ALGORITHM', 'HS512'],
    ['PASSWORD_PEPPER', 'too-short'],
    ['SHUTDOWN_TIMEOUT', '0'],
    ['SHUTDOWN_TIMEOUT', '99999999'],
    ['LOG_LEVEL', 'loud'],
    ['WS_ENABLED', 'sometimes'],
    ['WS_PATH', 'ws'],
    ['WS_PATH', '/a//b'],
    ['WS_PATH', '/ws?x=1'],
    ['WS_PATH', '/web socket'],
    ['WS_AUTH_TIMEOUT', '0'],
    ['WS_EXPIRY_WARNING', '0'],
    ['WS_MAX_CONNECTIONS_PER_USER', '0'],
    ['WS_MAX_PENDING_PER_IP', '0'],
    ['WS_MAX_MESSAGE_BYTES', '255'],
    ['WS_MAX_MESSAGE_BYTES', '1048577'],
    ['WS_MAX_MESSAGE_BYTES', '4k'],
    ['WS_PING_INTERVAL', '0'],
    ['WS_MESSAGE_RATE_LIMIT', '0'],
    ['WS_AUTH_FAILURE_LIMIT', '0'],
  ])('%s=%s stops start-up with an error naming the variable', (name, value) => {
    expectRejected({ [name]: value }, name);
  });

  it('never echoes a secret value in the error', () => {
    const problems = problemsOf({
      DATABASE_URL: 'postgresql://admin:hunter2-secret@[x/db',
      PASSWORD_PEPPER: 'short-secret-value',
    });
    const text = problems.join('\n');
    expect(text).not.toContain('hunter2-secret');
    expect(text).not.toContain('short-secret-value');
  });

  it('reports several bad variables at once', () => {
    const problems = problemsOf({
      PORT: 'abc',
      ACCESS_TOKEN_TTL: '-5',
      BCRYPT_COST: '3',
      COOKIE_SECURE: 'maybe',
      DATABASE_URL: 'mysql://x',
      CORS_ORIGINS: 'not an origin',
    });
    for (const name of ['PORT', 'ACCESS_TOKEN_TTL', 'BCRYPT_COST', 'COOKIE_SECURE', 'DATABASE_URL', 'CORS_ORIGINS']) {
      expect(problems).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^${name}: `))]));
    }
    expect(problems).toHaveLength(6);
  });

  describe('settings that must agree', () => {
    it('refuses ADMIN_USERNAME without ADMIN_PASSWORD and the reverse, naming the missing one', () => {
      expectRejected({ ADMIN_USERNAME: 'root' }, 'ADMIN_PASSWORD');
      expectRejected({ ADMIN_PASSWORD: 'long enough password' }, 'ADMIN_USERNAME');
      expect(parseConfig({ ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'long enough password' }).ADMIN_USERNAME).toBe(
        'root',
      );
    });

    it('holds the first admin to the signup rules', () => {
      expectRejected({ ADMIN_USERNAME: 'r', ADMIN_PASSWORD: 'long enough password' }, 'ADMIN_USERNAME');
      expectRejected({ ADMIN_USERNAME: 'root admin', ADMIN_PASSWORD: 'long enough password' }, 'ADMIN_USERNAME');
      const short = expectRejected({ ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'tiny-pw' }, 'ADMIN_PASSWORD');
      expect(short.join('\n')).not.toContain('tiny-pw');
      expectRejected({ ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'x'.repeat(129) }, 'ADMIN_PASSWORD');
    });

    it('refuses a SESSION_MAX_AGE shorter than REFRESH_TOKEN_TTL', () => {
      expectRejected({ REFRESH_TOKEN_TTL: String(40 * DAY) }, 'SESSION_MAX_AGE');
      expectRejected({ REFRESH_TOKEN_TTL: '3600', SESSION_MAX_AGE: '60' }, 'SESSION_MAX_AGE');
      expect(parseConfig({ REFRESH_TOKEN_TTL: '3600', SESSION_MAX_AGE: '3600' }).SESSION_MAX_AGE).toBe(3600);
    });

    it('refuses JWT_KEYS together with JWT_SECRETS', () => {
      expectRejected({ JWT_KEYS: 'some-key', JWT_SECRETS: 'some-secret' }, 'JWT_SECRETS');
    });

    it('requires JWT_SECRETS for HS256, and HS256 for JWT_SECRETS', () => {
      expectRejected({ JWT_ALGORITHM: 'HS256' }, 'JWT_SECRETS');
      expectRejected({ JWT_ALGORITHM: 'ES256', JWT_SECRETS: 'x'.repeat(40) }, 'JWT_ALGORITHM');
    });
  });
});

describe('JWT_KEYS and JWT_SECRETS are read at parse time, with the code that reads them at start-up', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = ec.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const publicPem = ec.publicKey.export({ format: 'pem', type: 'spki' }).toString();
  const jwk = ec.privateKey.export({ format: 'jwk' });
  const secret = 'hs256-secret-0123456789-0123456789-0123';

  it('accepts a private key as PEM, as PEM on one line, or as a JWK, and HS256 secrets', () => {
    expect(parseConfig({ JWT_KEYS: pem }).JWT_KEYS).toBe(pem);
    expect(parseConfig({ JWT_KEYS: pem.trim().replace(/\n/g, '\\n') }).JWT_KEYS).toBeDefined();
    expect(parseConfig({ JWT_KEYS: JSON.stringify(jwk), JWT_ALGORITHM: 'ES256' }).JWT_ALGORITHM).toBe('ES256');
    expect(parseConfig({ JWT_SECRETS: `${secret},${secret}-older` }).JWT_SECRETS).toBeDefined();
  });

  it.each([
    ['text that holds no key', 'JWT_KEYS', 'not-a-key', /no key found/],
    [
      'a PEM block that is not a key',
      'JWT_KEYS',
      '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----',
      /cannot read a key/,
    ],
    [
      'broken JWK JSON',
      'JWT_KEYS',
      `{"kty": "EC", "crv": "P-256", "d": "c2VjcmV0LWQtdmFsdWU", "x": broken`,
      /not valid JSON/,
    ],
    [
      'a JWK that is not a key',
      'JWT_KEYS',
      JSON.stringify({ kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA', d: 'c2VjcmV0LWQtdmFsdWU' }),
      /cannot read a key/,
    ],
    ['a public key first', 'JWT_KEYS', publicPem, /first key must be a private key/],
    ['a symmetric JWK', 'JWT_KEYS', JSON.stringify({ kty: 'oct', k: 'c2VjcmV0LWstdmFsdWU' }), /use JWT_SECRETS/],
    ['a short HS256 secret', 'JWT_SECRETS', 'short-secret-value', /at least 32 bytes/],
  ])('refuses %s in one line naming the variable, without echoing it', (_label, name, value, reason) => {
    const problems = expectRejected({ [name]: value }, name);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(reason);
    expect(problems[0]).not.toContain('\n');
    for (const secretPart of ['c2VjcmV0', 'short-secret-value', 'AAAA']) expect(problems[0]).not.toContain(secretPart);
  });

  it('refuses keys that do not suit JWT_ALGORITHM, naming it', () => {
    expectRejected({ JWT_KEYS: pem, JWT_ALGORITHM: 'RS256' }, 'JWT_KEYS');
    expectRejected({ JWT_KEYS: pem, JWT_ALGORITHM: 'HS256' }, 'JWT_ALGORITHM');
  });

  it('reports a bad key together with the other invalid variables', () => {
    const problems = problemsOf({ PORT: 'eighty', JWT_KEYS: 'not-a-key', JWT_ALGORITHM: 'none' });
    for (const name of ['PORT', 'JWT_KEYS', 'JWT_ALGORITHM']) {
      expect(problems).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^${name}: `))]));
    }
    expect(problems).toHaveLength(3);
  });

  it('in production, accepts the keys and pepper of `npm run keys` and still refuses a bad key', () => {
    const pepper = 'pepper-0123456789-0123456789-0123456789';
    expect(parseConfig({ NODE_ENV: 'production', PASSWORD_PEPPER: pepper, JWT_KEYS: pem }).isProduction).toBe(true);
    expectRejected({ NODE_ENV: 'production', PASSWORD_PEPPER: pepper, JWT_KEYS: 'k' }, 'JWT_KEYS');
  });
});

describe('the parsed configuration is frozen', () => {
  const config = parseConfig({ CORS_ORIGINS: 'https://app.example.com', DATABASE_URL: 'postgresql://u@db/gatehouse' });

  it('refuses assignments (test files are ES modules: strict mode, so they throw)', () => {
    expect(Object.isFrozen(config)).toBe(true);
    expect(() => {
      (config as { PORT: number }).PORT = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config as { NEW_SETTING?: string }).NEW_SETTING = 'x';
    }).toThrow(TypeError);
    expect(() => {
      delete (config as { HOST?: string }).HOST;
    }).toThrow(TypeError);
    expect(config.PORT).toBe(3000);
  });

  it('down to its arrays and the database target', () => {
    expect(() => (config.CORS_ORIGINS as string[]).push('https://evil.example.com')).toThrow(TypeError);
    expect(() => {
      (config.CORS_ORIGINS as string[])[0] = 'https://evil.example.com';
    }).toThrow(TypeError);
    expect(() => {
      (config.database as { url: string }).url = 'postgresql://elsewhere/db';
    }).toThrow(TypeError);
    expect(config.CORS_ORIGINS).toEqual(['https://app.example.com']);
    expect(config.database).toEqual({ kind: 'postgres', url: 'postgresql://u@db/gatehouse' });
  });

  it('is typed read-only', () => {
    // @ts-expect-error AppConfig is Readonly
    expect(() => (config.BCRYPT_COST = 5)).toThrow(TypeError);
    // @ts-expect-error its arrays too
    expect(() => config.CORS_ORIGINS.push('https://x.example.com')).toThrow(TypeError);
  });

  it('a test that needs other values parses another environment (a copy is not frozen)', () => {
    const other = { ...config, BCRYPT_COST: 5 };
    expect(other.BCRYPT_COST).toBe(5);
    expect(config.BCRYPT_COST).toBe(12);
  });
});
