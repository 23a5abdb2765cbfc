/** Runs one of the benchmark's child scripts (load, baselines) in its own process. */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCH = fileURLToPath(new URL('..', import.meta.url));
/**
 * The children's options: NODE_ENV=production, as every benchmark server runs (serverEnv), so
 * that the NestJS and Express baselines run in the mode of the server they are compared with
 * (the load generator and the other baselines get it too; it changes nothing there).
 */
const FORK = { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, NODE_ENV: 'production' } };

/** Forks bench/<script>, sends it `message`, resolves with its answer. */
export function runChild(script, message, { timeoutMs = 600_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = fork(BENCH + script, [], FORK);
    let answer = null;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} did not answer within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.on('message', (m) => (answer = m));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (answer?.error) reject(new Error(`${script}: ${answer.error}`));
      else if (answer) resolve(answer);
      else reject(new Error(`${script} exited (${code}) without an answer`));
    });
    child.send(message);
  });
}

/**
 * Forks bench/<script> as a long-lived child (an HTTP baseline), sends it `message`, and
 * resolves once it answers (e.g. its port): { pid, answer, stop() }. stop() asks it to exit
 * and waits for it (SIGKILL after 5 s); the child also exits when its IPC channel closes.
 */
export function startChild(script, message, { timeoutMs = 30_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = fork(BENCH + script, [], FORK);
    const exited = new Promise((r) => child.once('exit', r));
    const stop = async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (child.connected) child.send({ stop: true });
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} did not start within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.once('message', (answer) => {
      clearTimeout(timer);
      if (answer?.error) {
        reject(new Error(`${script}: ${answer.error}`));
        void stop();
      } else resolve({ pid: child.pid, answer, stop });
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited (${code}) before answering`)); // no-op once resolved
    });
    child.send(message);
  });
}

/**
 * Load jobs (see bench/load.mjs), all at once in one child process. The first result also gets
 * `clientCpuMs`: the CPU time the load process spent on all of them.
 */
export async function load(...jobs) {
  const { results, clientCpuMs } = await runChild('load.mjs', { jobs });
  if (results.length > 0) results[0].clientCpuMs = clientCpuMs;
  return results;
}
