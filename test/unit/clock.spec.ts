import { describe, expect, it } from 'vitest';
import { Clock } from '../../src/common/clock.js';
import { FakeClock } from '../support/fake-clock.js';

describe('Clock.setTimeout', () => {
  it('fires after the delay in real time, and not after cancel()', async () => {
    const clock = new Clock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('a'), 10);
    clock.setTimeout(() => fired.push('b'), 10).cancel();
    await new Promise((r) => setTimeout(r, 40));
    expect(fired).toEqual(['a']);
  });
});

describe('FakeClock timers', () => {
  it('fire when advance() passes their time, in time order, once', () => {
    const clock = new FakeClock();
    clock.freeze();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('late'), 60_000);
    clock.setTimeout(() => fired.push('early'), 1_000);
    clock.advance(0.5);
    expect(fired).toEqual([]);
    clock.advance(60);
    expect(fired).toEqual(['early', 'late']);
    clock.advance(600);
    expect(fired).toEqual(['early', 'late']);
  });

  it('never fire once cancelled', () => {
    const clock = new FakeClock();
    clock.freeze();
    let fired = false;
    const timer = clock.setTimeout(() => (fired = true), 1_000);
    timer.cancel();
    clock.advance(5);
    expect(fired).toBe(false);
  });

  it('also fire by real time while the clock runs', async () => {
    const clock = new FakeClock();
    let fired = false;
    clock.setTimeout(() => (fired = true), 10);
    await new Promise((r) => setTimeout(r, 40));
    expect(fired).toBe(true);
  });
});
