import { ApiProperty } from '@nestjs/swagger';

/** An error of the OAuth form endpoints (contract v2 §0.8): RFC 6749 §5.2 merged with v1's body. */
export class OAuthErrorBodyDto {
  @ApiProperty({ example: 'invalid_client', description: 'The OAuth error code (not the HTTP reason phrase)' })
  error!: string;
  @ApiProperty({ example: 'Client authentication failed' }) error_description!: string;
  @ApiProperty({ example: 401 }) statusCode!: number;
  @ApiProperty({ example: 'Client authentication failed', description: 'The same as error_description' })
  message!: string;
  @ApiProperty({ example: 'INVALID_CLIENT', description: 'Stable machine-readable code' }) code!: string;
}
