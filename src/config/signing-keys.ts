import {
  createHash,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';

export type JwtAlgorithm = 'ES256' | 'RS256' | 'HS256';

export interface VerificationKey {
  kid: string;
  /** KeyObject built once: jsonwebtoken spends ~300 µs per call parsing string keys. */
  key: KeyObject;
  /** Public JWK for /.well-known/jwks.json (absent for symmetric keys). */
  jwk?: JsonWebKey & { kid: string; alg: JwtAlgorithm; use: 'sig' };
}

export interface KeySet {
  algorithm: JwtAlgorithm;
  signing: { kid: string; key: KeyObject };
  /** Every key that verifies (the signing key first): rotation without logging anyone out. */
  verification: Map<string, VerificationKey>;
}

/**
 * Unusable JWT_KEYS / JWT_SECRETS / JWT_ALGORITHM. The message starts with the variable's name
 * ("JWT_KEYS: ...") and never quotes the key material; the config schema reports it as one line.
 */
export class KeyConfigError extends Error {
  override name = 'KeyConfigError';
}

/** HS256 keys: at least the hash output size, RFC 7518 §3.2. */
const MIN_SECRET_BYTES = 32;

/** HS256 from comma-separated secrets; the first signs. */
export function keySetFromSecrets(secrets: string): KeySet {
  const list = secrets
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0) throw new KeyConfigError('JWT_SECRETS: no secret given');
  const verification = new Map<string, VerificationKey>();
  for (const secret of list) {
    if (Buffer.byteLength(secret, 'utf8') < MIN_SECRET_BYTES) {
      throw new KeyConfigError(`JWT_SECRETS: every secret must be at least ${MIN_SECRET_BYTES} bytes (RFC 7518 §3.2)`);
    }
    // The kid names the secret without revealing it (truncated SHA-256 of it).
    const kid = `hs-${createHash('sha256').update(secret).digest('base64url').slice(0, 16)}`;
    verification.set(kid, { kid, key: createSecretKey(Buffer.from(secret, 'utf8')) });
  }
  const first = verification.values().next().value!;
  return { algorithm: 'HS256', signing: { kid: first.kid, key: first.key }, verification };
}

/**
 * Asymmetric keys from PEM blocks (concatenated) or JSON (a JWK, an array of JWKs or a JWKS).
 * The first key must be private: it signs. Public-only keys verify only.
 */
export function keySetFromKeys(text: string, algorithm?: JwtAlgorithm): KeySet {
  const parsed = parseKeys(text);
  if (parsed.length === 0) throw new KeyConfigError('JWT_KEYS: no key found (expected PEM blocks or JWK JSON)');
  const first = parsed[0]!;
  if (!first.private) throw new KeyConfigError('JWT_KEYS: the first key must be a private key (it signs)');
  const alg = algorithm ?? algorithmOf(first.public);
  if (alg === 'HS256') throw new KeyConfigError('JWT_ALGORITHM: HS256 takes JWT_SECRETS, not JWT_KEYS');
  if (alg === 'unsupported') {
    throw new KeyConfigError(
      `JWT_KEYS: unsupported key type ${describeKey(first.public)} (use EC P-256 or RSA >= 2048 bits)`,
    );
  }
  const verification = new Map<string, VerificationKey>();
  for (const k of parsed) {
    if (algorithmOf(k.public) !== alg) {
      throw new KeyConfigError(`JWT_KEYS: every key must suit ${alg} (found a ${describeKey(k.public)} key)`);
    }
    const exported = k.public.export({ format: 'jwk' });
    const kid = k.kid ?? thumbprint(exported);
    verification.set(kid, { kid, key: k.public, jwk: { ...exported, kid, alg, use: 'sig' } });
  }
  const signingKid = first.kid ?? thumbprint(first.public.export({ format: 'jwk' }));
  return { algorithm: alg, signing: { kid: signingKid, key: first.private }, verification };
}

/** A fresh P-256 key pair as PKCS#8 PEM (the default ES256 signing key). */
export function generateEs256Pem(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

interface ParsedKey {
  private?: KeyObject;
  public: KeyObject;
  kid?: string;
}

function parseKeys(text: string): ParsedKey[] {
  const trimmed = text.trim();
  try {
    if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
      const json = JSON.parse(trimmed) as JsonWebKey | JsonWebKey[] | { keys: JsonWebKey[] };
      const jwks = Array.isArray(json)
        ? json
        : 'keys' in json && Array.isArray(json.keys)
          ? json.keys
          : [json as JsonWebKey];
      return jwks.map((jwk) => {
        if (jwk.kty === 'oct') throw new KeyConfigError('JWT_KEYS: symmetric JWKs are not accepted; use JWT_SECRETS');
        const kid = typeof jwk.kid === 'string' ? jwk.kid : undefined;
        if (jwk.d !== undefined) {
          const priv = createPrivateKey({ key: jwk, format: 'jwk' });
          return { private: priv, public: createPublicKey(priv), kid };
        }
        return { public: createPublicKey({ key: jwk, format: 'jwk' }), kid };
      });
    }
    // PEM kept on one line (an env file, `npm run keys`) has its line breaks written as "\n".
    const blocks = trimmed.replace(/\\n/g, '\n').match(/-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----/g) ?? [];
    return blocks.map((pem) => {
      if (/PRIVATE KEY-----/.test(pem.split('\n')[0]!)) {
        const priv = createPrivateKey(pem);
        return { private: priv, public: createPublicKey(priv) };
      }
      return { public: createPublicKey(pem) };
    });
  } catch (error) {
    if (error instanceof KeyConfigError) throw error;
    // V8's JSON errors quote the text around the fault: never echo key material.
    const reason = error instanceof SyntaxError ? 'not valid JSON' : (error as Error).message;
    throw new KeyConfigError(`JWT_KEYS: cannot read a key (${reason})`);
  }
}

function algorithmOf(key: KeyObject): JwtAlgorithm | 'unsupported' {
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) return 'RS256';
  return 'unsupported';
}

function describeKey(key: KeyObject): string {
  const d = key.asymmetricKeyDetails;
  return [key.asymmetricKeyType, d?.namedCurve, d?.modulusLength].filter(Boolean).join(' ');
}

/** RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key. */
export function thumbprint(jwk: JsonWebKey): string {
  const members =
    jwk.kty === 'EC'
      ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
      : jwk.kty === 'RSA'
        ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
        : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}
