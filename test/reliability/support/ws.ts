// WebSocket clients for the real-time scenarios: a `ws` client that records every frame and
// when and how it closed, and a raw one (a TCP socket that writes its own handshake and
// frames, and reads the server's) for what a well-behaved client cannot send.
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { WebSocket, type RawData } from 'ws';

export interface Frame {
  event: string;
  data: Record<string, unknown>;
  id?: string | number;
}

export interface Closed {
  code: number;
  reason: string;
  /** performance.now() when the client saw the close. */
  at: number;
}

/** The bytes of a received message, whatever form `ws` gives them in. */
const bufferOf = (data: RawData): Buffer =>
  Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);

/** A refused handshake: the HTTP status and body the server answered instead of the 101. */
export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly headers: Record<string, string | string[] | undefined>,
    readonly body: string,
  ) {
    super(`upgrade refused: HTTP ${status} ${body.slice(0, 200)}`);
  }
}

export interface OpenOptions {
  headers?: Record<string, string>;
  protocols?: string[];
  timeoutMs?: number;
}

/**
 * A `ws` client: every frame the server sends (JSON), and the close (code, reason, time).
 * Waits are event-driven (frames and the close wake them), each with a deadline.
 */
export class Sock {
  readonly frames: Frame[] = [];
  /** Frames that were not JSON (the protocol never sends one: counted as a failure). */
  readonly garbage: string[] = [];
  closed: Closed | null = null;
  /** Resolves once closed. */
  readonly done: Promise<Closed>;
  private readonly waiters = new Set<() => void>();

  private constructor(readonly ws: WebSocket) {
    this.done = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        this.closed = { code, reason: reason.toString(), at: performance.now() };
        resolve(this.closed);
        this.wake();
      }),
    );
    ws.on('message', (data, isBinary) => {
      const text = bufferOf(data).toString('utf8');
      try {
        if (isBinary) throw new Error('binary');
        this.frames.push(JSON.parse(text) as Frame);
      } catch {
        this.garbage.push(text.slice(0, 200));
      }
      this.wake();
    });
    // Errors (a refused handshake, a reset) end in 'close' or in open()'s rejection.
    ws.on('error', () => this.wake());
  }

  /** Opens a socket (no `auth` yet); rejects with UpgradeRefused when the server answers an HTTP error. */
  static open(url: string, opts: OpenOptions = {}): Promise<Sock> {
    const ws = new WebSocket(url, opts.protocols ?? [], {
      headers: opts.headers,
      perMessageDeflate: false,
      handshakeTimeout: opts.timeoutMs ?? 15_000,
    });
    const sock = new Sock(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(sock));
      ws.once('unexpected-response', (_req, res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          reject(new UpgradeRefused(res.statusCode ?? 0, res.headers, Buffer.concat(chunks).toString('utf8')));
          ws.terminate();
        });
      });
      ws.once('error', (err) => reject(err));
    });
  }

  /** Opens a socket and authenticates it; resolves once `auth.ok` came. */
  static async authenticated(url: string, token: string, opts: OpenOptions = {}): Promise<Sock> {
    const sock = await Sock.open(url, opts);
    sock.send({ event: 'auth', data: { token } });
    await sock.next((f) => f.event === 'auth.ok', 'auth.ok', opts.timeoutMs ?? 15_000);
    return sock;
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends an object as JSON, a string as a text frame, a Buffer as binary (or as text: `asText`). */
  send(message: unknown, asText = false): void {
    if (Buffer.isBuffer(message)) this.ws.send(message, { binary: !asText });
    else this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /**
   * The first frame (from `from` on) that matches; rejects when the socket closes first or at
   * the deadline. The index of the frame is returned with it.
   */
  next(match: (f: Frame) => boolean, what: string, timeoutMs = 10_000, from = 0): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const attempt = () => {
        const i = this.frames.findIndex((f, idx) => idx >= from && match(f));
        if (i >= 0) return finish(() => resolve(this.frames[i]!));
        if (this.closed) return finish(() => reject(new Error(`closed ${JSON.stringify(this.closed)} before ${what}`)));
        return undefined;
      };
      const finish = (settle: () => void) => {
        this.waiters.delete(attempt);
        clearTimeout(timer);
        settle();
      };
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(new Error(`timed out waiting for ${what}; frames: ${JSON.stringify(this.frames).slice(0, 400)}`)),
          ),
        timeoutMs,
      );
      this.waiters.add(attempt);
      attempt();
    });
  }

  /** The close, or the first matching frame, whichever comes first (null at the deadline). */
  answerOrClose(match: (f: Frame) => boolean, timeoutMs: number, from = 0): Promise<Frame | Closed | null> {
    return new Promise((resolve) => {
      const attempt = () => {
        const f = this.frames.find((x, idx) => idx >= from && match(x));
        if (f) return finish(f);
        if (this.closed) return finish(this.closed);
        return undefined;
      };
      const finish = (v: Frame | Closed | null) => {
        this.waiters.delete(attempt);
        clearTimeout(timer);
        resolve(v);
      };
      const timer = setTimeout(() => finish(null), timeoutMs);
      this.waiters.add(attempt);
      attempt();
    });
  }

  /** The close, or null when it did not come within `timeoutMs`. */
  closing(timeoutMs: number): Promise<Closed | null> {
    return Promise.race([this.done, new Promise<null>((r) => setTimeout(() => r(null), timeoutMs).unref())]);
  }

  private wake(): void {
    for (const w of this.waiters) w();
  }
}

