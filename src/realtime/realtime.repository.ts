import { Injectable } from '@nestjs/common';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';

/**
 * What a revocation of a whole user leaves alive, for the real-time connections it touches:
 * a role change leaves the sessions (the connection is told to refresh its token), a
 * deletion or a disable does not (the connection is signed out).
 */
@Injectable()
export class RealtimeRepository {
  constructor(private readonly txHost: TransactionHost<PrismaTx>) {}

  /** Those of these sessions that are live, with their account enabled. */
  async liveSessions(ids: readonly string[], now: Date): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.txHost.tx.session.findMany({
      where: { id: { in: [...ids] }, revokedAt: null, expiresAt: { gt: now }, user: { disabled: false } },
      select: { id: true },
    });
    return new Set(rows.map((r) => r.id));
  }

  /** Those of these accounts that exist and are enabled. */
  async activeUsers(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.txHost.tx.user.findMany({
      where: { id: { in: [...ids] }, disabled: false },
      select: { id: true },
    });
    return new Set(rows.map((r) => r.id));
  }
}
