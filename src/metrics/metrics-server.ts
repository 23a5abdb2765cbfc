import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { AppConfig } from '../config/config.schema.js';
import { InjectConfig } from '../config/config.token.js';
import { MetricsRegistry } from './metrics.registry.js';

/**
 * `GET /metrics` on its own `node:http` server at METRICS_HOST:METRICS_PORT, never on the
 * API's port. It starts when the API server starts listening and closes with the
 * application. A metrics port that cannot be opened is logged and leaves the API running.
 */
@Injectable()
export class MetricsServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Metrics');
  private server: Server | undefined;
  private api: Server | undefined;
  private stopped = false;
  private settle: (address: AddressInfo | null) => void = () => undefined;
  private readonly started = new Promise<AddressInfo | null>((resolve) => (this.settle = resolve));

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly adapterHost: HttpAdapterHost,
    private readonly metrics: MetricsRegistry,
  ) {}

  onApplicationBootstrap(): void {
    const api = this.adapterHost.httpAdapter?.getHttpServer() as Server | undefined;
    if (api === undefined) return;
    this.api = api;
    if (api.listening) this.start();
    else api.once('listening', this.start);
  }

  /** The metrics endpoint's address once it listens; null when it could not be opened. */
  listening(): Promise<AddressInfo | null> {
    return this.started;
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    this.api?.off('listening', this.start);
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private readonly start = (): void => {
    if (this.server !== undefined || this.stopped) return;
    const host = this.config.METRICS_HOST;
    const port = this.config.METRICS_PORT!;
    const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, this.handle);
    server.keepAliveTimeout = 5_000;
    this.server = server;
    server.on('error', (error: NodeJS.ErrnoException) => {
      if (server.listening) {
        this.logger.error(`metrics endpoint: ${error.message}`);
        return;
      }
      const reason =
        error.code === 'EADDRINUSE'
          ? `${host}:${port} is already in use (check METRICS_PORT)`
          : error.code === 'EACCES'
            ? `no permission to listen on ${host}:${port} (check METRICS_PORT)`
            : error.message;
      this.logger.error(`metrics endpoint not started: ${reason}; the API runs without it`);
      if (this.server === server) this.server = undefined;
      this.settle(null);
    });
    server.listen(port, host, () => {
      // The API server keeps the process alive; this one never does on its own.
      server.unref();
      this.logger.log(`metrics at http://${host}:${port}/metrics`);
      this.settle(server.address() as AddressInfo);
    });
  };

  private readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '';
    const query = url.indexOf('?');
    if ((query === -1 ? url : url.slice(0, query)) !== '/metrics') return plain(res, 404, 'Not Found');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return plain(res, 405, 'Method Not Allowed');
    }
    this.metrics.render().then(
      (body) => {
        res.writeHead(200, { 'Content-Type': this.metrics.contentType, 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (error: unknown) => {
        this.logger.error(`scrape failed: ${error instanceof Error ? error.message : String(error)}`);
        plain(res, 500, 'Internal Server Error');
      },
    );
  };
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(`${text}\n`);
}
