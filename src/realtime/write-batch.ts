import type { Writable } from 'node:stream';

/**
 * Gathers what is written to sockets during one phase of the event loop into one write per
 * socket. The first write to a socket in a phase corks it; the sockets are uncorked together
 * at the end of the phase (setImmediate), so that frames an instance sends one socket while it
 * handles the I/O ready at once (several writes committing, each announcing an event) leave in
 * one system call instead of one each: under a burst of writes, the frames' writes were the
 * largest cost of a fan-out (bench: ws_fanout). A socket whose corked bytes reach `flushBytes`
 * is uncorked at once, so that a large burst is not held back (nor counted as a slow client's
 * backlog). Order is kept: a corked socket buffers in order, and end() flushes what it holds.
 */
export class WriteBatch {
  private readonly corked = new Set<Writable>();

  constructor(private readonly flushBytes: number) {}

  /** Call before writing to `socket`. */
  hold(socket: Writable): void {
    if (this.corked.has(socket)) return;
    if (this.corked.size === 0) setImmediate(this.release);
    socket.cork();
    this.corked.add(socket);
  }

  /** Call after writing to `socket`: a socket holding `flushBytes` or more is written out now. */
  wrote(socket: Writable): void {
    if (socket.writableLength < this.flushBytes || !this.corked.delete(socket)) return;
    socket.uncork();
  }

  private readonly release = (): void => {
    for (const socket of this.corked) socket.uncork();
    this.corked.clear();
  };
}
