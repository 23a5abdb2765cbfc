import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query, Res } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { CurrentUser, Roles, Scopes } from '../access/auth.decorators.js';
import {
  CreatedClientDto,
  IssuedClientSecretDto,
  OAuthClientDto,
  OAuthClientSecretDto,
} from '../clients/client.dto.js';
import { ClientsService } from '../clients/clients.service.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { ApiErrors } from '../common/http/api-errors.decorator.js';
import type { ClientInfo } from '../common/http/client-info.js';
import { Client } from '../common/http/client.decorator.js';
import { PageQueryDto } from '../common/http/pagination.js';
import { uuidParam } from '../common/http/uuid-param.js';
import type { Principal } from '../tokens/principal.js';
import {
  CreateClientDto,
  CreateClientSecretDto,
  OAuthClientPageDto,
  SetClientSecretExpiryDto,
  UpdateClientDto,
} from './dto/clients.dto.js';

/** A path id that is not a UUID names no client (or no secret of it): 404 CLIENT_NOT_FOUND. */
const clientIdParam = () => uuidParam('client', ErrorCode.CLIENT_NOT_FOUND);
const secretIdParam = () => uuidParam('client secret', ErrorCode.CLIENT_NOT_FOUND);

/**
 * Client admin (contract v2 §C): the admin role and the `clients:admin` scope. `:id` is the
 * client's row id (not its `clientId`). A secret's value is in the response that creates
 * it and nowhere else, with `Cache-Control: no-store`.
 */
@ApiTags('oauth clients')
@ApiBearerAuth('bearer')
@Roles('admin')
@Scopes('clients:admin')
@Controller('oauth/clients')
export class ClientsController {
  constructor(private readonly clients: ClientsService) {}

  @Post()
  @ApiOperation({ summary: 'Admin: create a machine client with its service user and first secret (shown once)' })
  @ApiCreatedResponse({ type: CreatedClientDto })
  @ApiErrors(400, 401, 403)
  create(
    @CurrentUser() admin: Principal,
    @Body() dto: CreateClientDto,
    @Client() client: ClientInfo,
    @Res({ passthrough: true }) res: Response,
  ): Promise<CreatedClientDto> {
    res.setHeader('Cache-Control', 'no-store');
    return this.clients.create(dto, admin, client);
  }

  @Get()
  @ApiOperation({ summary: 'Admin: list machine clients, newest first' })
  @ApiOkResponse({ type: OAuthClientPageDto })
  @ApiErrors(400, 401, 403)
  list(@Query() query: PageQueryDto): Promise<OAuthClientPageDto> {
    return this.clients.list(query.limit, query.cursor);
  }

  @Get(':id')
  @ApiOperation({ summary: 'Admin: one machine client' })
  @ApiOkResponse({ type: OAuthClientDto })
  @ApiErrors(401, 403, 404)
  get(@Param('id', clientIdParam()) id: string): Promise<OAuthClientDto> {
    return this.clients.get(id);
  }

  @Patch(':id')
  @ApiOperation({ summary: "Admin: change a client; disabling revokes every token of the client's secrets" })
  @ApiOkResponse({ type: OAuthClientDto })
  @ApiErrors(400, 401, 403, 404)
  update(
    @CurrentUser() admin: Principal,
    @Param('id', clientIdParam()) id: string,
    @Body() dto: UpdateClientDto,
    @Client() client: ClientInfo,
  ): Promise<OAuthClientDto> {
    return this.clients.update(id, dto, admin, client);
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Admin: delete a client; its tokens die, its service user is disabled (not deleted: its resources stay)',
  })
  @ApiNoContentResponse()
  @ApiErrors(401, 403, 404)
  delete(
    @CurrentUser() admin: Principal,
    @Param('id', clientIdParam()) id: string,
    @Client() client: ClientInfo,
  ): Promise<void> {
    return this.clients.delete(id, admin, client);
  }

  @Post(':id/secrets')
  @ApiOperation({ summary: 'Admin: a new secret for the client (shown once): rotation' })
  @ApiCreatedResponse({ type: IssuedClientSecretDto })
  @ApiErrors(400, 401, 403, 404, 409)
  addSecret(
    @CurrentUser() admin: Principal,
    @Param('id', clientIdParam()) id: string,
    @Body() dto: CreateClientSecretDto,
    @Client() client: ClientInfo,
    @Res({ passthrough: true }) res: Response,
  ): Promise<IssuedClientSecretDto> {
    res.setHeader('Cache-Control', 'no-store');
    return this.clients.addSecret(id, dto, admin, client);
  }

  @Patch(':id/secrets/:sid')
  @ApiOperation({ summary: "Admin: set a secret's expiry (schedules a rotation; a past one ends it now)" })
  @ApiOkResponse({ type: OAuthClientSecretDto })
  @ApiErrors(400, 401, 403, 404)
  setSecretExpiry(
    @CurrentUser() admin: Principal,
    @Param('id', clientIdParam()) id: string,
    @Param('sid', secretIdParam()) sid: string,
    @Body() dto: SetClientSecretExpiryDto,
    @Client() client: ClientInfo,
  ): Promise<OAuthClientSecretDto> {
    return this.clients.setSecretExpiry(id, sid, dto.expiresAt, admin, client);
  }

  @Delete(':id/secrets/:sid')
  @HttpCode(204)
  @ApiOperation({ summary: 'Admin: revoke a secret now, with every token it obtained' })
  @ApiNoContentResponse()
  @ApiErrors(401, 403, 404)
  revokeSecret(
    @CurrentUser() admin: Principal,
    @Param('id', clientIdParam()) id: string,
    @Param('sid', secretIdParam()) sid: string,
    @Client() client: ClientInfo,
  ): Promise<void> {
    return this.clients.revokeSecret(id, sid, admin, client);
  }
}
