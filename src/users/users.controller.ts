import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import { Client } from '../common/http/client.decorator.js';
import { CurrentSession, CurrentUser, Roles, Scopes, type SessionPrincipal } from '../access/auth.decorators.js';
import type { ClientInfo } from '../common/http/client-info.js';
import type { Principal } from '../tokens/principal.js';
import { ApiErrors } from '../common/http/api-errors.decorator.js';
import { uuidParam } from '../common/http/uuid-param.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { AdminUserDto, LinkedIdentityDto, MeDto, UserDto } from '../accounts/user.dto.js';
import {
  AdminLinkIdentityDto,
  LinkIdentityDto,
  AdminUpdateUserDto,
  ChangePasswordDto,
  DeleteAccountDto,
  UpdateProfileDto,
  UserPageDto,
} from './dto/users.dto.js';
import { UsersService } from './users.service.js';
import { AdminSessionDto, UserSearchQueryDto } from './dto/audit.dto.js';
import { IdentityLinksService } from './identity-links.service.js';

@ApiTags('users')
@ApiBearerAuth('bearer')
@Controller('users')
export class UsersController {
  constructor(
    private readonly users: UsersService,
    private readonly identities: IdentityLinksService,
  ) {}

  @Get('me')
  @Scopes('profile')
  @ApiOperation({ summary: 'The caller' })
  @ApiOkResponse({ type: MeDto })
  @ApiErrors(401, 403)
  me(@CurrentUser() user: Principal): Promise<MeDto> {
    return this.users.me(user);
  }

  @Patch('me')
  @Scopes('profile')
  @ApiOperation({ summary: "Update the caller's display name (and the email, with EMAIL_CHANGE_MODE=immediate)" })
  @ApiOkResponse({ type: UserDto })
  @ApiErrors(400, 401, 403, 409)
  updateMe(
    @CurrentUser() user: Principal,
    @Body() dto: UpdateProfileDto,
    @Client() client: ClientInfo,
  ): Promise<UserDto> {
    return this.users.updateProfile(user, dto, client);
  }

  @Post('me/password')
  @Scopes('profile')
  @HttpCode(204)
  @ApiOperation({ summary: 'Change the password; every other session is revoked' })
  @ApiNoContentResponse()
  @ApiErrors(400, 401, 403, 429)
  changePassword(
    @CurrentSession() user: SessionPrincipal,
    @Body() dto: ChangePasswordDto,
    @Client() client: ClientInfo,
  ): Promise<void> {
    return this.users.changePassword(user, dto.currentPassword, dto.newPassword, client);
  }

  @Delete('me')
  @Scopes('profile')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete the account with its sessions and resources' })
  @ApiNoContentResponse()
  @ApiErrors(400, 401, 403, 429)
  deleteMe(
    @CurrentSession() user: SessionPrincipal,
    @Body() dto: DeleteAccountDto,
    @Client() client: ClientInfo,
  ): Promise<void> {
    return this.users.deleteAccount(user, dto, client);
  }

  @Get('me/identities')
  @Scopes('profile')
  @ApiOperation({ summary: 'External identities linked to the caller' })
  @ApiOkResponse({ type: LinkedIdentityDto, isArray: true })
  @ApiErrors(401, 403)
  myIdentities(@CurrentUser() user: Principal): Promise<LinkedIdentityDto[]> {
    return this.identities.list(user.userId);
  }

  @Post('me/identities')
  @Scopes('profile')
  @ApiOperation({
    summary: 'Link an external identity, proving both accounts: a fresh token of the external one, this password',
  })
  @ApiCreatedResponse({ type: LinkedIdentityDto })
  @ApiErrors(400, 401, 403, 409, 429, 503)
  linkIdentity(
    @CurrentUser() user: Principal,
    @Body() dto: LinkIdentityDto,
    @Client() client: ClientInfo,
  ): Promise<LinkedIdentityDto> {
    return this.identities.linkOwn(user, dto.subjectToken, dto.password, client);
  }

  @Delete('me/identities/:identityId')
  @Scopes('profile')
  @HttpCode(204)
  @ApiOperation({ summary: 'Unlink an external identity (never the last way to sign in)' })
  @ApiNoContentResponse()
  @ApiErrors(401, 403, 404, 409)
  unlinkIdentity(
    @CurrentUser() user: Principal,
    @Param('identityId', uuidParam('identity', ErrorCode.NOT_FOUND)) identityId: string,
    @Client() client: ClientInfo,
  ): Promise<void> {
    return this.identities.unlinkOwn(user, identityId, client);
  }

  @Get()
  @Roles('admin')
  @Scopes('users:admin')
  @ApiOperation({ summary: 'Admin: list users' })
  @ApiOkResponse({ type: UserPageDto })
  @ApiErrors(400, 401, 403)
  list(@Query() query: UserSearchQueryDto): Promise<UserPageDto> {
    return this.users.list(query.limit, query.cursor, query.q);
  }

