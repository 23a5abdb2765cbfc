/**
 * bcrypt's worker threads (PasswordHasher's pool): each task runs bcrypt's synchronous form on
 * this thread, which the pool starts with a lower scheduling priority, so that the CPU goes
 * first to the threads that answer requests. Plain JavaScript, loaded by file name: the same
 * file serves the compiled server (a copy beside dist/main.js) and the tests (beside the
 * TypeScript source).
 */
import bcrypt from 'bcrypt';

/** @param {{ data: string, hash: string }} task */
export function compare({ data, hash: encrypted }) {
  return bcrypt.compareSync(data, encrypted);
}

/** @param {{ data: string, cost: number }} task */
export function hash({ data, cost }) {
  return bcrypt.hashSync(data, cost);
}
