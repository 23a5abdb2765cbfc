import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { PASSWORD_MAX, PASSWORD_MIN, USERNAME_RULE, isValidUsername, passwordLength } from '../common/account-rules.js';
import { CLIENT_ONLY_SCOPES, isBuiltInScope } from '../common/scopes.js';
import { KeyConfigError, keySetFromKeys, keySetFromSecrets, type JwtAlgorithm } from './signing-keys.js';
import { parseFederationIssuers, type FederationIssuer } from './federation-issuers.js';

/**
 * Every environment variable Gatehouse reads, validated once at start-up.
 * Nothing else in the code base reads process.env.
 */
/** Ten years: longer lifetimes are mistakes, and far larger ones overflow Date arithmetic. */
const MAX_SECONDS = 10 * 365 * 24 * 3600;

const seconds = (name: string, def: number, min = 1, max = MAX_SECONDS) =>
  z.coerce
    .number({ error: `${name} must be a whole number of seconds` })
    .int(`${name} must be a whole number of seconds`)
    .min(min, `${name} must be at least ${min}`)
    .max(max, `${name} must be at most ${max}`)
    .default(def);

const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' })
    .default(def ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes');

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));

/** An absolute http(s) URL without query or fragment; kept without a trailing slash. */
const httpUrl = (name: string) =>
  optionalString
    .refine(
      (v) => v === undefined || (URL.canParse(v) && /^https?:$/.test(new URL(v).protocol)),
      `${name} must be an http:// or https:// URL`,
    )
    .refine(
      (v) => v === undefined || !URL.canParse(v) || (new URL(v).search === '' && new URL(v).hash === ''),
      `${name} must not have a query or fragment`,
    )
    .transform((v) => v?.replace(/\/+$/, ''));

