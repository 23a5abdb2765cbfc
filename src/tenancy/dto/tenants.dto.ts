import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayUnique,
  IsArray,
  IsEmail,
  IsIn,
  IsOptional,
  IsString,
  Length,
  Matches,
  MaxLength,
  ValidateIf,
} from 'class-validator';
import { PageDto, PageQueryDto } from '../../common/http/pagination.js';
import { IsVisibleText } from '../../common/http/visible-text.validator.js';
import {
  CUSTOM_ROLE_PERMISSIONS,
  MAX_ROLES_PER_MEMBER,
  ROLE_NAME,
  TENANT_PERMISSIONS,
} from '../../tenants/permissions.js';
import type { InvitationRow, MemberRow, TenantRow } from '../../tenants/tenants.repository.js';
import { present } from '../../common/http/present.js';

/** Tenant slugs (contract v2 §E): 3–40 lower-case letters, digits and inner hyphens. */
export const SLUG = /^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$/;
/** A role name as a member's role list may hold it: built-in or custom. */
const ROLE_IN_LIST = /^[a-z][a-z0-9_-]{1,31}$/;

const rolesProperty = {
  type: String,
  isArray: true,
  maxItems: MAX_ROLES_PER_MEMBER,
  example: ['member'],
  description: 'Built-in (owner, admin, member) or custom role names; may be empty',
} as const;

export class CreateTenantDto {
  @ApiProperty({ minLength: 1, maxLength: 100, example: 'Acme Corporation' })
  @IsString()
  @Length(1, 100)
  @IsVisibleText()
  name!: string;

  @ApiProperty({ pattern: SLUG.source, example: 'acme', description: 'Unique and immutable' })
  @IsString()
  @Matches(SLUG, { message: 'slug must be 3–40 lower-case letters, digits and inner hyphens' })
  slug!: string;
}

export class UpdateTenantDto {
  @ApiPropertyOptional({ minLength: 1, maxLength: 100 })
  @ValidateIf(present)
  @IsString()
  @Length(1, 100)
  @IsVisibleText()
  name?: string;
}

export class DeleteTenantDto {
  @ApiProperty({ description: "The tenant's slug, typed again to confirm" })
  @IsString()
  @MaxLength(100)
  confirm!: string;
}

export class TenantQueryDto extends PageQueryDto {
  @ApiPropertyOptional({ enum: ['true', 'false'], description: 'Global admins: every tenant' })
  @IsOptional()
  @IsIn(['true', 'false'])
  all?: 'true' | 'false';
}

export class RoleListDto {
  @ApiProperty(rolesProperty)
  @IsArray()
  @ArrayMaxSize(MAX_ROLES_PER_MEMBER)
  @ArrayUnique()
  @IsString({ each: true })
  @Matches(ROLE_IN_LIST, { each: true, message: 'each role must be a role name' })
  roles!: string[];
}

export class AddMemberDto extends RoleListDto {
  @ApiProperty({ example: 'alice' })
  @IsString()
  @Length(1, 64)
  username!: string;
}

export class InviteDto extends RoleListDto {
  @ApiProperty({ example: 'alice@example.com', maxLength: 254 })
  @IsString()
  @IsEmail({ allow_display_name: false, require_tld: false, allow_ip_domain: false })
  @Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value))
  email!: string;
}

export class AcceptInvitationDto {
  @ApiProperty({ description: 'The token of the invitation link' })
  @IsString()
  @MaxLength(200)
  token!: string;
}

export class PutRoleDto {
  @ApiProperty({ enum: CUSTOM_ROLE_PERMISSIONS, isArray: true, example: ['members:read', 'resources:read'] })
  @IsArray()
  @ArrayMaxSize(TENANT_PERMISSIONS.length)
  @ArrayUnique()
  @IsIn(CUSTOM_ROLE_PERMISSIONS, {
    each: true,
    message: `each permission must be one of ${CUSTOM_ROLE_PERMISSIONS.join(', ')}`,
  })
  permissions!: string[];
}

export const roleNameMessage = `a custom role name is 2–32 characters matching ${ROLE_NAME.source} and not owner, admin or member`;

export class TenantDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() slug!: string;
  @ApiProperty() name!: string;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({
    type: String,
    isArray: true,
    description: "The caller's roles here ([] for a global admin who is not a member)",
  })
  myRoles!: string[];

  static from(t: TenantRow, myRoles: readonly string[] | null): TenantDto {
    return {
      id: t.id,
      slug: t.slug,
      name: t.name,
      createdAt: t.createdAt.toISOString(),
      myRoles: [...(myRoles ?? [])],
    };
  }
}

export class TenantPageDto extends PageDto<TenantDto> {
  @ApiProperty({ type: () => TenantDto, isArray: true })
  declare items: TenantDto[];
}

export class MemberDto {
  @ApiProperty({ format: 'uuid' }) userId!: string;
  @ApiProperty() username!: string;
  @ApiProperty({ type: String, nullable: true }) displayName!: string | null;
  @ApiProperty({ type: String, isArray: true }) roles!: string[];
  @ApiProperty({ format: 'date-time' }) joinedAt!: string;

  static from(m: MemberRow): MemberDto {
    return {
      userId: m.userId,
      username: m.username,
      displayName: m.displayName,
      roles: m.roles,
      joinedAt: m.createdAt.toISOString(),
    };
  }
}

export class MemberPageDto extends PageDto<MemberDto> {
  @ApiProperty({ type: () => MemberDto, isArray: true })
  declare items: MemberDto[];
}

export class InvitationDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) tenantId!: string;
  @ApiProperty() email!: string;
  @ApiProperty({ type: String, isArray: true }) roles!: string[];
  @ApiProperty({ type: String, format: 'uuid', nullable: true }) invitedBy!: string | null;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) expiresAt!: string;

  static from(i: InvitationRow): InvitationDto {
    return {
      id: i.id,
      tenantId: i.tenantId,
      email: i.email,
      roles: i.roles,
      invitedBy: i.invitedBy,
      createdAt: i.createdAt.toISOString(),
      expiresAt: i.expiresAt.toISOString(),
    };
  }
}

export class InvitationPageDto extends PageDto<InvitationDto> {
  @ApiProperty({ type: () => InvitationDto, isArray: true })
  declare items: InvitationDto[];
}

export class AcceptedInvitationDto {
  @ApiProperty({ type: () => TenantDto }) tenant!: TenantDto;
  @ApiProperty({ type: String, isArray: true }) roles!: string[];
}

export class TenantRoleDto {
  @ApiProperty() name!: string;
  @ApiProperty({ description: 'owner, admin and member are built in and cannot be changed' }) builtIn!: boolean;
  @ApiProperty({ enum: TENANT_PERMISSIONS, isArray: true }) permissions!: string[];
}
