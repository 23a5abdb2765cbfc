import { Body, Controller, Delete, Get, Headers, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiHeader,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiSecurity,
  ApiTags,
} from '@nestjs/swagger';
import { CurrentUser, OptionalAuth, Scopes } from '../access/auth.decorators.js';
import { insufficientScope } from '../access/scopes.guard.js';
import type { Principal } from '../tokens/principal.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { ApiErrors } from '../common/http/api-errors.decorator.js';
import { uuidParam } from '../common/http/uuid-param.js';
import {
  CreateResourceDto,
  ResourceDto,
  ResourcePageDto,
  ResourceQueryDto,
  UpdateResourceDto,
} from './dto/resources.dto.js';
import { ResourcesService, type TenantHeader } from './resources.service.js';
import { TENANT_HEADER as TENANT } from '../tenants/tenant-access.service.js';
import { Client } from '../common/http/client.decorator.js';
import type { ClientInfo } from '../common/http/client-info.js';

const resourceId = uuidParam('resource', ErrorCode.RESOURCE_NOT_FOUND);
/** The scope for reading the caller's resources (contract v2 §C); public ones need none. */
const READ = 'resources:read';

@ApiTags('resources')
@ApiBearerAuth('bearer')
@ApiHeader({
  name: 'X-Tenant-Id',
  required: false,
  description:
    "Aims the request at a tenant the caller belongs to (else the token's tid, else personal): 400 TENANT_HEADER_INVALID when malformed, 400 TENANT_MISMATCH when it differs from tid, 404 TENANT_NOT_FOUND when the caller is not a member",
})
@Controller('resources')
export class ResourcesController {
  constructor(private readonly resources: ResourcesService) {}

  @Post()
  @Scopes('resources:write')
  @ApiOperation({ summary: 'Create a resource owned by the caller (private by default)' })
  @ApiCreatedResponse({ type: ResourceDto })
  @ApiErrors(400, 401, 403, 404, 413, 415)
  create(
    @CurrentUser() user: Principal,
    @Body() dto: CreateResourceDto,
    @Headers(TENANT) tenant: TenantHeader,
    @Client() client: ClientInfo,
  ): Promise<ResourceDto> {
    return this.resources.create(user, dto, tenant, client);
  }

  @Get()
  @Scopes('resources:read')
  @ApiOperation({
    summary:
      "The caller's resources (personal, or the tenant's with X-Tenant-Id or tid), newest first; scope=memberships adds every tenant's; admins may ask for scope=all",
  })
  @ApiOkResponse({ type: ResourcePageDto })
  @ApiErrors(400, 401, 403, 404)
  list(
    @CurrentUser() user: Principal,
    @Query() query: ResourceQueryDto,
    @Headers(TENANT) tenant: TenantHeader,
  ): Promise<ResourcePageDto> {
    return this.resources.list(user, query, tenant);
  }

  @Get(':id')
  @OptionalAuth()
  @ApiSecurity({}) // the token is optional here: documented as "bearer or nothing"
  @ApiOperation({ summary: 'A resource: for its owner, an admin, or anyone (no token needed) when public' })
  @ApiOkResponse({ type: ResourceDto })
  @ApiErrors(400, 401, 403, 404)
  async get(
    @CurrentUser({ optional: true }) user: Principal | undefined,
    @Param('id', resourceId) id: string,
    @Headers(TENANT) tenant: TenantHeader,
  ): Promise<ResourceDto> {
    if (!user || user.scopes.includes(READ)) return this.resources.get(user, id, tenant);
    // A token without resources:read reads what anyone may read: a public resource needs no
    // scope. Anything else, a private resource or no resource at all, is refused for the
    // scope, the same way for both, so the answer tells nothing about existence.
    const open = await this.resources.findPublic(id);
    if (!open) throw insufficientScope([READ]);
    return open;
  }

  @Patch(':id')
  @Scopes('resources:write')
  @ApiOperation({ summary: 'Change a resource (owner or admin)' })
  @ApiOkResponse({ type: ResourceDto })
  @ApiErrors(400, 401, 403, 404)
  update(
    @CurrentUser() user: Principal,
    @Param('id', resourceId) id: string,
    @Body() dto: UpdateResourceDto,
    @Headers(TENANT) tenant: TenantHeader,
    @Client() client: ClientInfo,
  ): Promise<ResourceDto> {
    return this.resources.update(user, id, dto, tenant, client);
  }

  @Delete(':id')
  @Scopes('resources:write')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a resource (owner or admin)' })
  @ApiNoContentResponse()
  @ApiErrors(400, 401, 403, 404)
  delete(
    @CurrentUser() user: Principal,
    @Param('id', resourceId) id: string,
    @Headers(TENANT) tenant: TenantHeader,
    @Client() client: ClientInfo,
  ): Promise<void> {
    return this.resources.delete(user, id, tenant, client);
  }
}