/** A mail link template: an http(s) URL containing `{token}`. */
const linkTemplate = (name: string) =>
  optionalString
    .refine((v) => v === undefined || v.includes('{token}'), `${name} must contain {token}`)
    .refine((v) => v === undefined || URL.canParse(v.replace('{token}', 't')), `${name} must be a URL`)
    .refine((v) => v === undefined || /^https?:\/\//.test(v), `${name} must be an http:// or https:// URL`);

/**
 * A list of scope names, separated by spaces or commas; each an RFC 6749 §3.3 scope token
 * (NQCHAR: printable ASCII but space, `"` and `\\`). Undefined when unset.
 */
const scopeList = (name: string) =>
  optionalString.transform((v, ctx): string[] | undefined => {
    if (v === undefined) return undefined;
    const names = [...new Set(v.split(/[\s,]+/).filter(Boolean))];
    for (const n of names) {
      if (!/^[\x21\x23-\x5B\x5D-\x7E]+$/.test(n)) {
        ctx.addIssue({ code: 'custom', message: `${name}: "${n}" is not a valid scope name (RFC 6749 §3.3)` });
      }
    }
    return names;
  });

export const envSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    HOST: z.string().default('0.0.0.0'),
    DATA_DIR: z.string().default('./data'),
    DATABASE_URL: optionalString
      .refine(
        (v) => v === undefined || /^(file:|memory:\/\/|postgres(ql)?:\/\/)/.test(v),
        'must start with file:, memory:// , postgres:// or postgresql://',
      )
      .refine((v) => v === undefined || !v.startsWith('postgres') || URL.canParse(v), 'is not a valid URL')
      .refine(
        (v) => v === undefined || !v.startsWith('file://') || fileUrlPath(v) !== undefined,
        'is not a valid file: URL',
      ),
    MIGRATE_ON_START: bool(false),
    DATABASE_TIMEOUT_MS: z.coerce.number().int().min(100).max(60000).default(2000),
    REDIS_URL: optionalString
      .refine((v) => v === undefined || /^rediss?:\/\//.test(v), 'must start with redis:// or rediss://')
      .refine((v) => v === undefined || !/^rediss?:\/\//.test(v) || URL.canParse(v), 'is not a valid URL'),
    ACCESS_TOKEN_TTL: seconds('ACCESS_TOKEN_TTL', 900),
    REFRESH_TOKEN_TTL: seconds('REFRESH_TOKEN_TTL', 14 * 24 * 3600),
    REFRESH_REUSE_GRACE: seconds('REFRESH_REUSE_GRACE', 10, 0),
    SESSION_MAX_AGE: seconds('SESSION_MAX_AGE', 30 * 24 * 3600),
    BCRYPT_COST: z.coerce.number().int().min(4).max(31).default(12),
    CORS_ORIGINS: z
      .string()
      .default('')
      .transform((v, ctx) => {
        const origins = v
          .split(',')
          .map((o) => o.trim())
          .filter(Boolean);
        for (const o of origins) {
          let parsed: URL | undefined;
          try {
            parsed = new URL(o);
          } catch {
            parsed = undefined;
          }
          if (!parsed || parsed.origin !== o) {
            ctx.addIssue({ code: 'custom', message: `"${o}" is not an origin like https://app.example.com` });
          }
        }
        return origins;
      }),
    COOKIE_SECURE: bool(true),
    // The first admin obeys the same rules as a signup (contract: username and password rules).
    ADMIN_USERNAME: optionalString.refine(
      (v) => v === undefined || isValidUsername(v),
      `must be 3–32 characters and ${USERNAME_RULE}`,
    ),
    ADMIN_PASSWORD: optionalString.refine(
      // Characters are Unicode code points, as for every password.
      (v) => v === undefined || (passwordLength(v) >= PASSWORD_MIN && passwordLength(v) <= PASSWORD_MAX),
      'must be 8–128 characters',
    ),
    JWT_ALGORITHM: z.enum(['ES256', 'RS256', 'HS256']).optional(),
    JWT_KEYS: optionalString,
    JWT_SECRETS: optionalString,
    PASSWORD_PEPPER: optionalString.refine((v) => v === undefined || v.length >= 32, 'must be at least 32 characters'),
    JWT_ISSUER: z.string().min(1).default('gatehouse'),
    JWT_AUDIENCE: z.string().min(1).default('gatehouse'),
    LOGIN_RATE_LIMIT: z.coerce.number().int().min(1).max(10000).default(10),
    SIGNUP_RATE_LIMIT: z.coerce.number().int().min(1).max(100000).default(300),
    REFRESH_RATE_LIMIT: z.coerce.number().int().min(1).max(1000000).default(1200),
    TRUST_PROXY: z
      .string()
      .default('false')
      .transform((v, ctx): boolean | number => {
        if (v === 'false' || v === '0' || v === '') return false;
        if (v === 'true') return true;
        if (/^\d+$/.test(v)) return Number(v);
        ctx.addIssue({ code: 'custom', message: 'must be true, false or a number of proxy hops' });
        return false;
      }),
    SHUTDOWN_TIMEOUT: seconds('SHUTDOWN_TIMEOUT', 10, 1, 3600),
    // Storage bounds: live sessions per user (the least recently used beyond it are revoked),
    // and how long ended sessions and audit events are kept before the retention job deletes them.
    MAX_SESSIONS_PER_USER: z.coerce.number().int().min(1).max(10000).default(100),
    SESSION_RETENTION: seconds('SESSION_RETENTION', 7 * 24 * 3600, 0),
    AUDIT_RETENTION: seconds('AUDIT_RETENTION', 90 * 24 * 3600, 0),
    RETENTION_INTERVAL: seconds('RETENTION_INTERVAL', 3600, 10, 7 * 24 * 3600),
    LOG_LEVEL: z.enum(['error', 'warn', 'log', 'debug', 'verbose', 'silent']).default('log'),
    // Structured logs: JSON lines (one object per line) or text for a terminal; the default
    // follows NODE_ENV (json in production, pretty otherwise).
    LOG_FORMAT: z.enum(['json', 'pretty'], { error: 'must be json or pretty' }).optional(),
    // One line per HTTP request (method, route, status, duration, request id), at level log.
    LOG_REQUESTS: bool(true),
    // Prometheus metrics on their own port, never the API's (unset: no metrics endpoint).
    METRICS_PORT: z.coerce.number().int().min(1).max(65535).optional(),
    METRICS_HOST: z
      .string()
      .default('127.0.0.1')
      .refine((v) => /^[A-Za-z0-9.:-]{1,253}$/.test(v), 'must be an IP address or a host name'),
    // Account recovery and verification (contract v2 §A). Mail links are built only from these
    // URLs, never from Host or X-Forwarded-Host (OWASP Forgot Password Cheat Sheet).
    PUBLIC_URL: httpUrl('PUBLIC_URL'),
    APP_URL: httpUrl('APP_URL'),
    PASSWORD_RESET_URL: linkTemplate('PASSWORD_RESET_URL'),
    VERIFY_EMAIL_URL: linkTemplate('VERIFY_EMAIL_URL'),
    SMTP_URL: optionalString
      .refine((v) => v === undefined || /^smtps?:\/\//.test(v), 'must start with smtp:// or smtps://')
      .refine((v) => v === undefined || URL.canParse(v), 'is not a valid URL'),
    MAIL_FROM: z.string().default('Gatehouse <no-reply@localhost>'),
    MAIL_OUTBOX_DIR: optionalString,
    PASSWORD_RESET_TTL: seconds('PASSWORD_RESET_TTL', 3600, 60, 7 * 24 * 3600),
    EMAIL_VERIFICATION_TTL: seconds('EMAIL_VERIFICATION_TTL', 86400, 60, 30 * 24 * 3600),
    EMAIL_CHANGE_TTL: seconds('EMAIL_CHANGE_TTL', 3600, 60, 7 * 24 * 3600),
    REQUIRE_EMAIL_VERIFICATION: bool(false),
    EMAIL_CHANGE_MODE: z
      .enum(['verified', 'immediate'], { error: 'must be verified or immediate' })
      .default('verified'),
    PASSWORD_RESET_UNVERIFIED_EMAIL: bool(true),
    MAIL_RATE_LIMIT: z.coerce.number().int().min(1).max(10000).default(5),
    MAIL_IP_RATE_LIMIT: z.coerce.number().int().min(1).max(1000000).default(50),
    MAIL_NOTIFY_UNKNOWN: bool(false),
    // Two-step sign-in (contract v2 §B).
    MFA_ISSUER: z
      .string()
      .trim()
      .min(1)
      .max(64)
      .refine((v) => !v.includes(':'), 'must not contain ":" (it separates issuer and account in authenticator apps)')
      .default('Gatehouse'),
    MFA_ENCRYPTION_KEYS: optionalString.superRefine((v, ctx) => {
      const problem = v === undefined ? undefined : mfaKeysProblem(v);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
    MFA_CHALLENGE_TTL: seconds('MFA_CHALLENGE_TTL', 300, 30, 3600),
    MFA_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(5),
    MFA_RATE_LIMIT: z.coerce.number().int().min(1).max(10000).default(10),
    MFA_TOTP_WINDOW: z.coerce.number().int().min(0).max(2).default(1),
    MFA_RECOVERY_CODES: z.coerce.number().int().min(1).max(50).default(10),
    ADMIN_REQUIRE_MFA: bool(false),
    // Machine clients and scopes (contract v2 §C).
    OAUTH_TOKEN_TTL: seconds('OAUTH_TOKEN_TTL', 900, 60, 86400),
    OAUTH_MAX_TOKEN_TTL: seconds('OAUTH_MAX_TOKEN_TTL', 3600, 60, 86400),
    OAUTH_MAX_SECRETS_PER_CLIENT: z.coerce.number().int().min(1).max(50).default(5),
    OAUTH_CLIENT_RATE_LIMIT: z.coerce.number().int().min(1).max(10000).default(20),
    USER_TOKEN_SCOPES: scopeList('USER_TOKEN_SCOPES'),
    OAUTH_EXTRA_SCOPES: scopeList('OAUTH_EXTRA_SCOPES'),
    // Tenants (contract v2 §E).
    TENANT_CREATION: z.enum(['all', 'admin'], { error: 'must be all or admin' }).default('all'),
    TENANT_LIMIT_PER_USER: z.coerce.number().int().min(1).max(10000).default(10),
    TENANT_MEMBER_LIMIT: z.coerce.number().int().min(1).max(1000000).default(1000),
    TENANT_INVITATION_TTL: seconds('TENANT_INVITATION_TTL', 172800, 60, 30 * 24 * 3600),
    TENANT_INVITE_RATE_LIMIT: z.coerce.number().int().min(1).max(100000).default(20),
    TENANT_ROLES_IN_TOKEN: bool(false),
    // External OpenID Connect issuers (contract v2 §D); the list itself is checked below.
    FEDERATION_ISSUERS: optionalString,
    FEDERATION_ISSUERS_FILE: optionalString,
    FEDERATION_JWKS_CACHE_TTL: seconds('FEDERATION_JWKS_CACHE_TTL', 600, 10, 86400),
    FEDERATION_JWKS_COOLDOWN: seconds('FEDERATION_JWKS_COOLDOWN', 30, 1, 3600),
    FEDERATION_HTTP_TIMEOUT: seconds('FEDERATION_HTTP_TIMEOUT', 5, 1, 60),
    FEDERATION_CLOCK_TOLERANCE: seconds('FEDERATION_CLOCK_TOLERANCE', 30, 0, 300),
    FEDERATION_EXCHANGE_MAX_AGE: seconds('FEDERATION_EXCHANGE_MAX_AGE', 300, 10, 3600),
    FEDERATION_LINK_CACHE_TTL: seconds('FEDERATION_LINK_CACHE_TTL', 30, 0, 3600),
    FEDERATION_DEFAULT_ACCESS: z
      .enum(['full', 'tenants-only'], { error: 'must be full or tenants-only' })
      .default('full'),
    // Real-time events over WebSocket (contract v2 §F).
    WS_ENABLED: bool(true),
    WS_PATH: z
      .string()
      .default('/ws')
      .refine((v) => /^\/[A-Za-z0-9._~\-/]*$/.test(v) && !v.includes('//'), 'must be a path like /ws'),
    WS_AUTH_TIMEOUT: seconds('WS_AUTH_TIMEOUT', 10, 1, 300),
    WS_EXPIRY_WARNING: seconds('WS_EXPIRY_WARNING', 60, 1, 3600),
    WS_MAX_CONNECTIONS_PER_USER: z.coerce.number().int().min(1).max(10000).default(10),
    WS_MAX_PENDING_PER_IP: z.coerce.number().int().min(1).max(100000).default(20),
    WS_MAX_MESSAGE_BYTES: z.coerce.number().int().min(256).max(1048576).default(4096),
    WS_PING_INTERVAL: seconds('WS_PING_INTERVAL', 30, 1, 3600),
    WS_MESSAGE_RATE_LIMIT: z.coerce.number().int().min(1).max(100000).default(30),
    WS_AUTH_FAILURE_LIMIT: z.coerce.number().int().min(1).max(1000000).default(30),
  })
  .superRefine((env, ctx) => {
    if ((env.ADMIN_USERNAME === undefined) !== (env.ADMIN_PASSWORD === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [env.ADMIN_USERNAME === undefined ? 'ADMIN_USERNAME' : 'ADMIN_PASSWORD'],
        message: 'ADMIN_USERNAME and ADMIN_PASSWORD must be set together',
      });
    }
    if (env.METRICS_PORT !== undefined && env.METRICS_PORT === env.PORT) {
      ctx.addIssue({
        code: 'custom',
        path: ['METRICS_PORT'],
        message: "must differ from PORT: metrics are never served on the API's port",
      });
    }
    if (env.SESSION_MAX_AGE < env.REFRESH_TOKEN_TTL) {
      ctx.addIssue({
        code: 'custom',
        path: ['SESSION_MAX_AGE'],
        message: 'must be at least REFRESH_TOKEN_TTL',
      });
    }
    if (env.JWT_SECRETS && env.JWT_KEYS) {
      ctx.addIssue({ code: 'custom', path: ['JWT_SECRETS'], message: 'set JWT_KEYS or JWT_SECRETS, not both' });
    }
    if (env.JWT_ALGORITHM === 'HS256' && !env.JWT_SECRETS) {
      ctx.addIssue({ code: 'custom', path: ['JWT_SECRETS'], message: 'is required when JWT_ALGORITHM=HS256' });
    }
    if (env.REQUIRE_EMAIL_VERIFICATION && env.NODE_ENV === 'production' && !env.SMTP_URL) {
      ctx.addIssue({
        code: 'custom',
        path: ['SMTP_URL'],
        message: 'is required with REQUIRE_EMAIL_VERIFICATION=true in production (no one could verify an address)',
      });
    }
    if (env.OAUTH_TOKEN_TTL > env.OAUTH_MAX_TOKEN_TTL) {
      ctx.addIssue({ code: 'custom', path: ['OAUTH_TOKEN_TTL'], message: 'must be at most OAUTH_MAX_TOKEN_TTL' });
    }
    if (env.JWT_SECRETS && env.JWT_ALGORITHM && env.JWT_ALGORITHM !== 'HS256') {
      ctx.addIssue({ code: 'custom', path: ['JWT_ALGORITHM'], message: 'must be HS256 when JWT_SECRETS is set' });
    }
    for (const problem of scopeProblems(env)) ctx.addIssue({ code: 'custom', ...problem });
  })
  .superRefine(
    (env, ctx) => {
      // Each problem names its entry and field: FEDERATION_ISSUERS[0].audience.
      const jwtIssuer = typeof env.JWT_ISSUER === 'string' ? env.JWT_ISSUER : 'gatehouse';
      for (const problem of parseFederationIssuers(env, jwtIssuer).problems) {
        ctx.addIssue({ code: 'custom', path: [problem.path], message: problem.message });
      }
    },
    // Reported with the other invalid variables: it reads only strings it checks itself.
    { when: () => true },
  )
  .superRefine(
    (env, ctx) => {
      // Generated keys and pepper live in one instance's DATA_DIR: a second instance would make
      // its own, and neither would accept the other's tokens or passwords. Production names them.
      if (env.NODE_ENV !== 'production') return;
      const missing = [
        ...(env.PASSWORD_PEPPER === undefined ? ['PASSWORD_PEPPER'] : []),
        ...(env.JWT_KEYS === undefined && env.JWT_SECRETS === undefined ? ['JWT_KEYS (or JWT_SECRETS)'] : []),
      ];
      if (missing.length > 0) {
        ctx.addIssue({
          code: 'custom',
          path: [],
          message: `NODE_ENV=production requires ${missing.join(' and ')}, the same on every instance: generate them with \`npm run keys\``,
        });
      }
    },
    // Reported with the other invalid variables, not only once they are fixed: it reads only
    // these four, which are present (as given) even when another variable is invalid.
    { when: () => true },
  )
  .superRefine(
    (env, ctx) => {
      // The keys are read here with the code that reads them at start-up (signing-keys.ts): a key
      // that cannot be read is a configuration error naming its variable, not a crash later.
      const problem = signingKeyProblem(env);
      if (problem) ctx.addIssue({ code: 'custom', path: [problem.variable], message: problem.message });
    },
    // Also reported with the other invalid variables; it checks the types of what it reads.
    { when: () => true },
  );

/**
 * USER_TOKEN_SCOPES and OAUTH_EXTRA_SCOPES against the built-in scopes (contract v2 §C): an
 * extra scope must not take a built-in name (Gatehouse would enforce it as its own), and user
 * tokens carry only known scopes, never a client-only one (`introspection`).
 */
function scopeProblems(env: {
  USER_TOKEN_SCOPES?: readonly string[] | undefined;
  OAUTH_EXTRA_SCOPES?: readonly string[] | undefined;
}): Array<{ path: string[]; message: string }> {
  const problems: Array<{ path: string[]; message: string }> = [];
  const extra = env.OAUTH_EXTRA_SCOPES ?? [];
  for (const name of extra.filter(isBuiltInScope)) {
    problems.push({ path: ['OAUTH_EXTRA_SCOPES'], message: `"${name}" is a built-in scope; list only other names` });
  }
  for (const name of env.USER_TOKEN_SCOPES ?? []) {
    if (CLIENT_ONLY_SCOPES.includes(name)) {
      problems.push({ path: ['USER_TOKEN_SCOPES'], message: `"${name}" is for machine clients only` });
    } else if (!isBuiltInScope(name) && !extra.includes(name)) {
      problems.push({
        path: ['USER_TOKEN_SCOPES'],
        message: `"${name}" is not a known scope (a built-in one or one of OAUTH_EXTRA_SCOPES)`,
      });
    }
  }
  return problems;
}

/**
 * MFA_ENCRYPTION_KEYS: comma-separated 32-byte AES keys, each 64 hex digits or 43/44
 * characters of base64(url); the first encrypts, all decrypt. What is wrong, if anything.
 */
export function mfaKeysProblem(value: string): string | undefined {
  const keys = value
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  if (keys.length === 0) return 'must list at least one key';
  for (const [i, key] of keys.entries()) {
    if (parseMfaKey(key) === undefined)
      return `key ${i + 1} is not 32 bytes written as 64 hex digits or base64 (generate one with \`npm run keys\`)`;
  }
  return undefined;
}

/** A 32-byte key from 64 hex digits or base64/base64url; undefined when it is neither. */
export function parseMfaKey(key: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(key)) return Buffer.from(key, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(key)) {
    const bytes = Buffer.from(key.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    return bytes.length === 32 ? bytes : undefined;
  }
  return undefined;
}

const JWT_ALGORITHMS: readonly unknown[] = ['ES256', 'RS256', 'HS256'] satisfies JwtAlgorithm[];

/** What is wrong with JWT_KEYS or JWT_SECRETS (read as at start-up), if anything. */
function signingKeyProblem(env: {
  JWT_KEYS?: unknown;
  JWT_SECRETS?: unknown;
  JWT_ALGORITHM?: unknown;
}): { variable: string; message: string } | undefined {
  const given = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v : undefined);
  const keys = given(env.JWT_KEYS);
  const secrets = given(env.JWT_SECRETS);
  // Both set is reported as such; an invalid JWT_ALGORITHM is reported by its own check.
  if (keys !== undefined && secrets !== undefined) return undefined;
  const algorithm = JWT_ALGORITHMS.includes(env.JWT_ALGORITHM) ? (env.JWT_ALGORITHM as JwtAlgorithm) : undefined;
  try {
    if (secrets !== undefined) keySetFromSecrets(secrets);
    else if (keys !== undefined) keySetFromKeys(keys, algorithm);
    return undefined;
  } catch (error) {
    if (!(error instanceof KeyConfigError)) throw error;
    // Its messages read "VARIABLE: what is wrong" (one line, without the key material).
    const match = /^([A-Z_]+): (.+)$/s.exec(error.message);
    const message = (match?.[2] ?? error.message).replace(/\s*\n\s*/g, ' ');
    return { variable: match?.[1] ?? (secrets !== undefined ? 'JWT_SECRETS' : 'JWT_KEYS'), message };
  }
}

export type Env = z.infer<typeof envSchema>;

export type DatabaseTarget =
  | {
      kind: 'pglite';
      /** undefined: in memory */
      dataDir: string | undefined;
      /**
       * In memory only, and never set from the environment: a dump of a data directory (PGlite's
       * `dumpDataDir`) the database starts from instead of a new, empty cluster. The test suite
       * starts each in-memory database from one dump with the migrations applied: loading it
       * takes about a second, creating a cluster three to six.
       */
      template?: Blob;
    }
  | { kind: 'postgres'; url: string };

/**
 * The validated configuration: frozen (arrays and the database target too), and typed so.
 * A test that needs other values parses another environment.
 */
export type AppConfig = Readonly<
  Omit<Env, 'CORS_ORIGINS' | 'PUBLIC_URL' | 'APP_URL' | 'MAIL_OUTBOX_DIR' | 'FEDERATION_ISSUERS' | 'LOG_FORMAT'> & {
    /** LOG_FORMAT, or its default for NODE_ENV. */
    LOG_FORMAT: 'json' | 'pretty';
    CORS_ORIGINS: readonly string[];
    /** Where Gatehouse is reached (default http://localhost:PORT), without a trailing slash. */
    PUBLIC_URL: string;
    /** The UI with /verify-email and /reset-password (default PUBLIC_URL). */
    APP_URL: string;
    /** Where mail goes without SMTP_URL (default DATA_DIR/outbox). */
    MAIL_OUTBOX_DIR: string;
    database: Readonly<DatabaseTarget>;
    isProduction: boolean;
    /** The external issuers, from FEDERATION_ISSUERS or FEDERATION_ISSUERS_FILE (empty: none). */
    federationIssuers: readonly FederationIssuer[];
  }
>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * The process's configuration: the one place that reads process.env (the server's main.ts and
 * the database CLI both start here). Throws ConfigError listing every invalid variable.
 */
export function loadConfig(): AppConfig {
  return parseConfig(process.env);
}

/** Parses an environment into the typed, frozen config (tests pass their own). */
export function parseConfig(source: Record<string, string | undefined>): AppConfig {
  // An empty variable (`PORT=` in a compose file) means "not set", never 0 or "".
  const env = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v.trim() !== ''));
  const result = envSchema.safeParse(env);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((i) => `${i.path.join('.') || 'environment'}: ${i.message}`));
  }
  const parsed = result.data;
  const PUBLIC_URL = parsed.PUBLIC_URL ?? `http://localhost:${parsed.PORT}`;
  const { FEDERATION_ISSUERS: _issuersText, ...rest } = parsed;
  return deepFreeze({
    ...rest,
    federationIssuers: parseFederationIssuers(parsed, parsed.JWT_ISSUER).issuers,
    PUBLIC_URL,
    APP_URL: parsed.APP_URL ?? PUBLIC_URL,
    MAIL_OUTBOX_DIR: parsed.MAIL_OUTBOX_DIR ?? `${parsed.DATA_DIR}/outbox`,
    database: databaseTarget(parsed),
    isProduction: parsed.NODE_ENV === 'production',
    LOG_FORMAT: parsed.LOG_FORMAT ?? (parsed.NODE_ENV === 'production' ? 'json' : 'pretty'),
  });
}

/** Freezes a tree of plain objects and arrays (what the schema produces). */
function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (child !== null && typeof child === 'object' && !Object.isFrozen(child)) deepFreeze(child as object);
  }
  return Object.freeze(value);
}

function databaseTarget(env: Env): DatabaseTarget {
  const url = env.DATABASE_URL;
  if (url === undefined) return { kind: 'pglite', dataDir: `${env.DATA_DIR}/pglite` };
  if (url.startsWith('memory://')) return { kind: 'pglite', dataDir: undefined };
  if (url.startsWith('file://')) return { kind: 'pglite', dataDir: fileUrlPath(url) ?? url.slice('file:'.length) };
  if (url.startsWith('file:'))
    return { kind: 'pglite', dataDir: url.slice('file:'.length) || `${env.DATA_DIR}/pglite` };
  return { kind: 'postgres', url };
}

/** `file:///abs/dir` → `/abs/dir` (undefined when not a local file URL). The `file:dir` form is a plain path. */
function fileUrlPath(url: string): string | undefined {
  try {
    return fileURLToPath(url);
  } catch {
    return undefined;
  }
}
