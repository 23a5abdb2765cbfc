import { ApiProperty } from '@nestjs/swagger';
import { ROLES, sortRoles, type Role } from '../common/account-rules.js';
import type { UserRecord } from './users.repository.js';

/** The public view of a user: never a password hash or a token. */
export class UserDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() username!: string;
  @ApiProperty({ type: String, nullable: true }) email!: string | null;
  @ApiProperty({ description: 'Whether a link sent to the email proved it' }) emailVerified!: boolean;
  @ApiProperty({ type: String, nullable: true }) displayName!: string | null;
  @ApiProperty({ enum: ROLES, isArray: true, example: ['user'] }) roles!: Role[];
  @ApiProperty({ description: 'Whether signing in needs a second factor (TOTP or a recovery code)' })
  mfaEnabled!: boolean;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;

  static from(u: UserRecord): UserDto {
    return {
      id: u.id,
      username: u.username,
      email: u.email,
      emailVerified: u.email !== null && u.emailVerifiedAt !== null,
      displayName: u.displayName,
      roles: sortRoles(u.roles),
      mfaEnabled: u.mfaEnabled,
      createdAt: u.createdAt.toISOString(),
    };
  }
}

/** GET /users/me: the caller's own view, with what only they may see. */
export class MeDto extends UserDto {
  @ApiProperty({ type: String, nullable: true, description: 'An email change waiting for its confirmations' })
  pendingEmail!: string | null;

  static fromMe(u: UserRecord): MeDto {
    return Object.assign(UserDto.from(u), { pendingEmail: u.pendingEmail });
  }
}
