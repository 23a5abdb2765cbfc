import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/config.schema.js';
import { problemsOf } from '../support/config-problems.js';
import { startApp } from '../support/test-app.js';

/**
 * FEDERATION_ISSUERS / FEDERATION_ISSUERS_FILE (contract v2 §D, test 11): a bad issuer list
 * stops start-up, and every problem names the entry and its field
 * (`FEDERATION_ISSUERS[0].audience: required`).
 */

const ISSUER = 'https://idp.example.com/realms/main';
const good = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  name: 'main',
  issuer: ISSUER,
  audience: 'gatehouse-api',
  ...overrides,
});

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-fed-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
/** Writes `text` to a new file of the test's folder; answers its path. */
function fileWith(text: string): string {
  files += 1;
  const path = join(dir, `issuers-${files}.json`);
  writeFileSync(path, text);
  return path;
}

/** The problems for this FEDERATION_ISSUERS value (an array is JSON-encoded). */
function problemsFor(value: unknown, env: Record<string, string> = {}): string[] {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return problemsOf({ FEDERATION_ISSUERS: text, ...env });
}

/** Exactly one problem, matching `pattern` (which names the entry and field). */
function expectOnly(problems: string[], pattern: RegExp): void {
  expect(problems).toEqual([expect.stringMatching(pattern)]);
}

describe('a valid issuer list', () => {
  it('is read from FEDERATION_ISSUERS with the defaults filled in', () => {
    const config = parseConfig({ FEDERATION_ISSUERS: JSON.stringify([good()]) });
    expect(config.federationIssuers).toEqual([
      {
        name: 'main',
        issuer: ISSUER,
        jwksUri: null,
        audience: ['gatehouse-api'],
        algorithms: ['RS256', 'ES256'],
        claims: {
          username: 'preferred_username',
          email: 'email',
          emailVerified: 'email_verified',
          displayName: 'name',
          roles: 'roles',
        },
        roleMap: null,
        provisioning: 'jit',
        acceptBearer: true,
        maxTokenLifetime: 86400,
      },
    ]);
  });

  it('keeps every field it is given', () => {
    const entry = good({
      jwksUri: 'https://idp.example.com/keys',
      audience: ['api-one', 'api-two'],
      algorithms: ['PS256', 'ES384', 'EdDSA'],
      claims: { username: 'upn', roles: 'realm_access.roles' },
      roleMap: { 'gh-admin': 'admin', staff: 'user' },
      provisioning: 'linked-only',
      acceptBearer: false,
      maxTokenLifetime: 600,
    });
    const [issuer] = parseConfig({ FEDERATION_ISSUERS: JSON.stringify([entry]) }).federationIssuers;
    expect(issuer).toMatchObject({
      jwksUri: 'https://idp.example.com/keys',
      audience: ['api-one', 'api-two'],
      algorithms: ['PS256', 'ES384', 'EdDSA'],
      claims: { username: 'upn', roles: 'realm_access.roles', email: 'email' },
      roleMap: { 'gh-admin': 'admin', staff: 'user' },
      provisioning: 'linked-only',
      acceptBearer: false,
      maxTokenLifetime: 600,
    });
  });

  it('is read from FEDERATION_ISSUERS_FILE', () => {
    const entries = [good(), good({ name: 'second', issuer: 'http://127.0.0.1:9999/realms/test' })];
    const fromFile = parseConfig({ FEDERATION_ISSUERS_FILE: fileWith(JSON.stringify(entries, null, 2)) });
    const inline = parseConfig({ FEDERATION_ISSUERS: JSON.stringify(entries) });
    expect(fromFile.federationIssuers.map((i) => i.issuer)).toEqual([ISSUER, 'http://127.0.0.1:9999/realms/test']);
    expect(fromFile.federationIssuers).toEqual(inline.federationIssuers);
  });

  it('accepts plain http on a loopback host only (localhost, 127.0.0.1, [::1])', () => {
    for (const issuer of ['http://localhost:8080/realms/a', 'http://127.0.0.1:1/x', 'http://[::1]:8080/y']) {
      const config = parseConfig({ FEDERATION_ISSUERS: JSON.stringify([good({ issuer, jwksUri: `${issuer}/k` })]) });
      expect(config.federationIssuers[0]?.issuer).toBe(issuer);
    }
  });

  it('is empty when the variable is unset, empty or []', () => {
    expect(parseConfig({}).federationIssuers).toEqual([]);
    expect(parseConfig({ FEDERATION_ISSUERS: '' }).federationIssuers).toEqual([]);
    expect(parseConfig({ FEDERATION_ISSUERS: '[]' }).federationIssuers).toEqual([]);
  });
});

