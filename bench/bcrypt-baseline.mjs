/**
 * Baseline for `login`: raw bcrypt.compare at the server's cost with the same number in
 * flight, in its own process (same libuv thread-pool size as the server). Answers the
 * completed compares per second over `duration` seconds, after `warmup` seconds.
 */
import { createHmac, randomBytes } from 'node:crypto';
import bcrypt from 'bcrypt';

process.once('message', async ({ cost, inFlight, duration, warmup }) => {
  try {
    // The server compares a 44-character HMAC-SHA-256 pre-hash (base64); so does this.
    const input = createHmac('sha256', randomBytes(32)).update('bench-password').digest('base64');
    const hash = await bcrypt.hash(input, cost);
    let counting = false;
    let count = 0;
    let stop = false;
    const loop = async () => {
      while (!stop) {
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
    stop = true;
    await Promise.all(loops);
    process.send({ rps: count / elapsed, count, durationS: elapsed }, () => process.exit(0));
  } catch (error) {
    process.send({ error: String(error?.stack ?? error) }, () => process.exit(1));
  }
});
