import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsBoolean,
  IsISO8601,
  IsInt,
  IsOptional,
  IsString,
  Length,
  Max,
  MaxLength,
  Min,
  ValidateIf,
} from 'class-validator';
import { OAuthClientDto } from '../../clients/client.dto.js';
import { PageDto } from '../../common/http/pagination.js';
import { IsVisibleText } from '../../common/http/visible-text.validator.js';
import { present } from '../../common/http/present.js';

const trim = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value);
/** Required, but may be null. */
const notNull = (_: object, value: unknown): boolean => value !== null;

const SCOPES_DOC = {
  type: String,
  isArray: true,
  example: ['resources:read'],
  description: 'Built-in scopes and OAUTH_EXTRA_SCOPES only',
} as const;
const TTL_DOC = {
  type: Number,
  nullable: true,
  minimum: 60,
  description: 'Seconds, 60 to OAUTH_MAX_TOKEN_TTL; null: OAUTH_TOKEN_TTL',
} as const;

/** POST /oauth/clients. The server chooses `clientId`: sending one is refused (400). */
export class CreateClientDto {
  @ApiProperty({ minLength: 1, maxLength: 100 })
  @Transform(trim)
  @IsString()
  @Length(1, 100)
  @IsVisibleText()
  name!: string;

  @ApiPropertyOptional({ type: String, nullable: true, maxLength: 500 })
  @IsOptional()
  @IsString()
  @MaxLength(500)
  description?: string | null;

  @ApiProperty(SCOPES_DOC)
  @IsArray()
  @ArrayMaxSize(100)
  @IsString({ each: true })
  @MaxLength(200, { each: true })
  allowedScopes!: string[];

  @ApiPropertyOptional(TTL_DOC)
  @IsOptional()
  @IsInt()
  @Min(60)
  @Max(86400)
  accessTokenTtl?: number | null;

  @ApiPropertyOptional({ default: false, description: 'May use token exchange' })
  @ValidateIf(present)
  @IsBoolean()
  tokenExchange?: boolean;

  @ApiPropertyOptional({ type: String, format: 'date-time', nullable: true, description: 'Expiry of the first secret' })
  @IsOptional()
  @IsISO8601({ strict: true })
  @MaxLength(40)
  secretExpiresAt?: string | null;
}

/** PATCH /oauth/clients/:id: absent fields stay as they are. */
export class UpdateClientDto {
  @ApiPropertyOptional({ minLength: 1, maxLength: 100 })
  @ValidateIf(present)
  @Transform(trim)
  @IsString()
  @Length(1, 100)
  @IsVisibleText()
  name?: string;

  @ApiPropertyOptional({ type: String, nullable: true, maxLength: 500, description: 'null clears it' })
  @IsOptional()
  @IsString()
  @MaxLength(500)
  description?: string | null;

  @ApiPropertyOptional(SCOPES_DOC)
  @ValidateIf(present)
  @IsArray()
  @ArrayMaxSize(100)
  @IsString({ each: true })
  @MaxLength(200, { each: true })
  allowedScopes?: string[];

  @ApiPropertyOptional(TTL_DOC)
  @IsOptional()
  @IsInt()
  @Min(60)
  @Max(86400)
  accessTokenTtl?: number | null;

  @ApiPropertyOptional()
  @ValidateIf(present)
  @IsBoolean()
  tokenExchange?: boolean;

  @ApiPropertyOptional({ description: "Disabling revokes every token of the client's secrets" })
  @ValidateIf(present)
  @IsBoolean()
  disabled?: boolean;
}

/** POST /oauth/clients/:id/secrets. */
export class CreateClientSecretDto {
  @ApiPropertyOptional({ type: String, nullable: true, maxLength: 100 })
  @IsOptional()
  @Transform(trim)
  @IsString()
  @Length(1, 100)
  @IsVisibleText()
  label?: string | null;

  @ApiPropertyOptional({ type: String, format: 'date-time', nullable: true })
  @IsOptional()
  @IsISO8601({ strict: true })
  @MaxLength(40)
  expiresAt?: string | null;
}

/** PATCH /oauth/clients/:id/secrets/:sid. */
export class SetClientSecretExpiryDto {
  @ApiProperty({
    type: String,
    format: 'date-time',
    nullable: true,
    description: 'null: never; now or in the past: the secret and its tokens end at once',
  })
  @ValidateIf(notNull)
  @IsISO8601({ strict: true })
  @MaxLength(40)
  expiresAt!: string | null;
}

export class OAuthClientPageDto extends PageDto<OAuthClientDto> {
  @ApiProperty({ type: () => OAuthClientDto, isArray: true })
  declare items: OAuthClientDto[];
}
