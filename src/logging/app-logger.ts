import { createRequire } from 'node:module';
import type { LoggerService } from '@nestjs/common';
import { pino, stdTimeFunctions, type DestinationStream, type Level, type Logger as Pino } from 'pino';
import type PinoPretty from 'pino-pretty';
import type { AppConfig } from '../config/config.schema.js';
import { currentRequest } from './request-context.js';

/** LOG_LEVEL (Nest's level names) → pino's. */
const PINO_LEVELS: Record<AppConfig['LOG_LEVEL'], Level | 'silent'> = {
  error: 'error',
  warn: 'warn',
  log: 'info',
  debug: 'debug',
  verbose: 'trace',
  silent: 'silent',
};

export const CENSOR = '[redacted]';

/**
 * Fields whose values are never written, at any depth of a logged object. Compared without
 * case, `-` and `_`: `client_secret`, `clientSecret` and `Client-Secret` are one name.
 */
export const SENSITIVE_FIELDS = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'password',
  'currentPassword',
  'newPassword',
  'token',
  'accessToken',
  'refreshToken',
  'idToken',
  'subjectToken',
  'actorToken',
  'clientAssertion',
  'mfaToken',
  'code',
  'totp',
  'recoveryCode',
  'recoveryCodes',
  'secret',
  'clientSecret',
  'otpauthUri',
] as const;

const normalise = (key: string): string => key.toLowerCase().replace(/[-_]/g, '');
const SENSITIVE = new Set(SENSITIVE_FIELDS.map(normalise));
/** The verdict per field name seen (a few dozen names in practice; bounded all the same). */
const verdicts = new Map<string, boolean>();
function isSensitive(key: string): boolean {
  let verdict = verdicts.get(key);
  if (verdict === undefined) {
    verdict = SENSITIVE.has(normalise(key));
    if (verdicts.size < 1000) verdicts.set(key, verdict);
  }
  return verdict;
}

/**
 * pino's own redaction, for exact paths: the top-level fields above in their usual
 * spellings, and the places where a request's credentials sit when a request or a response
 * object is logged (headers, body, query string). Its wildcard paths (`*.password`) would
 * cost about a microsecond per path on every line, so deeper fields are left to
 * scrubSensitive below, which looks at each key once.
 */
const REDACT_PATHS = [
  ...new Set(SENSITIVE_FIELDS.flatMap((field) => [field, field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)])),
]
  .map((field) => (/^[A-Za-z_$][\w$]*$/.test(field) ? field : `["${field}"]`))
  .concat(
    ['headers', 'req.headers'].flatMap((at) =>
      ['authorization', 'cookie', 'proxy-authorization'].map((h) => `${at}["${h}"]`),
    ),
    ['headers["set-cookie"]', 'res.headers["set-cookie"]', 'body', 'req.body', 'query', 'req.query'],
  );

/** Objects are followed this deep at most (and only plain objects and arrays). */
const MAX_DEPTH = 6;

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * A copy of `value` with every sensitive field replaced by CENSOR, at any depth up to
 * MAX_DEPTH; `value` itself when it holds none (the usual case: no copy). Errors are left to
 * the `err` serializer, which keeps only their type, message, code and stack.
 */
export function scrubSensitive<T extends object>(value: T, depth = 0): T {
  let copy: Record<string, unknown> | unknown[] | undefined;
  const source = value as Record<string, unknown>;
  for (const key of Object.keys(source)) {
    const field = source[key];
    let next = field;
    if (isSensitive(key)) next = CENSOR;
    else if (
      depth < MAX_DEPTH &&
      typeof field === 'object' &&
      field !== null &&
      (Array.isArray(field) || isPlainObject(field))
    ) {
      next = scrubSensitive(field, depth + 1);
    }
    if (next !== field) {
      copy ??= Array.isArray(value) ? [...(value as unknown[])] : { ...source };
      (copy as Record<string, unknown>)[key] = next;
    }
  }
  return (copy ?? value) as T;
}

interface SerializedError {
  type: string;
  message: string;
  code?: string | number;
  stack?: string;
  cause?: SerializedError;
}

/**
 * What a log line keeps of an error: its type, message, code, stack and cause. Never its
 * other properties: some libraries hang the request, its headers or a connection string on
 * the errors they throw.
 */
export function serializeError(error: unknown, depth = 0): SerializedError {
  if (!(error instanceof Error)) {
    // A stack that came as text (Nest's error(message, stack)): its first line is "Type: message".
    const stack = (error as { stack?: unknown } | null)?.stack;
    if (typeof stack === 'string') return { type: 'Error', message: stack.split('\n', 1)[0]!, stack };
    return { type: typeof error, message: String(error) };
  }
  const out: SerializedError = { type: error.name, message: error.message };
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') out.code = code;
  if (error.stack !== undefined) out.stack = error.stack;
  if (error.cause !== undefined && depth < 3) out.cause = serializeError(error.cause, depth + 1);
  return out;
}

