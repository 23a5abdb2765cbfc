/**
 * Polls `check` every 25 ms until it holds, and returns how long that took from `sinceMs`;
 * fails once more than `withinMs` have passed since `sinceMs` (by default, the call).
 */
export async function within(withinMs: number, check: () => Promise<boolean>, sinceMs = Date.now()): Promise<number> {
  while (!(await check())) {
    if (Date.now() - sinceMs > withinMs) throw new Error(`not within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return Date.now() - sinceMs;
}
