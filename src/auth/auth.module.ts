import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ThrottlerModule } from '@nestjs/throttler';
import type { Redis } from 'ioredis';
import { APP_CONFIG } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { SecretsService } from '../config/secrets.service.js';
import { REDIS } from '../redis/redis.module.js';
import { UsersRepository } from '../users/users.repository.js';
import { AuditService } from './audit/audit.service.js';
import { AuthController } from './auth.controller.js';
import { AuthService } from './auth.service.js';
import { JwtAuthGuard } from './guards/jwt-auth.guard.js';
import { JwtStrategy } from './guards/jwt.strategy.js';
import { RolesGuard } from './guards/roles.guard.js';
import { PasswordHasher } from './passwords/password-hasher.service.js';
import { RevocationService } from './revocation/revocation.service.js';
import { SessionsRepository } from './sessions/sessions.repository.js';
import { SessionsService } from './sessions/sessions.service.js';
import { IpThrottlerGuard } from './throttle/ip-throttler.guard.js';
import { LoginThrottleService } from './throttle/login-throttle.service.js';
import { MemoryThrottlerStorage, RedisThrottlerStorage } from './throttle/throttler-storage.js';
import { AccessTokenService } from './tokens/access-token.service.js';
import { JwksController } from './tokens/jwks.controller.js';

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
  controllers: [AuthController, JwksController],
  providers: [
    SecretsService,
    AccessTokenService,
    PasswordHasher,
    RevocationService,
    SessionsRepository,
    SessionsService,
    UsersRepository,
    AuditService,
    LoginThrottleService,
    AuthService,
    JwtStrategy,
    IpThrottlerGuard,
    { provide: APP_GUARD, useClass: JwtAuthGuard },
    { provide: APP_GUARD, useClass: RolesGuard },
  ],
  exports: [AccessTokenService, PasswordHasher, SessionsService, RevocationService, UsersRepository, AuditService, SecretsService, LoginThrottleService],
})
export class AuthModule {}
