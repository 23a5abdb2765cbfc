import { Injectable, Logger } from '@nestjs/common';
import { Clock } from '../common/clock.js';
import { accountGone, AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { AccountMailService } from '../accounts/account-mail.service.js';
import { UserDto } from '../accounts/user.dto.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { isRole, sortRoles } from '../common/account-rules.js';
import type { SessionPrincipal } from '../access/auth.decorators.js';
import { TenantsRepository } from '../tenants/tenants.repository.js';
import { tenantNotFound } from '../tenants/tenant-access.service.js';
import { UsersRepository, emailKey, usernameKey, type UserRecord } from '../accounts/users.repository.js';
import { AuditService } from '../audit/audit.service.js';
import type { LoginDto, SignupDto } from './dto/auth.dto.js';
import { PasswordHasher } from '../accounts/password-hasher.service.js';
import { RevocationService } from '../tokens/revocation.service.js';
import type { ClientInfo } from '../common/http/client-info.js';
import { SessionsService, type IssuedSession } from '../sessions/sessions.service.js';
import { LoginThrottleService, throttleAccountKey } from '../throttle/login-throttle.service.js';
import { AccessTokenService } from '../tokens/access-token.service.js';
import { TokenVerifier } from '../tokens/token-verifier.js';
import { MfaService, type SecondFactor } from '../mfa/mfa.service.js';
import { IdentitiesService } from '../identities/identities.service.js';
import { IdentitiesRepository } from '../identities/identities.repository.js';
import { RateLimiter } from '../throttle/rate-limiter.js';

/** Exchanges of external tokens per client address and minute. */
const EXCHANGE_IP_LIMIT = 60;

export interface TokenResponse {
  accessToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
}

export interface AuthResult {
  body: TokenResponse & { user?: UserDto; recoveryCodesRemaining?: number };
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
    private readonly txHost: TransactionHost<PrismaTx>,
    private readonly revocation: RevocationService,
    private readonly verifier: TokenVerifier,
    private readonly accountMail: AccountMailService,
    private readonly mfa: MfaService,
    @InjectConfig() private readonly config: AppConfig,
    private readonly tenants: TenantsRepository,
    private readonly identities: IdentitiesService,
    private readonly identitiesRepo: IdentitiesRepository,
    private readonly limiter: RateLimiter,
  ) {}

  async signup(dto: SignupDto, client: ClientInfo): Promise<AuthResult> {
    const passwordHash = await this.passwords.hash(dto.password);
    // One transaction: a signup answered with an error (the database lost half-way) leaves no
    // account behind that the client would then find "taken".
    const { user, session } = await this.txHost.withTransaction(async () => {
      const created = await this.users.create({
        username: dto.username,
        email: dto.email ?? null,
        displayName: dto.displayName ?? null,
        passwordHash,
        now: this.clock.now(),
      });
      const opened = await this.sessions.open({ id: created.id, roles: sortRoles(created.roles) }, client);
      await this.audit.record('signup', { userId: created.id, sessionId: opened.sessionId }, client);
      return { user: created, session: opened };
    });
    if (user.email) {
      // Queued, never awaited for delivery; a failure to queue must not fail the signup.
      await this.accountMail
        .sendVerification({ id: user.id, email: user.email, displayName: user.displayName }, client.ip)
        .catch((error: unknown) =>
          this.logger.warn(`verification mail for a new account not queued: ${String(error)}`),
        );
    }
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
    // The attempt takes its place in the budget (counted as a failure) before the password is
    // verified: concurrent guesses cannot all pass a check made before any of them counted.
    const attempt = await this.throttle.admit(accountKey, ip).catch(async (error: unknown) => {
      // Only a refusal is one (not a throttle that could not be asked: Redis away answers 503).
      if (error instanceof AppError && error.code === ErrorCode.TOO_MANY_ATTEMPTS) {
        await this.audit.record('login.throttled', {}, client, { login });
      }
      throw error;
    });
    // A passwordless account (a machine client's service user) takes the unknown-account
    // path: the same dummy bcrypt work and the same 401 (contract v2 §0.4).
    const { ok, rehash } = await this.passwords.verifyWithRehash(dto.password, user?.passwordHash ?? null);
    if (!user || user.passwordHash === null || !ok) {
      await this.audit.record('login.failed', { userId: user?.id ?? null }, client, { login });
      throw new AppError(ErrorCode.INVALID_CREDENTIALS, 'Invalid username or password');
    }
    await this.throttle.recordSuccess(attempt);
    if (user.disabled) throw new AppError(ErrorCode.ACCOUNT_DISABLED, 'This account is disabled');
    // REQUIRE_EMAIL_VERIFICATION: signing in by email needs the address proved (only said to
    // someone who knows the password).
    if (this.config.REQUIRE_EMAIL_VERIFICATION && dto.username.includes('@') && !user.emailVerifiedAt) {
      throw new AppError(
        ErrorCode.EMAIL_NOT_VERIFIED,
        'Verify your email address first: follow the link we sent, or ask for a new one',
      );
    }
    let verifiedHash: string = user.passwordHash;
    if (rehash) {
      // The configured cost went up since this hash was made, or it was made before passwords
      // were NFC-normalised: upgrade it now that we have the password.
      const upgraded = await this.passwords.hash(dto.password);
      if (await this.users.replacePasswordHash(user.id, user.passwordHash, upgraded)) verifiedHash = upgraded;
    }
    if (user.mfaEnabled) await this.requireSecondFactor(user, verifiedHash, client);
    // Only if the password just verified is still the current one, the account still enabled
    // and without a second factor: a login racing a password change, a disable or an MFA
    // enrolment opens nothing.
    const session = await this.sessions.openIfCredentialsCurrent({ id: user.id, passwordHash: verifiedHash }, client);
    if (!session) {
      // Two-step sign-in was turned on while this login ran: the second step is needed.
      const now = await this.users.findById(user.id);
      if (now?.mfaEnabled && now.passwordHash === verifiedHash && !now.disabled) {
        await this.requireSecondFactor(now, verifiedHash, client);
      }
      throw new AppError(ErrorCode.INVALID_CREDENTIALS, 'Invalid username or password');
    }
    await this.audit.record('login.succeeded', { userId: user.id, sessionId: session.sessionId }, client);
    return { body: { user: UserDto.from(user), ...(await this.tokenResponse(session)) }, session };
  }

  /**
   * The password was right for an account with two-step sign-in: a challenge for the second
   * step, answered 403 MFA_REQUIRED with its mfaToken. 403, not 200: a client that only knows
   * v1 and reads accessToken from a 200 must fail closed.
   */
  private async requireSecondFactor(user: UserRecord, verifiedHash: string, client: ClientInfo): Promise<never> {
    const challenge = await this.mfa.openChallenge(user, verifiedHash, client);
    throw new AppError(
      ErrorCode.MFA_REQUIRED,
      'A second factor is required: send a code with the mfaToken to /auth/login/mfa',
      { 'Cache-Control': 'no-store' },
      {
        extra: {
          mfaToken: challenge.mfaToken,
          mfaTokenExpiresIn: challenge.expiresIn,
          methods: ['totp', 'recovery_code'],
        },
      },
    );
  }

  /** The second step of a login (after 403 MFA_REQUIRED): the session opens here. */
  async loginSecondStep(mfaToken: string, factor: SecondFactor, client: ClientInfo): Promise<AuthResult> {
    const { user, session, recoveryCodesRemaining } = await this.mfa.completeLogin(mfaToken, factor, client);
    return {
      body: {
        user: UserDto.from(user),
        ...(await this.tokenResponse(session)),
        ...(recoveryCodesRemaining !== undefined ? { recoveryCodesRemaining } : {}),
      },
      session,
    };
  }

  /**
   * Confirms a TOTP enrolment: the recovery codes, and an access token of the caller's
   * session, now aal2 (its refreshes keep that).
   */
  async confirmMfa(
    caller: { userId: string; sessionId: string },
    code: string,
    client: ClientInfo,
  ): Promise<TokenResponse & { recoveryCodes: string[] }> {
    const { recoveryCodes, auth } = await this.mfa.confirmEnrolment(caller, code, client);
    const rolesReadAt = this.clock.nowMs();
    const roles = await this.users.currentRoles(caller.userId);
    if (!roles) throw accountGone();
    const token = await this.tokenResponse({
      userId: caller.userId,
      sessionId: caller.sessionId,
      roles: sortRoles(roles),
      rolesReadAt,
      auth,
    });
    return { recoveryCodes, ...token };
  }

  /**
   * POST /auth/tenant: selects a tenant the caller belongs to (or none) in their session and
   * answers an access token of that session with `tid`; refreshes keep it while the caller
   * stays a member. 404 TENANT_NOT_FOUND for a tenant they are not in.
   */
  async selectTenant(caller: SessionPrincipal, tenantId: string | null, client: ClientInfo): Promise<TokenResponse> {
    const rolesReadAt = this.clock.nowMs();
    const selected = await this.tenants.selectTenant(caller.sessionId, caller.userId, tenantId, this.clock.now());
    if (!selected) {
      if (tenantId === null) throw new AppError(ErrorCode.UNAUTHORIZED, 'The session has ended');
      throw tenantNotFound();
    }
    await this.audit.record('tenant.selected', { userId: caller.userId, sessionId: caller.sessionId }, client, {
      tenantId,
    });
    return this.tokenResponse({
      userId: caller.userId,
      sessionId: caller.sessionId,
      roles: sortRoles(selected.roles.filter(isRole)),
      rolesReadAt,
      auth: { amr: selected.amr, acr: selected.acr === 'aal2' ? 'aal2' : 'aal1', authTime: selected.authTime },
      tenant: tenantId ? { id: tenantId, roles: selected.tenantRoles ?? [] } : null,
    });
  }

  /**
   * POST /auth/federated/session: a token of a configured external issuer, at most
   * FEDERATION_EXCHANGE_MAX_AGE old, exchanged once for a Gatehouse session (as Supabase's
   * `grant_type=id_token`). Once: its `jti` (or hash) is kept until it expires, in the
   * transaction that opens the session, so a stolen 5-minute token cannot become two
   * sessions (contract v2 §D). The session's roles are the database's (a roleMap applies to
   * the external token used as a bearer, per request, and is never stored).
   */
  async federatedSession(subjectToken: string, client: ClientInfo): Promise<AuthResult> {
    await this.limiter.hit(`fed:ip:${client.ip ?? 'unknown'}`, EXCHANGE_IP_LIMIT, 60_000);
    const token = await this.identities.verifyFreshSubjectToken(subjectToken);
    const linked = await this.identities.userFor(token, client);
    if (linked.disabled) throw new AppError(ErrorCode.ACCOUNT_DISABLED, 'This account is disabled');
    if (linked.kind !== 'person')
      throw new AppError(ErrorCode.FEDERATED_TOKEN_INVALID, 'The external token is not valid');
    const issuer = token.issuer.issuer;
    const { user, session } = await this.txHost.withTransaction(async () => {
      if (!(await this.identitiesRepo.spend(issuer, token.replayId, new Date(token.claims.exp * 1000)))) {
        throw new AppError(ErrorCode.FEDERATED_TOKEN_REUSED, 'This external token was already exchanged');
      }
      // Read again in the transaction, locked: a disable or deletion committing now is seen.
      const current = await this.users.lockById(linked.userId);
      if (!current) throw new AppError(ErrorCode.FEDERATED_TOKEN_INVALID, 'The external token is not valid');
      if (current.disabled) throw new AppError(ErrorCode.ACCOUNT_DISABLED, 'This account is disabled');
      const opened = await this.sessions.openAuthenticated(
        { id: current.id, roles: sortRoles(current.roles) },
        client,
        {
          amr: ['fed'],
          acr: 'aal1',
        },
      );
      await this.identitiesRepo.markSession(opened.sessionId, issuer);
      await this.audit.record('federation.session', { userId: current.id, sessionId: opened.sessionId }, client, {
        issuer: token.issuer.name,
      });
      return { user: current, session: opened };
    });
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
    const fromBearer = bearer ? this.verifier.identify(bearer) : null;
    // Only a Gatehouse session's token names a session: a machine client's `sid` is its
    // secret, which logout must not revoke (the client admin API does that).
    if (fromBearer?.kind === 'user' && fromBearer.sessionId) ids.set(fromBearer.sessionId, fromBearer.userId);
    for (const [sessionId, userId] of ids) {
      await this.sessions.revoke(userId, sessionId, 'logout');
      await this.audit.record('logout', { userId, sessionId }, client);
    }
  }

  async logoutAll(userId: string, sessionId: string, client: ClientInfo): Promise<void> {
    const ids = await this.sessions.revokeAllOf(userId, 'logout_all');
    await this.audit.record('logout_all', { userId, sessionId }, client, { sessions: ids.length });
  }

  /**
   * Signs the access token with `iat` = when its roles were read, so that a role change
   * committed after that read revokes it (not-before). When this user was revoked at about
   * that time or since, the roles read may predate the change: wait until a token signed
   * now would not be born revoked (at most a second), read the roles again (waiting for a
   * change still committing) and sign with those.
   */
  private async tokenResponse(
    session: Pick<IssuedSession, 'userId' | 'roles' | 'rolesReadAt' | 'sessionId' | 'auth'> &
      Partial<Pick<IssuedSession, 'tenant'>>,
  ): Promise<TokenResponse> {
    let { roles, rolesReadAt } = session;
    if (this.revocation.userRevokedSince(session.userId, rolesReadAt)) {
      await this.revocation.untilSignable(session.userId);
      rolesReadAt = this.clock.nowMs();
      roles = sortRoles((await this.users.currentRoles(session.userId)) ?? []);
    }
    return {
      accessToken: await this.tokens.sign(
        { id: session.userId, roles },
        session.sessionId,
        session.auth,
        Math.floor(rolesReadAt / 1000),
        session.tenant
          ? { id: session.tenant.id, ...(this.config.TENANT_ROLES_IN_TOKEN ? { roles: session.tenant.roles } : {}) }
          : null,
      ),
      tokenType: 'Bearer',
      expiresIn: this.tokens.ttlSeconds,
    };
  }
}

/** 403 for a request whose Origin is present and neither ours nor in CORS_ORIGINS. */
export function assertOriginAllowed(origin: string | undefined, ownOrigin: string, allowed: readonly string[]): void {
  if (origin === undefined || origin === ownOrigin || allowed.includes(origin)) return;
  throw new AppError(ErrorCode.ORIGIN_NOT_ALLOWED, 'Origin not allowed');
}
