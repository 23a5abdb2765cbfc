import { ApiProperty } from '@nestjs/swagger';
import type { ClientWithSecrets, SecretRecord } from './clients.repository.js';

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

/** A client secret as listed: never its value or its hash. */
export class OAuthClientSecretDto {
  @ApiProperty({ format: 'uuid', description: 'The `sid` of the tokens it obtained' }) id!: string;
  @ApiProperty({ type: String, nullable: true }) label!: string | null;
  @ApiProperty({ example: 'gcs_AbCd', description: 'The first characters of the secret, to recognise it' })
  prefix!: string;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) expiresAt!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) lastUsedAt!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) revokedAt!: string | null;

  static from(s: SecretRecord): OAuthClientSecretDto {
    return {
      id: s.id,
      label: s.label,
      prefix: s.prefix,
      createdAt: s.createdAt.toISOString(),
      expiresAt: iso(s.expiresAt),
      lastUsedAt: iso(s.lastUsedAt),
      revokedAt: iso(s.revokedAt),
    };
  }
}

/** A machine client (contract v2 §C `OAuthClient`): never a secret value or hash. */
export class OAuthClientDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'c_ABCDEFGHIJKLMNOPQRST', description: '`client_id` at the token endpoint' })
  clientId!: string;
  @ApiProperty() name!: string;
  @ApiProperty({ type: String, nullable: true }) description!: string | null;
  @ApiProperty({ type: String, isArray: true, example: ['resources:read'] }) allowedScopes!: string[];
  @ApiProperty({ type: Number, nullable: true, description: 'Seconds; null: OAUTH_TOKEN_TTL' })
  accessTokenTtl!: number | null;
  @ApiProperty({ description: 'Whether the client may use token exchange' }) tokenExchange!: boolean;
  @ApiProperty() disabled!: boolean;
  @ApiProperty({ format: 'uuid', description: 'The `sub` of its tokens; owns its resources' })
  serviceUserId!: string;
  @ApiProperty({ type: () => OAuthClientSecretDto, isArray: true }) secrets!: OAuthClientSecretDto[];
  @ApiProperty({ format: 'date-time' }) createdAt!: string;

  static from(c: ClientWithSecrets): OAuthClientDto {
    return {
      id: c.id,
      clientId: c.clientId,
      name: c.name,
      description: c.description,
      allowedScopes: [...c.allowedScopes],
      accessTokenTtl: c.accessTokenTtl,
      tokenExchange: c.tokenExchange,
      disabled: c.disabled,
      serviceUserId: c.serviceUserId,
      secrets: c.secrets.map((s) => OAuthClientSecretDto.from(s)),
      createdAt: c.createdAt.toISOString(),
    };
  }
}

/** A new secret: its value is shown here once and never again. */
export class IssuedClientSecretDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'gcs_…', description: '`gcs_` + 43 base64url characters; shown once' }) value!: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) expiresAt!: string | null;

  static from(s: SecretRecord, value: string): IssuedClientSecretDto {
    return { id: s.id, value, expiresAt: iso(s.expiresAt) };
  }
}

/** POST /oauth/clients: the client and its first secret (shown once). */
export class CreatedClientDto {
  @ApiProperty({ type: () => OAuthClientDto }) client!: OAuthClientDto;
  @ApiProperty({ type: () => IssuedClientSecretDto }) secret!: IssuedClientSecretDto;
}
