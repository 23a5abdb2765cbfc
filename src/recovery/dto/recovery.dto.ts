import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsEmail, IsIn, IsString, Length, MaxLength, ValidateIf } from 'class-validator';
import { IsPassword } from '../../common/account-rules.js';
import { IsUnambiguousEmail } from '../../common/http/visible-text.validator.js';
import { present } from '../../common/http/present.js';

const trim = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value);

/** A token from a mailed link: any string is looked at, but it is never longer than this. */
const TOKEN_MAX = 512;

export class VerifyRequestDto {
  @ApiPropertyOptional({ maxLength: 254, description: 'Anonymous requests only: the address to verify' })
  @ValidateIf(present)
  @Transform(trim)
  @IsEmail({}, { message: 'email must be a valid email address' })
  email?: string;
}

export class TokenDto {
  @ApiProperty({ description: 'The token from the link (after #token=)' })
  @IsString()
  @Length(1, TOKEN_MAX)
  token!: string;
}

export class ForgotPasswordDto {
  @ApiProperty({ maxLength: 254, description: 'The username or email address of the account' })
  @IsString()
  @Transform(trim)
  @Length(1, 254)
  login!: string;
}

export class ResetPasswordDto extends TokenDto {
  @ApiProperty({ minLength: 8, maxLength: 128 })
  @IsPassword()
  newPassword!: string;
}

export class ChangeEmailDto {
  @ApiProperty({ maxLength: 254 })
  @Transform(trim)
  @IsEmail({}, { message: 'newEmail must be a valid email address' })
  @IsUnambiguousEmail()
  newEmail!: string;

  @ApiProperty()
  @IsString()
  @MaxLength(1024)
  password!: string;
}

export class MessageDto {
  @ApiProperty() message!: string;
}

export class VerifyResultDto {
  @ApiProperty({ enum: ['verified', 'email_changed', 'awaiting_other_confirmation'] })
  @IsIn(['verified', 'email_changed', 'awaiting_other_confirmation'])
  status!: 'verified' | 'email_changed' | 'awaiting_other_confirmation';
}

export class PendingEmailDto {
  @ApiProperty() pendingEmail!: string;
  @ApiProperty({ enum: ['new', 'current'], isArray: true, example: ['new', 'current'] })
  confirmationsRequired!: Array<'new' | 'current'>;
}
