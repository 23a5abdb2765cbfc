import { expect } from 'vitest';
import type { TestApp } from './test-app.js';

export const median = (values: number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * Times `rounds` failed logins for unknown users against as many wrong passwords for
 * `username` (each must be 401), interleaved after a warm-up so that drift affects both
 * sides alike; returns the median ratio unknown / wrong (and the medians, for messages).
 */
export async function unknownToWrongPasswordRatio(
  t: TestApp,
  username: string,
  rounds: number,
): Promise<{ ratio: number; described: string }> {
  const time = async (body: object) => {
    const start = process.hrtime.bigint();
    const res = await t.http.post('/auth/login').send(body);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    expect(res.status).toBe(401);
    return ms;
  };
  await time({ username: 'warmup-nobody', password: 'whatever1' });
  await time({ username, password: 'whatever1' });
  const unknown: number[] = [];
  const wrong: number[] = [];
  for (let i = 0; i < rounds; i++) {
    unknown.push(await time({ username: `nobody_${i}_${username}`, password: `wrong password ${i}` }));
    wrong.push(await time({ username, password: `wrong password ${i}` }));
  }
  return {
    ratio: median(unknown) / median(wrong),
    described: `median unknown ${median(unknown).toFixed(1)} ms / wrong ${median(wrong).toFixed(1)} ms`,
  };
}
