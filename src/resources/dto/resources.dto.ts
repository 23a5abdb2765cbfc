import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, Length, MaxLength, ValidateIf } from 'class-validator';
import { PageDto, PageQueryDto } from '../../common/http/pagination.js';
import type { ResourceRecord } from '../resources.repository.js';

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

/** Optional in a PATCH, but never null: null would reach the NOT NULL columns (500). */
const present = (_: object, value: unknown): boolean => value !== undefined;

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
  @ApiPropertyOptional({ enum: ['all'], description: "Admins only: every user's resources" })
  @IsOptional()
  @IsIn(['all'])
  scope?: 'all';
}

export class ResourceDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) ownerId!: string;
  @ApiProperty() title!: string;
  @ApiProperty() body!: string;
  @ApiProperty({ enum: VISIBILITIES }) visibility!: VisibilityValue;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) updatedAt!: string;

  static from(r: ResourceRecord): ResourceDto {
    return {
      id: r.id,
      ownerId: r.ownerId,
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
