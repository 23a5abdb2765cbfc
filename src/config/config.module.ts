import { Global, Module, type DynamicModule } from '@nestjs/common';
import { APP_CONFIG } from './config.token.js';
import { parseConfig, type AppConfig } from './config.schema.js';

@Global()
@Module({})
export class ConfigModule {
  /** With no argument the process environment is read (the only place that does so). */
  static forRoot(config?: AppConfig): DynamicModule {
    return {
      module: ConfigModule,
      providers: [{ provide: APP_CONFIG, useValue: config ?? parseConfig(process.env) }],
      exports: [APP_CONFIG],
    };
  }
}
