import { Injectable } from '@nestjs/common';
import { SERVICE_USERNAME_PREFIX, type Role } from '../common/account-rules.js';
import type { Position } from '../common/http/pagination.js';
import { queryPrepared } from '../database/prepared-statements.js';
import { PrismaService } from '../database/prisma.service.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { Prisma, type OAuthClient, type OAuthClientSecret } from '../generated/prisma/client.js';

export type ClientRecord = OAuthClient;
export type SecretRecord = OAuthClientSecret;
export type ClientWithSecrets = OAuthClient & { secrets: OAuthClientSecret[] };

/** What authenticating a client needs, read in one query. */
export interface ClientCredentialsRow {
  id: string;
  clientId: string;
  name: string;
  allowedScopes: string[];
  accessTokenTtl: number | null;
  tokenExchange: boolean;
  disabled: boolean;
  serviceUserId: string;
  serviceUser: { disabled: boolean; roles: Role[] };
  /** Only the live ones: unrevoked, unexpired. */
  secrets: Array<{ id: string; secretHash: Uint8Array; expiresAt: Date | null; lastUsedAt: Date | null }>;
}

/** Secrets in the order a client shows them: oldest first. */
const SECRET_ORDER = [{ createdAt: 'asc' }, { id: 'asc' }] satisfies Prisma.OAuthClientSecretOrderByWithRelationInput[];

/** A secret that can still authenticate at `now`: not revoked, not expired. */
const live = (now: Date): Prisma.OAuthClientSecretWhereInput => ({
  revokedAt: null,
  OR: [{ expiresAt: null }, { expiresAt: { gt: now } }],
});

/** The Prisma queries on machine clients, their secrets and their service users, named by intent. */
@Injectable()
export class ClientsRepository {
  constructor(
    private readonly txHost: TransactionHost<PrismaTx>,
    private readonly prisma: PrismaService,
  ) {}

  /** The client of the caller's transaction, if any (see database/transactions.ts). */
  private get db() {
    return this.txHost.tx;
  }

  /**
   * The service user of a new client (contract v2 §0.4, §C): `kind=service`, no password,
   * no email, username `svc.<clientId>` (its key lower-cased, as for every username).
   */
  async createServiceUser(clientId: string, now: Date): Promise<{ id: string; roles: Role[] }> {
    const username = `${SERVICE_USERNAME_PREFIX}${clientId}`;
    return this.db.user.create({
      data: {
        username,
        usernameKey: username.toLowerCase(),
        email: null,
        emailKey: null,
        displayName: null,
        passwordHash: null,
        kind: 'service',
        roles: ['user'],
        createdAt: now,
        updatedAt: now,
      },
      select: { id: true, roles: true },
    });
  }

  async createClient(data: {
    clientId: string;
    name: string;
    description: string | null;
    allowedScopes: string[];
    accessTokenTtl: number | null;
    tokenExchange: boolean;
    serviceUserId: string;
    createdBy: string | null;
    now: Date;
  }): Promise<ClientRecord> {
    return this.db.oAuthClient.create({
      data: {
        clientId: data.clientId,
        name: data.name,
        description: data.description,
        allowedScopes: data.allowedScopes,
        accessTokenTtl: data.accessTokenTtl,
        tokenExchange: data.tokenExchange,
        serviceUserId: data.serviceUserId,
        createdBy: data.createdBy,
        createdAt: data.now,
        updatedAt: data.now,
      },
    });
  }

  async createSecret(s: {
    clientRowId: string;
    hash: Buffer;
    prefix: string;
    label: string | null;
    expiresAt: Date | null;
    now: Date;
  }): Promise<SecretRecord> {
    return this.db.oAuthClientSecret.create({
      data: {
        clientId: s.clientRowId,
        secretHash: new Uint8Array(s.hash),
        prefix: s.prefix,
        label: s.label,
        expiresAt: s.expiresAt,
        createdAt: s.now,
      },
    });
  }

  findById(id: string): Promise<ClientWithSecrets | null> {
    return this.db.oAuthClient.findUnique({ where: { id }, include: { secrets: { orderBy: SECRET_ORDER } } });
  }

  /** The client a service user belongs to. */
  findByServiceUserId(serviceUserId: string): Promise<ClientRecord | null> {
    return this.db.oAuthClient.findUnique({ where: { serviceUserId } });
  }

