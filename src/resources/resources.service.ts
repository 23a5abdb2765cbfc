import { Injectable } from '@nestjs/common';
import type { AuthUser } from '../auth/tokens/access-token.service.js';
import { Clock } from '../common/clock.js';
import { AppException, forbidden, notFound } from '../common/errors/app.exception.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { DEFAULT_PAGE_SIZE, decodeCursor, toPage } from '../common/http/pagination.js';
import { ResourceDto, type CreateResourceDto, type UpdateResourceDto } from './dto/resources.dto.js';
import { ResourcesRepository, type Viewer } from './resources.repository.js';

/**
 * Ownership and visibility: the owner and admins may read and change a resource; anyone,
 * even anonymous, may read a public one. A resource the caller may not see gives 404
 * (its existence is not revealed); one they may see but not change gives 403.
 */
@Injectable()
export class ResourcesService {
  constructor(
    private readonly resources: ResourcesRepository,
    private readonly clock: Clock,
  ) {}

  async create(caller: AuthUser, dto: CreateResourceDto): Promise<ResourceDto> {
    const created = await this.resources.create({
      ownerId: caller.userId,
      title: dto.title,
      body: dto.body ?? '',
      visibility: dto.visibility ?? 'private',
      now: this.clock.now(),
    });
    return ResourceDto.from(created);
  }

  async list(caller: AuthUser, query: { limit?: number; cursor?: string; scope?: 'all' }) {
    if (query.scope === 'all' && !caller.roles.includes('admin')) {
      throw forbidden(ErrorCode.INSUFFICIENT_ROLE, 'scope=all is for admins');
    }
    const limit = query.limit ?? DEFAULT_PAGE_SIZE;
    const rows = await this.resources.page(
      query.scope === 'all' ? {} : { ownerId: caller.userId },
      limit + 1,
      decodeCursor(query.cursor),
    );
    return toPage(rows, limit, (r) => ResourceDto.from(r));
  }

  async get(caller: AuthUser | undefined, id: string): Promise<ResourceDto> {
    const found = await this.resources.findVisibleTo(id, viewer(caller));
    if (!found) throw notVisible();
    return ResourceDto.from(found);
  }

  async update(caller: AuthUser, id: string, dto: UpdateResourceDto): Promise<ResourceDto> {
    const outcome = await this.resources.updateOwned(id, viewer(caller)!, { title: dto.title, body: dto.body, visibility: dto.visibility, updatedAt: this.clock.now() });
    if (outcome === 'forbidden') throw notOwner();
    if (!outcome) throw notVisible();
    return ResourceDto.from(outcome);
  }

  async delete(caller: AuthUser, id: string): Promise<void> {
    const outcome = await this.resources.deleteOwned(id, viewer(caller)!);
    if (outcome === 'forbidden') throw notOwner();
    if (!outcome) throw notVisible();
  }
}

function viewer(caller: AuthUser | undefined): Viewer | undefined {
  return caller ? { userId: caller.userId, isAdmin: caller.roles.includes('admin') } : undefined;
}

const notVisible = (): AppException => notFound(ErrorCode.RESOURCE_NOT_FOUND, 'No such resource');
const notOwner = (): AppException => forbidden(ErrorCode.NOT_OWNER, 'Only the owner or an admin may change this resource');
