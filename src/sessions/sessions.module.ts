import { Global, Module } from '@nestjs/common';
import { SessionsRepository } from './sessions.repository.js';
import { SessionsService } from './sessions.service.js';

/** Sessions and their rotating refresh tokens. */
@Global()
@Module({ providers: [SessionsRepository, SessionsService], exports: [SessionsService] })
export class SessionsModule {}