  /** Keyset page, newest first: ordered by (createdAt, id) descending, after `before`. */
  page(limit: number, before?: Position): Promise<ClientWithSecrets[]> {
    return this.db.oAuthClient.findMany({
      where: before
        ? { OR: [{ createdAt: { lt: before.createdAt } }, { createdAt: before.createdAt, id: { lt: before.id } }] }
        : undefined,
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: limit,
      include: { secrets: { orderBy: SECRET_ORDER } },
    });
  }

  /**
   * The client with its row locked FOR UPDATE until the caller's transaction ends (it must
   * run in one): changes of one client (its secrets included) are serialised. Null when
   * there is no such client.
   */
  async lockById(id: string): Promise<ClientRecord | null> {
    if (!this.txHost.isTransactionActive()) throw new Error('lockById() must run in a transaction');
    const rows = await this.db.$queryRaw<Array<{ id: string }>>`
      SELECT id FROM oauth_clients WHERE id = ${id}::uuid FOR UPDATE`;
    return rows[0] ? this.db.oAuthClient.findUnique({ where: { id } }) : null;
  }

  /** Null when there is no such client. */
  async update(
    id: string,
    data: {
      name?: string;
      description?: string | null;
      allowedScopes?: string[];
      accessTokenTtl?: number | null;
      tokenExchange?: boolean;
      disabled?: boolean;
      now: Date;
    },
  ): Promise<ClientRecord | null> {
    const { now, ...fields } = data;
    try {
      return await this.db.oAuthClient.update({ where: { id }, data: { ...fields, updatedAt: now } });
    } catch (error) {
      if ((error as { code?: string }).code === 'P2025') return null;
      throw error;
    }
  }

  /** Deletes the client; its secrets go with it (ON DELETE CASCADE), its service user stays. */
  async delete(id: string): Promise<boolean> {
    const { count } = await this.db.oAuthClient.deleteMany({ where: { id } });
    return count > 0;
  }

  /** The ids of every secret of the client, revoked and expired ones included. */
  async secretIds(clientRowId: string): Promise<string[]> {
    const rows = await this.db.oAuthClientSecret.findMany({ where: { clientId: clientRowId }, select: { id: true } });
    return rows.map((r) => r.id);
  }

  /** Secrets that can still authenticate: not revoked, not expired. */
  countLiveSecrets(clientRowId: string, now: Date): Promise<number> {
    return this.db.oAuthClientSecret.count({ where: { clientId: clientRowId, ...live(now) } });
  }

  /** A secret of this client (a secret of another client is not found). */
  findSecret(clientRowId: string, secretId: string): Promise<SecretRecord | null> {
    return this.db.oAuthClientSecret.findFirst({ where: { id: secretId, clientId: clientRowId } });
  }

  /** Sets (null: clears) a secret's expiry; null when the client has no such secret. */
  /** Changes the expiry of a live secret of this client (null: no such live secret). */
  async setSecretExpiry(
    clientRowId: string,
    secretId: string,
    expiresAt: Date | null,
    now: Date,
  ): Promise<SecretRecord | null> {
    const { count } = await this.db.oAuthClientSecret.updateMany({
      where: { id: secretId, clientId: clientRowId, ...live(now) },
      data: { expiresAt },
    });
    return count === 1 ? this.findSecret(clientRowId, secretId) : null;
  }

  /**
   * Revokes a secret of this client: 'revoked' when this call did, 'already' when it was
   * revoked before (its first revocation time stays), null when there is no such secret.
   */
  async revokeSecret(clientRowId: string, secretId: string, now: Date): Promise<'revoked' | 'already' | null> {
    const { count } = await this.db.oAuthClientSecret.updateMany({
      where: { id: secretId, clientId: clientRowId, revokedAt: null },
      data: { revokedAt: now },
    });
    if (count === 1) return 'revoked';
    return (await this.findSecret(clientRowId, secretId)) ? 'already' : null;
  }

