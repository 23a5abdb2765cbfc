import { Global, Inject, Logger, Module, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { StartupError } from '../common/errors/startup-error.js';
import { APP_CONFIG } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';

export const REDIS = Symbol('REDIS');
/** The shared Redis client, or null when REDIS_URL is not set (a single instance). */
export const InjectRedis = (): ParameterDecorator => Inject(REDIS);
/**
 * How long a command waits for Redis's reply before it fails (and its request answers 503): a
 * Redis that stalls, or a network that drops packets without closing the connection, would
 * otherwise hold every request that needs it for as long as that lasts.
 */
export const REDIS_COMMAND_TIMEOUT_MS = 1000;

async function createRedis(config: AppConfig): Promise<Redis | null> {
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
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
  });
  client.on('error', (err: Error) => logger.warn(err.message));
  return client;
}

/**
 * Connects a client made with lazyConnect (the shared one, and the event bus's subscriber),
 * from a lifecycle hook rather than from a provider's factory, so that Redis out of reach at
 * start-up ends it with main.ts's one line (a StartupError) rather than Nest's logged stack.
 */
export async function connectOrExplain(client: Redis): Promise<void> {
  // Whichever lifecycle hook runs first connects the shared client (RedisModule's or the event bus's).
  if (client.status !== 'wait') return;
  try {
    await client.connect();
  } catch (error) {
    client.disconnect();
    // Host and port only: the URL may hold a password.
    const { host, port } = client.options;
    throw new StartupError(
      `Redis at ${host ?? 'localhost'}:${port ?? 6379} is unreachable (check REDIS_URL): ${(error as Error).message}`,
    );
  }
}

@Global()
@Module({
  providers: [{ provide: REDIS, inject: [APP_CONFIG], useFactory: createRedis }],
  exports: [REDIS],
})
export class RedisModule implements OnModuleInit, OnApplicationShutdown {
  constructor(@InjectRedis() private readonly redis: Redis | null) {}

  async onModuleInit(): Promise<void> {
    if (this.redis) await connectOrExplain(this.redis);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.redis?.quit().catch(() => this.redis?.disconnect());
  }
}
