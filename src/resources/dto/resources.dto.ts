import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, Length, MaxLength, ValidateIf } from 'class-validator';
import { PageDto, PageQueryDto } from '../../common/http/pagination.js';
import type { ResourceRecord } from '../resources.repository.js';
import { present } from '../../common/http/present.js';

export const VISIBILITIES = ['private', 'public'] as const;
export type VisibilityValue = (typeof VISIBILITIES)[number];

export class CreateResourceDto {
  @ApiProperty({ minLength: 1, maxLength: 200 })
  @IsString()
  @Length(1, 200)
  title!: string;

  @ApiPropertyOptional({ maxLength: 10000, default: '' })
  @IsOptional()
  @IsString()
  @MaxLength(10000)
  body?: string;

  @ApiPropertyOptional({ enum: VISIBILITIES, default: 'private' })
  @IsOptional()
  @IsIn(VISIBILITIES)
  visibility?: VisibilityValue;
}

export class UpdateResourceDto {
  @ApiPropertyOptional({ minLength: 1, maxLength: 200 })
  @ValidateIf(present)
  @IsString()
  @Length(1, 200)
  title?: string;

  @ApiPropertyOptional({ maxLength: 10000 })
  @ValidateIf(present)
  @IsString()
  @MaxLength(10000)
  body?: string;

  @ApiPropertyOptional({ enum: VISIBILITIES })
  @ValidateIf(present)
  @IsIn(VISIBILITIES)
  visibility?: VisibilityValue;
}

export class ResourceQueryDto extends PageQueryDto {
  @ApiPropertyOptional({
    enum: ['all', 'memberships'],
    description:
      "memberships: personal resources plus those of every tenant you may read in; all (admins only): every user's",
  })
  @IsOptional()
  @IsIn(['all', 'memberships'])
  scope?: 'all' | 'memberships';
}

export class ResourceDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({
    format: 'uuid',
    nullable: true,
    type: String,
    description: 'Null once the creator of a tenant resource deleted their account',
  })
  ownerId!: string | null;
  @ApiProperty({
    format: 'uuid',
    nullable: true,
    type: String,
    description: 'The tenant that owns it; null for a personal resource',
  })
  tenantId!: string | null;
  @ApiProperty() title!: string;
  @ApiProperty() body!: string;
  @ApiProperty({ enum: VISIBILITIES }) visibility!: VisibilityValue;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) updatedAt!: string;

  static from(r: ResourceRecord): ResourceDto {
    return {
      id: r.id,
      ownerId: r.ownerId,
      tenantId: r.tenantId,
      title: r.title,
      body: r.body,
      visibility: r.visibility,
      createdAt: r.createdAt.toISOString(),
      updatedAt: r.updatedAt.toISOString(),
    };
  }
}

export class ResourcePageDto extends PageDto<ResourceDto> {
  @ApiProperty({ type: () => ResourceDto, isArray: true })
  declare items: ResourceDto[];
}
