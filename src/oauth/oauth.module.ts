import { Module, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import { ClientsController } from './clients.controller.js';
import { MetadataController } from './metadata.controller.js';
import { OAuthFormMiddleware } from './oauth-form.middleware.js';
import { OAuthService } from './oauth.service.js';
import { TokenController } from './token.controller.js';

/**
 * OAuth 2.0 (contract v2 §C): the client admin API, the form endpoints of machine clients
 * (token, introspection, revocation; their bodies are parsed by OAuthFormMiddleware, which the
 * application exempts from JsonBodyMiddleware) and the authorization server metadata.
 */
@Module({
  controllers: [ClientsController, TokenController, MetadataController],
  providers: [OAuthService],
})
export class OAuthModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(OAuthFormMiddleware).forRoutes(TokenController);
  }
}
