import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { PASSWORD_MAX, PASSWORD_MIN, passwordLength } from '../auth/dto/password.validator.js';

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
      .refine((v) => v === undefined || !v.startsWith('file://') || fileUrlPath(v) !== undefined, 'is not a valid file: URL'),
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
      (v) => v === undefined || /^[A-Za-z0-9_.-]{3,32}$/.test(v),
      'must be 3–32 characters of letters, digits, "_", "." and "-"',
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
  })
  .superRefine((env, ctx) => {
    if ((env.ADMIN_USERNAME === undefined) !== (env.ADMIN_PASSWORD === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [env.ADMIN_USERNAME === undefined ? 'ADMIN_USERNAME' : 'ADMIN_PASSWORD'],
        message: 'ADMIN_USERNAME and ADMIN_PASSWORD must be set together',
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
    if (env.JWT_SECRETS && env.JWT_ALGORITHM && env.JWT_ALGORITHM !== 'HS256') {
      ctx.addIssue({ code: 'custom', path: ['JWT_ALGORITHM'], message: 'must be HS256 when JWT_SECRETS is set' });
    }
  })
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
  );

export type Env = z.infer<typeof envSchema>;

export type DatabaseTarget =
  | { kind: 'pglite'; dataDir: string | undefined } // undefined: in memory
  | { kind: 'postgres'; url: string };

export interface AppConfig extends Env {
  database: DatabaseTarget;
  isProduction: boolean;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** Parses an environment (process.env by default at the call site) into the typed config. */
export function parseConfig(source: Record<string, string | undefined>): AppConfig {
  // An empty variable (`PORT=` in a compose file) means "not set", never 0 or "".
  const env = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v.trim() !== ''));
  const result = envSchema.safeParse(env);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((i) => `${i.path.join('.') || 'environment'}: ${i.message}`),
    );
  }
  const parsed = result.data;
  return { ...parsed, database: databaseTarget(parsed), isProduction: parsed.NODE_ENV === 'production' };
}

function databaseTarget(env: Env): DatabaseTarget {
  const url = env.DATABASE_URL;
  if (url === undefined) return { kind: 'pglite', dataDir: `${env.DATA_DIR}/pglite` };
  if (url.startsWith('memory://')) return { kind: 'pglite', dataDir: undefined };
  if (url.startsWith('file://')) return { kind: 'pglite', dataDir: fileUrlPath(url) ?? url.slice('file:'.length) };
  if (url.startsWith('file:')) return { kind: 'pglite', dataDir: url.slice('file:'.length) || `${env.DATA_DIR}/pglite` };
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
