import { Global, Module } from '@nestjs/common';
import { ClientsRepository } from './clients.repository.js';
import { ClientsService } from './clients.service.js';

/**
 * Machine clients (contract v2 §C): clients, their secrets and service users; used by the
 * OAuth endpoints (client authentication, introspection) and the client admin API.
 */
@Global()
@Module({
  providers: [ClientsRepository, ClientsService],
  exports: [ClientsService],
})
export class ClientsModule {}
