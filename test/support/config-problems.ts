import { expect } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/config.schema.js';

/**
 * The problems parseConfig reports for this environment; fails the test when it accepts it,
 * or when its message does not name every problem.
 */
export function problemsOf(env: Record<string, string | undefined>): string[] {
  let caught: unknown;
  try {
    parseConfig(env);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  const e = caught as ConfigError;
  expect(e.message).toMatch(/^Invalid configuration:/);
  for (const p of e.problems) expect(e.message).toContain(p);
  return e.problems;
}
