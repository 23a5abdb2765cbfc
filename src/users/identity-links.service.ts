import { Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service.js';
import { CredentialsService } from '../accounts/credentials.service.js';
import { LinkedIdentityDto } from '../accounts/user.dto.js';
import { UsersRepository } from '../accounts/users.repository.js';
import { Clock } from '../common/clock.js';
import { accountGone, AppError, userNotFound } from '../common/errors/app-error.js';
import { uniqueViolationTarget } from '../common/errors/database-errors.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import type { ClientInfo } from '../common/http/client-info.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { IdentitiesRepository, type IdentityRecord } from '../identities/identities.repository.js';
import { IdentitiesService, claim, cleanEmail } from '../identities/identities.service.js';
import type { Principal } from '../tokens/principal.js';

/**
 * Linking external identities to accounts (contract v2 §D): by the owner, proving both
 * accounts (a fresh token of the external one, the password of this one), or by an admin
 * before the first sign-in (`linked-only`). Unlinking keeps a way to sign in: the last
 * identity of an account without a password stays (409 LAST_LOGIN_METHOD). Every change is
 * announced, so each instance's link cache forgets it at once.
 */
@Injectable()
export class IdentityLinksService {
  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly identities: IdentitiesService,
    private readonly repo: IdentitiesRepository,
    private readonly users: UsersRepository,
    private readonly credentials: CredentialsService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly txHost: TransactionHost<PrismaTx>,
  ) {}

  async list(userId: string): Promise<LinkedIdentityDto[]> {
    return (await this.repo.listOf(userId)).map(toDto);
  }

  /** POST /users/me/identities: 201 with the identity. */
  async linkOwn(
    caller: Principal,
    subjectToken: string,
    password: string,
    client: ClientInfo,
  ): Promise<LinkedIdentityDto> {
    const user = await this.users.findById(caller.userId);
    if (!user) throw accountGone();
    await this.credentials.recheck(user, password, client, 'The password is wrong');
    const token = await this.identities.verifyFreshSubjectToken(subjectToken);
    // A linked-only issuer's users are admitted by an administrator: linking oneself would
    // let anyone with an account there in (contract v2 §D, Cafienne's registration model).
    if (token.issuer.provisioning === 'linked-only') {
      throw new AppError(
        ErrorCode.FEDERATED_USER_NOT_PROVISIONED,
        'Identities of this provider are linked by an administrator',
      );
    }
    const email = claim(token.claims, token.issuer.claims.email);
    const identity = await this.create(
      {
        userId: user.id,
        issuer: token.issuer.issuer,
        issuerName: token.issuer.name,
        subject: token.claims.sub,
        emailAtLink: cleanEmail(typeof email === 'string' ? email : null),
      },
      caller.userId,
      client,
      // A proof that links is used once: the same token cannot link again nor open a session.
      { replayId: token.replayId, expiresAt: new Date(token.claims.exp * 1000) },
      accountGone,
    );
    return toDto(identity);
  }

  /** Admin POST /users/:id/identities. */
  async linkByAdmin(
    admin: Principal,
    userId: string,
    issuer: string,
    subject: string,
    client: ClientInfo,
  ): Promise<LinkedIdentityDto> {
    const configured = this.config.federationIssuers.find((i) => i.issuer === issuer);
    if (!configured) {
      throw new AppError(ErrorCode.VALIDATION_FAILED, ['issuer must be the exact iss URL of a configured issuer']);
    }
    const user = await this.users.findById(userId);
    if (!user) throw userNotFound();
    if (user.kind !== 'person') {
      throw new AppError(ErrorCode.VALIDATION_FAILED, ['only people can have external identities, not service users']);
    }
    return toDto(
      await this.create(
        { userId, issuer, issuerName: configured.name, subject, emailAtLink: null },
        admin.userId,
        client,
        null,
        userNotFound,
      ),
    );
  }

  async unlinkOwn(caller: Principal, identityId: string, client: ClientInfo): Promise<void> {
    await this.unlink(caller.userId, identityId, caller.userId, client);
  }

  async unlinkByAdmin(admin: Principal, userId: string, identityId: string, client: ClientInfo): Promise<void> {
    if (!(await this.users.findById(userId))) throw userNotFound();
    await this.unlink(userId, identityId, admin.userId, client);
  }

  private async create(
    data: { userId: string; issuer: string; issuerName: string; subject: string; emailAtLink: string | null },
    by: string,
    client: ClientInfo,
    spend: { replayId: string; expiresAt: Date } | null,
    /** The answer when the account is gone by now (deleted while the link was on its way). */
    gone: () => AppError,
  ): Promise<IdentityRecord> {
    let identity: IdentityRecord;
    try {
      identity = await this.txHost.withTransaction(async () => {
        // The account row is locked, as unlink() does: a deletion committed meanwhile is seen
        // here (once refused by the identity's foreign key, as a 500), and none starts until
        // this link has committed (the deletion then takes the identity with the account).
        if (!(await this.users.lockById(data.userId))) throw gone();
        if (spend && !(await this.repo.spend(data.issuer, spend.replayId, spend.expiresAt))) {
          throw new AppError(ErrorCode.FEDERATED_TOKEN_REUSED, 'This external token was already used');
        }
        // Seen now when the owner proved it with a token; an admin's pre-link has not been seen.
        const created = await this.repo.link({ ...data, now: this.clock.now(), seen: spend !== null });
        await this.identities.changing(data.userId, data.issuer, data.subject);
        await this.audit.record('identity.linked', { userId: data.userId }, client, {
          issuer: data.issuerName,
          identityId: created.id,
          by,
        });
        return created;
      });
    } catch (error) {
      const target = uniqueViolationTarget(error);
      if (target !== null && target.some((t) => t.includes('subject') || t.includes('issuer'))) {
        throw new AppError(ErrorCode.IDENTITY_ALREADY_LINKED, 'This external identity is already linked to an account');
      }
      throw error;
    }
    this.identities.announce(data.userId, data.issuer, data.subject);
    return identity;
  }

  private async unlink(userId: string, identityId: string, by: string, client: ClientInfo): Promise<void> {
    const removed = await this.txHost.withTransaction(async () => {
      // The account row is locked: two unlinks at once cannot both see another way in.
      const user = await this.users.lockById(userId);
      if (!user) return null;
      const identity = await this.repo.findOf(userId, identityId);
      if (!identity) return null;
      if (user.passwordHash === null && (await this.repo.countOf(userId)) <= 1) return 'last' as const;
      await this.repo.unlink(userId, identityId);
      await this.identities.changing(userId, identity.issuer, identity.subject);
      await this.audit.record('identity.unlinked', { userId }, client, {
        issuer: identity.issuerName,
        identityId,
        by,
      });
      return identity;
    });
    if (removed === null) throw new AppError(ErrorCode.NOT_FOUND, 'No such identity on this account');
    if (removed === 'last') {
      throw new AppError(
        ErrorCode.LAST_LOGIN_METHOD,
        'This is the only way to sign in to the account: set a password (forgot-password) or link another identity first',
      );
    }
    this.identities.announce(userId, removed.issuer, removed.subject);
  }
}

/** The API view of a linked identity (GET /users/me, /users/me/identities, link answers). */
export function toDto(i: IdentityRecord): LinkedIdentityDto {
  return {
    id: i.id,
    issuer: i.issuer,
    issuerName: i.issuerName,
    subject: i.subject,
    linkedAt: i.createdAt.toISOString(),
    lastSeenAt: i.lastSeenAt?.toISOString() ?? null,
  };
}
