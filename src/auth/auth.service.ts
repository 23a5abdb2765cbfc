import { HttpStatus, Injectable, Logger } from '@nestjs/common';
import { Clock } from '../common/clock.js';
import { AppException, forbidden, unauthorized } from '../common/errors/app.exception.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { PrismaService } from '../database/prisma.service.js';
import { UserDto, sortRoles } from '../users/dto/user.dto.js';
import { UsersRepository, emailKey, usernameKey } from '../users/users.repository.js';
import { AuditService } from './audit/audit.service.js';
import type { LoginDto, SignupDto } from './dto/auth.dto.js';
import { PasswordHasher } from './passwords/password-hasher.service.js';
import { RevocationService } from './revocation/revocation.service.js';
import { SessionsService, type ClientInfo, type IssuedSession } from './sessions/sessions.service.js';
import { LoginThrottleService, throttleAccountKey } from './throttle/login-throttle.service.js';
import { AccessTokenService } from './tokens/access-token.service.js';

export interface TokenResponse {
  accessToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
}

export interface AuthResult {
  body: TokenResponse & { user?: UserDto };
  session: IssuedSession;
}

@Injectable()
export class AuthService {
  private readonly logger = new Logger('Auth');

  constructor(
    private readonly users: UsersRepository,
    private readonly passwords: PasswordHasher,
    private readonly sessions: SessionsService,
    private readonly tokens: AccessTokenService,
    private readonly throttle: LoginThrottleService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly prisma: PrismaService,
    private readonly revocation: RevocationService,
  ) {}

  async signup(dto: SignupDto, client: ClientInfo): Promise<AuthResult> {
    const passwordHash = await this.passwords.hash(dto.password);
    // One transaction: a signup answered with an error (the database lost half-way) leaves no
    // account behind that the client would then find "taken".
    const { user, session } = await this.prisma.$transaction(async (tx) => {
      const created = await this.users.create(
        { username: dto.username, email: dto.email ?? null, displayName: dto.displayName ?? null, passwordHash, now: this.clock.now() },
        tx,
      );
      const opened = await this.sessions.open({ id: created.id, roles: sortRoles(created.roles) }, client, tx);
      await this.audit.record('signup', { userId: created.id, sessionId: opened.sessionId }, client, undefined, tx);
      return { user: created, session: opened };
    });
    return { body: { user: UserDto.from(user), ...(await this.tokenResponse(session)) }, session };
  }

  /**
   * Unknown account and wrong password take the same bcrypt work and give the same body;
   * a disabled account is only revealed to someone who knows its password.
   */
  async login(dto: LoginDto, client: ClientInfo): Promise<AuthResult> {
    const login = dto.username.includes('@') ? emailKey(dto.username) : usernameKey(dto.username);
    const ip = client.ip ?? 'unknown';
    // Looked up first: an existing account is throttled by its id, whichever identifier names it.
    const user = await this.users.findByLogin(dto.username);
    const accountKey = throttleAccountKey(user?.id ?? null, login);
    try {
      await this.throttle.check(accountKey, ip);
    } catch (error) {
      await this.audit.record('login.throttled', {}, client, { login });
      throw error;
    }
    const { ok, rehash } = await this.passwords.verifyWithRehash(dto.password, user?.passwordHash ?? null);
    if (!user || !ok) {
      await this.throttle.recordFailure(accountKey, ip);
      await this.audit.record('login.failed', { userId: user?.id ?? null }, client, { login });
      throw unauthorized(ErrorCode.INVALID_CREDENTIALS, 'Invalid username or password');
    }
    await this.throttle.recordSuccess(accountKey, ip);
    if (user.disabled) throw forbidden(ErrorCode.ACCOUNT_DISABLED, 'This account is disabled');
    let verifiedHash = user.passwordHash;
    if (rehash) {
      // The configured cost went up since this hash was made, or it was made before passwords
      // were NFC-normalised: upgrade it now that we have the password.
      const upgraded = await this.passwords.hash(dto.password);
      if (await this.users.replacePasswordHash(user.id, user.passwordHash, upgraded)) verifiedHash = upgraded;
    }
    // Only if the password just verified is still the current one and the account still
    // enabled: a login racing a password change or a disable opens nothing.
    const session = await this.sessions.openIfCredentialsCurrent(
      { id: user.id, roles: sortRoles(user.roles), passwordHash: verifiedHash },
      client,
    );
    if (!session) throw unauthorized(ErrorCode.INVALID_CREDENTIALS, 'Invalid username or password');
    await this.audit.record('login.succeeded', { userId: user.id, sessionId: session.sessionId }, client);
    return { body: { user: UserDto.from(user), ...(await this.tokenResponse(session)) }, session };
  }

  async refresh(presented: string | undefined, client: ClientInfo): Promise<AuthResult> {
    const session = await this.sessions.refresh(presented, client);
    return { body: await this.tokenResponse(session), session };
  }

  /** Revokes the session of the refresh cookie and/or of the bearer token; idempotent. */
  async logout(refreshToken: string | undefined, bearer: string | undefined, client: ClientInfo): Promise<void> {
    const ids = new Map<string, string>();
    const fromCookie = await this.sessions.sessionOfToken(refreshToken);
    if (fromCookie) ids.set(fromCookie.id, fromCookie.userId);
    const fromBearer = bearer ? this.tokens.verifyIgnoringExpiry(bearer) : null;
    if (fromBearer) ids.set(fromBearer.sessionId, fromBearer.userId);
    for (const [sessionId, userId] of ids) {
      await this.sessions.revoke(sessionId, 'logout');
      await this.audit.record('logout', { userId, sessionId }, client);
    }
  }

  async logoutAll(userId: string, sessionId: string, client: ClientInfo): Promise<void> {
    const ids = await this.sessions.revokeAllOf(userId, 'logout_all');
    await this.audit.record('logout_all', { userId, sessionId }, client, { sessions: ids.length });
  }

  /** Signs the access token, once a token of this user signed now would not be born revoked. */
  private async tokenResponse(session: IssuedSession): Promise<TokenResponse> {
    await this.revocation.untilSignable(session.userId);
    return {
      accessToken: this.tokens.sign({ id: session.userId, roles: session.roles }, session.sessionId),
      tokenType: 'Bearer',
      expiresIn: this.tokens.ttlSeconds,
    };
  }
}

/** 403 for a request whose Origin is present and neither ours nor in CORS_ORIGINS. */
export function assertOriginAllowed(origin: string | undefined, ownOrigin: string, allowed: readonly string[]): void {
  if (origin === undefined || origin === ownOrigin || allowed.includes(origin)) return;
  throw new AppException(HttpStatus.FORBIDDEN, ErrorCode.ORIGIN_NOT_ALLOWED, 'Origin not allowed');
}
