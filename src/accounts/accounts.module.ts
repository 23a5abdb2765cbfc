import { Global, Module } from '@nestjs/common';
import { AccountMailService } from './account-mail.service.js';
import { CredentialsService } from './credentials.service.js';
import { OneTimeTokensService } from './one-time-tokens.service.js';
import { PasswordHasher } from './password-hasher.service.js';
import { UsersRepository } from './users.repository.js';

/** User accounts: the users repository, passwords and credentials, one-time tokens and account mail. */
@Global()
@Module({
  providers: [UsersRepository, PasswordHasher, CredentialsService, OneTimeTokensService, AccountMailService],
  exports: [UsersRepository, PasswordHasher, CredentialsService, OneTimeTokensService, AccountMailService],
})
export class AccountsModule {}
