import { Injectable } from '@nestjs/common';
import { queryPrepared } from '../database/prepared-statements.js';
import { PrismaService } from '../database/prisma.service.js';
import { TransactionHost, type PrismaTx } from '../database/transactions.js';
import { Prisma, type Resource } from '../generated/prisma/client.js';
import type { Position } from '../common/http/pagination.js';
import { membershipQuery, type MembershipRecord } from '../tenants/tenants.repository.js';

export type ResourceRecord = Resource;

/** Who is asking: ownership and visibility rules are applied in every query. */
export interface Viewer {
  userId: string;
  isAdmin: boolean;
}

/**
 * Who may change a resource, as the query's own condition: a global admin any; otherwise
 * the owner of a personal resource, and in a tenant the caller still a member there, as the
 * owner (`own`: with resources:write) or as anyone (`any`: with resources:manage).
 */
export type ChangeRight = { kind: 'admin' } | { kind: 'personal' } | { kind: 'tenant'; reach: 'own' | 'any' };

/** The Prisma queries on resources, named by intent. */
@Injectable()
export class ResourcesRepository {
  constructor(
    private readonly prisma: PrismaService,
    private readonly txHost: TransactionHost<PrismaTx>,
  ) {}

  create(data: {
    ownerId: string;
    tenantId: string | null;
    title: string;
    body: string;
    visibility: 'private' | 'public';
    now: Date;
  }): Promise<ResourceRecord> {
    const { now, ...fields } = data;
    return this.prisma.resource.create({ data: { ...fields, createdAt: now, updatedAt: now } });
  }

  /** The resource, whoever may see it: the caller decides (ResourcesService.get). */
  findById(id: string): Promise<ResourceRecord | null> {
    return this.prisma.resource.findUnique({ where: { id } });
  }

  /** The resource if `viewer` may see it (owner, admin, or public); nothing is loaded otherwise. */
  findVisibleTo(id: string, viewer: Viewer | undefined): Promise<ResourceRecord | null> {
    return this.prisma.resource.findFirst({ where: { id, ...visibleTo(viewer) } });
  }

  /**
   * Applies `data` if the caller holds `right` over this resource (checked in the UPDATE's
   * own WHERE clause, so a membership removed meanwhile changes nothing); null otherwise.
   */
  async updateWith(
    id: string,
    viewer: Viewer,
    right: ChangeRight,
    data: Prisma.ResourceUpdateInput,
  ): Promise<ResourceRecord | null> {
    const { count } = await this.prisma.resource.updateMany({ where: { id, ...changeableBy(viewer, right) }, data });
    return count > 0 ? this.prisma.resource.findUnique({ where: { id } }) : null;
  }

  async deleteWith(id: string, viewer: Viewer, right: ChangeRight): Promise<boolean> {
    const { count } = await this.prisma.resource.deleteMany({ where: { id, ...changeableBy(viewer, right) } });
    return count > 0;
  }

  /**
   * Keyset page, newest first: items inserted meanwhile never shift later pages. `personal`:
   * the owner's resources outside any tenant; `tenant`: one tenant's (the caller's membership
   * was checked for this request); `all`: everyone's (global admins). Prepared statements on
   * PostgreSQL (database/prepared-statements.ts), one per shape (first page, later page),
   * each planned for its index once.
   */
  page(filter: PageFilter, limit: number, after?: Position): Promise<ResourceRecord[]> {
    const name = 'personal' in filter ? 'personal' : 'tenant' in filter ? 'tenant' : 'all';
    return queryPrepared<ResourceRecord>(
      this.txHost,
      this.prisma,
      `gatehouse_resources_${name}${after ? '_after' : ''}_v1`,
      pageSql(filter, limit, after),
    );
  }

  /**
   * The caller's membership of a tenant and, if they are a member, a page of its resources, in
   * one statement: a list aimed at a tenant costs one round trip, as a personal one does. The
   * page is read whatever the member's permissions; the caller decides (ResourcesService.list).
   */
  async tenantPage(
    tenantId: string,
    userId: string,
    limit: number,
    after?: Position,
  ): Promise<{ membership: MembershipRecord | null; rows: ResourceRecord[] }> {
    // The membership's row (read once: MATERIALIZED), then the page only if there is one; the
    // page's rows do not repeat the membership, so it is parsed once. The outer ORDER BY puts
    // the membership's row (its nulls) first and keeps the page's order (eleven rows at most).
    const rows = await queryPrepared<
      Partial<MembershipRecord> & { [K in keyof ResourceRecord]: ResourceRecord[K] | null }
    >(
      this.txHost,
      this.prisma,
      `gatehouse_resources_tenant_member${after ? '_after' : ''}_v1`,
      Prisma.sql`
        WITH m AS MATERIALIZED (${membershipQuery(tenantId, userId)})
        SELECT m.roles, m.custom, NULL::uuid AS id, NULL::uuid AS "ownerId", NULL::uuid AS "tenantId", NULL AS title,
               NULL AS body, NULL::"Visibility" AS visibility, NULL::timestamptz AS "createdAt", NULL::timestamptz AS "updatedAt"
        FROM m
        UNION ALL
        (SELECT NULL, NULL, ${COLUMNS} FROM resources r
         WHERE EXISTS (SELECT 1 FROM m) AND r.tenant_id = ${tenantId}::uuid ${positionedAfter(after)}
         ORDER BY r.created_at DESC, r.id DESC LIMIT ${limit})
        ORDER BY "createdAt" DESC NULLS FIRST, id DESC NULLS FIRST`,
    );
    const member = rows.find((r) => r.id === null);
    if (!member?.roles || !member.custom) return { membership: null, rows: [] };
    return {
      membership: { roles: member.roles, custom: member.custom },
      rows: rows
        .filter((r) => r.id !== null)
        .map(({ roles: _r, custom: _c, ...resource }) => resource as ResourceRecord),
    };
  }

