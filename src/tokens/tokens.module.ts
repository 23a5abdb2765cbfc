import { Global, Module } from '@nestjs/common';
import { AccessTokenService } from './access-token.service.js';
import { RevocationService } from './revocation.service.js';
import { TokenVerifier } from './token-verifier.js';

/** Signing keys and JWKS, signing, the one TokenVerifier, and revocation. */
@Global()
@Module({
  providers: [AccessTokenService, RevocationService, TokenVerifier],
  exports: [AccessTokenService, RevocationService, TokenVerifier],
})
export class TokensModule {}
