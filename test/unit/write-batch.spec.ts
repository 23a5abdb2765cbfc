import { Writable } from 'node:stream';
import { setImmediate as nextPhase } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { WriteBatch } from '../../src/realtime/write-batch.js';

/** A socket stand-in that records each write it makes (one writev of several chunks is one write). */
function recordingSocket() {
  const writes: string[][] = [];
  const socket = new Writable({
    writev(chunks, done) {
      writes.push(chunks.map((c) => String(c.chunk)));
      done();
    },
    write(chunk, _encoding, done) {
      writes.push([String(chunk)]);
      done();
    },
  });
  return { socket, writes };
}

/** What a WebSocket send does with its frame: a header and a payload, itself corked around them. */
function sendFrame(batch: WriteBatch, socket: Writable, text: string) {
  batch.hold(socket);
  socket.cork();
  socket.write(`<${text.length}>`);
  socket.write(text);
  socket.uncork();
  batch.wrote(socket);
}

describe('WriteBatch', () => {
  it('writes the frames of one phase to a socket in one write, in order, at the end of the phase', async () => {
    const batch = new WriteBatch(64 * 1024);
    const a = recordingSocket();
    const b = recordingSocket();
    sendFrame(batch, a.socket, 'one');
    sendFrame(batch, b.socket, 'x');
    sendFrame(batch, a.socket, 'two');
    sendFrame(batch, a.socket, 'three');
    expect(a.writes).toEqual([]);
    expect(b.writes).toEqual([]);
    await nextPhase();
    expect(a.writes).toEqual([['<3>', 'one', '<3>', 'two', '<5>', 'three']]);
    expect(b.writes).toEqual([['<1>', 'x']]);
  });

  it('starts a new batch in the next phase', async () => {
    const batch = new WriteBatch(64 * 1024);
    const a = recordingSocket();
    sendFrame(batch, a.socket, 'one');
    await nextPhase();
    sendFrame(batch, a.socket, 'two');
    sendFrame(batch, a.socket, 'three');
    await nextPhase();
    expect(a.writes).toEqual([
      ['<3>', 'one'],
      ['<3>', 'two', '<5>', 'three'],
    ]);
  });

  it('writes a socket out at once when what it holds reaches the flush size, and batches again after', async () => {
    const batch = new WriteBatch(10);
    const a = recordingSocket();
    sendFrame(batch, a.socket, 'abc'); // 6 bytes held
    expect(a.writes).toEqual([]);
    sendFrame(batch, a.socket, 'defg'); // 13: written now
    expect(a.writes).toEqual([['<3>', 'abc', '<4>', 'defg']]);
    sendFrame(batch, a.socket, 'h');
    expect(a.writes).toHaveLength(1);
    await nextPhase();
    expect(a.writes).toEqual([
      ['<3>', 'abc', '<4>', 'defg'],
      ['<1>', 'h'],
    ]);
  });

  it('lets end() write out what a socket holds, before its end', async () => {
    const batch = new WriteBatch(64 * 1024);
    const a = recordingSocket();
    const finished = new Promise((resolve) => a.socket.on('finish', resolve));
    sendFrame(batch, a.socket, 'bye');
    a.socket.end();
    await finished;
    expect(a.writes).toEqual([['<3>', 'bye']]);
    await nextPhase(); // the batch's own release then finds nothing to write
    expect(a.writes).toEqual([['<3>', 'bye']]);
  });
});
