import { createHmac, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';

/** Hand-made JWTs for attack tests: any header, any payload, any signature. */
const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');

export function unsignedJwt(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  return `${b64(header)}.${b64(payload)}`;
}

/** ES256 (ECDSA P-256 SHA-256, JOSE raw r||s signature). */
export function signEs256(header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObject): string {
  const input = unsignedJwt({ alg: 'ES256', ...header }, payload);
  const sig = cryptoSign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

/** HS256 with an arbitrary secret (e.g. a public key's text, for algorithm confusion). */
export function signHs256(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  secret: string | Buffer,
): string {
  const input = unsignedJwt({ alg: 'HS256', ...header }, payload);
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** A fresh P-256 key pair; `pem` is the PKCS#8 private key, `publicPem` the SPKI public key. */
export function es256KeyPair(): { privateKey: KeyObject; publicKey: KeyObject; pem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    privateKey,
    publicKey,
    pem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}
