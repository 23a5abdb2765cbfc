import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';
import { AppError } from '../errors/app-error.js';
import { ErrorCode } from '../errors/error-codes.js';

export class PageQueryDto {
  @ApiPropertyOptional({ minimum: 1, maximum: 100, default: 20 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(100)
  limit?: number;

  @ApiPropertyOptional({ description: 'Opaque cursor from a previous page (nextCursor)' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  cursor?: string;
}

export class PageDto<T> {
  items!: T[];
  @ApiProperty({
    type: String,
    nullable: true,
    description: 'Pass as `cursor` for the next page; null on the last page',
  })
  nextCursor!: string | null;
}

/** Keyset position: (createdAt, id) of the last item of a page. */
export interface Position {
  createdAt: Date;
  id: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The instants a cursor may name: 1970-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z.
 * Positions are creation times stamped by the server's clock, so a real one is never before
 * the Unix epoch; up to year 9999 toISOString keeps its plain four-digit form, which is the
 * only form the encoder writes. Anything else (year 0, BC years, +275760…) is not a position
 * we handed out, and some of it PostgreSQL cannot store: it failed in the query (22009, 500).
 */
const CURSOR_MIN_MS = Date.UTC(1970, 0, 1);
const CURSOR_MAX_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
/** Exactly what Date#toISOString writes for those years. */
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** The instant of a cursor's timestamp, only in the encoder's exact form and within range. */
function cursorInstant(value: string): Date | undefined {
  if (!ISO_INSTANT.test(value)) return undefined;
  const ms = Date.parse(value);
  if (!(ms >= CURSOR_MIN_MS && ms <= CURSOR_MAX_MS)) return undefined;
  const date = new Date(ms);
  // Round trip: refuses impossible calendar dates that Date.parse rolls over (02-30 → 03-01).
  return date.toISOString() === value ? date : undefined;
}

/** Cursors are opaque to clients: base64url of the keyset position. */
export function encodeCursor(p: Position): string {
  return Buffer.from(JSON.stringify([p.createdAt.toISOString(), p.id]), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | undefined): Position | undefined {
  if (cursor === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      typeof value[0] === 'string' &&
      typeof value[1] === 'string' &&
      UUID.test(value[1])
    ) {
      const createdAt = cursorInstant(value[0]);
      if (createdAt) return { createdAt, id: value[1] };
    }
  } catch {
    // fall through
  }
  throw new AppError(ErrorCode.VALIDATION_FAILED, ['cursor is not valid']);
}

/** Takes limit+1 rows to know whether a next page exists. */
export function toPage<R extends Position, T>(
  rows: R[],
  limit: number,
  map: (r: R) => T,
): { items: T[]; nextCursor: string | null } {
  const hasMore = rows.length > limit;
  const page = hasMore ? rows.slice(0, limit) : rows;
  const last = page[page.length - 1];
  return { items: page.map(map), nextCursor: hasMore && last ? encodeCursor(last) : null };
}

export const DEFAULT_PAGE_SIZE = 20;
