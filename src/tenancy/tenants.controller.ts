import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Put, Query } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import { CurrentUser, Scopes } from '../access/auth.decorators.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { ApiErrors } from '../common/http/api-errors.decorator.js';
import { Client } from '../common/http/client.decorator.js';
import type { ClientInfo } from '../common/http/client-info.js';
import { PageQueryDto } from '../common/http/pagination.js';
import { uuidParam } from '../common/http/uuid-param.js';
import type { Principal } from '../tokens/principal.js';
import {
  AcceptInvitationDto,
  AcceptedInvitationDto,
  AddMemberDto,
  CreateTenantDto,
  DeleteTenantDto,
  InvitationDto,
  InvitationPageDto,
  InviteDto,
  MemberDto,
  MemberPageDto,
  PutRoleDto,
  RoleListDto,
  TenantDto,
  TenantPageDto,
  TenantQueryDto,
  TenantRoleDto,
  UpdateTenantDto,
} from './dto/tenants.dto.js';
import { TenantsService } from './tenants.service.js';

/** A tenant id that is not a UUID names nothing: the same 404 as a tenant the caller is not in. */
const tenantId = uuidParam('tenant', ErrorCode.TENANT_NOT_FOUND);
const userId = uuidParam('member', ErrorCode.USER_NOT_FOUND);
const invitationId = uuidParam('invitation');

/**
 * Tenants (contract v2 §E). Reads need the `tenants:read` scope, changes `tenants:write`; in
 * the tenant, the caller's roles are looked up on every request (never taken from a token).
 * A tenant the caller is not in answers 404 TENANT_NOT_FOUND, exactly as one that does not exist.
 */
@ApiTags('tenants')
@ApiBearerAuth('bearer')
@Controller('tenants')
export class TenantsController {
  constructor(private readonly tenants: TenantsService) {}

  @Post()
  @Scopes('tenants:write')
  @ApiOperation({ summary: 'Create a tenant; the caller becomes its owner' })
  @ApiCreatedResponse({ type: TenantDto })
  @ApiErrors(400, 401, 403, 409)
  create(@CurrentUser() caller: Principal, @Body() dto: CreateTenantDto, @Client() client: ClientInfo) {
    return this.tenants.create(caller, dto, client);
  }

  @Get()
  @Scopes('tenants:read')
  @ApiOperation({ summary: "The caller's tenants with their roles there; global admins may ask all=true" })
  @ApiOkResponse({ type: TenantPageDto })
  @ApiErrors(400, 401, 403)
  list(@CurrentUser() caller: Principal, @Query() q: TenantQueryDto) {
    return this.tenants.list(caller, q);
  }

  // Before ':id' routes: a literal path segment, not a tenant id.
  @Post('invitations/accept')
  @HttpCode(200)
  @Scopes('tenants:write')
  @ApiOperation({ summary: "Accept an invitation: the caller's verified email must be the invited address" })
  @ApiOkResponse({ type: AcceptedInvitationDto })
  @ApiErrors(400, 401, 403, 409, 429)
  accept(@CurrentUser() caller: Principal, @Body() dto: AcceptInvitationDto, @Client() client: ClientInfo) {
    return this.tenants.accept(caller, dto.token, client);
  }

  @Get(':id')
  @Scopes('tenants:read')
  @ApiOperation({ summary: 'A tenant the caller belongs to' })
  @ApiOkResponse({ type: TenantDto })
  @ApiErrors(401, 403, 404)
  get(@CurrentUser() caller: Principal, @Param('id', tenantId) id: string) {
    return this.tenants.get(caller, id);
  }

  @Patch(':id')
  @Scopes('tenants:write')
  @ApiOperation({ summary: 'Rename a tenant (tenant:update); the slug never changes' })
  @ApiOkResponse({ type: TenantDto })
  @ApiErrors(400, 401, 403, 404)
  update(
    @CurrentUser() caller: Principal,
    @Param('id', tenantId) id: string,
    @Body() dto: UpdateTenantDto,
    @Client() client: ClientInfo,
  ) {
    return this.tenants.update(caller, id, dto, client);
  }

  @Delete(':id')
  @HttpCode(204)
  @Scopes('tenants:write')
  @ApiOperation({ summary: 'Delete a tenant with its resources, members and invitations (owners; confirm = slug)' })
  @ApiNoContentResponse()
  @ApiErrors(400, 401, 403, 404)
  async remove(
    @CurrentUser() caller: Principal,
    @Param('id', tenantId) id: string,
    @Body() dto: DeleteTenantDto,
    @Client() client: ClientInfo,
  ): Promise<void> {
    await this.tenants.remove(caller, id, dto.confirm, client);
  }

  @Get(':id/members')
  @Scopes('tenants:read')
  @ApiOperation({ summary: 'The members and their roles (members:read)' })
  @ApiOkResponse({ type: MemberPageDto })
  @ApiErrors(400, 401, 403, 404)
  members(@CurrentUser() caller: Principal, @Param('id', tenantId) id: string, @Query() q: PageQueryDto) {
    return this.tenants.members(caller, id, q);
  }

