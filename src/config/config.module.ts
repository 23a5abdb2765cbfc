import { Global, Module, type DynamicModule } from '@nestjs/common';
import { APP_CONFIG } from './config.token.js';
import type { AppConfig } from './config.schema.js';
import { SecretsService } from './secrets.service.js';

@Global()
@Module({})
export class ConfigModule {
  /**
   * Provides the configuration parsed by the caller (main.ts: loadConfig(); tests: parseConfig of
   * their own environment). It never reads process.env itself.
   */
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: ConfigModule,
      // The secrets Gatehouse generates into DATA_DIR when they are not configured (pepper, keys).
      providers: [{ provide: APP_CONFIG, useValue: config }, SecretsService],
      exports: [APP_CONFIG, SecretsService],
    };
  }
}
