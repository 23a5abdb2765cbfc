import { Global, Module } from '@nestjs/common';
import { MfaRepository } from './mfa.repository.js';
import { MfaService } from './mfa.service.js';
import { SecretBox } from './secret-box.js';

/** Second factors (TOTP, recovery codes) and login challenges: used by auth (login) and users (admin reset). */
@Global()
@Module({
  providers: [MfaRepository, MfaService, SecretBox],
  exports: [MfaService],
})
export class MfaModule {}
