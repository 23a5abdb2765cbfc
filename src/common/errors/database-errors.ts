/**
 * Recognises "the database cannot be reached" among the shapes errors take on their way up
 * from pg, the driver adapters and Prisma, so that they become 503 instead of 500.
 */
const UNAVAILABLE_PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P5010']);
const UNAVAILABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  '53300', // too_many_connections
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '08000',
  '08001',
  '08003',
  '08006',
]);
/** Driver-adapter error kinds (@prisma/driver-adapter-utils) that mean "cannot reach the database". */
const UNAVAILABLE_ADAPTER_KINDS = new Set([
  'DatabaseNotReachable',
  'ConnectionClosed',
  'SocketTimeout',
  'TooManyConnections',
]);
const UNAVAILABLE_MESSAGES =
  /(Unable to start a transaction in the given time|is not currently accepting connections|too many clients already|Cannot use a pool after calling end|PGlite is closed|Connection terminated|Can't reach database|timeout exceeded when trying to connect|Connection refused|connect ECONNREFUSED|database system is (starting up|shutting down)|terminating connection|Client has encountered a connection error|DatabaseNotReachable|ConnectionClosed|SocketTimeout|database timeout)/i;

export function isDatabaseUnavailable(error: unknown, depth = 0): boolean {
  if (depth > 5 || error === null || typeof error !== 'object') return false;
  const e = error as {
    code?: unknown;
    errorCode?: unknown;
    message?: unknown;
    cause?: unknown;
    kind?: unknown;
    originalCode?: unknown;
    meta?: { driverAdapterError?: unknown };
  };
  for (const code of [e.code, e.errorCode, e.kind, e.originalCode]) {
    if (typeof code === 'string' && (UNAVAILABLE_PRISMA_CODES.has(code) || UNAVAILABLE_NODE_CODES.has(code)))
      return true;
  }
  if (typeof e.kind === 'string' && UNAVAILABLE_ADAPTER_KINDS.has(e.kind)) return true;
  if (typeof e.message === 'string' && UNAVAILABLE_MESSAGES.test(e.message)) return true;
  // Prisma wraps a driver adapter's failure as `meta.driverAdapterError` (its `cause` holds the kind).
  if (e.meta?.driverAdapterError !== undefined && isDatabaseUnavailable(e.meta.driverAdapterError, depth + 1))
    return true;
  return isDatabaseUnavailable(e.cause, depth + 1);
}

/**
 * A transaction that ran past its time limit (Prisma's P2028 "expired transaction"), most often
 * because it waited that long for a lock another transaction held: its database changes were
 * rolled back (what it announced outside the database before may have taken effect), and the
 * same request may well succeed a moment later.
 */
export function isTransactionExpired(error: unknown): boolean {
  if (error === null || typeof error !== 'object') return false;
  const e = error as { code?: unknown; message?: unknown };
  return e.code === 'P2028' && typeof e.message === 'string' && /expired transaction/i.test(e.message);
}

/**
 * Prisma's unique-constraint violation, with the constrained fields when known, else the
 * violated index's name ("external_identities_issuer_subject_key"): @prisma/adapter-pg
 * reports the index rather than the fields, so callers match on names that appear in both.
 */
export function uniqueViolationTarget(error: unknown): string[] | null {
  if (error === null || typeof error !== 'object') return null;
  const e = error as {
    code?: unknown;
    meta?: {
      target?: unknown;
      driverAdapterError?: { cause?: { constraint?: { fields?: unknown; index?: unknown } } };
    };
  };
  if (e.code !== 'P2002') return null;
  const target = e.meta?.target;
  if (Array.isArray(target)) return target.map(String);
  if (typeof target === 'string') return [target];
  const constraint = e.meta?.driverAdapterError?.cause?.constraint;
  if (Array.isArray(constraint?.fields)) return constraint.fields.map(String);
  if (typeof constraint?.index === 'string') return [constraint.index];
  return [];
}

/**
 * Prisma's foreign-key violation: a row the statement refers to was deleted meanwhile (a
 * tenant deleted while a resource is created in it, an account deleted while it is added).
 */
export function isForeignKeyViolation(error: unknown): boolean {
  if (error === null || typeof error !== 'object') return false;
  const e = error as { code?: unknown; meta?: { driverAdapterError?: { cause?: { kind?: unknown } } } };
  return e.code === 'P2003' || e.meta?.driverAdapterError?.cause?.kind === 'ForeignKeyConstraintViolation';
}
