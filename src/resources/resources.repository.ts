import { Injectable } from '@nestjs/common';
import { PrismaService } from '../database/prisma.service.js';
import type { Prisma, Resource } from '../generated/prisma/client.js';
import type { Position } from '../common/http/pagination.js';

export type ResourceRecord = Resource;

/** Who is asking: ownership and visibility rules are applied in every query. */
export interface Viewer {
  userId: string;
  isAdmin: boolean;
}

/** The Prisma queries on resources, named by intent. */
@Injectable()
export class ResourcesRepository {
  constructor(private readonly prisma: PrismaService) {}

  create(data: {
    ownerId: string;
    title: string;
    body: string;
    visibility: 'private' | 'public';
    now: Date;
  }): Promise<ResourceRecord> {
    const { now, ...fields } = data;
    return this.prisma.resource.create({ data: { ...fields, createdAt: now, updatedAt: now } });
  }

  /** The resource if `viewer` may see it (owner, admin, or public); nothing is loaded otherwise. */
  findVisibleTo(id: string, viewer: Viewer | undefined): Promise<ResourceRecord | null> {
    return this.prisma.resource.findFirst({ where: { id, ...visibleTo(viewer) } });
  }

  /**
   * Applies `data` if `viewer` owns the resource or is an admin. Returns the updated
   * resource, 'forbidden' when it is visible but not theirs, null when not visible.
   */
  async updateOwned(
    id: string,
    viewer: Viewer,
    data: Prisma.ResourceUpdateInput,
  ): Promise<ResourceRecord | 'forbidden' | null> {
    const { count } = await this.prisma.resource.updateMany({ where: { id, ...ownedBy(viewer) }, data });
    if (count > 0) return this.prisma.resource.findUnique({ where: { id } });
    return (await this.isVisible(id, viewer)) ? 'forbidden' : null;
  }

  async deleteOwned(id: string, viewer: Viewer): Promise<'deleted' | 'forbidden' | null> {
    const { count } = await this.prisma.resource.deleteMany({ where: { id, ...ownedBy(viewer) } });
    if (count > 0) return 'deleted';
    return (await this.isVisible(id, viewer)) ? 'forbidden' : null;
  }

  /** Keyset page, newest first: items inserted meanwhile never shift later pages. */
  page(filter: { ownerId?: string }, limit: number, after?: Position): Promise<ResourceRecord[]> {
    const where: Prisma.ResourceWhereInput = {
      ...(filter.ownerId ? { ownerId: filter.ownerId } : {}),
      ...(after
        ? { OR: [{ createdAt: { lt: after.createdAt } }, { createdAt: after.createdAt, id: { lt: after.id } }] }
        : {}),
    };
    return this.prisma.resource.findMany({ where, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], take: limit });
  }

  private async isVisible(id: string, viewer: Viewer): Promise<boolean> {
    return (await this.prisma.resource.count({ where: { id, ...visibleTo(viewer) } })) > 0;
  }
}

function visibleTo(viewer: Viewer | undefined): Prisma.ResourceWhereInput {
  if (viewer?.isAdmin) return {};
  return viewer ? { OR: [{ visibility: 'public' }, { ownerId: viewer.userId }] } : { visibility: 'public' };
}

function ownedBy(viewer: Viewer): Prisma.ResourceWhereInput {
  return viewer.isAdmin ? {} : { ownerId: viewer.userId };
}
