import type { AddressInfo } from 'node:net';
import { WebSocket, type ClientOptions } from 'ws';
import type { TestApp } from '../support/test-app.js';

/** Listens on 127.0.0.1 (any free port) and returns the WebSocket URL of WS_PATH. */
export async function listen(t: TestApp): Promise<string> {
  const server = t.app.getHttpServer();
  if (!server.listening) await t.app.listen(0, '127.0.0.1');
  const { port } = server.address() as AddressInfo;
  return `ws://127.0.0.1:${port}${t.config.WS_PATH}`;
}

export interface Frame {
  event: string;
  data: Record<string, unknown>;
  id?: string | number;
}

/**
 * A real `ws` client that records every frame and how it was closed, and waits for them:
 * `next(event)` resolves with the first not yet taken frame of that event.
 */
export class WsClient {
  readonly frames: Frame[] = [];
  private taken = 0;
  closed: { code: number; reason: string } | null = null;
  private readonly waiters = new Set<() => void>();
  readonly opened: Promise<void>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.frames.push(JSON.parse(data.toString('utf8')) as Frame);
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
    ws.on('error', () => this.wake());
    this.opened = new Promise((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
  }

  static async open(url: string, options: ClientOptions & { protocols?: string[] } = {}): Promise<WsClient> {
    const { protocols, ...rest } = options;
    const client = new WsClient(new WebSocket(url, protocols ?? [], rest));
    await client.opened;
    return client;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  auth(token: string, id?: string): void {
    this.send({ event: 'auth', data: { token }, ...(id ? { id } : {}) });
  }

  private wake(): void {
    for (const w of this.waiters) w();
  }

  private waitFor<T>(check: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const attempt = () => {
        let found: T | undefined;
        try {
          found = check();
        } catch (error) {
          this.waiters.delete(attempt);
          clearTimeout(timer);
          reject(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        if (found !== undefined) {
          this.waiters.delete(attempt);
          clearTimeout(timer);
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(attempt);
        reject(
          new Error(
            `timed out waiting for ${what}; frames: ${JSON.stringify(this.frames)}; closed: ${JSON.stringify(this.closed)}`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(attempt);
      attempt();
    });
  }

  /** The next frame of this event not taken yet (fails if the socket closes first). */
  next(event: string, timeoutMs = 5000): Promise<Frame> {
    return this.waitFor(
      () => {
        const i = this.frames.findIndex((f, idx) => idx >= this.taken && f.event === event);
        if (i >= 0) {
          this.taken = i + 1;
          return this.frames[i];
        }
        if (this.closed) throw new Error(`closed ${JSON.stringify(this.closed)} before ${event}`);
        return undefined;
      },
      event,
      timeoutMs,
    );
  }

  /** Resolves with the close code and reason. */
  closing(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    return this.waitFor(() => this.closed ?? undefined, 'close', timeoutMs);
  }

  private probes = 0;
  /**
   * A round trip on an authenticated socket (a subscribe with a bad topic answers a non-fatal
   * VALIDATION_FAILED error carrying the message's id): proves the socket is open and that
   * every frame the server sent it before has arrived (one TCP stream, in order). Error
   * frames of other messages on the way are skipped.
   */
  async probe(): Promise<void> {
    const id = `probe-${++this.probes}`;
    this.send({ event: 'subscribe', data: { topics: ['not-a-topic'] }, id });
    for (;;) {
      const answer = await this.next('error');
      if (answer.id !== id) continue;
      if (answer.data.code !== 'VALIDATION_FAILED') throw new Error(`probe answered ${JSON.stringify(answer)}`);
      return;
    }
  }

  /** Authenticates and waits for auth.ok. */
  async authenticate(token: string): Promise<Frame> {
    this.auth(token);
    return this.next('auth.ok');
  }

  /** Frames of this event received so far. */
  all(event: string): Frame[] {
    return this.frames.filter((f) => f.event === event);
  }

  close(): void {
    this.ws.close();
  }
}
