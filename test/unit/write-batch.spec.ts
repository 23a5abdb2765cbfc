import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setImmediate as nextPhase } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { WriteBatch } from '../../src/realtime/write-batch.js';

/**
 * A real WebSocket connection, as the gateway holds it: the server's WebSocket and the socket
 * of its upgrade request (what RealtimeGateway.handleConnection hands to WriteBatch), with each
 * write that socket makes to the kernel counted (one writev of several chunks is one write),
 * and what the client receives.
 */
async function connection() {
  const server = new WebSocketServer({ port: 0, perMessageDeflate: false });
  const accepted = new Promise<{ ws: WebSocket; socket: Socket }>((resolve) =>
    server.once('connection', (ws: WebSocket, req: IncomingMessage) => resolve({ ws, socket: req.socket as Socket })),
  );
  await new Promise((resolve) => server.once('listening', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
  const received: string[] = [];
  client.on('message', (data: Buffer) => received.push(String(data)));
  const closed = new Promise<number>((resolve) => client.once('close', resolve));
  await new Promise((resolve) => client.once('open', resolve));
  const { ws, socket } = await accepted;
  const counted = { writes: 0 };
  const writev = socket._writev!.bind(socket);
  const write = socket._write.bind(socket);
  socket._writev = (chunks, done) => {
    counted.writes++;
    writev(chunks, done);
  };
  socket._write = (chunk, encoding, done) => {
    counted.writes++;
    write(chunk, encoding, done);
  };
  const received$ = async (n: number) => {
    while (received.length < n) await new Promise((resolve) => setTimeout(resolve, 5));
    return received;
  };
  open.push({ server, client });
  return { ws, socket, counted, received: received$, closed };
}

const open: Array<{ server: WebSocketServer; client: WebSocket }> = [];
afterEach(async () => {
  for (const { server, client } of open.splice(0)) {
    client.terminate();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** What RealtimeGateway.send() does around a frame. */
function send(batch: WriteBatch, c: { ws: WebSocket; socket: Socket }, text: string) {
  batch.hold(c.socket);
  c.ws.send(text);
  batch.wrote(c.socket);
}

describe('WriteBatch on a WebSocket connection', () => {
  it('sends without it one write per frame (the count below sees every write)', async () => {
    const c = await connection();
    for (const text of ['one', 'two', 'three']) c.ws.send(text);
    expect(await c.received(3)).toEqual(['one', 'two', 'three']);
    expect(c.counted.writes).toBe(3);
  });

  it('writes the frames of one phase in one write, in order, after the phase', async () => {
    const c = await connection();
    const batch = new WriteBatch(64 * 1024, 60_000);
    for (const text of ['one', 'two', 'three']) send(batch, c, text);
    expect(c.counted.writes).toBe(0);
    await nextPhase();
    expect(c.counted.writes).toBe(1);
    expect(await c.received(3)).toEqual(['one', 'two', 'three']);
  });

  it('starts a new batch in the next phase, and keeps each connection to itself', async () => {
    const a = await connection();
    const b = await connection();
    const batch = new WriteBatch(64 * 1024, 60_000);
    send(batch, a, 'a1');
    send(batch, b, 'b1');
    send(batch, a, 'a2');
    await nextPhase();
    send(batch, a, 'a3');
    send(batch, a, 'a4');
    await nextPhase();
    expect(await a.received(4)).toEqual(['a1', 'a2', 'a3', 'a4']);
    expect(await b.received(1)).toEqual(['b1']);
    expect([a.counted.writes, b.counted.writes]).toEqual([2, 1]);
  });

  it('writes a connection out at once when the flush size waits, and batches again after', async () => {
    const c = await connection();
    const batch = new WriteBatch(100, 60_000);
    send(batch, c, 'x'.repeat(60)); // 62 bytes with the frame's header: held
    expect(c.counted.writes).toBe(0);
    send(batch, c, 'y'.repeat(60)); // 124: written now
    expect(c.counted.writes).toBe(1);
    send(batch, c, 'z');
    expect(c.counted.writes).toBe(1);
    await nextPhase();
    expect(c.counted.writes).toBe(2);
    expect(await c.received(3)).toEqual(['x'.repeat(60), 'y'.repeat(60), 'z']);
  });

  it('writes a batch out with the next frame once it is older than its delay, within one phase', async () => {
    const c = await connection();
    const batch = new WriteBatch(64 * 1024, 5);
    send(batch, c, 'early');
    send(batch, c, 'soon after');
    expect(c.counted.writes).toBe(0);
    const start = performance.now();
    while (performance.now() - start < 6); // a long phase: the loop busy with other work
    send(batch, c, 'late');
    expect(c.counted.writes).toBe(1); // the two early frames, before the late one is held
    await nextPhase();
    expect(c.counted.writes).toBe(2);
    expect(await c.received(3)).toEqual(['early', 'soon after', 'late']);
  });

  it('sends a close made in the same phase after the frames before it', async () => {
    const c = await connection();
    const batch = new WriteBatch(64 * 1024, 60_000);
    send(batch, c, 'last words');
    c.ws.close(4410, 'gone');
    expect(c.counted.writes).toBe(0);
    expect(await c.closed).toBe(4410);
    expect(await c.received(1)).toEqual(['last words']);
  });
});
