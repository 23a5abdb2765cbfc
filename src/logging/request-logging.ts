import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { AppConfig } from '../config/config.schema.js';
import type { AppLogger } from './app-logger.js';
import { runInRequestContext } from './request-context.js';

/**
 * Express middleware, mounted right after the requestId middleware: the rest of the request
 * runs in its request context (every line logged meanwhile carries `reqId`), and with
 * LOG_REQUESTS one access line is written when the response is done (or the client gave
 * up): method, path without the query string (which may hold a token), matched route,
 * status, duration, request id and client address. Never a header, never a body.
 *
 * Access lines are `info` below 500 and `error` from 500: a 4xx is the client's doing
 * (a wrong password, an expired token, a probe for a path), part of normal traffic, and at
 * `warn` a password-guessing run would bury the warnings an operator must see; the `status`
 * field tells them apart. Nothing is installed with LOG_LEVEL=silent.
 */
export function requestLogging(logger: AppLogger, config: AppConfig): RequestHandler | undefined {
  const pino = logger.pinoLogger;
  if (!pino.isLevelEnabled('fatal')) return undefined; // silent
  const access = config.LOG_REQUESTS;
  return (req: Request, res: Response, next: NextFunction) => {
    const reqId = req.id ?? '';
    if (access) {
      const started = performance.now();
      res.once('close', () => {
        const status = res.statusCode;
        const level = status >= 500 ? 'error' : 'info';
        if (!pino.isLevelEnabled(level)) return;
        const url = req.originalUrl;
        const query = url.indexOf('?');
        const path = query === -1 ? url : url.slice(0, query);
        const ms = Math.round((performance.now() - started) * 10) / 10;
        const route = (req.route as { path?: unknown } | undefined)?.path;
        const aborted = !res.writableFinished;
        pino[level](
          {
            context: 'HTTP',
            reqId,
            method: req.method,
            path,
            ...(typeof route === 'string' ? { route: `${req.baseUrl}${route}` } : {}),
            status,
            ms,
            ip: req.ip,
            ...(aborted ? { aborted } : {}),
          },
          `${req.method} ${path} ${status} ${ms} ms${aborted ? ' (aborted)' : ''}`,
        );
      });
    }
    runInRequestContext({ reqId }, next);
  };
}