  @Get(':id')
  @Roles('admin')
  @Scopes('users:admin')
  @ApiOperation({ summary: 'Admin: one user, with whether the account is disabled' })
  @ApiOkResponse({ type: AdminUserDto })
  @ApiErrors(401, 403, 404)
  adminGet(@Param('id', uuidParam('user', ErrorCode.USER_NOT_FOUND)) id: string): Promise<AdminUserDto> {
    return this.users.adminGet(id);
  }

  @Get(':id/sessions')
  @Roles('admin')
  @Scopes('users:admin')
  @ApiOperation({ summary: "Admin: a user's live sessions, newest first" })
  @ApiOkResponse({ type: AdminSessionDto, isArray: true })
  @ApiErrors(401, 403, 404)
  sessionsOf(@Param('id', uuidParam('user', ErrorCode.USER_NOT_FOUND)) id: string): Promise<AdminSessionDto[]> {
    return this.users.sessionsOf(id);
  }

  @Delete(':id/sessions/:sessionId')
  @Roles('admin')
  @Scopes('users:admin')
  @HttpCode(204)
  @ApiOperation({ summary: "Admin: end one of a user's sessions (its access tokens are refused at once)" })
  @ApiNoContentResponse()
  @ApiErrors(401, 403, 404)
  revokeSessionOf(
    @CurrentUser() user: Principal,
    @Param('id', uuidParam('user', ErrorCode.USER_NOT_FOUND)) id: string,
    @Param('sessionId', uuidParam('session', ErrorCode.NOT_FOUND)) sessionId: string,
    @Client() client: ClientInfo,
  ): Promise<void> {
    return this.users.revokeSessionOf(user, id, sessionId, client);
  }

  @Delete(':id/sessions')
  @Roles('admin')
  @Scopes('users:admin')
  @HttpCode(204)
  @ApiOperation({ summary: 'Admin: end every session of a user (the account stays enabled)' })
  @ApiNoContentResponse()
  @ApiErrors(401, 403, 404)
  revokeSessionsOf(
    @CurrentUser() user: Principal,
    @Param('id', uuidParam('user', ErrorCode.USER_NOT_FOUND)) id: string,
    @Client() client: ClientInfo,
  ): Promise<void> {
    return this.users.revokeSessionsOf(user, id, client);
  }

  @Patch(':id')
  @Roles('admin')
  @Scopes('users:admin')
  @ApiOperation({ summary: 'Admin: change roles or disable; disabling revokes every session' })
  @ApiOkResponse({ type: UserDto })
  @ApiErrors(400, 401, 403, 404)
  adminUpdate(
    @CurrentUser() user: Principal,
    @Param('id', uuidParam('user', ErrorCode.USER_NOT_FOUND)) id: string,
    @Body() dto: AdminUpdateUserDto,
    @Client() client: ClientInfo,
  ): Promise<UserDto> {
    return this.users.adminUpdate(user, id, dto, client);
  }

  @Delete(':id/mfa')
  @Roles('admin')
  @Scopes('users:admin')
  @HttpCode(204)
  @ApiOperation({ summary: "Admin: remove a user's two-step sign-in (lost device); every session of theirs ends" })
  @ApiNoContentResponse()
  @ApiErrors(401, 403, 404, 409)
  adminResetMfa(
    @CurrentUser() user: Principal,
    @Param('id', uuidParam('user', ErrorCode.USER_NOT_FOUND)) id: string,
    @Client() client: ClientInfo,
  ): Promise<void> {
    return this.users.adminResetMfa(user, id, client);
  }

  @Post(':id/identities')
  @Roles('admin')
  @Scopes('users:admin')
  @ApiOperation({ summary: 'Admin: link an external identity to a user before its first sign-in' })
  @ApiCreatedResponse({ type: LinkedIdentityDto })
  @ApiErrors(400, 401, 403, 404, 409)
  adminLinkIdentity(
    @CurrentUser() user: Principal,
    @Param('id', uuidParam('user', ErrorCode.USER_NOT_FOUND)) id: string,
    @Body() dto: AdminLinkIdentityDto,
    @Client() client: ClientInfo,
  ): Promise<LinkedIdentityDto> {
    return this.identities.linkByAdmin(user, id, dto.issuer, dto.subject, client);
  }

  @Delete(':id/identities/:identityId')
  @Roles('admin')
  @Scopes('users:admin')
  @HttpCode(204)
  @ApiOperation({ summary: "Admin: unlink a user's external identity" })
  @ApiNoContentResponse()
  @ApiErrors(401, 403, 404, 409)
  adminUnlinkIdentity(
    @CurrentUser() user: Principal,
    @Param('id', uuidParam('user', ErrorCode.USER_NOT_FOUND)) id: string,
    @Param('identityId', uuidParam('identity', ErrorCode.NOT_FOUND)) identityId: string,
    @Client() client: ClientInfo,
  ): Promise<void> {
    return this.identities.unlinkByAdmin(user, id, identityId, client);
  }
}
