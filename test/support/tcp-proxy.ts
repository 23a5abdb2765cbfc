import { createServer, connect, type AddressInfo, type Socket } from 'node:net';

/**
 * A TCP proxy in front of Redis that can break an instance's subscription the way a network
 * fault does: `hangSubscribers()` silently drops what Redis sends to the connections that
 * subscribed (the connection stays open, nothing says it is broken), `resumeSubscribers()`
 * lets them through again (what was dropped stays lost), `cutSubscribers()` closes them (the
 * client reconnects and subscribes again), `delaySubscribers(ms)` hands them what Redis sends
 * that much later, in order (a slow path; 0 ends it). Other connections pass as is.
 * `stop()` is Redis gone: every connection closes and new ones are closed as they open, until
 * `start()`. `cutOn(pattern)` stops it the first time a client sends a command matching
 * `pattern` (the command goes nowhere). `mute()` is a Redis that stalls: connections open, and
 * what it answers reaches them only at `unmute()`, late and in order.
 */
export interface RedisProxy {
  url: string;
  /** How many subscriber connections have been opened through the proxy so far. */
  readonly subscribersOpened: number;
  hangSubscribers(): void;
  resumeSubscribers(): void;
  cutSubscribers(): void;
  delaySubscribers(ms: number): void;
  stop(): void;
  start(): void;
  cutOn(pattern: RegExp): void;
  /** True from stop() (or a cutOn match) to start(). */
  readonly stopped: boolean;
  mute(): void;
  unmute(): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
  subscriber: boolean;
  /** What Redis sent, waiting for delaySubscribers()'s delay. */
  late: Array<{ dueMs: number; chunk: Buffer }>;
  /** What Redis sent while muted. */
  held: Buffer[];
}

export async function redisProxy(target: string): Promise<RedisProxy> {
  const { hostname, port } = new URL(target);
  const pairs = new Set<Pair>();
  let hanging = false;
  let stopped = false;
  let muted = false;
  let cutPattern: RegExp | null = null;
  let delayMs = 0;
  let subscribersOpened = 0;
  /** Writes `chunk` delayMs from now, after every chunk still waiting (the stream's order). */
  const later = (pair: Pair, chunk: Buffer) => {
    pair.late.push({ dueMs: Date.now() + delayMs, chunk });
    if (pair.late.length > 1) return;
    const drain = () => {
      while (pair.late.length > 0 && pair.late[0]!.dueMs <= Date.now()) pair.client.write(pair.late.shift()!.chunk);
      if (pair.late.length > 0) setTimeout(drain, pair.late[0]!.dueMs - Date.now());
    };
    setTimeout(drain, delayMs);
  };
  const server = createServer((client) => {
    if (stopped) {
      client.destroy();
      return;
    }
    const upstream = connect(Number(port || 6379), hostname);
    const pair: Pair = { client, upstream, subscriber: false, late: [], held: [] };
    pairs.add(pair);
    client.on('data', (chunk: Buffer) => {
      if (cutPattern?.test(chunk.toString('latin1'))) {
        cutPattern = null;
        stop();
        return;
      }
      if (!pair.subscriber && /subscribe/i.test(chunk.toString('latin1'))) {
        pair.subscriber = true;
        subscribersOpened++;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (hanging && pair.subscriber) return;
      if (muted) {
        pair.held.push(chunk);
        return;
      }
      if ((delayMs > 0 && pair.subscriber) || pair.late.length > 0) later(pair, chunk);
      else client.write(chunk);
    });
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on('close', end);
      socket.on('error', end);
    }
  });
  const stop = () => {
    stopped = true;
    for (const pair of pairs) pair.client.destroy();
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: own } = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${own}`,
    get subscribersOpened() {
      return subscribersOpened;
    },
    hangSubscribers: () => {
      hanging = true;
    },
    resumeSubscribers: () => {
      hanging = false;
    },
    delaySubscribers: (ms: number) => {
      delayMs = ms;
    },
    cutSubscribers: () => {
      hanging = false;
      for (const pair of pairs) if (pair.subscriber) pair.client.destroy();
    },
    stop,
    get stopped() {
      return stopped;
    },
    start: () => {
      stopped = false;
    },
    cutOn: (pattern: RegExp) => {
      cutPattern = pattern;
    },
    mute: () => {
      muted = true;
    },
    unmute: () => {
      muted = false;
      for (const pair of pairs) for (const chunk of pair.held.splice(0)) pair.client.write(chunk);
    },
    close: async () => {
      for (const pair of pairs) pair.client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
