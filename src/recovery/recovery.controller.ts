import { Body, Controller, Delete, HttpCode, Post } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBearerAuth,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import { CurrentSession, CurrentUser, OptionalAuth, Scopes, type SessionPrincipal } from '../access/auth.decorators.js';
import { Public } from '../access/public.decorator.js';
import { AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { ApiErrors } from '../common/http/api-errors.decorator.js';
import type { ClientInfo } from '../common/http/client-info.js';
import { Client } from '../common/http/client.decorator.js';
import type { Principal } from '../tokens/principal.js';
import {
  ChangeEmailDto,
  ForgotPasswordDto,
  MessageDto,
  PendingEmailDto,
  ResetPasswordDto,
  TokenDto,
  VerifyRequestDto,
  VerifyResultDto,
} from './dto/recovery.dto.js';
import { ACCEPTED_MESSAGE, RecoveryService, VERIFY_ACCEPTED_MESSAGE } from './recovery.service.js';

@ApiTags('recovery')
@Controller()
export class RecoveryController {
  constructor(private readonly recovery: RecoveryService) {}

  @OptionalAuth()
  @Scopes('profile')
  @Post('auth/email/verify-request')
  @HttpCode(202)
  @ApiBearerAuth('bearer')
  @ApiOperation({
    summary: "Send a verification link: to the caller's address (bearer, no body) or to {email} (anonymous)",
  })
  @ApiAcceptedResponse({ type: MessageDto })
  @ApiErrors(400, 401, 409, 429)
  async verifyRequest(
    @CurrentUser({ optional: true }) caller: Principal | undefined,
    @Body() dto: VerifyRequestDto,
    @Client() client: ClientInfo,
  ): Promise<MessageDto> {
    if (caller) {
      if (dto.email !== undefined)
        throw new AppError(ErrorCode.VALIDATION_FAILED, ['email must not be given with a bearer token']);
      await this.recovery.requestOwnVerification(caller, client);
      return { message: 'A verification link has been sent.' };
    }
    if (dto.email === undefined)
      throw new AppError(ErrorCode.VALIDATION_FAILED, ['email must be a valid email address']);
    await this.recovery.requestVerification(dto.email, client);
    return { message: VERIFY_ACCEPTED_MESSAGE };
  }

  @Public()
  @Post('auth/email/verify')
  @HttpCode(200)
  @ApiOperation({ summary: 'Confirm an address with the token of a verification or email-change link' })
  @ApiOkResponse({ type: VerifyResultDto })
  @ApiErrors(400, 409, 429)
  async verify(@Body() dto: TokenDto, @Client() client: ClientInfo): Promise<VerifyResultDto> {
    return { status: await this.recovery.verify(dto.token, client) };
  }

  @Public()
  @Post('auth/password/forgot')
  @HttpCode(202)
  @ApiOperation({ summary: 'Mail a password-reset link; the same answer whether or not the account exists' })
  @ApiAcceptedResponse({ type: MessageDto })
  @ApiErrors(400, 429)
  async forgot(@Body() dto: ForgotPasswordDto, @Client() client: ClientInfo): Promise<MessageDto> {
    await this.recovery.forgotPassword(dto.login, client);
    return { message: ACCEPTED_MESSAGE };
  }

  @Public()
  @Post('auth/password/reset')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Set a new password with the token of a reset link; every session is signed out, none is opened',
  })
  @ApiNoContentResponse()
  @ApiErrors(400, 403, 429)
  async reset(@Body() dto: ResetPasswordDto, @Client() client: ClientInfo): Promise<void> {
    await this.recovery.resetPassword(dto.token, dto.newPassword, client);
  }

  @Post('users/me/email')
  @Scopes('profile')
  @HttpCode(202)
  @ApiBearerAuth('bearer')
  @ApiOperation({ summary: 'Change the email address: the new address (and the verified current one) must confirm' })
  @ApiAcceptedResponse({ type: PendingEmailDto })
  @ApiErrors(400, 401, 403, 409, 429)
  changeEmail(
    @CurrentSession() caller: SessionPrincipal,
    @Body() dto: ChangeEmailDto,
    @Client() client: ClientInfo,
  ): Promise<PendingEmailDto> {
    return this.recovery.requestEmailChange(caller, dto.newEmail, dto.password, client);
  }

  @Delete('users/me/email/pending')
  @Scopes('profile')
  @HttpCode(204)
  @ApiBearerAuth('bearer')
  @ApiOperation({ summary: 'Cancel a pending email change (idempotent)' })
  @ApiNoContentResponse()
  @ApiErrors(401, 403)
  cancelEmailChange(@CurrentSession() caller: SessionPrincipal, @Client() client: ClientInfo): Promise<void> {
    return this.recovery.cancelEmailChange(caller, client);
  }
}
