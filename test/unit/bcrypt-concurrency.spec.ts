import { generateKeyPairSync } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import bcrypt from 'bcrypt';
import { afterEach, describe, expect, it } from 'vitest';
import { BCRYPT_NICE_INCREMENT, PasswordHasher, cpuBudget } from '../../src/accounts/password-hasher.service.js';
import type { UsersRepository } from '../../src/accounts/users.repository.js';
import { Clock } from '../../src/common/clock.js';
import { parseConfig } from '../../src/config/config.schema.js';
import type { SecretsService } from '../../src/config/secrets.service.js';
import { AccessTokenService } from '../../src/tokens/access-token.service.js';

/**
 * bcrypt runs on worker threads of its own, scheduled below the rest of the process; access
 * tokens are signed on libuv's thread pool, which bcrypt no longer uses.
 */
const hasher = (cost: number) =>
  new PasswordHasher(
    parseConfig({ BCRYPT_COST: String(cost) }),
    { passwordPepper: Buffer.from('p'.repeat(32)) } as SecretsService,
    { mostCommonPasswordCost: async () => cost } as unknown as UsersRepository,
  );

/** The nice value of a thread of this process (Linux: /proc/self/task/<tid>/stat, field 19). */
function niceOf(tid: string | number): number | null {
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    // After the command name's closing parenthesis: field 3 (state) onwards.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  } catch {
    return null; // the thread ended meanwhile
  }
}

/** `read()` once it gives the same answer three times in a row, 20 ms apart (at most 2 s). */
async function steady(read: () => number): Promise<number> {
  let last = read();
  for (let same = 0, tries = 0; same < 2 && tries < 100; tries++) {
    await sleep(20);
    const now = read();
    same = now === last ? same + 1 : 0;
    last = now;
  }
  return last;
}

/** How many threads of this process run at `nice`. */
const threadsAt = (nice: number) => readdirSync('/proc/self/task').filter((tid) => niceOf(tid) === nice).length;

describe('bcrypt on its own threads', () => {
  let h: PasswordHasher | undefined;
  afterEach(async () => {
    await h?.onApplicationShutdown();
    h = undefined;
  });

  it('hashes, and answers many comparisons at once, right and wrong', async () => {
    h = hasher(4);
    const hash = await h.hash('right password');
    expect(bcrypt.getRounds(hash)).toBe(4);
    const verifier = h;
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => verifier.verify(i % 2 ? 'right password' : 'wrong password', hash)),
    );
    expect(answers).toEqual(Array.from({ length: 12 }, (_, i) => i % 2 === 1));
  });

  it.runIf(process.platform === 'linux')(
    'runs bcrypt on threads scheduled BCRYPT_NICE_INCREMENT below the process, ended at shutdown',
    async () => {
      const own = niceOf(process.pid) ?? 0; // the main thread's task id is the process id
      const lowered = () => threadsAt(Math.min(19, own + BCRYPT_NICE_INCREMENT));
      // The previous test's threads may still be ending (their task entries linger briefly
      // after the pool is destroyed): counted once the count holds still.
      const before = await steady(lowered);
      h = hasher(4);
      await h.verify('a password', await h.hash('a password'));
      expect(lowered()).toBeGreaterThan(before);
      await h.onApplicationShutdown();
      expect(lowered()).toBe(before);
      // After shutdown a late job still gets its answer, without starting threads again.
      const late = await h.hash('late');
      expect(await h.verify('late', late)).toBe(true);
      expect(await h.verify('not late', late)).toBe(false);
      expect(lowered()).toBe(before);
      h = undefined;
    },
  );

  it('takes as many threads as the cgroup CPU quota allows, never more than the cores', () => {
    expect(cpuBudget(null, 8)).toBe(8); // no cgroup v2
    expect(cpuBudget('max 100000\n', 8)).toBe(8); // no quota
    expect(cpuBudget('200000 100000\n', 64)).toBe(2); // a limit of 2 CPUs on 64 cores
    expect(cpuBudget('150000 100000', 64)).toBe(2); // 1.5 CPUs: two threads share them
    expect(cpuBudget('50000 100000', 64)).toBe(1);
    expect(cpuBudget('800000 100000', 4)).toBe(4);
    expect(cpuBudget('garbage', 4)).toBe(4);
  });

  it('signs an ES256 token before any of a queue of slow bcrypt comparisons ends', async () => {
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .privateKey.export({ format: 'pem', type: 'pkcs8' })
      .toString();
    const tokens = new AccessTokenService(parseConfig({ JWT_KEYS: pem }), new Clock(), {} as SecretsService);
    h = hasher(12); // about 0.25 s of CPU per comparison
    await h.onApplicationBootstrap(); // the dummy hash made: verify() goes straight to bcrypt
    const hash = await h.hash('a password');
    const order: string[] = [];
    const verifier = h;
    const logins = Array.from({ length: 8 }, () => verifier.verify('another', hash).then(() => order.push('bcrypt')));
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
