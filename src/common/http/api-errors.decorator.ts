import { STATUS_CODES } from 'node:http';
import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiResponse, getSchemaPath, ApiExtraModels } from '@nestjs/swagger';

/** The contract's error body, for OpenAPI. */
export class ErrorBodyDto {
  @ApiProperty({ example: 401 }) statusCode!: number;
  @ApiProperty({ example: 'Unauthorized' }) error!: string;
  @ApiProperty({ oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] }) message!:
    string | string[];
  @ApiProperty({ example: 'INVALID_CREDENTIALS', description: 'Stable machine-readable code' }) code!: string;
}

/** Documents the error responses a route can give, all in the ErrorBody shape. */
export function ApiErrors(...statuses: number[]): MethodDecorator & ClassDecorator {
  return applyDecorators(
    ApiExtraModels(ErrorBodyDto),
    ...statuses.map((status) =>
      ApiResponse({ status, description: STATUS_CODES[status], schema: { $ref: getSchemaPath(ErrorBodyDto) } }),
    ),
  );
}
