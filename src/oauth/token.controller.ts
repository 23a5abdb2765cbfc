import { Controller, HttpCode, Post, Req, UseFilters, applyDecorators } from '@nestjs/common';
import {
  ApiBasicAuth,
  ApiBody,
  ApiConsumes,
  ApiExtraModels,
  ApiOkResponse,
  ApiOperation,
  ApiResponse,
  ApiTags,
  getSchemaPath,
} from '@nestjs/swagger';
import type { Request } from 'express';
import { Public } from '../access/public.decorator.js';
import type { ClientInfo } from '../common/http/client-info.js';
import { Client } from '../common/http/client.decorator.js';
import { OAuthErrorBodyDto } from './dto/oauth.dto.js';
import { OAuthExceptionFilter } from './oauth-errors.js';
import type { OAuthForm } from './oauth-form.middleware.js';
import {
  CLIENT_CREDENTIALS,
  OAuthService,
  TOKEN_EXCHANGE,
  type ClientTokenResponse,
  type IntrospectionResponse,
} from './oauth.service.js';

/** Client authentication, as OpenAPI: `client_secret_post` parameters beside Basic. */
const CLIENT_PARAMS = {
  client_id: {
    type: 'string',
    description: 'client_secret_post (instead of Basic)',
    example: 'c_ABCDEFGHIJKLMNOPQRST',
  },
  client_secret: { type: 'string', description: 'client_secret_post (instead of Basic)' },
} as const;

/** The error responses of a form endpoint (RFC 6749 §5.2 merged with v1's body). */
const OAuthErrors = (...statuses: number[]): MethodDecorator =>
  applyDecorators(
    ApiExtraModels(OAuthErrorBodyDto),
    ...statuses.map((status) =>
      ApiResponse({ status, description: 'OAuth error', schema: { $ref: getSchemaPath(OAuthErrorBodyDto) } }),
    ),
  );

const formOf = (req: Request): OAuthForm => req.body as OAuthForm;

/**
 * The OAuth 2.0 form endpoints of machine clients (contract v2 §C, §0.8): bodies are
 * `application/x-www-form-urlencoded` (OAuthFormMiddleware), clients authenticate with
 * `client_secret_basic` or `client_secret_post` (not with a bearer token: the routes are
 * public to the access-token guard), every response is `Cache-Control: no-store`, and errors
 * carry the OAuth error code in `error` (OAuthExceptionFilter).
 */
@ApiTags('oauth')
@ApiBasicAuth('clientBasic')
@Public()
@UseFilters(OAuthExceptionFilter)
@Controller('oauth')
export class TokenController {
  constructor(private readonly oauth: OAuthService) {}

  @Post('token')
  @HttpCode(200)
  @ApiOperation({ summary: 'Client credentials grant (RFC 6749 §4.4): an access token for a machine client' })
  @ApiConsumes('application/x-www-form-urlencoded')
  @ApiBody({
    schema: {
      type: 'object',
      required: ['grant_type'],
      properties: {
        grant_type: { type: 'string', enum: [CLIENT_CREDENTIALS, TOKEN_EXCHANGE] },
        scope: { type: 'string', description: 'Space-separated; absent: every scope allowed to the client' },
        ...CLIENT_PARAMS,
      },
    },
  })
  @ApiOkResponse({
    schema: {
      type: 'object',
      required: ['access_token', 'token_type', 'expires_in', 'scope'],
      properties: {
        access_token: { type: 'string' },
        token_type: { type: 'string', enum: ['Bearer'] },
        expires_in: { type: 'integer', example: 900 },
        scope: { type: 'string', example: 'resources:read resources:write' },
      },
    },
  })
  @OAuthErrors(400, 401, 413, 429)
  token(@Req() req: Request, @Client() client: ClientInfo): Promise<ClientTokenResponse> {
    return this.oauth.issueToken(formOf(req), req.headers.authorization, client);
  }

  @Post('introspect')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Token introspection (RFC 7662): for clients allowed the introspection scope; active from the database',
  })
  @ApiConsumes('application/x-www-form-urlencoded')
  @ApiBody({
    schema: {
      type: 'object',
      required: ['token'],
      properties: { token: { type: 'string' }, token_type_hint: { type: 'string' }, ...CLIENT_PARAMS },
    },
  })
  @ApiOkResponse({
    schema: {
      type: 'object',
      required: ['active'],
      properties: {
        active: { type: 'boolean' },
        token_type: { type: 'string', enum: ['Bearer'] },
        scope: { type: 'string' },
        client_id: { type: 'string' },
        username: { type: 'string' },
        sub: { type: 'string' },
        aud: { type: 'string' },
        iss: { type: 'string' },
        exp: { type: 'integer' },
        iat: { type: 'integer' },
        jti: { type: 'string' },
        sid: { type: 'string' },
        acr: { type: 'string' },
        amr: { type: 'array', items: { type: 'string' } },
      },
    },
  })
  @OAuthErrors(400, 401, 403, 413, 429)
  introspect(@Req() req: Request, @Client() client: ClientInfo): Promise<IntrospectionResponse> {
    return this.oauth.introspect(formOf(req), req.headers.authorization, client);
  }

  @Post('revoke')
  @HttpCode(200)
  @ApiOperation({
    summary: "Token revocation (RFC 7009): the caller's own access token; 200 for any other token too",
  })
  @ApiConsumes('application/x-www-form-urlencoded')
  @ApiBody({
    schema: {
      type: 'object',
      required: ['token'],
      properties: { token: { type: 'string' }, token_type_hint: { type: 'string' }, ...CLIENT_PARAMS },
    },
  })
  @ApiOkResponse({ description: 'Revoked, or nothing to do (empty body)' })
  @OAuthErrors(400, 401, 413, 429)
  revoke(@Req() req: Request, @Client() client: ClientInfo): Promise<void> {
    return this.oauth.revoke(formOf(req), req.headers.authorization, client);
  }
}
