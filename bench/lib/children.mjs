/** Runs one of the benchmark's child scripts (load, baselines) in its own process. */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCH = fileURLToPath(new URL('..', import.meta.url));

/** Forks bench/<script>, sends it `message`, resolves with its answer. */
export function runChild(script, message, { timeoutMs = 600_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = fork(BENCH + script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
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

/** Load jobs (see bench/load.mjs), all at once in one child process. */
export async function load(...jobs) {
  return (await runChild('load.mjs', { jobs })).results;
}
