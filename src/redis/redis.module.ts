import { Global, Inject, Logger, Module, type OnApplicationShutdown } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { APP_CONFIG } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';

export const REDIS = Symbol('REDIS');
/** The shared Redis client, or null when REDIS_URL is not set (a single instance). */
export const InjectRedis = (): ParameterDecorator => Inject(REDIS);

async function connectRedis(config: AppConfig): Promise<Redis | null> {
  if (!config.REDIS_URL) return null;
  // Loaded only when configured: a single instance never holds the client's code (~20 MB).
  const { Redis: RedisClient } = await import('ioredis');
  const logger = new Logger('Redis');
  const client = new RedisClient(config.REDIS_URL, {
    lazyConnect: true,
    connectTimeout: 2000,
    // While Redis is away a command fails at once (the request answers 503 SERVICE_UNAVAILABLE,
    // see redis-errors.ts) rather than waiting in a queue through the reconnection attempts:
    // with the queue, each command of a request waited up to a few seconds before failing.
    // The client keeps reconnecting in the background.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
  });
  client.on('error', (err: Error) => logger.warn(err.message));
  await client.connect();
  return client;
}

@Global()
@Module({
  providers: [{ provide: REDIS, inject: [APP_CONFIG], useFactory: connectRedis }],
  exports: [REDIS],
})
export class RedisModule implements OnApplicationShutdown {
  constructor(@InjectRedis() private readonly redis: Redis | null) {}

  async onApplicationShutdown(): Promise<void> {
    await this.redis?.quit().catch(() => this.redis?.disconnect());
  }
}
