import { ApiProperty } from '@nestjs/swagger';
import { UserDto } from '../../accounts/user.dto.js';

export class TokenResponseDto {
  @ApiProperty({ description: 'JWT access token (typ at+jwt)' })
  accessToken!: string;

  @ApiProperty({ enum: ['Bearer'] })
  tokenType!: 'Bearer';

  @ApiProperty({ description: 'Lifetime of the access token in seconds', example: 900 })
  expiresIn!: number;
}

export class AuthResponseDto extends TokenResponseDto {
  @ApiProperty({ type: () => UserDto })
  user!: UserDto;
}

export class SessionDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) lastUsedAt!: string;
  @ApiProperty({ format: 'date-time' }) expiresAt!: string;
  @ApiProperty({ type: String, nullable: true }) userAgent!: string | null;
  @ApiProperty({ type: String, nullable: true }) ip!: string | null;
  @ApiProperty({ description: 'The session of the access token used for this call' }) current!: boolean;
}
