/**
 * A start-up failure that is the operator's to resolve (the set-up, not the code): main.ts
 * prints its message as one line, without a stack, and exits non-zero.
 */
export class StartupError extends Error {
  override name = 'StartupError';
}
