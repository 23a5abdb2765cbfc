import { ApiProperty } from '@nestjs/swagger';
import type { UserRecord } from '../users.repository.js';

/** The public view of a user: never a password hash or a token. */
export class UserDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() username!: string;
  @ApiProperty({ type: String, nullable: true }) email!: string | null;
  @ApiProperty({ type: String, nullable: true }) displayName!: string | null;
  @ApiProperty({ enum: ['user', 'admin'], isArray: true, example: ['user'] }) roles!: Array<'user' | 'admin'>;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;

  static from(u: UserRecord): UserDto {
    return {
      id: u.id,
      username: u.username,
      email: u.email,
      displayName: u.displayName,
      roles: sortRoles(u.roles),
      createdAt: u.createdAt.toISOString(),
    };
  }
}

/** ["user"] or ["user","admin"], in that order. */
export function sortRoles(roles: readonly string[]): Array<'user' | 'admin'> {
  return roles.includes('admin') ? ['user', 'admin'] : ['user'];
}
