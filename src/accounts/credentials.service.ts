import { Injectable } from '@nestjs/common';
import { AuditService, type AuditEventType } from '../audit/audit.service.js';
import type { ClientInfo } from '../common/http/client-info.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { SessionsService } from '../sessions/sessions.service.js';
import { PasswordHasher } from './password-hasher.service.js';
import { UsersRepository } from './users.repository.js';

export interface NewPassword {
  userId: string;
  /** The hash the caller verified (or read): the change applies only while it is current. */
  expectedHash: string;
  newPassword: string;
  /** The session that stays signed in (the caller's own), or null to end every session. */
  keepSessionId: string | null;
  /** Why the other sessions end (stored on them), and the audit event recorded. */
  reason: string;
  event: AuditEventType;
  client: ClientInfo;
}

/**
 * Setting a password, the one way every path does it (change, reset, admin actions): the
 * new peppered bcrypt hash, every other session and its access tokens revoked, and the
 * audit event, in one transaction, so the new password never takes effect without the
 * revocation (a change answered with an error changed nothing).
 */
@Injectable()
export class CredentialsService {
  constructor(
    private readonly users: UsersRepository,
    private readonly passwords: PasswordHasher,
    private readonly sessions: SessionsService,
    private readonly audit: AuditService,
    private readonly txHost: TransactionHost<PrismaTx>,
  ) {}

  /**
   * False when the password hash changed since it was verified (nothing is done): of
   * concurrent changes made with the same old password exactly one wins.
   */
  async setPassword(change: NewPassword): Promise<boolean> {
    const next = await this.passwords.hash(change.newPassword); // bcrypt outside the transaction
    return this.txHost.withTransaction(async () => {
      if (!(await this.users.replacePasswordHash(change.userId, change.expectedHash, next))) return false;
      await this.sessions.revokeAllOf(change.userId, change.reason, change.keepSessionId);
      await this.audit.record(change.event, { userId: change.userId, sessionId: change.keepSessionId }, change.client);
      return true;
    });
  }
}