/** Adds the request id to every line written while a request is handled. */
function requestMixin(): { reqId?: string } {
  const request = currentRequest();
  // A new object each time: pino merges the line's own fields into it.
  return request === undefined ? {} : { reqId: request.reqId };
}

/** A stack trace as Nest's Logger passes it to error(): "Error: …\n    at …". */
const STACK = /\n\s+at /;

type Method = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * Nest's LoggerService on one pino logger: every `new Logger('Context')` of the application
 * writes through it, with `context` as a field. Nest's `log` is pino's `info`, `verbose` is
 * `trace`. A message that is an object is merged into the line's fields (and redacted like
 * them); an Error, or a stack passed to error(), becomes `err`.
 */
export class AppLogger implements LoggerService {
  constructor(readonly pinoLogger: Pino) {}

  log(message: unknown, ...params: unknown[]): void {
    this.write('info', message, params);
  }

  error(message: unknown, ...params: unknown[]): void {
    this.write('error', message, params);
  }

  warn(message: unknown, ...params: unknown[]): void {
    this.write('warn', message, params);
  }

  debug(message: unknown, ...params: unknown[]): void {
    this.write('debug', message, params);
  }

  verbose(message: unknown, ...params: unknown[]): void {
    this.write('trace', message, params);
  }

  fatal(message: unknown, ...params: unknown[]): void {
    this.write('fatal', message, params);
  }

  private write(level: Method, message: unknown, params: unknown[]): void {
    if (!this.pinoLogger.isLevelEnabled(level)) return;
    const fields: Record<string, unknown> = {};
    let msg: string | undefined;
    if (typeof message === 'string') msg = message;
    else if (message instanceof Error) {
      fields.err = message;
      msg = message.message;
    } else if (typeof message === 'object' && message !== null) {
      Object.assign(fields, message);
      if (typeof fields.msg === 'string') msg = fields.msg;
      delete fields.msg;
    } else msg = String(message);
    // Nest's Logger appends its context as the last argument; error() gets (message, stack?, context).
    let context: string | undefined;
    const last = params.at(-1);
    if (typeof last === 'string' && !STACK.test(last)) {
      context = last;
      params = params.slice(0, -1);
    }
    const extra: unknown[] = [];
    for (const param of params) {
      if (param === undefined) continue;
      if (typeof param === 'string' && STACK.test(param)) fields.err ??= { stack: param };
      else if (param instanceof Error) fields.err ??= param;
      else if (typeof param === 'object' && param !== null && isPlainObject(param)) Object.assign(fields, param);
      else extra.push(param);
    }
    if (extra.length > 0) fields.params = extra;
    if (context !== undefined) fields.context = context;
    this.pinoLogger[level](fields, msg);
  }
}

/** "(context) message" on one line: a message's own line breaks (a database driver's, say) become spaces. */
function prettyMessage(log: Record<string, unknown>, messageKey: string): string {
  const context = typeof log.context === 'string' ? `(${log.context}) ` : '';
  const message = log[messageKey];
  const text = typeof message === 'string' ? message : message === undefined ? '' : JSON.stringify(message);
  return `${context}${text.replace(/\s*\n\s*/g, ' ')}`;
}

export interface LoggerOptions {
  /** Where lines go instead of stdout (tests). Pretty text is never coloured there. */
  destination?: DestinationStream;
}

/**
 * The application's logger, from LOG_LEVEL and LOG_FORMAT: JSON lines (`json`) or one line
 * of text per entry (`pretty`, pino-pretty in this process, no worker thread), written
 * synchronously to stdout (a line is never lost at exit, and lines keep their order).
 */
export function createAppLogger(config: AppConfig, options: LoggerOptions = {}): AppLogger {
  const level = PINO_LEVELS[config.LOG_LEVEL];
  const json = config.LOG_FORMAT === 'json';
  let stream: DestinationStream;
  if (level === 'silent') stream = { write: () => undefined };
  else if (json) stream = options.destination ?? pino.destination({ dest: 1, sync: true });
  else {
    // Loaded only for text logs (a CommonJS package, so synchronously): production logs JSON
    // lines and never holds pino-pretty and its dependencies.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
    stream = pretty({
      destination: options.destination ?? 1,
      sync: true,
      colorize: options.destination === undefined && process.stdout.isTTY,
      singleLine: true,
      translateTime: 'SYS:HH:MM:ss.l',
      // The access line's own fields are in its message already.
      ignore: 'pid,hostname,context,method,path,status,ms',
      messageFormat: prettyMessage,
    });
  }
  const logger = pino(
    {
      level,
      timestamp: stdTimeFunctions.isoTime,
      formatters: {
        // Level names ("info", "error"), not pino's numbers; in pretty mode pino-pretty reads the numbers.
        ...(json ? { level: (label: string) => ({ level: label }) } : {}),
        log: (object: Record<string, unknown>) => scrubSensitive(object),
      },
      serializers: { err: serializeError },
      redact: { paths: REDACT_PATHS, censor: CENSOR },
      mixin: requestMixin,
    },
    stream,
  );
  return new AppLogger(logger);
}
