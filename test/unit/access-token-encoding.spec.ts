import { generateKeyPairSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { describe, expect, it } from 'vitest';
import { Clock } from '../../src/common/clock.js';
import { parseConfig } from '../../src/config/config.schema.js';
import type { SecretsService } from '../../src/config/secrets.service.js';
import { AccessTokenService } from '../../src/tokens/access-token.service.js';

/**
 * AccessTokenService signs with node:crypto directly: its tokens must be byte for byte what
 * jsonwebtoken made (header members and their order, claims, base64url, ES256 as r‖s).
 */
const noSecrets = {} as SecretsService;
const auth = { amr: ['pwd', 'otp'], acr: 'aal2' as const, authTime: new Date(1_700_000_000_000) };
const user = { id: '0b5f1c8e-7d2a-4f4e-9a51-3c1d2e4f5a6b', roles: ['user' as const] };

const segments = (token: string) => token.split('.');
const json = (segment: string): unknown => JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));

/** What jsonwebtoken made of the same claims and key, as the service used to call it. */
function withJsonwebtoken(service: AccessTokenService, token: string): string {
  const payload = json(segments(token)[1]!) as object;
  return jwt.sign(payload, service.keys.signing.key, {
    algorithm: service.keys.algorithm,
    keyid: service.keys.signing.kid,
    header: { alg: service.keys.algorithm, typ: 'at+jwt' },
  });
}

describe('AccessTokenService encoding', () => {
  it('HS256: the very token jsonwebtoken signs', async () => {
    const service = new AccessTokenService(parseConfig({ JWT_SECRETS: 'x'.repeat(40) }), new Clock(), noSecrets);
    const token = await service.sign(user, '6a1f2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b', auth, 1_700_000_100, {
      id: 'tenant-1',
      roles: ['admin'],
    });
    expect(token).toBe(withJsonwebtoken(service, token));
    const { token: client } = await service.signClient(
      { serviceUserId: user.id, clientId: 'c1', secretId: 's1', roles: ['user'], scopes: ['b', 'a'] },
      60,
    );
    expect(client).toBe(withJsonwebtoken(service, client));
  });

  it('ES256: the same header and claims bytes, and a 64-byte r‖s signature that jsonwebtoken verifies', async () => {
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .privateKey.export({ format: 'pem', type: 'pkcs8' })
      .toString();
    const service = new AccessTokenService(parseConfig({ JWT_KEYS: pem }), new Clock(), noSecrets);
    const token = await service.sign(user, '6a1f2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b', auth);
    const [header, payload, signature] = segments(token);
    const reference = segments(withJsonwebtoken(service, token));
    expect(header).toBe(reference[0]);
    expect(Buffer.from(header!, 'base64url').toString()).toBe(
      `{"alg":"ES256","typ":"at+jwt","kid":"${service.keys.signing.kid}"}`,
    );
    expect(payload).toBe(reference[1]);
    expect(Buffer.from(signature!, 'base64url')).toHaveLength(64);
    const publicKey = service.keys.verification.get(service.keys.signing.kid)!.key;
    expect(jwt.verify(token, publicKey, { algorithms: ['ES256'] })).toMatchObject({ sub: user.id, acr: 'aal2' });
    // A flipped signature byte fails: the check above is not vacuous.
    const bad = Buffer.from(signature!, 'base64url');
    bad[10] = bad[10]! ^ 1;
    expect(() => jwt.verify(`${header}.${payload}.${bad.toString('base64url')}`, publicKey)).toThrow(
      'invalid signature',
    );
  });

  it('RS256: the very token jsonwebtoken signs (RSASSA-PKCS1-v1_5 is deterministic)', async () => {
    const pem = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ format: 'pem', type: 'pkcs8' })
      .toString();
    const service = new AccessTokenService(parseConfig({ JWT_KEYS: pem }), new Clock(), noSecrets);
    const token = await service.sign(user, '6a1f2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b', auth);
    expect(token).toBe(withJsonwebtoken(service, token));
  });
});
