import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsEmail, IsOptional, IsString, Length, Matches, MaxLength, MinLength } from 'class-validator';
import { IsUnambiguousEmail, IsVisibleText } from '../../common/http/visible-text.validator.js';
import { IsPassword } from './password.validator.js';

const trim = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value);

export const USERNAME_PATTERN = /^[A-Za-z0-9_.-]+$/;

export class SignupDto {
  @ApiProperty({ minLength: 3, maxLength: 32, pattern: USERNAME_PATTERN.source, example: 'ada_l' })
  @IsString()
  @Length(3, 32)
  @Matches(USERNAME_PATTERN, { message: 'username may contain only letters, digits, "_", "." and "-"' })
  username!: string;

  @ApiProperty({ minLength: 8, maxLength: 128, description: '8–128 characters; every character counts' })
  @IsPassword()
  password!: string;

  @ApiPropertyOptional({ type: String, nullable: true, maxLength: 254, example: 'ada@example.com' })
  @IsOptional()
  @Transform(trim)
  @IsEmail({}, { message: 'email must be a valid email address' })
  @IsUnambiguousEmail()
  @MaxLength(254)
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
