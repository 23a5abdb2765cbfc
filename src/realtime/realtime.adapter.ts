import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { Logger, type INestApplicationContext } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import type { MessageMappingProperties } from '@nestjs/websockets';
import type { Observable } from 'rxjs';
import type { WebSocket, WebSocketServer } from 'ws';
import { unavailableDependency } from '../common/errors/unavailable.js';
import type { AppConfig } from '../config/config.schema.js';
import { SUBPROTOCOL } from './protocol.js';
import { RealtimeGateway } from './realtime.gateway.js';

type VerifyCallback = (ok: boolean, status?: number, message?: string, headers?: Record<string, string>) => void;

/**
 * Nest's `ws` adapter, bound to Gatehouse's rules (contract v2 §F): the path is WS_PATH on the
 * HTTP server's port; a frame over WS_MAX_MESSAGE_BYTES closes with 1009 (`ws` maxPayload);
 * the upgrade is checked before the 101 (RealtimeGateway.admit: Origin, subprotocol,
 * per-address limits), a refusal answered with the contract's error body; the subprotocol
 * `gatehouse.v1` is selected when offered; every frame goes to RealtimeGateway.receive().
 * Socket errors (a client breaking the framing, an oversized frame) are the client's, logged
 * at debug level only: a public socket must not be a way to flood the logs.
 */
export class RealtimeAdapter extends WsAdapter {
  private readonly log = new Logger('Realtime');

  constructor(
    private readonly app: INestApplicationContext,
    private readonly config: AppConfig,
  ) {
    super(app);
  }

  private get gateway(): RealtimeGateway {
    return this.app.get(RealtimeGateway);
  }

  override create(port: number, options: Record<string, unknown> = {}): WebSocketServer {
    const gateway = this.gateway;
    // Before Nest's upgrade routing, which answers a Host it cannot parse with a malformed
    // response: refused here with the contract's body.
    (this.httpServer as Server | undefined)?.prependListener('upgrade', (req: IncomingMessage, socket: Duplex) => {
      // (The same base as Nest's routing: a missing Host reads "undefined", which parses.)
      if (!URL.canParse(req.url ?? '/', `ws://${String(req.headers.host)}/`)) {
        refuseRaw(socket, 400, 'VALIDATION_FAILED', ['The Host header is not valid']);
      }
    });
    const server = super.create(port, {
      ...options,
      path: this.config.WS_PATH,
      maxPayload: this.config.WS_MAX_MESSAGE_BYTES,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: (protocols: Set<string>) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
      verifyClient: (info: { req: IncomingMessage }, done: VerifyCallback) => {
        gateway.admit(info.req).then(
          (refusal) => {
            if (!refusal) return done(true);
            const body = JSON.stringify({
              statusCode: refusal.status,
              error: STATUS_TEXT[refusal.status] ?? 'Error',
              message: refusal.message,
              code: refusal.code,
            });
            done(false, refusal.status, body, {
              'Content-Type': 'application/json; charset=utf-8',
              'Cache-Control': 'no-store',
              ...refusal.headers,
            });
          },
          (error: unknown) => {
            // A dependency out of reach (every upgrade fails alike while it lasts): a warning.
            if (unavailableDependency(error)) {
              this.log.warn(`upgrade refused, a dependency is unavailable: ${String(error)}`);
            } else {
              this.log.error(`upgrade check failed: ${String(error)}`);
            }
            done(
              false,
              503,
              JSON.stringify({
                statusCode: 503,
                error: 'Service Unavailable',
                message: 'Retry shortly',
                code: 'SERVICE_UNAVAILABLE',
              }),
              {
                'Content-Type': 'application/json; charset=utf-8',
                'Retry-After': '5',
              },
            );
          },
        );
      },
    }) as WebSocketServer;
    // A handshake the ws library itself refuses (bad key, version, subprotocol list, method):
    // the contract's JSON body rather than the library's text.
    server.on('wsClientError', (err: Error, socket: Duplex, req: IncomingMessage) => {
      if (req.method !== 'GET') refuseRaw(socket, 405, 'VALIDATION_FAILED', ['A WebSocket upgrade is a GET']);
      // RFC 6455 §4.4: a version refused is answered with the version spoken here.
      else if (/Sec-WebSocket-Version/i.test(err.message)) {
        refuseRaw(socket, 400, 'VALIDATION_FAILED', [err.message], 'Sec-WebSocket-Version: 13\r\n');
      } else refuseRaw(socket, 400, 'VALIDATION_FAILED', [err.message]);
    });
    return server;
  }

  override bindMessageHandlers(
    client: WebSocket,
    _handlers: MessageMappingProperties[],
    _transform: (data: unknown) => Observable<unknown>,
  ): void {
    const gateway = this.gateway;
    client.on('message', (data: Buffer, isBinary: boolean) => gateway.receive(client, data, isBinary));
  }

  override bindErrorHandler(server: WebSocketServer): WebSocketServer {
    server.on('connection', (ws: WebSocket) =>
      ws.on('error', (err: Error) => this.log.debug(`socket: ${err.message}`)),
    );
    server.on('error', (err: Error) => this.log.error(`server: ${err.message}`));
    return server;
  }
}

/** Answers a raw upgrade socket with an HTTP error in the contract's body, then closes it. */
function refuseRaw(socket: Duplex, status: number, code: string, message: string[], extraHeaders = ''): void {
  socket.on('error', () => undefined); // a client gone already, or a second answer attempted
  if (socket.destroyed || !socket.writable) return;
  const body = JSON.stringify({ statusCode: status, error: STATUS_TEXT[status] ?? 'Error', message, code });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n` +
      'Connection: close\r\nContent-Type: application/json; charset=utf-8\r\nCache-Control: no-store\r\n' +
      `${extraHeaders}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  405: 'Method Not Allowed',
  403: 'Forbidden',
  429: 'Too Many Requests',
  503: 'Service Unavailable',
};