  @Post(':id/members')
  @Scopes('tenants:write')
  @ApiOperation({ summary: 'Add an existing account by username, with roles (members:write)' })
  @ApiCreatedResponse({ type: MemberDto })
  @ApiErrors(400, 401, 403, 404, 409)
  addMember(
    @CurrentUser() caller: Principal,
    @Param('id', tenantId) id: string,
    @Body() dto: AddMemberDto,
    @Client() client: ClientInfo,
  ) {
    return this.tenants.addMember(caller, id, dto, client);
  }

  @Patch(':id/members/:userId')
  @Scopes('tenants:write')
  @ApiOperation({ summary: "Replace a member's role list (members:write); never the last owner's owner role" })
  @ApiOkResponse({ type: MemberDto })
  @ApiErrors(400, 401, 403, 404, 409)
  setRoles(
    @CurrentUser() caller: Principal,
    @Param('id', tenantId) id: string,
    @Param('userId', userId) member: string,
    @Body() dto: RoleListDto,
    @Client() client: ClientInfo,
  ) {
    return this.tenants.setMemberRoles(caller, id, member, dto.roles, client);
  }

  @Delete(':id/members/:userId')
  @HttpCode(204)
  @Scopes('tenants:write')
  @ApiOperation({ summary: 'Remove a member (members:write), or leave (your own id); never the last owner' })
  @ApiNoContentResponse()
  @ApiErrors(401, 403, 404, 409)
  async removeMember(
    @CurrentUser() caller: Principal,
    @Param('id', tenantId) id: string,
    @Param('userId', userId) member: string,
    @Client() client: ClientInfo,
  ): Promise<void> {
    await this.tenants.removeMember(caller, id, member, client);
  }

  @Post(':id/invitations')
  @Scopes('tenants:write')
  @ApiOperation({ summary: 'Invite an email address with roles (invitations:write); the link is mailed' })
  @ApiCreatedResponse({ type: InvitationDto })
  @ApiErrors(400, 401, 403, 404, 409, 429)
  invite(
    @CurrentUser() caller: Principal,
    @Param('id', tenantId) id: string,
    @Body() dto: InviteDto,
    @Client() client: ClientInfo,
  ) {
    return this.tenants.invite(caller, id, dto, client);
  }

  @Get(':id/invitations')
  @Scopes('tenants:read')
  @ApiOperation({ summary: 'Pending invitations (invitations:write)' })
  @ApiOkResponse({ type: InvitationPageDto })
  @ApiErrors(400, 401, 403, 404)
  invitations(@CurrentUser() caller: Principal, @Param('id', tenantId) id: string, @Query() q: PageQueryDto) {
    return this.tenants.invitations(caller, id, q);
  }

  @Delete(':id/invitations/:invitationId')
  @HttpCode(204)
  @Scopes('tenants:write')
  @ApiOperation({ summary: 'Revoke a pending invitation (invitations:write)' })
  @ApiNoContentResponse()
  @ApiErrors(401, 403, 404)
  async revokeInvitation(
    @CurrentUser() caller: Principal,
    @Param('id', tenantId) id: string,
    @Param('invitationId', invitationId) invitation: string,
    @Client() client: ClientInfo,
  ): Promise<void> {
    await this.tenants.revokeInvitation(caller, id, invitation, client);
  }

  @Get(':id/roles')
  @Scopes('tenants:read')
  @ApiOperation({ summary: 'Built-in and custom roles with their permissions (members:read)' })
  @ApiOkResponse({ type: TenantRoleDto, isArray: true })
  @ApiErrors(401, 403, 404)
  roles(@CurrentUser() caller: Principal, @Param('id', tenantId) id: string) {
    return this.tenants.roles(caller, id);
  }

  @Put(':id/roles/:name')
  @Scopes('tenants:write')
  @ApiOperation({ summary: 'Define or redefine a custom role (roles:write), never beyond your own permissions' })
  @ApiOkResponse({ type: TenantRoleDto })
  @ApiErrors(400, 401, 403, 404, 409)
  putRole(
    @CurrentUser() caller: Principal,
    @Param('id', tenantId) id: string,
    @Param('name') name: string,
    @Body() dto: PutRoleDto,
    @Client() client: ClientInfo,
  ) {
    return this.tenants.putRole(caller, id, name, dto.permissions, client);
  }

  @Delete(':id/roles/:name')
  @HttpCode(204)
  @Scopes('tenants:write')
  @ApiOperation({ summary: 'Delete a custom role no member or pending invitation holds (roles:write)' })
  @ApiNoContentResponse()
  @ApiErrors(400, 401, 403, 404, 409)
  async deleteRole(
    @CurrentUser() caller: Principal,
    @Param('id', tenantId) id: string,
    @Param('name') name: string,
    @Client() client: ClientInfo,
  ): Promise<void> {
    await this.tenants.deleteRole(caller, id, name, client);
  }
}