/** Runs `fn` over `items`, `concurrency` at a time, in order of the items. */
export async function pool<T, R>(items: readonly T[], concurrency: number, fn: (item: T, i: number) => Promise<R>) {
  const out: R[] = [];
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return out;
}

// ---------------------------------------------------------------------------------------
// Raw WebSocket: a handshake and frames written by hand

/** A client frame (RFC 6455 §5.2): masked unless `mask: false`; any bits, opcode and length field. */
export function encodeFrame(
  opcode: number,
  payload: Buffer,
  opts: { fin?: boolean; rsv?: number; mask?: boolean; length?: bigint } = {},
): Buffer {
  const fin = opts.fin ?? true;
  const mask = opts.mask ?? true;
  const length = opts.length ?? BigInt(payload.length);
  const head: number[] = [(fin ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | (opcode & 0x0f)];
  let ext = Buffer.alloc(0);
  if (length < 126n) head.push((mask ? 0x80 : 0) | Number(length));
  else if (length < 65536n) {
    head.push((mask ? 0x80 : 0) | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(Number(length));
  } else {
    head.push((mask ? 0x80 : 0) | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(length);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), ext, payload]);
  const key = randomBytes(4);
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i]! ^= key[i % 4]!;
  return Buffer.concat([Buffer.from(head), ext, key, masked]);
}

/** A close frame's payload: a code and a reason. */
export function closePayload(code: number, reason: string | Buffer = ''): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, Buffer.isBuffer(reason) ? reason : Buffer.from(reason, 'utf8')]);
}

export interface ServerFrame {
  opcode: number;
  payload: Buffer;
}

/** The server's (unmasked) frames in `buf`, and the bytes left over. */
export function decodeFrames(buf: Buffer): { frames: ServerFrame[]; rest: Buffer } {
  const frames: ServerFrame[] = [];
  let at = 0;
  while (buf.length - at >= 2) {
    const opcode = buf[at]! & 0x0f;
    let len = buf[at + 1]! & 0x7f;
    let off = at + 2;
    if (len === 126) {
      if (buf.length < off + 2) break;
      len = buf.readUInt16BE(off);
      off += 2;
    } else if (len === 127) {
      if (buf.length < off + 8) break;
      len = Number(buf.readBigUInt64BE(off));
      off += 8;
    }
    if (buf.length < off + len) break;
    frames.push({ opcode, payload: buf.subarray(off, off + len) });
    at = off + len;
  }
  return { frames, rest: buf.subarray(at) };
}