describe('a bad issuer list is refused, naming the entry and field', () => {
  it('HS256 (or any HS*) in algorithms', () => {
    expectOnly(
      problemsFor([good({ algorithms: ['HS256'] })]),
      /^FEDERATION_ISSUERS\[0\]\.algorithms\.0: HS256 is symmetric/,
    );
    expectOnly(
      problemsFor([good({ algorithms: ['RS256', 'HS512'] })]),
      /^FEDERATION_ISSUERS\[0\]\.algorithms\.1: HS512 is symmetric/,
    );
  });

  it('"none", an unknown algorithm or an empty list', () => {
    expectOnly(
      problemsFor([good({ algorithms: ['none'] })]),
      /^FEDERATION_ISSUERS\[0\]\.algorithms\.0: none is not one of/,
    );
    expectOnly(problemsFor([good({ algorithms: ['RS1'] })]), /^FEDERATION_ISSUERS\[0\]\.algorithms\.0: /);
    expectOnly(problemsFor([good({ algorithms: [] })]), /^FEDERATION_ISSUERS\[0\]\.algorithms: /);
  });

  it('a missing or empty audience', () => {
    const { audience: _, ...withoutAudience } = good();
    expectOnly(problemsFor([withoutAudience]), /^FEDERATION_ISSUERS\[0\]\.audience: required/);
    expectOnly(problemsFor([good({ audience: '' })]), /^FEDERATION_ISSUERS\[0\]\.audience: /);
    expectOnly(problemsFor([good({ audience: [] })]), /^FEDERATION_ISSUERS\[0\]\.audience: /);
    expectOnly(problemsFor([good({ audience: null })]), /^FEDERATION_ISSUERS\[0\]\.audience: /);
  });

  it('a plain-http issuer on a host that is not loopback', () => {
    expectOnly(
      problemsFor([good({ issuer: 'http://idp.example.com' })]),
      /^FEDERATION_ISSUERS\[0\]\.issuer: must be https \(plain http only on a loopback host\)/,
    );
    expectOnly(
      problemsFor([good({ issuer: 'http://10.0.0.5/realms/x' })]),
      /^FEDERATION_ISSUERS\[0\]\.issuer: must be https/,
    );
  });

  it('an issuer that is not an https URL, holds credentials, or is missing', () => {
    expectOnly(problemsFor([good({ issuer: 'idp.example.com' })]), /^FEDERATION_ISSUERS\[0\]\.issuer: /);
    expectOnly(problemsFor([good({ issuer: 'ftp://idp.example.com' })]), /^FEDERATION_ISSUERS\[0\]\.issuer: /);
    expectOnly(problemsFor([good({ issuer: 'https://u:p@idp.example.com' })]), /^FEDERATION_ISSUERS\[0\]\.issuer: /);
    const { issuer: _, ...withoutIssuer } = good();
    expectOnly(problemsFor([withoutIssuer]), /^FEDERATION_ISSUERS\[0\]\.issuer: required/);
  });

  it('an issuer equal to JWT_ISSUER', () => {
    const own = 'https://auth.example.com';
    expectOnly(
      problemsFor([good({ issuer: own })], { JWT_ISSUER: own }),
      /^FEDERATION_ISSUERS\[0\]\.issuer: must differ from JWT_ISSUER/,
    );
    // Any other issuer is fine with that JWT_ISSUER.
    expect(
      parseConfig({ JWT_ISSUER: own, FEDERATION_ISSUERS: JSON.stringify([good()]) }).federationIssuers,
    ).toHaveLength(1);
  });

  it('a plain-http jwksUri on a host that is not loopback', () => {
    expectOnly(
      problemsFor([good({ jwksUri: 'http://keys.example.com/jwks' })]),
      /^FEDERATION_ISSUERS\[0\]\.jwksUri: must be https/,
    );
  });

  it('an unknown field, at the top of the entry or in claims', () => {
    expectOnly(problemsFor([good({ colour: 'blue' })]), /^FEDERATION_ISSUERS\[0\]: unknown field\(s\) colour/);
    expectOnly(problemsFor([good({ audiences: ['x'] })]), /^FEDERATION_ISSUERS\[0\]: unknown field\(s\) audiences/);
    expectOnly(
      problemsFor([good({ claims: { groups: 'groups' } })]),
      /^FEDERATION_ISSUERS\[0\]\.claims: unknown field\(s\) groups/,
    );
  });

  it('bad values of the other fields', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ name: 'My IdP' }, /^FEDERATION_ISSUERS\[0\]\.name: /],
      [{ name: undefined }, /^FEDERATION_ISSUERS\[0\]\.name: required/],
      [{ maxTokenLifetime: 59 }, /^FEDERATION_ISSUERS\[0\]\.maxTokenLifetime: /],
      [{ maxTokenLifetime: 30 * 86400 + 1 }, /^FEDERATION_ISSUERS\[0\]\.maxTokenLifetime: /],
      [{ maxTokenLifetime: '600' }, /^FEDERATION_ISSUERS\[0\]\.maxTokenLifetime: /],
      [{ provisioning: 'auto' }, /^FEDERATION_ISSUERS\[0\]\.provisioning: must be jit or linked-only/],
      [{ acceptBearer: 'yes' }, /^FEDERATION_ISSUERS\[0\]\.acceptBearer: /],
      [{ roleMap: { 'gh-admin': 'superuser' } }, /^FEDERATION_ISSUERS\[0\]\.roleMap\.gh-admin: /],
      [{ claims: { roles: 'realm access.roles' } }, /^FEDERATION_ISSUERS\[0\]\.claims\.roles: /],
    ];
    for (const [overrides, pattern] of cases) {
      expectOnly(problemsFor([good(overrides)]), pattern);
    }
  });

  it('an entry that is not an object', () => {
    expectOnly(problemsFor([ISSUER]), /^FEDERATION_ISSUERS\[0\]: must be an object/);
    expectOnly(problemsFor([good(), null]), /^FEDERATION_ISSUERS\[1\]: must be an object/);
  });

  it('invalid JSON', () => {
    expectOnly(problemsFor('[{"name": "main",'), /^FEDERATION_ISSUERS: is not valid JSON/);
  });

  it('JSON that is not an array', () => {
    expectOnly(problemsFor(good()), /^FEDERATION_ISSUERS: must be a JSON array/);
    expectOnly(problemsFor('"https://idp.example.com"'), /^FEDERATION_ISSUERS: must be a JSON array/);
  });

  it('both FEDERATION_ISSUERS and FEDERATION_ISSUERS_FILE', () => {
    const path = fileWith(JSON.stringify([good()]));
    expectOnly(
      problemsOf({ FEDERATION_ISSUERS: JSON.stringify([good()]), FEDERATION_ISSUERS_FILE: path }),
      /^FEDERATION_ISSUERS_FILE: set FEDERATION_ISSUERS or FEDERATION_ISSUERS_FILE, not both/,
    );
  });

  it('an unreadable FEDERATION_ISSUERS_FILE, or one with bad content', () => {
    const missing = join(dir, 'missing.json');
    expectOnly(
      problemsOf({ FEDERATION_ISSUERS_FILE: missing }),
      new RegExp(
        `^FEDERATION_ISSUERS_FILE: cannot read ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(ENOENT\\)`,
      ),
    );
    expectOnly(problemsOf({ FEDERATION_ISSUERS_FILE: dir }), /^FEDERATION_ISSUERS_FILE: cannot read .*\(EISDIR\)/);
    expectOnly(
      problemsOf({ FEDERATION_ISSUERS_FILE: fileWith('{nope') }),
      /^FEDERATION_ISSUERS_FILE: is not valid JSON/,
    );
    expectOnly(
      problemsOf({ FEDERATION_ISSUERS_FILE: fileWith(JSON.stringify([good({ algorithms: ['HS256'] })])) }),
      /^FEDERATION_ISSUERS\[0\]\.algorithms\.0: HS256 is symmetric/,
    );
  });

  it('a duplicate issuer or name', () => {
    expectOnly(problemsFor([good(), good({ name: 'other' })]), /^FEDERATION_ISSUERS\[1\]\.issuer: is configured twice/);
    expectOnly(
      problemsFor([good(), good({ issuer: 'https://other.example.com' })]),
      /^FEDERATION_ISSUERS\[1\]\.name: is used twice/,
    );
  });

  it('names the index of the bad entry only, and reports every problem at once', () => {
    const entries = [
      good({ name: 'first', issuer: 'https://one.example.com' }),
      good({ name: 'second', issuer: 'https://two.example.com' }),
      good({ name: 'third', issuer: 'http://three.example.com', algorithms: ['HS384'], audience: undefined }),
    ];
    const problems = problemsFor(entries);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^FEDERATION_ISSUERS\[2\]\.issuer: must be https/),
        expect.stringMatching(/^FEDERATION_ISSUERS\[2\]\.algorithms\.0: HS384 is symmetric/),
        expect.stringMatching(/^FEDERATION_ISSUERS\[2\]\.audience: required/),
      ]),
    );
    expect(problems).toHaveLength(3);
    expect(problems.join('\n')).not.toMatch(/FEDERATION_ISSUERS\[[01]\]/);
  });

  it('is reported with the other invalid variables', () => {
    const problems = problemsOf({ PORT: 'abc', FEDERATION_ISSUERS: JSON.stringify([good({ algorithms: ['HS256'] })]) });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^PORT: /),
        expect.stringMatching(/^FEDERATION_ISSUERS\[0\]\.algorithms\.0: HS256/),
      ]),
    );
  });
});

describe('start-up', () => {
  it('stops with a ConfigError naming the entry and field', async () => {
    const bad = JSON.stringify([good({ audience: undefined, algorithms: ['HS256'] })]);
    // An in-memory database: nothing is created when the configuration is refused.
    const started = startApp({ FEDERATION_ISSUERS: bad }, { databaseUrl: 'memory://' });
    await expect(started).rejects.toBeInstanceOf(ConfigError);
    const error = (await started.catch((e: unknown) => e)) as ConfigError;
    expect(error.problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^FEDERATION_ISSUERS\[0\]\.audience: required/),
        expect.stringMatching(/^FEDERATION_ISSUERS\[0\]\.algorithms\.0: HS256 is symmetric/),
      ]),
    );
    expect(error.message).toContain('FEDERATION_ISSUERS[0].audience');
  });
});
