import { Module, type DynamicModule, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import { APP_FILTER, APP_PIPE } from '@nestjs/core';
import { AccessModule } from './access/access.module.js';
import { AccountsModule } from './accounts/accounts.module.js';
import { AuditModule } from './audit/audit.module.js';
import { AuthModule } from './auth/auth.module.js';
import { ClientsModule } from './clients/clients.module.js';
import { Clock } from './common/clock.js';
import { AllExceptionsFilter } from './common/errors/all-exceptions.filter.js';
import { JsonBodyMiddleware } from './common/http/json-body.middleware.js';
import { validationPipe } from './common/http/validation.pipe.js';
import { ConfigModule } from './config/config.module.js';
import type { AppConfig } from './config/config.schema.js';
import { transactionalCls } from './database/cls.module.js';
import { DatabaseModule } from './database/database.module.js';
import { EventsModule } from './events/events.module.js';
import { HealthController } from './health/health.controller.js';
import { MailModule } from './mail/mail.module.js';
import { MetricsModule } from './metrics/metrics.module.js';
import { MfaModule } from './mfa/mfa.module.js';
import { OAuthModule } from './oauth/oauth.module.js';
import { OAUTH_FORM_ROUTES } from './oauth/oauth-form.middleware.js';
import { RecoveryModule } from './recovery/recovery.module.js';
import { RealtimeModule } from './realtime/realtime.module.js';
import { RedisModule } from './redis/redis.module.js';
import { ResourcesModule } from './resources/resources.module.js';
import { RetentionModule } from './retention/retention.module.js';
import { SessionsModule } from './sessions/sessions.module.js';
import { ThrottleModule } from './throttle/throttle.module.js';
import { TenancyModule } from './tenancy/tenancy.module.js';
import { TenantsModule } from './tenants/tenants.module.js';
import { IdentitiesModule } from './identities/identities.module.js';
import { TokensModule } from './tokens/tokens.module.js';
import { UsersModule } from './users/users.module.js';

/**
 * Infrastructure (config, database with ambient transactions, Redis, events), the shared
 * domain (tokens, audit, sessions, accounts, throttling, access control), then the
 * capabilities (auth, users, resources) and the retention job. The README's "Project
 * layout" draws the import graph; test/architecture.spec.ts keeps it pointing one way.
 */
@Module({})
export class AppModule implements NestModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      global: true,
      imports: [
        ConfigModule.forRoot(config),
        DatabaseModule,
        transactionalCls(),
        RedisModule,
        EventsModule,
        TokensModule,
        AuditModule,
        MailModule,
        SessionsModule,
        AccountsModule,
        ThrottleModule,
        AccessModule,
        MfaModule,
        ClientsModule,
        TenantsModule,
        IdentitiesModule,
        AuthModule,
        UsersModule,
        ResourcesModule,
        RecoveryModule,
        OAuthModule,
        TenancyModule,
        RetentionModule,
        ...(config.WS_ENABLED ? [RealtimeModule] : []),
        // Prometheus metrics on their own port (docs/operations.md#metrics): nothing without METRICS_PORT.
        ...(config.METRICS_PORT !== undefined ? [MetricsModule] : []),
      ],
      controllers: [HealthController],
      providers: [
        Clock,
        { provide: APP_FILTER, useClass: AllExceptionsFilter },
        { provide: APP_PIPE, useValue: validationPipe() },
      ],
      exports: [Clock],
    };
  }

  configure(consumer: MiddlewareConsumer): void {
    // The OAuth endpoints take form bodies (contract v2 §0.8): OAuthModule parses them.
    consumer
      .apply(JsonBodyMiddleware)
      .exclude(...OAUTH_FORM_ROUTES)
      .forRoutes('*');
  }
}
