import { Global, Module } from '@nestjs/common';
import { ExternalTokens } from './external-tokens.js';
import { IdentitiesRepository } from './identities.repository.js';
import { IdentitiesService } from './identities.service.js';

/**
 * External identities (contract v2 §D): tokens of the issuers in FEDERATION_ISSUERS, the
 * users they name, and the links between the two. Plugs the federated path into the one
 * TokenVerifier at start-up.
 */
@Global()
@Module({
  providers: [ExternalTokens, IdentitiesRepository, IdentitiesService],
  exports: [ExternalTokens, IdentitiesRepository, IdentitiesService],
})
export class IdentitiesModule {}
