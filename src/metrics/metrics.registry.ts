import { Injectable } from '@nestjs/common';
import type { Registry } from 'prom-client';
import { promClient } from './prom-client.js';

/**
 * The process's own metrics (CPU, memory, heap, event-loop lag, garbage collection, file
 * descriptors, Node.js version), under prom-client's standard names (`process_*`,
 * `nodejs_*`). One set per process, made on first use: they describe the process, and
 * prom-client never stops what it starts for them (an event-loop delay monitor, a GC
 * observer), so every application in the process shares them (tests start many).
 */
let processRegistry: Registry | undefined;

function processMetrics(): Registry {
  if (processRegistry === undefined) {
    const { Registry, collectDefaultMetrics } = promClient();
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/**
 * Gatehouse's metrics (`gatehouse_*`): one registry per application, never prom-client's
 * global one, so that several applications in one process each count only their own.
 */
@Injectable()
export class MetricsRegistry {
  readonly registry: Registry = new (promClient().Registry)();

  constructor() {
    // Made with the first application rather than at the first scrape: CPU time and the
    // event-loop delay are then measured from start-up on.
    processMetrics();
  }

  /** The Content-Type of render()'s text (Prometheus text format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** A scrape: the process's metrics, then this application's. */
  async render(): Promise<string> {
    const [process, app] = await Promise.all([processMetrics().metrics(), this.registry.metrics()]);
    return process + app;
  }
}
