import { Injectable } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NextFunction, Request, Response } from 'express';
import type { Counter, Histogram } from 'prom-client';
import { MetricsRegistry } from './metrics.registry.js';
import { promClient } from './prom-client.js';

/** Request durations in seconds: 5 ms to 2.5 s (a bcrypt login takes a few hundred ms). */
export const HTTP_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** `route` of a request no route matched (404s, and failures before routing on unknown paths). */
export const UNMATCHED = 'unmatched';
/** `route` of a file served by the browser client's or the API documentation's static files. */
export const STATIC = 'static';

const REFRESH_ROUTE = '/auth/refresh';

/**
 * `method` label values: the methods an HTTP API uses, and `other` for the rest (Node's parser
 * accepts some thirty, MERGE, PROPFIND …: a client must not be able to add series at will).
 * A request with another method is counted with `route="unmatched"`, as no route takes it.
 */
const OTHER_METHOD = 'other';
const METHOD_LABELS = new Map(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'].map((m) => [m, m] as const));

/** When the request arrived (performance.now()), kept on the response for its 'finish'. */
const STARTED = Symbol('metrics.started');
type TimedResponse = Response & { [STARTED]?: number };

/** Status codes as label values, made once. */
const STATUS_LABELS: string[] = [];
for (let code = 100; code < 600; code++) STATUS_LABELS[code] = String(code);

/**
 * Every HTTP answer of the API port, counted and timed by one Express middleware placed
 * before all others (configureApp): 404s, guards' 401s and the body parser's 400s included.
 * `route` is the matched route's pattern (`/users/:id`), never the raw path: ids and tokens
 * stay out of the labels, and their number stays bounded.
 */
@Injectable()
export class HttpMetrics {
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly duration: Histogram<'method' | 'route' | 'status'>;
  private readonly refreshes: Counter<'outcome'>;
  private readonly refreshLabels: Record<RefreshOutcome, { outcome: RefreshOutcome }>;
  /** The app's route patterns, for the rare answer given before routing (read once, on first need). */
  private routeTable: RouteTable | undefined;
  private routePaths: () => RouteSpec[] = () => [];
  /** The 'finish' listener: the same function for every response (`this` is the response). */
  private readonly finished: (this: Response) => void;

  constructor(registry: MetricsRegistry) {
    const { Counter, Histogram } = promClient();
    const labelNames = ['method', 'route', 'status'] as const;
    this.requests = new Counter({
      name: 'gatehouse_http_requests_total',
      help: 'HTTP requests answered on the API port, by method, route pattern and status',
      labelNames,
      registers: [registry.registry],
    });
    this.duration = new Histogram({
      name: 'gatehouse_http_request_duration_seconds',
      help: 'Time from the request reaching Gatehouse to the last byte of its answer handed to the network, in seconds',
      labelNames,
      buckets: HTTP_DURATION_BUCKETS,
      registers: [registry.registry],
    });
    this.refreshes = new Counter({
      name: 'gatehouse_token_refreshes_total',
      help: 'POST /auth/refresh answers: rotated (200), refused (401, 403), throttled (429), error (anything else)',
      labelNames: ['outcome'],
      registers: [registry.registry],
    });
    this.refreshLabels = {
      rotated: { outcome: 'rotated' },
      refused: { outcome: 'refused' },
      throttled: { outcome: 'throttled' },
      error: { outcome: 'error' },
    };
    for (const labels of Object.values(this.refreshLabels)) this.refreshes.inc(labels, 0);
    const record = this.record.bind(this);
    this.finished = function (this: Response) {
      record(this);
    };
  }

  /** Puts the middleware on the app; call it before any other app.use (configureApp does). */
  install(app: NestExpressApplication): void {
    const express = app.getHttpAdapter().getInstance() as { router?: { stack?: unknown[] } };
    this.routePaths = () => routePathsOf(express.router?.stack ?? []);
    app.use(this.middleware);
  }

  readonly middleware = (_req: Request, res: Response, next: NextFunction): void => {
    (res as TimedResponse)[STARTED] = performance.now();
    res.on('finish', this.finished);
    next();
  };

  private record(res: Response): void {
    const seconds = (performance.now() - ((res as TimedResponse)[STARTED] ?? 0)) / 1000;
    const req = res.req;
    const status = res.statusCode;
    const method = METHOD_LABELS.get(req.method) ?? OTHER_METHOD;
    const route = method === OTHER_METHOD ? UNMATCHED : this.routeOf(req, status);
    const labels = { method, route, status: STATUS_LABELS[status] ?? String(status) };
    this.requests.inc(labels);
    this.duration.observe(labels, seconds);
    if (route === REFRESH_ROUTE && req.method === 'POST')
      this.refreshes.inc(this.refreshLabels[refreshOutcome(status)]);
  }

  private routeOf(req: Request, status: number): string {
    // Express sets req.route when a route matched (Nest registers its routes with their full
    // path, e.g. /users/:id); guards, pipes and handlers all run after that.
    const path = (req.route as { path?: unknown } | undefined)?.path;
    if (typeof path === 'string') return path;
    if (status === 404) return UNMATCHED;
    // A success without a route: a file of the browser client or of the API documentation.
    const method = req.method;
    if (status < 400 && (method === 'GET' || method === 'HEAD')) return STATIC;
    // An answer given before routing (a malformed or too large body, a CORS preflight): the
    // pattern of the route the path belongs to, if any.
    this.routeTable ??= new RouteTable(this.routePaths());
    return this.routeTable.match(pathOf(req.originalUrl), req.method) ?? UNMATCHED;
  }
}

export type RefreshOutcome = 'rotated' | 'refused' | 'throttled' | 'error';

export function refreshOutcome(status: number): RefreshOutcome {
  if (status >= 200 && status < 300) return 'rotated';
  if (status === 401 || status === 403) return 'refused';
  if (status === 429) return 'throttled';
  return 'error';
}

/** The path of a request target, without its query. */
function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/** The routes of an Express router (path pattern and upper-case methods), in their order. */
function routePathsOf(stack: unknown[]): RouteSpec[] {
  const routes: RouteSpec[] = [];
  for (const layer of stack) {
    const route = (layer as { route?: { path?: unknown; methods?: Record<string, boolean> } }).route;
    if (typeof route?.path !== 'string') continue;
    const methods = Object.keys(route.methods ?? {}).map((m) => m.toUpperCase());
    routes.push({ path: route.path, methods });
  }
  return routes;
}

export interface RouteSpec {
  path: string;
  /** Upper-case; `_ALL` for a route of every method. */
  methods: readonly string[];
}

/**
 * Route patterns matched as Express matches them by default (case-insensitive, an optional
 * trailing slash, `:name` for one non-empty segment), for the methods each route takes (a GET
 * route takes HEAD too). Patterns with other syntax (wildcards, optional parts) are left out:
 * Gatehouse has none.
 */
export class RouteTable {
  private readonly patterns: Array<{ path: string; methods: Set<string>; segments: Array<string | null> }> = [];

  constructor(routes: Iterable<RouteSpec>) {
    for (const { path, methods } of routes) {
      if (!path.startsWith('/') || /[*?+(){}]/.test(path)) continue;
      const accepted = new Set(methods);
      if (accepted.has('GET')) accepted.add('HEAD');
      this.patterns.push({
        path,
        methods: accepted,
        segments: segmentsOf(path).map((s) => (s.startsWith(':') ? null : s)),
      });
    }
  }

  /** The first pattern `path` matches among the routes that take `method`. */
  match(path: string, method: string): string | undefined {
    const segments = segmentsOf(path);
    return this.patterns.find(
      (p) =>
        (p.methods.has(method) || p.methods.has('_ALL')) &&
        p.segments.length === segments.length &&
        p.segments.every((s, i) => (s === null ? segments[i] !== '' : s === segments[i])),
    )?.path;
  }
}

function segmentsOf(path: string): string[] {
  const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  return trimmed.toLowerCase().split('/').slice(1);
}