  /**
   * `scope=memberships` (contract v2 §E): the caller's personal resources and those of every
   * tenant where one of their roles grants resources:read, built in or custom; one query,
   * so the union has no duplicates and keyset pages never overlap.
   */
  pageAcrossMemberships(userId: string, limit: number, after?: Position): Promise<ResourceRecord[]> {
    return this.prisma.$queryRaw<ResourceRecord[]>`
      SELECT ${COLUMNS}
      FROM resources r
      WHERE ((r.tenant_id IS NULL AND r.owner_id = ${userId}::uuid)
             OR r.tenant_id IN (
               SELECT m.tenant_id FROM tenant_memberships m
               WHERE m.user_id = ${userId}::uuid
                 AND (m.roles && ARRAY['owner', 'admin', 'member']::text[]
                      OR EXISTS (SELECT 1 FROM tenant_roles tr
                                 WHERE tr.tenant_id = m.tenant_id AND tr.name = ANY (m.roles)
                                   AND 'resources:read' = ANY (tr.permissions)))))
        AND (${after?.createdAt ?? null}::timestamptz IS NULL
             OR (r.created_at, r.id) < (${after?.createdAt ?? null}::timestamptz, ${after?.id ?? null}::uuid))
      ORDER BY r.created_at DESC, r.id DESC
      LIMIT ${limit}`;
  }
}

/** Whose resources a page lists (ResourcesRepository.page). */
export type PageFilter = { personal: string } | { tenant: string } | { all: true };

/**
 * The statement of a page. A personal page reads the partial index `resources_personal_idx`
 * (the owner's rows outside tenants, in the page's order): with the owner's index over all
 * rows, an owner with many tenant resources had them all read and thrown away first.
 */
export function pageSql(filter: PageFilter, limit: number, after?: Position): Prisma.Sql {
  const where =
    'personal' in filter
      ? Prisma.sql`r.owner_id = ${filter.personal}::uuid AND r.tenant_id IS NULL`
      : 'tenant' in filter
        ? Prisma.sql`r.tenant_id = ${filter.tenant}::uuid`
        : Prisma.sql`TRUE`;
  return Prisma.sql`SELECT ${COLUMNS} FROM resources r WHERE ${where} ${positionedAfter(after)}
    ORDER BY r.created_at DESC, r.id DESC LIMIT ${limit}`;
}

/** The columns of a ResourceRecord, from `resources r`, as Prisma names them. */
const COLUMNS = Prisma.sql`r.id, r.owner_id AS "ownerId", r.tenant_id AS "tenantId", r.title, r.body, r.visibility,
  r.created_at AS "createdAt", r.updated_at AS "updatedAt"`;

/** The keyset condition of a later page (after the last item of the one before). */
function positionedAfter(after: Position | undefined): Prisma.Sql {
  return after
    ? Prisma.sql`AND (r.created_at, r.id) < (${after.createdAt}::timestamptz, ${after.id}::uuid)`
    : Prisma.empty;
}

/**
 * What a caller may see: public resources; their own personal ones; those of the tenants they
 * belong to (whatever their roles there: the permission is checked next, and a member
 * without resources:read gets 403, not 404); everything for a global admin.
 */
function visibleTo(viewer: Viewer | undefined): Prisma.ResourceWhereInput {
  if (viewer?.isAdmin) return {};
  if (!viewer) return { visibility: 'public' };
  return {
    OR: [
      { visibility: 'public' },
      { tenantId: null, ownerId: viewer.userId },
      { tenant: { memberships: { some: { userId: viewer.userId } } } },
    ],
  };
}

function changeableBy(viewer: Viewer, right: ChangeRight): Prisma.ResourceWhereInput {
  switch (right.kind) {
    case 'admin':
      return {};
    case 'personal':
      return { tenantId: null, ownerId: viewer.userId };
    default:
      return {
        tenant: { memberships: { some: { userId: viewer.userId } } },
        ...(right.reach === 'own' ? { ownerId: viewer.userId } : {}),
      };
  }
}