/** What a raw exchange got: the HTTP answer, and after a 101 the server's frames and close. */
export interface RawOutcome {
  /** The status of the HTTP answer (undefined: none, or not HTTP). */
  status?: number;
  /** The answer's head (status line and headers), lower-cased header names. */
  headers: Record<string, string>;
  /** The head as received (for reports). */
  head: string;
  /** The body of a non-101 answer. */
  body: string;
  /** True when the bytes received could not be parsed as an HTTP answer. */
  malformed: boolean;
  /** Text frames the server sent after the 101. */
  texts: string[];
  /** Pongs the server sent. */
  pongs: number;
  /** The server's close frame: its code (1005 when empty) and reason. */
  close?: { code: number; reason: string };
  /** How the TCP connection ended. */
  end: 'closed' | 'reset' | 'timeout' | 'error';
  ms: number;
}

/**
 * Sends `request` (a handshake, well-formed or not) on a fresh TCP connection; after a 101,
 * sends `frames` (one write each, in order) and reads the server's frames until its close
 * frame (answered with one), the end of the connection, or `timeoutMs`. `closeAfter`: after
 * the 101 and the frames, send a normal close (1000) so that a server that accepted
 * everything ends the connection. `headOnly`: the answer has no body (HEAD).
 */
export function rawWebSocket(
  port: number,
  request: string | Buffer,
  frames: Buffer[] = [],
  opts: { timeoutMs?: number; closeAfter?: boolean; headOnly?: boolean } = {},
): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket: Socket = connect({ host: '127.0.0.1', port });
    let received = Buffer.alloc(0);
    let upgraded = false;
    let frameBuf = Buffer.alloc(0);
    const out: RawOutcome = {
      headers: {},
      head: '',
      body: '',
      malformed: false,
      texts: [],
      pongs: 0,
      end: 'closed',
      ms: 0,
    };
    let settled = false;
    const finish = (end: RawOutcome['end']) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (!upgraded) parseHttp(true);
      out.end = end;
      out.ms = performance.now() - started;
      resolve(out);
    };
    const parseHttp = (final: boolean): boolean => {
      const headEnd = received.indexOf('\r\n\r\n');
      if (headEnd < 0) {
        if (final && received.length > 0) {
          out.malformed = true;
          out.head = received.toString('latin1').slice(0, 300);
          const m = /^HTTP\/1\.[01] (\d{3})/.exec(out.head);
          if (m) out.status = Number(m[1]);
        }
        return false;
      }
      out.head = received.subarray(0, headEnd).toString('latin1');
      out.headers = {};
      const [statusLine, ...lines] = out.head.split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3}) /.exec(statusLine ?? '');
      if (!m) out.malformed = true;
      else out.status = Number(m[1]);
      for (const line of lines) {
        const i = line.indexOf(':');
        if (i <= 0) {
          out.malformed = true;
          continue;
        }
        const name = line.slice(0, i).trim().toLowerCase();
        const value = line.slice(i + 1).trim();
        out.headers[name] = out.headers[name] === undefined ? value : `${out.headers[name]}, ${value}`;
      }
      const rest = received.subarray(headEnd + 4);
      if (out.status === 101) {
        upgraded = true;
        frameBuf = Buffer.from(rest);
        for (const f of frames) socket.write(f);
        if (opts.closeAfter) socket.write(encodeFrame(0x8, closePayload(1000)));
        readFrames();
        return true;
      }
      if (opts.headOnly) return true;
      const length = Number(out.headers['content-length'] ?? NaN);
      out.body = rest.toString('utf8');
      if (Number.isFinite(length) && rest.length >= length) {
        out.body = rest.subarray(0, length).toString('utf8');
        return true;
      }
      return false;
    };
    const readFrames = () => {
      const { frames: got, rest } = decodeFrames(frameBuf);
      frameBuf = Buffer.from(rest);
      for (const f of got) {
        if (f.opcode === 0x1) out.texts.push(f.payload.toString('utf8'));
        if (f.opcode === 0xa) out.pongs += 1;
        if (f.opcode === 0x8 && !out.close) {
          out.close =
            f.payload.length >= 2
              ? { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString('utf8') }
              : { code: 1005, reason: '' };
          // The closing handshake: answered, and the connection is done with.
          if (socket.writable) socket.write(encodeFrame(0x8, Buffer.alloc(0)));
          finish('closed');
          return;
        }
      }
    };
    const timer = setTimeout(() => finish('timeout'), opts.timeoutMs ?? 10_000);
    socket.on('data', (chunk: Buffer) => {
      if (upgraded) {
        frameBuf = Buffer.concat([frameBuf, chunk]);
        readFrames();
        return;
      }
      received = Buffer.concat([received, chunk]);
      if (parseHttp(false) && !upgraded) finish('closed');
    });
    socket.on('end', () => finish('closed'));
    socket.on('close', () => finish('closed'));
    socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNRESET' ? 'reset' : 'error'));
    socket.write(request);
  });
}

