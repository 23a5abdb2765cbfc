import { Global, Module } from '@nestjs/common';
import { CredentialsService } from './credentials.service.js';
import { PasswordHasher } from './password-hasher.service.js';
import { UsersRepository } from './users.repository.js';

/** User accounts: the users repository, password hashing and setting credentials. */
@Global()
@Module({
  providers: [UsersRepository, PasswordHasher, CredentialsService],
  exports: [UsersRepository, PasswordHasher, CredentialsService],
})
export class AccountsModule {}
