import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, IsUUID, Length, Matches, MaxLength } from 'class-validator';
import { PageDto, PageQueryDto } from '../../common/http/pagination.js';

/** An exact event type (`login.failed`, `logout_all`) or a family (`login.*`); comma-separated. */
export const TYPE_FILTER = /^([a-z_]+(\.[a-z_]+)?|[a-z]+\.\*)(,([a-z_]+(\.[a-z_]+)?|[a-z]+\.\*)){0,19}$/;

export class AuditQueryDto extends PageQueryDto {
  @ApiPropertyOptional({ format: 'uuid', description: 'Events about this account' })
  @IsOptional()
  @IsUUID('all')
  userId?: string;

  @ApiPropertyOptional({ format: 'uuid', description: 'Events made by this caller (an admin, the user, a client)' })
  @IsOptional()
  @IsUUID('all')
  actorId?: string;

  @ApiPropertyOptional({
    description: 'Comma-separated event types, each exact (`login.failed`) or a family (`login.*`); at most 20',
    example: 'login.*,password.changed',
  })
  @IsOptional()
  @IsString()
  @MaxLength(1000)
  @Matches(TYPE_FILTER, { message: 'type must be event types or families (login.*), comma-separated, at most 20' })
  type?: string;

  @ApiPropertyOptional({ format: 'date-time', description: 'From this instant (inclusive)' })
  @IsOptional()
  @IsString()
  @MaxLength(40)
  from?: string;

  @ApiPropertyOptional({ format: 'date-time', description: 'Up to this instant (exclusive)' })
  @IsOptional()
  @IsString()
  @MaxLength(40)
  to?: string;
}

export class AuditEventDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'login.succeeded' }) type!: string;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ type: String, format: 'uuid', nullable: true, description: 'The account the event is about' })
  userId!: string | null;
  @ApiProperty({ type: String, nullable: true, description: "That account's username; null once it is deleted" })
  username!: string | null;
  @ApiProperty({
    type: String,
    format: 'uuid',
    nullable: true,
    description: 'Who made the request: an admin, the user, a client (null: an unauthenticated request)',
  })
  actorId!: string | null;
  @ApiProperty({ type: String, nullable: true }) actorUsername!: string | null;
  @ApiProperty({ type: String, format: 'uuid', nullable: true }) sessionId!: string | null;
  @ApiProperty({ type: String, nullable: true }) ip!: string | null;
  @ApiProperty({ type: String, nullable: true }) userAgent!: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'The X-Request-Id of the request' })
  requestId!: string | null;
  @ApiProperty({ type: Object, nullable: true, description: 'What else the event records (varies by type)' })
  details!: Record<string, unknown> | null;
}

export class AuditEventPageDto extends PageDto<AuditEventDto> {
  @ApiProperty({ type: AuditEventDto, isArray: true }) declare items: AuditEventDto[];
}

export class ActivityDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'login.succeeded' }) type!: string;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ type: String, nullable: true }) ip!: string | null;
  @ApiProperty({ type: String, nullable: true }) userAgent!: string | null;
  @ApiProperty({ type: String, format: 'uuid', nullable: true }) sessionId!: string | null;
  @ApiProperty({ description: "The event belongs to the caller's own session" }) currentSession!: boolean;
  @ApiProperty({ description: 'An administrator did it (a disable, a role change, an MFA reset, a session ended)' })
  byAdministrator!: boolean;
  @ApiProperty({
    description:
      'A sign-in from a user agent (browser, app) that had not signed in to the account before, as far as the kept log goes',
  })
  newDevice!: boolean;
}

export class ActivityPageDto extends PageDto<ActivityDto> {
  @ApiProperty({ type: ActivityDto, isArray: true }) declare items: ActivityDto[];
}

export class UserSearchQueryDto extends PageQueryDto {
  @ApiPropertyOptional({
    minLength: 1,
    maxLength: 100,
    description: 'Part of a username, email or display name (case-insensitive)',
  })
  @IsOptional()
  @IsString()
  @Length(1, 100)
  q?: string;
}

export class AdminSessionDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) lastUsedAt!: string;
  @ApiProperty({ format: 'date-time' }) expiresAt!: string;
  @ApiProperty({ type: String, nullable: true }) userAgent!: string | null;
  @ApiProperty({ type: String, nullable: true }) ip!: string | null;
}
