import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import {
  IsEmail,
  IsOptional,
  IsString,
  IsUUID,
  Length,
  Matches,
  MaxLength,
  MinLength,
  ValidateIf,
} from 'class-validator';
import { IsUnambiguousEmail, IsVisibleText } from '../../common/http/visible-text.validator.js';
import {
  IsPassword,
  NOT_RESERVED_USERNAME,
  SERVICE_USERNAME_PREFIX,
  USERNAME_MAX,
  USERNAME_MIN,
  USERNAME_PATTERN,
  USERNAME_RULE,
} from '../../common/account-rules.js';

const trim = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value);

export class SignupDto {
  @ApiProperty({ minLength: USERNAME_MIN, maxLength: USERNAME_MAX, pattern: USERNAME_PATTERN.source, example: 'ada_l' })
  @IsString()
  @Length(USERNAME_MIN, USERNAME_MAX)
  @Matches(USERNAME_PATTERN, { message: `username ${USERNAME_RULE}` })
  @Matches(NOT_RESERVED_USERNAME, {
    message: `username may not start with "${SERVICE_USERNAME_PREFIX}" (reserved for machine clients)`,
  })
  username!: string;

  @ApiProperty({ minLength: 8, maxLength: 128, description: '8–128 characters; every character counts' })
  @IsPassword()
  password!: string;

  @ApiPropertyOptional({ type: String, nullable: true, maxLength: 254, example: 'ada@example.com' })
  @IsOptional()
  @Transform(trim)
  @IsEmail({}, { message: 'email must be a valid email address' })
  @IsUnambiguousEmail()
  email?: string | null;

  @ApiPropertyOptional({ type: String, nullable: true, minLength: 1, maxLength: 64 })
  @IsOptional()
  @Transform(trim)
  @IsString()
  @Length(1, 64)
  @IsVisibleText()
  displayName?: string | null;
}

export class LoginDto {
  @ApiProperty({ description: 'Username or email', example: 'ada_l' })
  @IsString()
  @MinLength(1)
  @MaxLength(254)
  username!: string;

  @ApiProperty()
  @IsString()
  @MinLength(1)
  @MaxLength(1024)
  password!: string;
}

export class SelectTenantDto {
  @ApiProperty({
    type: String,
    format: 'uuid',
    nullable: true,
    description: 'A tenant the caller belongs to, or null to go back to personal context',
  })
  @ValidateIf((o: SelectTenantDto) => o.tenantId !== null)
  @IsUUID('all')
  tenantId!: string | null;
}

/** POST /auth/federated/session. */
export class FederatedSessionDto {
  @ApiProperty({
    description: 'A token of a configured external issuer (its id token or access token), at most 5 minutes old',
  })
  @IsString()
  @Length(1, 16384)
  subjectToken!: string;
}
