import { Injectable } from '@nestjs/common';
import type { Principal } from '../tokens/principal.js';
import { Clock } from '../common/clock.js';
import { AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { DEFAULT_PAGE_SIZE, decodeCursor, toPage } from '../common/http/pagination.js';
import { ResourceDto, type CreateResourceDto, type UpdateResourceDto } from './dto/resources.dto.js';
import { ResourcesRepository, type Viewer } from './resources.repository.js';
import { ADMIN_POWERS_SCOPE, hasAdminPowers, stepUpRequired } from '../access/step-up.js';
import { insufficientScope } from '../access/scopes.guard.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';

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
    @InjectConfig() private readonly config: AppConfig,
  ) {}

  async create(caller: Principal, dto: CreateResourceDto): Promise<ResourceDto> {
    const created = await this.resources.create({
      ownerId: caller.userId,
      title: dto.title,
      body: dto.body ?? '',
      visibility: dto.visibility ?? 'private',
      now: this.clock.now(),
    });
    return ResourceDto.from(created);
  }

  async list(caller: Principal, query: { limit?: number; cursor?: string; scope?: 'all' }) {
    if (query.scope === 'all' && !caller.roles.includes('admin')) {
      throw new AppError(ErrorCode.INSUFFICIENT_ROLE, 'scope=all is for admins');
    }
    if (query.scope === 'all' && !caller.scopes.includes(ADMIN_POWERS_SCOPE))
      throw insufficientScope([ADMIN_POWERS_SCOPE]);
    if (query.scope === 'all' && !hasAdminPowers(caller, this.config)) throw stepUpRequired();
    const limit = query.limit ?? DEFAULT_PAGE_SIZE;
    const rows = await this.resources.page(
      query.scope === 'all' ? {} : { ownerId: caller.userId },
      limit + 1,
      decodeCursor(query.cursor),
    );
    return toPage(rows, limit, (r) => ResourceDto.from(r));
  }

  async get(caller: Principal | undefined, id: string): Promise<ResourceDto> {
    const found = await this.resources.findVisibleTo(id, this.viewer(caller));
    if (!found) throw notVisible();
    return ResourceDto.from(found);
  }

  /** The resource if anyone may read it (public), else null. */
  async findPublic(id: string): Promise<ResourceDto | null> {
    const found = await this.resources.findVisibleTo(id, undefined);
    return found ? ResourceDto.from(found) : null;
  }

  async update(caller: Principal, id: string, dto: UpdateResourceDto): Promise<ResourceDto> {
    const outcome = await this.resources.updateOwned(id, this.viewer(caller)!, {
      title: dto.title,
      body: dto.body,
      visibility: dto.visibility,
      updatedAt: this.clock.now(),
    });
    if (outcome === 'forbidden') throw notOwner();
    if (!outcome) throw notVisible();
    return ResourceDto.from(outcome);
  }

  /** An admin sees and changes every resource, with ADMIN_REQUIRE_MFA only from an aal2 session. */
  private viewer(caller: Principal | undefined): Viewer | undefined {
    return caller ? { userId: caller.userId, isAdmin: hasAdminPowers(caller, this.config) } : undefined;
  }

  async delete(caller: Principal, id: string): Promise<void> {
    const outcome = await this.resources.deleteOwned(id, this.viewer(caller)!);
    if (outcome === 'forbidden') throw notOwner();
    if (!outcome) throw notVisible();
  }
}

const notVisible = (): AppError => new AppError(ErrorCode.RESOURCE_NOT_FOUND, 'No such resource');
const notOwner = (): AppError =>
  new AppError(ErrorCode.NOT_OWNER, 'Only the owner or an admin may change this resource');
