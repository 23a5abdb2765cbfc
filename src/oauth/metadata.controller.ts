import { Controller, Get, Header, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Public } from '../access/public.decorator.js';
import { ClientsService } from '../clients/clients.service.js';
import type { AppConfig } from '../config/config.schema.js';
import { InjectConfig } from '../config/config.token.js';
import { CLIENT_CREDENTIALS, TOKEN_EXCHANGE } from './oauth.service.js';

const AUTH_METHODS = ['client_secret_basic', 'client_secret_post'];

/** RFC 8414 §2 authorization server metadata, as this server publishes it (contract v2 §C). */
export interface AuthorizationServerMetadata {
  issuer: string;
  token_endpoint: string;
  introspection_endpoint: string;
  revocation_endpoint: string;
  jwks_uri: string;
  grant_types_supported: string[];
  token_endpoint_auth_methods_supported: string[];
  introspection_endpoint_auth_methods_supported: string[];
  revocation_endpoint_auth_methods_supported: string[];
  scopes_supported: string[];
  response_types_supported: string[];
  service_documentation: string;
}

/**
 * GET /.well-known/oauth-authorization-server (RFC 8414). `issuer` is JWT_ISSUER (the `iss`
 * of every token), the URLs are absolute PUBLIC_URL ones. There is no authorization endpoint
 * (no browser flows), hence no response types.
 */
@ApiTags('operations')
@Controller('.well-known')
export class MetadataController implements OnApplicationBootstrap {
  private readonly logger = new Logger('OAuth');
  private readonly metadata: AuthorizationServerMetadata;

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    clients: ClientsService,
  ) {
    const url = (path: string) => `${config.PUBLIC_URL}${path}`;
    this.metadata = {
      issuer: config.JWT_ISSUER,
      token_endpoint: url('/oauth/token'),
      introspection_endpoint: url('/oauth/introspect'),
      revocation_endpoint: url('/oauth/revoke'),
      jwks_uri: url('/.well-known/jwks.json'),
      grant_types_supported: [CLIENT_CREDENTIALS, TOKEN_EXCHANGE],
      token_endpoint_auth_methods_supported: AUTH_METHODS,
      introspection_endpoint_auth_methods_supported: AUTH_METHODS,
      revocation_endpoint_auth_methods_supported: AUTH_METHODS,
      scopes_supported: [...clients.knownScopes],
      response_types_supported: [],
      service_documentation: url('/docs'),
    };
  }

  /**
   * RFC 8414 §2 and RFC 9068 §2.2 want the issuer to be an https URL equal to `iss`; v1's
   * default JWT_ISSUER is not one, and changing it breaks verifiers that pinned it: a warning.
   */
  onApplicationBootstrap(): void {
    if (!isHttpsUrl(this.config.JWT_ISSUER)) {
      this.logger.warn(
        `JWT_ISSUER "${this.config.JWT_ISSUER}" is not an https URL: RFC 8414 and RFC 9068 expect the issuer ` +
          '(the `iss` of every token) to be one; changing it breaks verifiers that pinned the old value',
      );
    }
  }

  @Public()
  @Get('oauth-authorization-server')
  @Header('Cache-Control', 'public, max-age=600')
  @ApiOperation({ summary: 'OAuth 2.0 authorization server metadata (RFC 8414)' })
  @ApiOkResponse({
    schema: {
      example: {
        issuer: 'https://auth.example.test',
        token_endpoint: 'https://auth.example.test/oauth/token',
        jwks_uri: 'https://auth.example.test/.well-known/jwks.json',
        grant_types_supported: [CLIENT_CREDENTIALS, TOKEN_EXCHANGE],
      },
    },
  })
  get(): AuthorizationServerMetadata {
    return this.metadata;
  }
}

function isHttpsUrl(value: string): boolean {
  return URL.canParse(value) && new URL(value).protocol === 'https:';
}
