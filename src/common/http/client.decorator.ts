import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import type { ClientInfo } from './client-info.js';

/** The caller's IP (X-Forwarded-For only as TRUST_PROXY allows), user agent, request id and verified user. */
export const Client = createParamDecorator((_: unknown, ctx: ExecutionContext): ClientInfo => {
  const req = ctx.switchToHttp().getRequest<Request>();
  const ua = req.headers['user-agent'];
  return {
    ip: req.ip ?? null,
    userAgent: typeof ua === 'string' ? ua : null,
    // Set by the access layer's guard (src/access/principal-request.ts) on authenticated routes.
    actorId: (req as { principal?: { userId?: string } }).principal?.userId ?? null,
    requestId: req.id ?? null,
  };
});
