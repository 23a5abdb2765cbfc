import { Injectable } from '@nestjs/common';
import { EventBus } from '../events/event-bus.js';
import { MetricsRegistry } from './metrics.registry.js';
import { promClient } from './prom-client.js';

/**
 * The instance's Redis subscription (only with REDIS_URL): whether events from the other
 * instances reach it now, and how often it has broken (a break shorter than the scrape
 * interval shows only in the counter). See EventBus.synced.
 */
@Injectable()
export class EventsMetrics {
  constructor(registry: MetricsRegistry, events: EventBus) {
    if (!events.crossInstance) return;
    const { Counter, Gauge } = promClient();
    registry.registry.registerMetric(
      new Gauge({
        name: 'gatehouse_events_subscribed',
        help: "1 while this instance hears its own beat on Redis (the other instances' events reach it), 0 while its subscription is broken",
        registers: [],
        collect() {
          this.set(events.synced ? 1 : 0);
        },
      }),
    );
    registry.registry.registerMetric(
      new Counter({
        name: 'gatehouse_events_subscription_breaks_total',
        help: 'Times the Redis subscription of this instance broke (connection closed, its own beat not heard for more than 3 s, or a beat lost)',
        registers: [],
        collect() {
          this.reset();
          this.inc(events.breaks);
        },
      }),
    );
  }
}
