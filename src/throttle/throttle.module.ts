import { Global, Module } from '@nestjs/common';
import { ThrottlerModule } from '@nestjs/throttler';
import type { Redis } from 'ioredis';
import { APP_CONFIG } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { REDIS } from '../redis/redis.module.js';
import { IpThrottlerGuard } from './ip-throttler.guard.js';
import { LoginThrottleService } from './login-throttle.service.js';
import { RateLimiter } from './rate-limiter.js';
import { MemoryThrottlerStorage, RedisThrottlerStorage } from './throttler-storage.js';

/**
 * Rate limits: password-guess throttling (LoginThrottleService, on the AttemptStore) and
 * the per-IP request limits of @nestjs/throttler (IpThrottlerGuard), in memory or Redis.
 */
@Global()
@Module({
  imports: [
    ThrottlerModule.forRootAsync({
      inject: [APP_CONFIG, REDIS],
      useFactory: (config: AppConfig, redis: Redis | null) => ({
        throttlers: [
          { name: 'signup', ttl: 60_000, limit: config.SIGNUP_RATE_LIMIT },
          { name: 'refresh', ttl: 60_000, limit: config.REFRESH_RATE_LIMIT },
        ],
        storage: redis ? new RedisThrottlerStorage(redis) : new MemoryThrottlerStorage(),
      }),
    }),
  ],
  providers: [LoginThrottleService, IpThrottlerGuard, RateLimiter],
  exports: [LoginThrottleService, IpThrottlerGuard, RateLimiter, ThrottlerModule],
})
export class ThrottleModule {}
