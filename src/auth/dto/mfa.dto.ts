import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsString, MaxLength, MinLength, ValidateIf } from 'class-validator';
import { TokenResponseDto } from './auth-responses.dto.js';
import { UserDto } from '../../accounts/user.dto.js';

/** A code as typed: TOTP codes are 6 digits; recovery codes 10 characters with an optional hyphen and spaces. */
const CODE_MAX = 32;

export class PasswordOnlyDto {
  @ApiProperty()
  @IsString()
  @MinLength(1)
  @MaxLength(1024)
  password!: string;
}

export class TotpCodeDto {
  @ApiProperty({ description: 'The 6-digit code the authenticator app shows now', example: '123456' })
  @IsString()
  @MinLength(1)
  @MaxLength(CODE_MAX)
  code!: string;
}

export class DisableMfaDto {
  @ApiProperty()
  @IsString()
  @MinLength(1)
  @MaxLength(1024)
  password!: string;

  @ApiProperty({ description: 'A code from the authenticator app, or an unused recovery code' })
  @IsString()
  @MinLength(1)
  @MaxLength(CODE_MAX)
  code!: string;
}

/** Exactly one of `code` and `recoveryCode` (checked by the route: 400 otherwise). */
export class LoginMfaDto {
  // Long enough for anything a client may confuse it with (an access token is ~700
  // characters): those get 401 MFA_TOKEN_INVALID, not a validation error.
  @ApiProperty({ description: 'The mfaToken of the 403 MFA_REQUIRED answer' })
  @IsString()
  @MinLength(1)
  @MaxLength(4096)
  mfaToken!: string;

  // Validated whenever present, null included (IsOptional would let null through as "absent").
  @ApiPropertyOptional({ description: 'A 6-digit code from the authenticator app', example: '123456' })
  @ValidateIf((o: LoginMfaDto) => o.code !== undefined)
  @IsString()
  @MinLength(1)
  @MaxLength(CODE_MAX)
  code?: string;

  @ApiPropertyOptional({
    description: 'An unused recovery code (case, spaces and hyphens ignored)',
    example: 'K3V9Q-7XM2D',
  })
  @ValidateIf((o: LoginMfaDto) => o.recoveryCode !== undefined)
  @IsString()
  @MinLength(1)
  @MaxLength(CODE_MAX)
  recoveryCode?: string;
}

export class MfaStatusDto {
  @ApiProperty() enabled!: boolean;
  @ApiProperty({
    nullable: true,
    type: 'object',
    properties: {
      confirmedAt: { type: 'string', format: 'date-time' },
      lastUsedAt: { type: 'string', format: 'date-time', nullable: true },
    },
  })
  totp!: { confirmedAt: string; lastUsedAt: string | null } | null;
  @ApiProperty({ description: 'Unused recovery codes (warn the user at 3 or fewer)' }) recoveryCodesRemaining!: number;
}

export class TotpEnrolmentDto {
  @ApiProperty({ description: 'The secret in base32, for typing into an app by hand' }) secret!: string;
  @ApiProperty({ description: 'otpauth:// URI to show as a QR code' }) otpauthUri!: string;
  @ApiProperty({ enum: ['SHA1'] }) algorithm!: 'SHA1';
  @ApiProperty({ example: 6 }) digits!: number;
  @ApiProperty({ example: 30 }) period!: number;
  @ApiProperty({ format: 'date-time', description: 'Confirm with a code before this' }) expiresAt!: string;
}

export class RecoveryCodesDto {
  @ApiProperty({ type: [String], description: 'Shown once; each works once', example: ['K3V9Q-7XM2D'] })
  recoveryCodes!: string[];
}

export class MfaConfirmedDto extends TokenResponseDto {
  @ApiProperty({ type: [String], description: 'Shown once; each works once' })
  recoveryCodes!: string[];
}

export class MfaLoginResponseDto extends TokenResponseDto {
  @ApiProperty({ type: () => UserDto }) user!: UserDto;
  @ApiPropertyOptional({ description: 'Present when a recovery code was used: how many are left' })
  recoveryCodesRemaining?: number;
}
