import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { CurrentUser, Roles, Scopes } from '../access/auth.decorators.js';
import { AuditLogService, SIGN_IN_TYPES, type AuditFilter } from '../audit/audit-log.service.js';
import type { AuditEventType } from '../audit/audit.service.js';
import { AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { ApiErrors } from '../common/http/api-errors.decorator.js';
import { DEFAULT_PAGE_SIZE, PageQueryDto, decodeCursor, toPage } from '../common/http/pagination.js';
import type { Principal } from '../tokens/principal.js';
import { ActivityPageDto, AuditEventPageDto, AuditQueryDto } from './dto/audit.dto.js';

/** Year 1 to year 9999: instants PostgreSQL stores and toISOString writes plainly. */
const EARLIEST_MS = Date.parse('0001-01-01T00:00:00.000Z');
const LATEST_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** The audit trail: all of it for administrators, one's own security events for everyone. */
@ApiTags('audit')
@ApiBearerAuth('bearer')
@Controller()
export class AuditController {
  constructor(private readonly log: AuditLogService) {}

  @Get('audit-events')
  @Roles('admin')
  @Scopes('users:admin')
  @ApiOperation({ summary: 'Admin: the security audit log, newest first, filtered by account, actor, type and time' })
  @ApiOkResponse({ type: AuditEventPageDto })
  @ApiErrors(400, 401, 403)
  async events(@Query() q: AuditQueryDto): Promise<AuditEventPageDto> {
    const limit = q.limit ?? DEFAULT_PAGE_SIZE;
    const rows = await this.log.page(filterOf(q), limit + 1, decodeCursor(q.cursor));
    return toPage(rows, limit, (r) => ({
      id: r.id,
      type: r.type,
      createdAt: r.createdAt.toISOString(),
      userId: r.userId,
      username: r.username,
      actorId: r.actorId,
      actorUsername: r.actorUsername,
      sessionId: r.sessionId,
      ip: r.ip,
      userAgent: r.userAgent,
      requestId: r.requestId,
      details: isObject(r.details) ? r.details : null,
    }));
  }

  @Get('users/me/activity')
  @Scopes('profile')
  @ApiTags('users')
  @ApiOperation({
    summary: "The caller's security events, newest first: sign-ins, failed attempts, password and MFA changes",
  })
  @ApiOkResponse({ type: ActivityPageDto })
  @ApiErrors(400, 401, 403)
  async activity(@CurrentUser() caller: Principal, @Query() q: PageQueryDto): Promise<ActivityPageDto> {
    const limit = q.limit ?? DEFAULT_PAGE_SIZE;
    const rows = await this.log.activity(caller.userId, limit + 1, decodeCursor(q.cursor));
    const signIns = rows.filter((r) => SIGN_IN_TYPES.includes(r.type as AuditEventType) && r.userAgent !== null);
    const first = await this.log.firstSignIns(caller.userId, [...new Set(signIns.map((r) => r.userAgent!))]);
    return toPage(rows, limit, (r) => {
      // Someone else's authenticated request changed this account: only administrators can.
      const byAdministrator = r.actorId !== null && r.actorId !== r.userId;
      return {
        id: r.id,
        type: r.type,
        createdAt: r.createdAt.toISOString(),
        // An administrator's change records the administrator's address, device and session:
        // not the user's to see.
        ip: byAdministrator ? null : r.ip,
        userAgent: byAdministrator ? null : r.userAgent,
        sessionId: byAdministrator ? null : r.sessionId,
        currentSession: !byAdministrator && r.sessionId !== null && r.sessionId === caller.sessionId,
        byAdministrator,
        newDevice:
          r.userAgent !== null &&
          SIGN_IN_TYPES.includes(r.type as AuditEventType) &&
          first.get(r.userAgent)?.getTime() === r.createdAt.getTime(),
      };
    });
  }
}

function filterOf(q: AuditQueryDto): AuditFilter {
  const names = q.type?.split(',') ?? [];
  const filter: AuditFilter = {
    userId: q.userId?.toLowerCase(),
    actorId: q.actorId?.toLowerCase(),
    types: names.filter((n) => !n.endsWith('.*')),
    families: names.filter((n) => n.endsWith('.*')).map((n) => n.slice(0, -2)),
    from: instant('from', q.from),
    to: instant('to', q.to),
  };
  if (filter.from && filter.to && filter.from >= filter.to) {
    throw new AppError(ErrorCode.VALIDATION_FAILED, ['from must be before to']);
  }
  return filter;
}

/**
 * A date (`2026-12-01`, midnight UTC) or a date-time with `Z` or an offset, to the
 * millisecond at most: a time without an offset would be read in the server's time zone, and
 * a finer fraction would be rounded into the wrong side of the bound.
 */
const INSTANT = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2}))?$/i;

function instant(name: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  if (!INSTANT.test(value)) {
    throw new AppError(ErrorCode.VALIDATION_FAILED, [
      `${name} must be a date (2026-12-01) or a date-time with Z or an offset, to the millisecond at most`,
    ]);
  }
  const ms = Date.parse(value);
  if (!isCalendarDate(value) || !(ms >= EARLIEST_MS && ms <= LATEST_MS)) {
    throw new AppError(ErrorCode.VALIDATION_FAILED, [`${name} must be an ISO 8601 instant between years 1 and 9999`]);
  }
  return new Date(ms);
}

/** The date part names a real day (Date.parse rolls 2026-02-30 over to March 2). */
function isCalendarDate(value: string): boolean {
  const [y, m, d] = value.slice(0, 10).split('-').map(Number) as [number, number, number];
  const day = new Date(0);
  day.setUTCFullYear(y, m - 1, d);
  return day.getUTCFullYear() === y && day.getUTCMonth() === m - 1 && day.getUTCDate() === d;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
