import { ApiProperty } from '@nestjs/swagger';
import { ROLES, sortRoles, type Role } from '../common/account-rules.js';
import { UserKind } from '../generated/prisma/enums.js';
import type { PublicUserFields, UserRecord } from './users.repository.js';

const USER_KINDS = Object.values(UserKind);

/** The public view of a user: never a password hash or a token. */
export class UserDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() username!: string;
  @ApiProperty({ type: String, nullable: true }) email!: string | null;
  @ApiProperty({ description: 'Whether a link sent to the email proved it' }) emailVerified!: boolean;
  @ApiProperty({ type: String, nullable: true }) displayName!: string | null;
  @ApiProperty({ enum: ROLES, isArray: true, example: ['user'] }) roles!: Role[];
  @ApiProperty({
    enum: USER_KINDS,
    description: 'person: signs in with a password; service: the technical user of a machine client',
  })
  kind!: UserKind;
  @ApiProperty({ description: 'Whether signing in needs a second factor (TOTP or a recovery code)' })
  mfaEnabled!: boolean;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;

  static from(u: PublicUserFields): UserDto {
    return {
      id: u.id,
      username: u.username,
      email: u.email,
      emailVerified: u.email !== null && u.emailVerifiedAt !== null,
      displayName: u.displayName,
      roles: sortRoles(u.roles),
      kind: u.kind,
      mfaEnabled: u.mfaEnabled,
      createdAt: u.createdAt.toISOString(),
    };
  }
}

/** A user as administrators see them: also whether the account is disabled. */
export class AdminUserDto extends UserDto {
  @ApiProperty({ description: 'A disabled account cannot sign in; its sessions were ended' }) disabled!: boolean;

  static override from(u: UserRecord): AdminUserDto {
    return Object.assign(UserDto.from(u), { disabled: u.disabled });
  }
}

/** An external identity (issuer, subject) linked to an account. */
export class LinkedIdentityDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ description: 'The exact `iss` of the external issuer' }) issuer!: string;
  @ApiProperty() issuerName!: string;
  @ApiProperty({ description: 'The `sub` at that issuer, verbatim' }) subject!: string;
  @ApiProperty({ format: 'date-time' }) linkedAt!: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) lastSeenAt!: string | null;
}

/** GET /users/me: the caller's own view, with what only they may see. */
export class MeDto extends UserDto {
  @ApiProperty({ type: String, nullable: true, description: 'An email change waiting for its confirmations' })
  pendingEmail!: string | null;
  @ApiProperty({ description: 'Whether the account has a password (service users have none)' })
  hasPassword!: boolean;
  @ApiProperty({
    type: () => LinkedIdentityDto,
    isArray: true,
    description: 'External identities linked to the account; empty while no external issuer is configured',
  })
  identities!: LinkedIdentityDto[];

  static fromMe(u: UserRecord): MeDto {
    return Object.assign(UserDto.from(u), {
      pendingEmail: u.pendingEmail,
      hasPassword: u.passwordHash !== null,
      identities: [],
    });
  }
}
