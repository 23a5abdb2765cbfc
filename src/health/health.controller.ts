import { Controller, Get } from '@nestjs/common';
import { ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { Public } from '../access/public.decorator.js';
import { AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import { PrismaService } from '../database/prisma.service.js';

/** Answer within 2 s even when the database does not (contract: /health). */
const HEALTH_TIMEOUT_MS = 1500;

@ApiTags('operations')
@Controller('health')
export class HealthController {
  constructor(private readonly prisma: PrismaService) {}

  @Public()
  @Get()
  @ApiOperation({ summary: 'Liveness and database reachability' })
  @ApiResponse({ status: 200, description: 'The database answers', schema: { example: { status: 'ok' } } })
  @ApiResponse({ status: 503, description: 'The database does not answer' })
  async health(): Promise<{ status: 'ok' }> {
    try {
      await this.prisma.ping(HEALTH_TIMEOUT_MS);
    } catch {
      throw new AppError(ErrorCode.DATABASE_UNAVAILABLE, 'The database is unavailable', {
        'Retry-After': '5',
      });
    }
    return { status: 'ok' };
  }
}
