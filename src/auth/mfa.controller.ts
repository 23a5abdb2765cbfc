import { Body, Controller, Delete, Get, HttpCode, Post, Res } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { CurrentSession, type SessionPrincipal } from '../access/auth.decorators.js';
import { Public } from '../access/public.decorator.js';
import { UsersRepository } from '../accounts/users.repository.js';
import { accountGone, AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { ApiErrors } from '../common/http/api-errors.decorator.js';
import { Client } from '../common/http/client.decorator.js';
import type { ClientInfo } from '../common/http/client-info.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { MfaService } from '../mfa/mfa.service.js';
import { SessionsService } from '../sessions/sessions.service.js';
import { AuthService } from './auth.service.js';
import {
  DisableMfaDto,
  LoginMfaDto,
  MfaConfirmedDto,
  MfaLoginResponseDto,
  MfaStatusDto,
  PasswordOnlyDto,
  RecoveryCodesDto,
  TotpCodeDto,
  TotpEnrolmentDto,
} from './dto/mfa.dto.js';
import { sendSessionCookie } from './refresh-cookie.js';

/** Two-step sign-in (contract v2 §B): enrolment, recovery codes, disabling, and the login's second step. */
@ApiTags('mfa')
@Controller('auth')
export class MfaController {
  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly mfa: MfaService,
    private readonly auth: AuthService,
    private readonly users: UsersRepository,
    private readonly sessions: SessionsService,
  ) {}

  @Get('mfa')
  @ApiBearerAuth('bearer')
  @ApiOperation({ summary: "The caller's second factors" })
  @ApiOkResponse({ type: MfaStatusDto })
  @ApiErrors(401, 403)
  status(@CurrentSession() caller: SessionPrincipal): Promise<MfaStatusDto> {
    return this.mfa.status(caller.userId);
  }

  @Post('mfa/totp')
  @ApiBearerAuth('bearer')
  @ApiOperation({ summary: 'Start a TOTP enrolment (replaces a pending one): a secret to scan, confirmed next' })
  @ApiCreatedResponse({ type: TotpEnrolmentDto })
  @ApiErrors(400, 401, 403, 409, 429)
  async enrol(
    @CurrentSession() caller: SessionPrincipal,
    @Body() dto: PasswordOnlyDto,
    @Client() client: ClientInfo,
    @Res({ passthrough: true }) res: Response,
  ): Promise<TotpEnrolmentDto> {
    res.setHeader('Cache-Control', 'no-store');
    return this.mfa.startEnrolment(await this.me(caller), dto.password, client);
  }

  @Post('mfa/totp/confirm')
  @HttpCode(200)
  @ApiBearerAuth('bearer')
  @ApiOperation({
    summary: 'Confirm the enrolment with a first code: recovery codes (shown once), an aal2 token; other sessions end',
  })
  @ApiOkResponse({ type: MfaConfirmedDto })
  @ApiErrors(400, 401, 403, 429)
  async confirm(
    @CurrentSession() caller: SessionPrincipal,
    @Body() dto: TotpCodeDto,
    @Client() client: ClientInfo,
    @Res({ passthrough: true }) res: Response,
  ): Promise<MfaConfirmedDto> {
    res.setHeader('Cache-Control', 'no-store');
    return this.auth.confirmMfa(caller, dto.code, client);
  }

  @Post('mfa/recovery-codes')
  @HttpCode(200)
  @ApiBearerAuth('bearer')
  @ApiOperation({ summary: 'A new set of recovery codes (the old set dies), for a current TOTP code' })
  @ApiOkResponse({ type: RecoveryCodesDto })
  @ApiErrors(400, 401, 403, 409, 429)
  regenerate(
    @CurrentSession() caller: SessionPrincipal,
    @Body() dto: TotpCodeDto,
    @Client() client: ClientInfo,
    @Res({ passthrough: true }) res: Response,
  ): Promise<RecoveryCodesDto> {
    res.setHeader('Cache-Control', 'no-store');
    return this.mfa.regenerateRecoveryCodes(caller, dto.code, client);
  }

  @Delete('mfa')
  @HttpCode(204)
  @ApiBearerAuth('bearer')
  @ApiOperation({ summary: 'Turn two-step sign-in off (password and a code); other sessions end' })
  @ApiNoContentResponse()
  @ApiErrors(400, 401, 403, 409, 429)
  async disable(
    @CurrentSession() caller: SessionPrincipal,
    @Body() dto: DisableMfaDto,
    @Client() client: ClientInfo,
  ): Promise<void> {
    await this.mfa.disable(caller, await this.me(caller), dto.password, dto.code, client);
  }

  @Public()
  @Post('login/mfa')
  @HttpCode(200)
  @ApiOperation({ summary: 'The second step of a login: the mfaToken with a TOTP code or a recovery code' })
  @ApiOkResponse({ type: MfaLoginResponseDto })
  @ApiErrors(400, 401, 429)
  async loginSecondStep(
    @Body() dto: LoginMfaDto,
    @Client() client: ClientInfo,
    @Res({ passthrough: true }) res: Response,
  ): Promise<MfaLoginResponseDto> {
    if ((dto.code === undefined) === (dto.recoveryCode === undefined)) {
      throw new AppError(ErrorCode.VALIDATION_FAILED, ['send exactly one of code and recoveryCode']);
    }
    const factor = dto.code !== undefined ? { code: dto.code } : { recoveryCode: dto.recoveryCode! };
    const result = await this.auth.loginSecondStep(dto.mfaToken, factor, client);
    sendSessionCookie(
      res,
      result.session.refreshToken,
      this.sessions.maxAgeSeconds(result.session.expiresAt),
      this.config.COOKIE_SECURE,
    );
    return result.body as MfaLoginResponseDto;
  }

  private async me(caller: SessionPrincipal) {
    const user = await this.users.findById(caller.userId);
    if (!user) throw accountGone();
    return user;
  }
}
