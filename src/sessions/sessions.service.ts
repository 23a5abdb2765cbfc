import { randomUUID } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import { Clock } from '../common/clock.js';
import { AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { AuditService } from '../audit/audit.service.js';
import type { ClientInfo } from '../common/http/client-info.js';
import { EventBus } from '../events/event-bus.js';
import { RevocationService } from '../tokens/revocation.service.js';
import type { Role } from '../common/account-rules.js';
import {
  hashRefreshToken,
  isWellFormedRefreshToken,
  newRefreshToken,
  openSuccessor,
  sealSuccessor,
} from './refresh-token.js';
import {
  SessionsRepository,
  type NewSession,
  type SessionAuth,
  type SessionTenant,
  type SessionView,
} from './sessions.repository.js';

export type { SessionAuth };

/** A session opened with a password only (RFC 8176 `pwd`, assurance level 1). */
export const passwordAuth = (at: Date): SessionAuth => ({ amr: ['pwd'], acr: 'aal1', authTime: at });

/** A session that a caller's statement is about to open (SessionsService.prepareOpen). */
export interface PreparedSession {
  id: string;
  session: NewSession;
  refreshToken: string;
  rolesReadAt: number;
}

export interface IssuedSession {
  sessionId: string;
  userId: string;
  roles: Role[];
  /**
   * When `roles` were read from the database (epoch ms, taken just before the statement):
   * the access token's `iat`, so that a role change committed after the read revokes it.
   */
  rolesReadAt: number;
  refreshToken: string;
  expiresAt: Date;
  /** What the access tokens of the session say of how the user signed in (amr, acr, auth_time). */
  auth: SessionAuth;
  /** The tenant selected in the session (`tid`) while the user is a member, with their roles there. */
  tenant: { id: string; roles: string[] } | null;
}

/**
 * Sessions and their refresh-token chain:
 * - login/signup open a session with a fresh token;
 * - refresh rotates: the presented token must be the current one; it becomes "previous";
 * - the previous token presented again within REFRESH_REUSE_GRACE seconds of its rotation
 *   yields the same successor (concurrent tabs); later, it is reuse: the session is revoked;
 * - a session ends at REFRESH_TOKEN_TTL of inactivity and at SESSION_MAX_AGE after login.
 */
@Injectable()
export class SessionsService {
  private readonly logger = new Logger('Sessions');

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly repo: SessionsRepository,
    private readonly revocation: RevocationService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly txHost: TransactionHost<PrismaTx>,
    private readonly events: EventBus,
  ) {}

  /** Tells the user's real-time connections (contract v2 §F) that a session was opened. */
  private announceCreated(userId: string, id: string, session: NewSession): void {
    const at = session.now.toISOString();
    this.events.notify('sessions.created', {
      userId,
      session: {
        id,
        createdAt: at,
        lastUsedAt: at,
        expiresAt: session.expiresAt.toISOString(),
        userAgent: session.userAgent,
        ip: session.ip,
      },
    });
  }

  /**
   * The cap on live sessions per user: the least recently used beyond MAX_SESSIONS_PER_USER
   * are revoked. Run after the new session's own statement, outside its transaction when
   * there is none (password logins, a second step with a TOTP code): its snapshot is then
   * taken after that session committed, so of logins of one user racing each other, the one
   * committed last sees every other's session, and the cap holds once all have answered (a
   * statement does not see rows that concurrent ones commit after it starts). Logins that
   * open their session in a transaction lock the user row `FOR UPDATE` first (a second step
   * with a recovery code, a federated sign-in), so that concurrent ones wait for them.
   * Skipped when the statement that opened the session could tell that the cap has nothing
   * to revoke (`withinCap`, see SessionsRepository's withinCapSql): it saw every live session
   * of the user, and they left room for the new one.
   */
  private async evictBeyondLimit(userId: string, now: Date): Promise<void> {
    const sessionIds = await this.repo.revokeBeyond(userId, this.config.MAX_SESSIONS_PER_USER, now);
    // Their tokens stop at once, and the user's connections are told.
    await this.revocation.revoke({ sessions: sessionIds });
    this.announceRevoked(userId, sessionIds);
  }

  /** Tells the user's real-time connections that these sessions were revoked. */
  private announceRevoked(userId: string, sessionIds: readonly string[]): void {
    if (sessionIds.length > 0) this.events.notify('sessions.revoked', { userId, sessionIds: [...sessionIds] });
  }

  /** Opens a session (in the caller's transaction, if any: with the signup that creates the user). */
  async open(user: { id: string; roles: Role[] }, client: ClientInfo): Promise<IssuedSession> {
    const { session, refreshToken } = this.newSession(user.id, client);
    const { id } = await this.repo.create(session);
    this.announceCreated(user.id, id, session);
    return {
      sessionId: id,
      userId: user.id,
      roles: user.roles,
      rolesReadAt: session.now.getTime(),
      refreshToken,
      expiresAt: session.expiresAt,
      auth: session.auth,
      tenant: null,
    };
  }

  /**
   * Opens a session for a sign-in proved elsewhere (an external issuer's token: `auth`
   * says how), in the caller's transaction if any, then applies the cap on live sessions
   * per user like a password login.
   */
  async openAuthenticated(
    user: { id: string; roles: Role[] },
    client: ClientInfo,
    auth: Omit<SessionAuth, 'authTime'>,
  ): Promise<IssuedSession> {
    const { session, refreshToken } = this.newSession(user.id, client, auth);
    const { id } = await this.repo.create(session);
    this.announceCreated(user.id, id, session);
    await this.evictBeyondLimit(user.id, session.now);
    return {
      sessionId: id,
      userId: user.id,
      roles: user.roles,
      rolesReadAt: session.now.getTime(),
      refreshToken,
      expiresAt: session.expiresAt,
      auth: session.auth,
      tenant: null,
    };
  }

  /**
   * Opens a session after a password check (and, with `auth`, a second factor), only if the
   * verified password hash is still current, the account still enabled and, without `auth`,
   * without a second factor (see SessionsRepository.createIfCredentialsCurrent);
   * null otherwise. Then applies the cap on live sessions per user: the least recently used
   * ones beyond MAX_SESSIONS_PER_USER are revoked.
   */
  async openIfCredentialsCurrent(
    user: { id: string; passwordHash: string },
    client: ClientInfo,
    auth?: Omit<SessionAuth, 'authTime'>,
  ): Promise<IssuedSession | null> {
    const { session, refreshToken } = this.newSession(user.id, client, auth);
    const rolesReadAt = this.clock.nowMs();
    const keep = this.config.MAX_SESSIONS_PER_USER;
    const opened = await this.repo.createIfCredentialsCurrent(session, user.passwordHash, auth === undefined, keep);
    if (!opened) return null;
    this.announceCreated(user.id, opened.id, session);
    if (!opened.withinCap) await this.evictBeyondLimit(user.id, session.now);
    return {
      sessionId: opened.id,
      userId: user.id,
      roles: opened.roles,
      rolesReadAt,
      refreshToken,
      expiresAt: session.expiresAt,
      auth: session.auth,
      tenant: null,
    };
  }

  /**
   * A session for a caller whose own statement opens it together with other changes (a
   * login's second step, MfaRepository.completeTotpLogin): its id, row and refresh token,
   * for the statement's insertSessionSql, and opened(), to call once the statement has
   * committed.
   */
  prepareOpen(userId: string, client: ClientInfo, auth: Omit<SessionAuth, 'authTime'>): PreparedSession {
    const { session, refreshToken } = this.newSession(userId, client, auth);
    return {
      id: randomUUID(),
      session,
      refreshToken,
      rolesReadAt: this.clock.nowMs(),
    };
  }

  /**
   * After a caller's statement opened `prepared` (read `roles` from the locked user row) and
   * committed: what opening a session here announces, the cap on live sessions per user (as
   * after a password login, in a statement of its own unless the caller's statement found it
   * has nothing to revoke, `withinCap`: see evictBeyondLimit), and the session. Never throws:
   * the session is open, and its answer must not be lost.
   */
  async opened(prepared: PreparedSession, roles: Role[], withinCap: boolean): Promise<IssuedSession> {
    const { id, session } = prepared;
    this.announceCreated(session.userId, id, session);
    try {
      if (!withinCap) await this.evictBeyondLimit(session.userId, session.now);
    } catch (error) {
      // Sessions over the cap stay live until the user's next login applies it.
      this.logger.error(`the session cap of user ${session.userId} was not applied: ${String(error)}`);
    }
    return {
      sessionId: id,
      userId: session.userId,
      roles,
      rolesReadAt: prepared.rolesReadAt,
      refreshToken: prepared.refreshToken,
      expiresAt: session.expiresAt,
      auth: session.auth,
      tenant: null,
    };
  }

  private newSession(
    userId: string,
    client: ClientInfo,
    auth?: Omit<SessionAuth, 'authTime'>,
  ): { session: NewSession; refreshToken: string } {
    const now = this.clock.now();
    const refreshToken = newRefreshToken();
    const absoluteExpiresAt = new Date(now.getTime() + this.config.SESSION_MAX_AGE * 1000);
    const expiresAt = new Date(now.getTime() + this.config.REFRESH_TOKEN_TTL * 1000);
    const session: NewSession = {
      userId,
      tokenHash: hashRefreshToken(refreshToken),
      now,
      expiresAt: expiresAt < absoluteExpiresAt ? expiresAt : absoluteExpiresAt,
      absoluteExpiresAt,
      userAgent: truncate(client.userAgent, 512),
      ip: client.ip,
      auth: auth ? { ...auth, authTime: now } : passwordAuth(now),
    };
    return { session, refreshToken };
  }

  async refresh(presented: string | undefined, client: ClientInfo): Promise<IssuedSession> {
    if (presented === undefined || presented === '') {
      throw new AppError(ErrorCode.REFRESH_TOKEN_MISSING, 'No refresh token');
    }
    if (!isWellFormedRefreshToken(presented)) throw invalid();
    const now = this.clock.now();
    const tokenHash = hashRefreshToken(presented);
    const successor = newRefreshToken();
    const rotated = await this.repo.rotate({
      tokenHash,
      newTokenHash: hashRefreshToken(successor),
      successorSealed: sealSuccessor(presented, successor),
      now,
      idleExpiresAt: new Date(now.getTime() + this.config.REFRESH_TOKEN_TTL * 1000),
      userAgent: truncate(client.userAgent, 512),
      ip: client.ip,
    });
    if (rotated) {
      return {
        sessionId: rotated.id,
        userId: rotated.userId,
        roles: rotated.roles,
        rolesReadAt: now.getTime(),
        refreshToken: successor,
        expiresAt: rotated.expiresAt,
        auth: authOf(rotated),
        tenant: tenantOf(rotated),
      };
    }
    return this.refreshNotRotated(presented, tokenHash, now, client);
  }

  /** The presented token could not be rotated: a grace-window repeat, reuse, or invalid. */
  private async refreshNotRotated(
    presented: string,
    tokenHash: Buffer,
    now: Date,
    client: ClientInfo,
  ): Promise<IssuedSession> {
    const rolesReadAt = this.clock.nowMs();
    const state = await this.repo.findByPresentedToken(tokenHash);
    if (!state) throw invalid();
    if (state.revokedAt) {
      throw state.revokedReason === 'reuse'
        ? new AppError(ErrorCode.REFRESH_TOKEN_REUSED, 'Refresh token reuse detected; the session was revoked')
        : invalid();
    }
    const live = state.expiresAt > now && state.absoluteExpiresAt > now && !state.disabled;
    if (!live || state.isCurrent) throw invalid();
    const rotatedAt = state.rotatedAt?.getTime() ?? 0;
    if (state.isPrevious && now.getTime() - rotatedAt <= this.config.REFRESH_REUSE_GRACE * 1000) {
      const successor = state.successorSealed ? openSuccessor(presented, state.successorSealed) : null;
      if (successor) {
        await this.repo.touch(state.id, now);
        return {
          sessionId: state.id,
          userId: state.userId,
          roles: state.roles,
          rolesReadAt,
          refreshToken: successor,
          expiresAt: state.expiresAt,
          auth: authOf(state),
          tenant: tenantOf(state),
        };
      }
      // The seal belongs to a newer rotation (the token is two steps old): not in grace.
    }
    // A rotated-away token presented after the grace window (or any older one): someone
    // else holds the chain.
    // Revoke the whole session, including the newer refresh tokens and the access tokens.
    const revoked = await this.txHost.withTransaction(async () => {
      if (!(await this.repo.revoke(state.id, 'reuse', now))) return false;
      await this.revocation.revoke({ sessions: [state.id] });
      await this.audit.record('refresh.reuse_detected', { userId: state.userId, sessionId: state.id }, client);
      return true;
    });
    if (revoked) {
      this.announceRevoked(state.userId, [state.id]);
      this.logger.warn(`refresh token reuse on session ${state.id}: session revoked`);
    }
    throw new AppError(ErrorCode.REFRESH_TOKEN_REUSED, 'Refresh token reuse detected; the session was revoked');
  }

  /**
   * A second factor was proved in this session: it is now `auth` (aal2), and so is every
   * access token its refreshes give. False when the session is no longer live.
   */
  elevate(sessionId: string, auth: SessionAuth): Promise<boolean> {
    return this.repo.setAuth(sessionId, auth);
  }

  /** The session a refresh token (current or just rotated) belongs to, if any. */
  async sessionOfToken(presented: string | undefined): Promise<{ id: string; userId: string } | null> {
    if (!isWellFormedRefreshToken(presented)) return null;
    const state = await this.repo.findByPresentedToken(hashRefreshToken(presented));
    return state ? { id: state.id, userId: state.userId } : null;
  }

  /** Revokes the user's session and its access tokens, both recorded in one transaction. */
  async revoke(userId: string, sessionId: string, reason: string): Promise<void> {
    const revoked = await this.txHost.withTransaction(async () => {
      const changed = await this.repo.revoke(sessionId, reason, this.clock.now());
      await this.revocation.revoke({ sessions: [sessionId] });
      return changed;
    });
    if (revoked) this.announceRevoked(userId, [sessionId]);
  }

  /**
   * Revokes every session of the user (but `exceptSessionId`) and their access tokens, in
   * the caller's transaction or one of its own. The access tokens are refused from now on
   * even if that transaction then rolls back: failing closed (their refresh tokens still
   * work and get fresh access tokens after the revocation entries expire).
   */
  async revokeAllOf(userId: string, reason: string, exceptSessionId?: string | null): Promise<string[]> {
    const ids = await this.txHost.withTransaction(async () => {
      const revoked = await this.repo.revokeAllOf(userId, reason, this.clock.now(), exceptSessionId ?? undefined);
      await this.revocation.revoke({ sessions: revoked });
      return revoked;
    });
    this.announceRevoked(userId, ids);
    return ids;
  }

  /**
   * Revokes one of the user's sessions with its access tokens, audited `session.revoked` (the
   * caller's session as actor); false when the session is not theirs. Idempotent: a session
   * already revoked is found, and nothing more happens.
   */
  async revokeOwned(
    userId: string,
    sessionId: string,
    by: { sessionId: string | null; client: ClientInfo },
  ): Promise<boolean> {
    const outcome = await this.txHost.withTransaction(async () => {
      const result = await this.repo.revokeOwned(userId, sessionId, 'deleted', this.clock.now());
      if (result === 'revoked') {
        await this.revocation.revoke({ sessions: [sessionId] });
        await this.audit.record('session.revoked', { userId, sessionId }, by.client, { by: by.sessionId });
      }
      return result;
    });
    if (outcome === 'revoked') this.announceRevoked(userId, [sessionId]);
    return outcome !== null;
  }

  list(userId: string): Promise<SessionView[]> {
    return this.repo.listLive(userId, this.clock.now());
  }

  /** Cookie lifetime in seconds for a session that expires at `expiresAt`. */
  maxAgeSeconds(expiresAt: Date): number {
    return Math.max(0, Math.floor((expiresAt.getTime() - this.clock.nowMs()) / 1000));
  }
}

/** A session row's assurance; a row written before sessions had one reads as a password session. */
function authOf(row: { amr: string[] | null; acr: string; authTime: Date }): SessionAuth {
  return { amr: row.amr ?? ['pwd'], acr: row.acr === 'aal2' ? 'aal2' : 'aal1', authTime: row.authTime };
}

function invalid() {
  return new AppError(ErrorCode.REFRESH_TOKEN_INVALID, 'Invalid or expired refresh token');
}

function truncate(value: string | null, max: number): string | null {
  return value === null ? null : value.slice(0, max);
}

function tenantOf(row: SessionTenant): { id: string; roles: string[] } | null {
  return row.tenantId ? { id: row.tenantId, roles: row.tenantRoles ?? [] } : null;
}
