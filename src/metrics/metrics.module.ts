import { Module } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { promClient } from './prom-client.js';
import { AuthMetrics } from './auth-metrics.js';
import { DatabaseMetrics } from './database-metrics.js';
import { EventsMetrics } from './events-metrics.js';
import { HttpMetrics } from './http-metrics.js';
import { MetricsRegistry } from './metrics.registry.js';
import { MetricsServer } from './metrics-server.js';

/**
 * Prometheus metrics (docs/operations.md#metrics), only with METRICS_PORT: HTTP requests,
 * sign-in outcomes, refreshes, live sessions, the database pool and the process, served
 * at METRICS_HOST:METRICS_PORT/metrics by a server of their own.
 */
@Module({
  providers: [MetricsRegistry, HttpMetrics, AuthMetrics, DatabaseMetrics, EventsMetrics, MetricsServer],
  exports: [MetricsRegistry, HttpMetrics, MetricsServer],
})
export class MetricsModule {}

/**
 * configureApp's part, first of its middleware: the HTTP metrics middleware and, when the
 * WebSocket is enabled, the gauge of its connections (read through `webSocketConnections`:
 * the real-time module is another capability, which this one does not import).
 */
export function instrumentApp(app: NestExpressApplication, webSocketConnections?: () => number): void {
  app.get(HttpMetrics).install(app);
  if (webSocketConnections === undefined) return;
  app.get(MetricsRegistry).registry.registerMetric(
    new (promClient().Gauge)({
      name: 'gatehouse_websocket_connections',
      help: 'Open WebSocket connections on this instance, authenticated or not',
      registers: [],
      collect() {
        this.set(webSocketConnections());
      },
    }),
  );
}
