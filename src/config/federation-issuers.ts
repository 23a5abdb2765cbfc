import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ROLES, type Role } from '../common/account-rules.js';

/**
 * The external OpenID Connect issuers whose tokens Gatehouse trusts (contract v2 §D), from
 * FEDERATION_ISSUERS (a JSON array) or the file named by FEDERATION_ISSUERS_FILE. Every
 * problem names its entry and field: `FEDERATION_ISSUERS[0].audience: required`.
 */
export interface FederationIssuer {
  /** Slug used in logs, audit entries and identities. */
  name: string;
  /** The exact `iss` of its tokens. */
  issuer: string;
  /** Where its keys are; null: from `{issuer}/.well-known/openid-configuration`. */
  jwksUri: string | null;
  audience: readonly string[];
  algorithms: readonly AsymmetricAlgorithm[];
  /** Dot paths into the token's claims. */
  claims: Readonly<{ username: string; email: string; emailVerified: string; displayName: string; roles: string }>;
  /** Claim value → Gatehouse role, computed per request and never stored. */
  roleMap: Readonly<Record<string, Role>> | null;
  provisioning: 'jit' | 'linked-only';
  acceptBearer: boolean;
  /** Seconds: tokens with exp − iat beyond this are refused. */
  maxTokenLifetime: number;
}

/**
 * Only asymmetric algorithms: with HS* every holder of the shared secret (Gatehouse
 * included) could mint the provider's tokens (contract v2 §8; Supabase third-party auth
 * refuses symmetric keys too). `none` is never accepted.
 */
export const ASYMMETRIC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;
export type AsymmetricAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

const DEFAULT_CLAIMS = {
  username: 'preferred_username',
  email: 'email',
  emailVerified: 'email_verified',
  displayName: 'name',
  roles: 'roles',
};

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** https, or plain http on a loopback host (the tests' own provider): for issuers and JWKS URLs. */
export function isSecureUrl(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const url = new URL(value);
  return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.has(url.hostname));
}

/** https, or http on a loopback host (the tests' own provider); no query or fragment. */
const secureUrl = z.string({ error: 'required' }).superRefine((value, ctx) => {
  if (!URL.canParse(value)) {
    ctx.addIssue({ code: 'custom', message: 'must be an absolute URL' });
    return;
  }
  const url = new URL(value);
  if (!isSecureUrl(value)) {
    ctx.addIssue({
      code: 'custom',
      message: url.protocol === 'http:' ? 'must be https (plain http only on a loopback host)' : 'must be an https URL',
    });
  }
  if (url.username || url.password) ctx.addIssue({ code: 'custom', message: 'must not hold credentials' });
});

const claimPath = z
  .string()
  .regex(/^[A-Za-z0-9_:$-]+(\.[A-Za-z0-9_:$-]+)*$/, 'must be a claim name or a dot path like realm_access.roles');

const entrySchema = z
  .object(
    {
      name: z
        .string({ error: 'required' })
        .regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'must be a slug: 1–40 lower-case letters, digits and "-"'),
      issuer: secureUrl,
      jwksUri: secureUrl.nullable().default(null),
      audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)], {
        error: (issue) =>
          issue.input === undefined
            ? 'required (the client id the provider puts in `aud`: without it any token of the provider would do)'
            : 'must be a non-empty string or array of strings',
      }),
      algorithms: z
        .array(
          z.string().refine((a) => (ASYMMETRIC_ALGORITHMS as readonly string[]).includes(a), {
            error: (issue) =>
              /^HS/i.test(String(issue.input))
                ? `${String(issue.input)} is symmetric: only RS/PS/ES 256–512 and EdDSA are accepted`
                : `${String(issue.input)} is not one of ${ASYMMETRIC_ALGORITHMS.join(', ')}`,
          }),
        )
        .min(1)
        .default(['RS256', 'ES256']),
      claims: z
        .object({
          username: claimPath.optional(),
          email: claimPath.optional(),
          emailVerified: claimPath.optional(),
          displayName: claimPath.optional(),
          roles: claimPath.optional(),
        })
        .strict()
        .default({}),
      roleMap: z
        .record(z.string().min(1), z.enum(ROLES, { error: `must be one of ${ROLES.join(', ')}` }))
        .nullable()
        .default(null),
      provisioning: z.enum(['jit', 'linked-only'], { error: 'must be jit or linked-only' }).default('jit'),
      acceptBearer: z.boolean({ error: 'must be true or false' }).default(true),
      maxTokenLifetime: z
        .number({ error: 'must be a number of seconds' })
        .int()
        .min(60)
        .max(30 * 86400)
        .default(86400),
    },
    { error: 'must be an object' },
  )
  .strict();

export interface IssuerProblem {
  path: string;
  message: string;
}

/**
 * Reads and validates the issuers; `problems` names each entry and field. `jwtIssuer` is
 * Gatehouse's own `iss`: an external issuer with that name would let its tokens take the
 * local path.
 */
export function parseFederationIssuers(
  env: { FEDERATION_ISSUERS?: string | undefined; FEDERATION_ISSUERS_FILE?: string | undefined },
  jwtIssuer: string,
): { issuers: FederationIssuer[]; problems: IssuerProblem[] } {
  const inline = env.FEDERATION_ISSUERS;
  const file = env.FEDERATION_ISSUERS_FILE;
  if (inline !== undefined && file !== undefined) {
    return {
      issuers: [],
      problems: [
        { path: 'FEDERATION_ISSUERS_FILE', message: 'set FEDERATION_ISSUERS or FEDERATION_ISSUERS_FILE, not both' },
      ],
    };
  }
  const variable = file !== undefined ? 'FEDERATION_ISSUERS_FILE' : 'FEDERATION_ISSUERS';
  let text = inline;
  if (file !== undefined) {
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      return { issuers: [], problems: [{ path: variable, message: `cannot read ${file} (${code})` }] };
    }
  }
  if (text === undefined || text.trim() === '') return { issuers: [], problems: [] };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { issuers: [], problems: [{ path: variable, message: 'is not valid JSON (expected an array of issuers)' }] };
  }
  if (!Array.isArray(json)) return { issuers: [], problems: [{ path: variable, message: 'must be a JSON array' }] };
  const issuers: FederationIssuer[] = [];
  const problems: IssuerProblem[] = [];
  for (const [index, raw] of json.entries()) {
    const where = `FEDERATION_ISSUERS[${index}]`;
    const parsed = entrySchema.safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const field = issue.path.length > 0 ? `${where}.${issue.path.join('.')}` : where;
        const message =
          issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue.message;
        problems.push({ path: field, message });
      }
      continue;
    }
    const entry = parsed.data;
    const issuer: FederationIssuer = {
      ...entry,
      audience: typeof entry.audience === 'string' ? [entry.audience] : entry.audience,
      algorithms: entry.algorithms as AsymmetricAlgorithm[],
      claims: { ...DEFAULT_CLAIMS, ...stripUndefined(entry.claims) },
    };
    if (issuer.issuer === jwtIssuer) {
      problems.push({ path: `${where}.issuer`, message: 'must differ from JWT_ISSUER (Gatehouse’s own tokens)' });
    }
    if (issuers.some((i) => i.issuer === issuer.issuer)) {
      problems.push({ path: `${where}.issuer`, message: 'is configured twice' });
    }
    if (issuers.some((i) => i.name === issuer.name)) {
      problems.push({ path: `${where}.name`, message: 'is used twice' });
    }
    issuers.push(issuer);
  }
  return { issuers, problems };
}

function stripUndefined<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]: Exclude<T[K], undefined>;
  };
}
