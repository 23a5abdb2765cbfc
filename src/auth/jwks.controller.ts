import { Controller, Get, Header } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Public } from '../access/public.decorator.js';
import { AccessTokenService } from '../tokens/access-token.service.js';

@ApiTags('operations')
@Controller('.well-known')
export class JwksController {
  constructor(private readonly tokens: AccessTokenService) {}

  /** Public keys that verify access tokens: never a private part, never a symmetric key. */
  @Public()
  @Get('jwks.json')
  @Header('Cache-Control', 'public, max-age=600')
  @ApiOperation({ summary: 'JSON Web Key Set (RFC 7517) of the access-token verification keys' })
  @ApiOkResponse({
    schema: { example: { keys: [{ kty: 'EC', crv: 'P-256', x: '…', y: '…', kid: '…', alg: 'ES256', use: 'sig' }] } },
  })
  jwks(): { keys: object[] } {
    return this.tokens.jwks;
  }
}
