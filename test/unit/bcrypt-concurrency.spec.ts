import { generateKeyPairSync } from 'node:crypto';
import bcrypt from 'bcrypt';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BCRYPT_CONCURRENCY, PasswordHasher, threadPoolSize } from '../../src/accounts/password-hasher.service.js';
import type { UsersRepository } from '../../src/accounts/users.repository.js';
import { Clock } from '../../src/common/clock.js';
import { parseConfig } from '../../src/config/config.schema.js';
import type { SecretsService } from '../../src/config/secrets.service.js';
import { AccessTokenService } from '../../src/tokens/access-token.service.js';

/**
 * bcrypt and the signatures of access tokens share libuv's thread pool. PasswordHasher keeps
 * one of its threads free of bcrypt, so that a token is signed at once however many logins
 * are waiting for bcrypt.
 */
const hasher = (cost: number) =>
  new PasswordHasher(
    parseConfig({ BCRYPT_COST: String(cost) }),
    { passwordPepper: Buffer.from('p'.repeat(32)) } as SecretsService,
    { mostCommonPasswordCost: async () => cost } as unknown as UsersRepository,
  );

describe('bcrypt jobs and the thread pool', () => {
  afterEach(() => vi.restoreAllMocks());

  it('reads UV_THREADPOOL_SIZE as libuv does', () => {
    expect([undefined, '8', '0', 'many', '', '2000', '-3', '6 threads'].map(threadPoolSize)).toEqual([
      4, 8, 1, 1, 1, 1024, 1024, 6,
    ]);
  });

  it('runs at most all of the pool but one thread of bcrypt at once', async () => {
    expect(BCRYPT_CONCURRENCY).toBe(Math.max(1, (Number(process.env.UV_THREADPOOL_SIZE) || 4) - 1));
    const h = hasher(4);
    const hash = await h.hash('right password');
    let running = 0;
    let most = 0;
    // bcrypt.compare, as the promise-returning overload PasswordHasher calls.
    const promised = bcrypt as unknown as { compare: (data: string, encrypted: string) => Promise<boolean> };
    const compare = promised.compare.bind(bcrypt);
    vi.spyOn(promised, 'compare').mockImplementation(async (data: string, encrypted: string) => {
      running++;
      most = Math.max(most, running);
      try {
        return await compare(data, encrypted);
      } finally {
        running--;
      }
    });
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => h.verify(i % 2 ? 'right password' : 'wrong password', hash)),
    );
    expect(answers).toEqual(Array.from({ length: 12 }, (_, i) => i % 2 === 1));
    expect(most).toBe(BCRYPT_CONCURRENCY);
  });

  it('signs an ES256 token before any of a queue of slow bcrypt comparisons ends', async () => {
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .privateKey.export({ format: 'pem', type: 'pkcs8' })
      .toString();
    const tokens = new AccessTokenService(parseConfig({ JWT_KEYS: pem }), new Clock(), {} as SecretsService);
    const h = hasher(12); // about 0.25 s of CPU per comparison
    await h.onApplicationBootstrap(); // the dummy hash made: verify() goes straight to bcrypt
    const hash = await h.hash('a password');
    const order: string[] = [];
    const logins = Array.from({ length: 8 }, () => h.verify('another', hash).then(() => order.push('bcrypt')));
    // The comparisons reach the pool first (p-limit starts them from a microtask).
    await new Promise((resolve) => setImmediate(resolve));
    const token = tokens
      .sign({ id: '0b5f1c8e-7d2a-4f4e-9a51-3c1d2e4f5a6b', roles: ['user'] }, '6a1f2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b', {
        amr: ['pwd'],
        acr: 'aal1',
        authTime: new Date(),
      })
      .then((t) => order.push('token') && t);
    await Promise.all([...logins, token]);
    expect(order[0]).toBe('token');
    expect(order.filter((o) => o === 'bcrypt')).toHaveLength(8);
  });
});
