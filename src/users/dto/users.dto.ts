import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsEmail,
  IsIn,
  IsOptional,
  IsString,
  Length,
  MaxLength,
  ValidateIf,
} from 'class-validator';
import { IsPassword, ROLES, type Role } from '../../common/account-rules.js';
import { PageDto } from '../../common/http/pagination.js';
import { IsUnambiguousEmail, IsVisibleText } from '../../common/http/visible-text.validator.js';
import { UserDto } from '../../accounts/user.dto.js';
import { present } from '../../common/http/present.js';

const trim = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value);

export class UpdateProfileDto {
  @ApiPropertyOptional({ type: String, nullable: true, minLength: 1, maxLength: 64, description: 'null clears it' })
  @IsOptional()
  @Transform(trim)
  @ValidateIf((_, v) => v !== null)
  @IsString()
  @Length(1, 64)
  @IsVisibleText()
  displayName?: string | null;

  @ApiPropertyOptional({ type: String, nullable: true, maxLength: 254, description: 'null clears it' })
  @IsOptional()
  @Transform(trim)
  @ValidateIf((_, v) => v !== null)
  @IsEmail({}, { message: 'email must be a valid email address' })
  @IsUnambiguousEmail()
  email?: string | null;
}

export class ChangePasswordDto {
  @ApiProperty()
  @IsString()
  @MaxLength(1024)
  currentPassword!: string;

  @ApiProperty({ minLength: 8, maxLength: 128 })
  @IsPassword()
  newPassword!: string;
}

/**
 * The password, or for a passwordless person (signed in through an external issuer) the
 * username typed again as `confirm`, from a session opened in the last 5 minutes.
 */
export class DeleteAccountDto {
  @ApiPropertyOptional({ description: 'The account password (accounts that have one)' })
  @ValidateIf((o: DeleteAccountDto) => o.confirm === undefined || o.password !== undefined)
  @IsString({ message: 'password is required (an account without a password sends confirm: its username)' })
  @MaxLength(1024)
  password?: string;

  @ApiPropertyOptional({ description: 'Passwordless accounts: the username, typed again' })
  @IsOptional()
  @IsString()
  @MaxLength(64)
  confirm?: string;
}

export class AdminUpdateUserDto {
  @ApiPropertyOptional({ enum: ROLES, isArray: true, example: ['user', 'admin'], description: '"user" is always kept' })
  @ValidateIf(present)
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(2)
  @IsIn(ROLES, { each: true })
  roles?: Role[];

  @ApiPropertyOptional()
  @ValidateIf(present)
  @IsBoolean()
  disabled?: boolean;
}

export class UserPageDto extends PageDto<UserDto> {
  @ApiProperty({ type: () => UserDto, isArray: true })
  declare items: UserDto[];
}

/** POST /users/me/identities: a fresh token of the external account, and this account's password. */
export class LinkIdentityDto {
  @ApiProperty({ description: 'A token of the external issuer (its id token or access token), at most 5 minutes old' })
  @IsString()
  @Length(1, 16384)
  subjectToken!: string;

  @ApiProperty({ description: 'The password of this account' })
  @IsString()
  @MaxLength(1024)
  password!: string;
}

/** Admin POST /users/:id/identities: links an identity before its first sign-in. */
export class AdminLinkIdentityDto {
  @ApiProperty({
    description: 'The exact `iss` URL of a configured issuer',
    example: 'https://idp.example.com/realms/acme',
  })
  @IsString()
  @Length(1, 2048)
  issuer!: string;

  @ApiProperty({ description: 'The `sub` at that issuer, verbatim (1–255 characters)' })
  @IsString()
  @Length(1, 255)
  subject!: string;
}
