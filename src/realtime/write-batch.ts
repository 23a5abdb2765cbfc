import type { Writable } from 'node:stream';

/**
 * Gathers what is written to sockets during one phase of the event loop into one write per
 * socket. The first write to a socket corks it; the sockets are uncorked together in the next
 * check phase (setImmediate): for writes made while the loop handles the I/O that is ready at
 * once (several writes committing, each announcing an event), right after that I/O. The frames
 * one socket is sent meanwhile then leave in one system call instead of one each: under a
 * burst of writes, the frames' writes were the largest cost of a fan-out (bench: ws_fanout).
 *
 * A batch is held `maxDelayMs` at most, as far as the loop lets it: a write that finds it
 * older first writes it out. Under many concurrent requests one phase of the loop can last
 * tens of milliseconds, and without that bound every frame of the phase waited for its end
 * (20–50 ms at the median, 200 ms at worst, seen with 40 to 100 writes in flight); the last
 * frames of a phase still wait for its end when no other write follows them. A socket with
 * `flushBytes` or more waiting (held here, or not yet taken by the kernel) is written out at
 * once, so that a large burst is not held back.
 *
 * Order is kept: a corked socket buffers in order (frames written around the batch, a close
 * or a ping, take their place in it), and end() writes out what it holds; destroy() discards
 * it, as it would a backlog.
 */
export class WriteBatch {
  private readonly corked = new Set<Writable>();
  private scheduled = false;
  /** When the batch held now began (performance.now()). */
  private openedAt = 0;

  constructor(
    private readonly flushBytes: number,
    private readonly maxDelayMs: number,
  ) {}

  /** Call before writing to `socket`. */
  hold(socket: Writable): void {
    const now = performance.now();
    if (this.corked.size > 0 && now - this.openedAt >= this.maxDelayMs) this.release();
    if (this.corked.has(socket)) return;
    if (this.corked.size === 0) this.openedAt = now;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.release);
    }
    socket.cork();
    this.corked.add(socket);
  }

  /** Call after writing to `socket`: a socket with `flushBytes` or more waiting is written out now. */
  wrote(socket: Writable): void {
    if (socket.writableLength < this.flushBytes || !this.corked.delete(socket)) return;
    socket.uncork();
  }

  private readonly release = (): void => {
    // Cleared first: should an uncork throw, the next hold() schedules a release of the rest.
    this.scheduled = false;
    for (const socket of this.corked) {
      this.corked.delete(socket);
      socket.uncork();
    }
  };
}
