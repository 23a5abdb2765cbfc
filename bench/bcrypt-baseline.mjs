/**
 * Baseline for `login`: raw bcrypt.compare at the server's cost with the same number in
 * flight, in its own process, on libuv's thread pool (4 threads) at the default priority (the
 * server runs bcrypt on threads of its own, one per core, at a lower one). Answers the
 * completed compares per second over `duration` seconds, after `warmup` seconds.
 */
import { createHmac, randomBytes } from 'node:crypto';
import bcrypt from 'bcrypt';

async function measure({ cost, inFlight, duration, warmup }) {
  // The server compares a 44-character HMAC-SHA-256 pre-hash (base64); so does this.
  const input = createHmac('sha256', randomBytes(32)).update('bench-password').digest('base64');
  const hash = await bcrypt.hash(input, cost);
  let counting = false;
  let count = 0;
  const stop = new AbortController(); // the loops run until the measurement is over
  const loop = async () => {
    while (!stop.signal.aborted) {
      const ok = await bcrypt.compare(input, hash);
      if (!ok) throw new Error('bcrypt.compare returned false');
      if (counting) count++;
    }
  };
  const loops = Array.from({ length: inFlight }, loop);
  await new Promise((r) => setTimeout(r, warmup * 1000));
  counting = true;
  const started = performance.now();
  await new Promise((r) => setTimeout(r, duration * 1000));
  counting = false;
  const elapsed = (performance.now() - started) / 1000;
  stop.abort();
  await Promise.all(loops);
  return { rps: count / elapsed, count, durationS: elapsed };
}

process.once('message', (message) => {
  measure(message).then(
    (result) => process.send(result, () => process.exit(0)),
    (error) => process.send({ error: String(error?.stack ?? error) }, () => process.exit(1)),
  );
});
