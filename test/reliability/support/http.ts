// A small HTTP client for load: node:http with an explicit agent (keep-alive or not), a hard
// per-request deadline, and the outcome of every request recorded rather than thrown:
// a status with its body, or the transport error (ECONNREFUSED, ECONNRESET, TIMEOUT ...).
import http from 'node:http';

export interface Outcome {
  /** HTTP status, or undefined when no response came. */
  status?: number;
  /** Transport failure code when no response came (TIMEOUT for our own deadline). */
  error?: string;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** Parsed JSON body when the body is JSON. */
  json?: unknown;
  /** Milliseconds from send to the end of the response (or the error). */
  ms: number;
  startedAt: number;
  endedAt: number;
}

export interface CallOptions {
  headers?: Record<string, string | string[]>;
  /** Sent as JSON with content-type application/json. */
  json?: unknown;
  /** Sent as is (no content-type added). */
  raw?: string | Buffer;
  agent?: http.Agent;
  timeoutMs?: number;
}

/** Keep-alive agent for steady load. */
export function keepAliveAgent(maxSockets = 16): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets, keepAliveMsecs: 1000 });
}

/** One fresh connection per request. */
export const freshConnections = new http.Agent({ keepAlive: false, maxSockets: Infinity });

export function call(base: string, method: string, path: string, opts: CallOptions = {}): Promise<Outcome> {
  const url = new URL(path, base);
  const headers: Record<string, string | string[]> = { ...opts.headers };
  let payload: Buffer | undefined;
  if (opts.json !== undefined) {
    payload = Buffer.from(JSON.stringify(opts.json), 'utf8');
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type'))
      headers['content-type'] = 'application/json';
  } else if (opts.raw !== undefined) {
    payload = Buffer.isBuffer(opts.raw) ? opts.raw : Buffer.from(opts.raw, 'utf8');
  }
  if (payload !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length')) {
    headers['content-length'] = String(payload.length);
  }
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const startedAt = performance.now();
  return new Promise<Outcome>((resolve) => {
    let done = false;
    const finish = (o: Omit<Outcome, 'ms' | 'startedAt' | 'endedAt'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const endedAt = performance.now();
      resolve({ ...o, ms: endedAt - startedAt, startedAt, endedAt });
    };
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path: url.pathname + url.search,
        headers,
        agent: opts.agent ?? freshConnections,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err: NodeJS.ErrnoException) =>
          finish({ error: err.code ?? err.message, headers: {}, text: '' }),
        );
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          if (/json/.test(res.headers['content-type'] ?? '') && text !== '') {
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
          }
          finish({ status: res.statusCode, headers: res.headers, text, json });
        });
      },
    );
    const timer = setTimeout(() => {
      finish({ error: 'TIMEOUT', headers: {}, text: '' });
      req.destroy();
    }, timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => finish({ error: err.code ?? err.message, headers: {}, text: '' }));
    req.end(payload);
  });
}

/** The refresh_token value of a Set-Cookie header, if any. */
export function refreshCookieOf(o: Outcome): string | undefined {
  const raw = o.headers['set-cookie'];
  const list = Array.isArray(raw) ? raw : raw ? [raw] : [];
  const cookie = list.find((c) => c.startsWith('refresh_token='));
  return cookie?.slice('refresh_token='.length).split(';')[0];
}

/** The contract's error body `{statusCode, error, message, code}`, and nothing that leaks internals. */
export function isContractError(o: Outcome, status: number): boolean {
  const body = o.json as Record<string, unknown> | undefined;
  if (!body || typeof body !== 'object') return false;
  const keys = Object.keys(body).sort().join(',');
  return (
    o.status === status &&
    keys === 'code,error,message,statusCode' &&
    body.statusCode === status &&
    typeof body.error === 'string' &&
    (typeof body.message === 'string' || Array.isArray(body.message)) &&
    typeof body.code === 'string' &&
    !leaksInternals(o.text)
  );
}

/** A stack frame, SQL, an internal path or a driver's name in a response body. */
export function leaksInternals(text: string): boolean {
  return /(\n\s+at |\bat [\w.<>]+ \(|node_modules|\/src\/|\/dist\/|\bSELECT\b|\bINSERT\b|\bUPDATE\b|Prisma|prisma\.|PrismaClient|ECONNREFUSED|P1001|pg_|\bsql\b)/i.test(
    text,
  );
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
export const cookie = (refreshToken: string): Record<string, string> => ({ cookie: `refresh_token=${refreshToken}` });