  /**
   * The client of a presented `client_id` with its live secrets and its service user's
   * state, in one statement: a known id costs the same round trip as an unknown one. Every
   * token request makes it: a prepared statement on PostgreSQL.
   */
  async findForAuthentication(clientId: string, now: Date): Promise<ClientCredentialsRow | null> {
    const rows = await queryPrepared<
      Omit<ClientCredentialsRow, 'serviceUser' | 'secrets'> & {
        userDisabled: boolean;
        roles: Role[];
        secretId: string | null;
        secretHash: Uint8Array | null;
        expiresAt: Date | null;
        lastUsedAt: Date | null;
      }
    >(
      this.txHost,
      this.prisma,
      'gatehouse_client_credentials_v1',
      Prisma.sql`
      SELECT c.id, c.client_id AS "clientId", c.name, c.allowed_scopes AS "allowedScopes",
             c.access_token_ttl AS "accessTokenTtl", c.token_exchange AS "tokenExchange", c.disabled,
             c.service_user_id AS "serviceUserId", u.disabled AS "userDisabled", u.roles::text[] AS roles,
             s.id AS "secretId", s.secret_hash AS "secretHash", s.expires_at AS "expiresAt",
             s.last_used_at AS "lastUsedAt"
      FROM oauth_clients c
      JOIN users u ON u.id = c.service_user_id
      LEFT JOIN oauth_client_secrets s
        ON s.client_id = c.id AND s.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > ${now})
      WHERE c.client_id = ${clientId}
      ORDER BY s.created_at, s.id`,
    );
    const first = rows[0];
    if (!first) return null;
    return {
      id: first.id,
      clientId: first.clientId,
      name: first.name,
      allowedScopes: first.allowedScopes,
      accessTokenTtl: first.accessTokenTtl,
      tokenExchange: first.tokenExchange,
      disabled: first.disabled,
      serviceUserId: first.serviceUserId,
      serviceUser: { disabled: first.userDisabled, roles: first.roles },
      secrets: rows.flatMap((r) =>
        r.secretId !== null && r.secretHash !== null
          ? [{ id: r.secretId, secretHash: r.secretHash, expiresAt: r.expiresAt, lastUsedAt: r.lastUsedAt }]
          : [],
      ),
    };
  }

  /**
   * Waits until no transaction that locked or changed the client's row or its service user's
   * row is still open (FOR SHARE waits for them; the locks are released with the statement
   * outside a transaction). Every change of a client locks its row before it announces its
   * revocation, and a change of a user locks or updates the user's row: a read after this
   * sees the change once its announcement has been seen.
   */
  async waitForChanges(clientId: string): Promise<void> {
    await this.db.$queryRaw`
      SELECT 1 FROM oauth_clients c JOIN users u ON u.id = c.service_user_id
      WHERE c.client_id = ${clientId} FOR SHARE OF c, u`;
  }

  /** Records a successful use of the secret. */
  async touchSecret(secretId: string, now: Date): Promise<void> {
    await this.db.oAuthClientSecret.updateMany({ where: { id: secretId }, data: { lastUsedAt: now } });
  }

  /**
   * True when a client token's secret is unrevoked (expired or not: see
   * ClientsService.isClientTokenActive), belongs to the client
   * `clientId` (the public id) whose service user is `serviceUserId`, and the client and the
   * service user are enabled.
   */
  async clientTokenLive(secretId: string, clientId: string, serviceUserId: string): Promise<boolean> {
    const n = await this.db.oAuthClientSecret.count({
      where: {
        id: secretId,
        revokedAt: null,
        client: { clientId, disabled: false, serviceUserId, serviceUser: { disabled: false } },
      },
    });
    return n === 1;
  }

  /**
   * The username of a user token's owner when its session is the user's and live (not
   * revoked, neither idle- nor absolutely expired) and the user enabled; null otherwise. One
   * statement (introspection asked two: whether the session was live, then the user row).
   */
  async liveSessionUsername(sessionId: string, userId: string, now: Date): Promise<string | null> {
    const rows = await this.db.$queryRaw<Array<{ username: string }>>`
      SELECT u.username
      FROM sessions s
      JOIN users u ON u.id = s.user_id
      WHERE s.id = ${sessionId}::uuid AND s.user_id = ${userId}::uuid AND s.revoked_at IS NULL
        AND s.expires_at > ${now} AND s.absolute_expires_at > ${now} AND NOT u.disabled`;
    return rows[0]?.username ?? null;
  }

  /** Disables a deleted client's service user (it stays: its resources remain). */
  async disableServiceUser(userId: string, now: Date): Promise<void> {
    await this.db.user.updateMany({ where: { id: userId, kind: 'service' }, data: { disabled: true, updatedAt: now } });
  }
}
