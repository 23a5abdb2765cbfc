// Raw TCP clients: for requests that a well-behaved HTTP client cannot send (malformed,
// trickled byte by byte, or left half-sent).
import { connect, type Socket } from 'node:net';

export interface RawResult {
  /** Everything the server sent. */
  response: string;
  /** Status code of the first response line, if any. */
  status?: number;
  /** How the connection ended: closed by the server, reset, or our own deadline. */
  end: 'closed' | 'reset' | 'timeout' | 'error';
  ms: number;
}

/** Sends `data` at once and collects the response until the server closes or `timeoutMs`. */
export function rawRequest(port: number, data: string | Buffer, timeoutMs = 5_000): Promise<RawResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect({ host: '127.0.0.1', port });
    let response = '';
    let settled = false;
    const finish = (end: RawResult['end']) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(response);
      resolve({ response, status: m ? Number(m[1]) : undefined, end, ms: performance.now() - started });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    socket.on('data', (c: Buffer) => {
      response += c.toString('latin1');
      // One complete response is enough (the server may keep the connection open).
      if (completeResponse(response)) finish('closed');
    });
    socket.on('end', () => finish('closed'));
    socket.on('close', () => finish('closed'));
    socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNRESET' ? 'reset' : 'error'));
    socket.write(data);
  });
}

function completeResponse(text: string): boolean {
  const head = text.indexOf('\r\n\r\n');
  if (head < 0) return false;
  const headers = text.slice(0, head);
  const length = /\r\ncontent-length: *(\d+)/i.exec(headers);
  if (length) return text.length - head - 4 >= Number(length[1]);
  if (/\r\ntransfer-encoding: *chunked/i.test(headers)) return text.endsWith('0\r\n\r\n');
  return false;
}

/** A connection that sends `data` one byte every `intervalMs`, until done, cut, or `maxMs`. */
export interface Trickler {
  socket: Socket;
  /** Resolves when the server closes or resets the connection (or at maxMs): ms since open. */
  ended: Promise<{ how: 'closed' | 'reset' | 'timeout' | 'error'; ms: number; response: string; bytesSent: number }>;
  stop(): void;
}

/** `head`, when given, is sent at once on connect; then `data` trickles. */
export function trickle(port: number, data: string, intervalMs: number, maxMs: number, head?: string): Trickler {
  const socket = connect({ host: '127.0.0.1', port });
  const opened = performance.now();
  let i = 0;
  let response = '';
  let interval: NodeJS.Timeout | undefined;
  let resolveEnded!: (v: {
    how: 'closed' | 'reset' | 'timeout' | 'error';
    ms: number;
    response: string;
    bytesSent: number;
  }) => void;
  const ended = new Promise<{
    how: 'closed' | 'reset' | 'timeout' | 'error';
    ms: number;
    response: string;
    bytesSent: number;
  }>((r) => (resolveEnded = r));
  let settled = false;
  const finish = (how: 'closed' | 'reset' | 'timeout' | 'error') => {
    if (settled) return;
    settled = true;
    clearInterval(interval);
    clearTimeout(deadline);
    socket.destroy();
    resolveEnded({ how, ms: performance.now() - opened, response, bytesSent: i });
  };
  const deadline = setTimeout(() => finish('timeout'), maxMs);
  socket.on('connect', () => {
    if (head) socket.write(head);
    interval = setInterval(() => {
      if (i < data.length && socket.writable) socket.write(data[i++]!);
    }, intervalMs);
  });
  socket.on('data', (c: Buffer) => (response += c.toString('latin1')));
  socket.on('end', () => finish('closed'));
  socket.on('close', () => finish('closed'));
  socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNRESET' ? 'reset' : 'error'));
  return { socket, ended, stop: () => finish('timeout') };
}
