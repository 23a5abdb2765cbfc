import { Body, Controller, Delete, Get, Header, HttpCode, Param, Post, Req, Res, UseGuards } from '@nestjs/common';
import { uuidParam } from '../common/http/uuid-param.js';
import {
  ApiBearerAuth,
  ApiCookieAuth,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import { SkipThrottle } from '@nestjs/throttler';
import cookieParser from 'cookie-parser';
import type { Request, Response } from 'express';
import { ApiErrors } from '../common/http/api-errors.decorator.js';
import { AppError } from '../common/errors/app-error.js';
import { cookieCount } from '../common/http/cookies.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { AuthService, assertOriginAllowed, type AuthResult } from './auth.service.js';
import { Client } from '../common/http/client.decorator.js';
import { CurrentSession, type SessionPrincipal } from '../access/auth.decorators.js';
import { Public } from '../access/public.decorator.js';
import { AuthResponseDto, SessionDto, TokenResponseDto } from './dto/auth-responses.dto.js';
import { FederatedSessionDto, LoginDto, SelectTenantDto, SignupDto } from './dto/auth.dto.js';
import { REFRESH_COOKIE, clearRefreshCookie, sendSessionCookie } from './refresh-cookie.js';
import type { ClientInfo } from '../common/http/client-info.js';
import { sessionJson } from '../sessions/sessions.repository.js';
import { SessionsService } from '../sessions/sessions.service.js';
import { IpThrottlerGuard } from '../throttle/ip-throttler.guard.js';

const uuid = uuidParam('session');

@ApiTags('auth')
@Controller('auth')
export class AuthController {
  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly auth: AuthService,
    private readonly sessions: SessionsService,
  ) {}

  @Public()
  @Post('signup')
  @UseGuards(IpThrottlerGuard)
  @SkipThrottle({ refresh: true })
  @ApiOperation({ summary: 'Create an account and sign in (sets the refresh cookie)' })
  @ApiCreatedResponse({ type: AuthResponseDto })
  @ApiErrors(400, 409, 413, 415, 429)
  async signup(@Body() dto: SignupDto, @Client() client: ClientInfo, @Res({ passthrough: true }) res: Response) {
    return this.withCookie(res, await this.auth.signup(dto, client));
  }

  @Public()
  @Post('login')
  @HttpCode(200)
  @ApiOperation({ summary: 'Sign in with username (or email) and password (sets the refresh cookie)' })
  @ApiOkResponse({ type: AuthResponseDto })
  @ApiErrors(400, 401, 403, 429)
  async login(@Body() dto: LoginDto, @Client() client: ClientInfo, @Res({ passthrough: true }) res: Response) {
    return this.withCookie(res, await this.auth.login(dto, client));
  }

  @Public()
  @Post('federated/session')
  @HttpCode(200)
  @ApiOperation({
    summary:
      "Exchange a configured external issuer's token (once, while fresh) for a session (sets the refresh cookie)",
  })
  @ApiOkResponse({ type: AuthResponseDto })
  @ApiErrors(400, 401, 403, 429, 503)
  async federatedSession(
    @Body() dto: FederatedSessionDto,
    @Client() client: ClientInfo,
    @Res({ passthrough: true }) res: Response,
  ) {
    return this.withCookie(res, await this.auth.federatedSession(dto.subjectToken, client));
  }

  @Public()
  @Post('refresh')
  @HttpCode(200)
  @UseGuards(IpThrottlerGuard)
  @SkipThrottle({ signup: true })
  @ApiCookieAuth('refreshCookie')
  @ApiOperation({ summary: 'Rotate the refresh cookie and get a new access token' })
  @ApiOkResponse({ type: TokenResponseDto })
  @ApiErrors(401, 403, 429)
  async refresh(@Req() req: Request, @Client() client: ClientInfo, @Res({ passthrough: true }) res: Response) {
    // Checked before anything else and without touching the cookie: a page of another
    // origin on the same site (its requests carry the SameSite cookie) must not be able
    // to end the user's session by provoking a failure that clears it.
    this.checkOrigin(req);
    try {
      return this.withCookie(res, await this.auth.refresh(readCookie(req), client));
    } catch (error) {
      // An authentication failure ends the cookie; a passing outage (5xx) or 429 does not.
      const status = error instanceof AppError ? error.status : undefined;
      if (status === 401 || status === 403) clearRefreshCookie(res, this.config.COOKIE_SECURE);
      throw error;
    }
  }

  @Public()
  @Post('logout')
  @HttpCode(204)
  @ApiBearerAuth('bearer')
  @ApiCookieAuth('refreshCookie')
  @ApiOperation({ summary: 'Revoke the session of the refresh cookie and/or bearer token; idempotent' })
  @ApiNoContentResponse()
  @ApiErrors(403)
  async logout(
    @Req() req: Request,
    @Client() client: ClientInfo,
    @Res({ passthrough: true }) res: Response,
  ): Promise<void> {
    this.checkOrigin(req);
    const bearer = /^Bearer +(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    await this.auth.logout(readCookie(req, 'ignore'), bearer, client);
    clearRefreshCookie(res, this.config.COOKIE_SECURE);
  }

  @Post('logout-all')
  @HttpCode(204)
  @ApiBearerAuth('bearer')
  @ApiOperation({ summary: 'Revoke every session of the caller' })
  @ApiNoContentResponse()
  @ApiErrors(401)
  async logoutAll(
    @CurrentSession() user: SessionPrincipal,
    @Client() client: ClientInfo,
    @Res({ passthrough: true }) res: Response,
  ): Promise<void> {
    await this.auth.logoutAll(user.userId, user.sessionId, client);
    clearRefreshCookie(res, this.config.COOKIE_SECURE);
  }

  @Get('sessions')
  @ApiBearerAuth('bearer')
  @ApiOperation({ summary: "The caller's live sessions" })
  @ApiOkResponse({ type: SessionDto, isArray: true })
  @ApiErrors(401)
  async listSessions(@CurrentSession() user: SessionPrincipal): Promise<SessionDto[]> {
    const sessions = await this.sessions.list(user.userId);
    return sessions.map((s) => ({ ...sessionJson(s), current: s.id === user.sessionId }));
  }

  @Delete('sessions/:id')
  @HttpCode(204)
  @ApiBearerAuth('bearer')
  @ApiOperation({ summary: "Revoke one of the caller's sessions" })
  @ApiNoContentResponse()
  @ApiErrors(401, 404)
  async deleteSession(
    @CurrentSession() user: SessionPrincipal,
    @Param('id', uuid) id: string,
    @Client() client: ClientInfo,
  ): Promise<void> {
    if (!(await this.sessions.revokeOwned(user.userId, id, { sessionId: user.sessionId, client })))
      throw new AppError(ErrorCode.NOT_FOUND, 'No such session');
  }

  @Post('tenant')
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  @ApiBearerAuth('bearer')
  @ApiOperation({
    summary: "Select a tenant (or none) in the caller's session: an access token with `tid`, kept by refresh",
  })
  @ApiOkResponse({ type: TokenResponseDto })
  @ApiErrors(400, 401, 403, 404)
  selectTenant(
    @CurrentSession() user: SessionPrincipal,
    @Body() dto: SelectTenantDto,
    @Client() client: ClientInfo,
  ): Promise<TokenResponseDto> {
    return this.auth.selectTenant(user, dto.tenantId === null ? null : dto.tenantId.toLowerCase(), client);
  }

  private withCookie(res: Response, result: AuthResult) {
    sendSessionCookie(
      res,
      result.session.refreshToken,
      this.sessions.maxAgeSeconds(result.session.expiresAt),
      this.config.COOKIE_SECURE,
    );
    return result.body;
  }

  private checkOrigin(req: Request): void {
    assertOriginAllowed(req.headers.origin, `${req.protocol}://${req.get('host') ?? ''}`, this.config.CORS_ORIGINS);
  }
}

/**
 * The refresh cookie. Sent twice in one request (cookie-parser would silently keep the first),
 * it is never used: `duplicate: 'reject'` (refresh) answers 401 REFRESH_TOKEN_INVALID, and
 * `'ignore'` (logout) treats it as no cookie at all.
 */
function readCookie(req: Request, duplicate: 'reject' | 'ignore' = 'reject'): string | undefined {
  if (cookieCount(req.headers.cookie, REFRESH_COOKIE) > 1) {
    if (duplicate === 'ignore') return undefined;
    throw new AppError(ErrorCode.REFRESH_TOKEN_INVALID, 'Invalid or expired refresh token');
  }
  const value = cookiesOf(req)[REFRESH_COOKIE];
  return typeof value === 'string' ? value : undefined;
}

/**
 * cookie-parser, run only on the routes that read the refresh cookie (not as an application
 * middleware, which parsed the Cookie header of every request): the very same parse
 * (`cookie` decoding, the first of duplicates, `j:` JSON cookies), synchronous.
 */
const parseCookies = cookieParser();

function cookiesOf(req: Request): Record<string, unknown> {
  if (req.cookies === undefined) parseCookies(req, undefined as unknown as Response, () => undefined);
  return req.cookies as Record<string, unknown>;
}