/** A well-formed handshake for `path`, with these extra header lines (name, value; repeated names allowed). */
export function handshake(path: string, host: string | null, extra: Array<[string, string]> = []): string {
  const lines = [
    `GET ${path} HTTP/1.1`,
    ...(host === null ? [] : [`Host: ${host}`]),
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    ...extra.map(([n, v]) => `${n}: ${v}`),
  ];
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** The contract's error body `{statusCode, error, message, code}` for this status, and nothing else. */
export function isContractBody(status: number | undefined, headers: Record<string, string>, body: string): boolean {
  if (!/application\/json/.test(headers['content-type'] ?? '')) return false;
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(body) as Record<string, unknown>;
  } catch {
    return false;
  }
  return (
    json !== null &&
    typeof json === 'object' &&
    Object.keys(json).sort().join(',') === 'code,error,message,statusCode' &&
    json.statusCode === status &&
    typeof json.error === 'string' &&
    (typeof json.message === 'string' || Array.isArray(json.message)) &&
    typeof json.code === 'string'
  );
}

// ---------------------------------------------------------------------------------------
// The server's heap, through the inspector

/**
 * The server's memory after a full garbage collection, read over the inspector protocol: the
 * server must run with NODE_OPTIONS=--inspect=127.0.0.1:0 (its "Debugger listening on" line
 * is in `output`). heapUsed and rss in bytes.
 */
export async function serverMemory(output: string): Promise<{ heapUsed: number; rss: number; external: number }> {
  const m = /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[\w-]+)/.exec(output);
  if (!m) throw new Error('the server runs without --inspect: no "Debugger listening on" line');
  const ws = new WebSocket(m[1]!, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let nextId = 1;
  const pending = new Map<number, (msg: { result?: unknown; error?: unknown }) => void>();
  ws.on('message', (data) => {
    const msg = JSON.parse(bufferOf(data).toString('utf8')) as { id?: number; result?: unknown; error?: unknown };
    if (msg.id !== undefined) pending.get(msg.id)?.(msg);
  });
  const send = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<{ result?: unknown; error?: unknown }>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  try {
    await send('HeapProfiler.collectGarbage');
    await send('HeapProfiler.collectGarbage');
    const r = await send('Runtime.evaluate', {
      expression: 'JSON.stringify(process.memoryUsage())',
      returnByValue: true,
    });
    const value = (r.result as { result?: { value?: string } } | undefined)?.result?.value;
    if (typeof value !== 'string') throw new Error(`inspector: no memory figures: ${JSON.stringify(r).slice(0, 300)}`);
    return JSON.parse(value) as { heapUsed: number; rss: number; external: number };
  } finally {
    ws.close();
  }
}

export const mib = (bytes: number): number => Math.round((bytes / 1024 / 1024) * 10) / 10;
