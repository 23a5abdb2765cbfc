/**
 * The real-time protocol's wire format (contract v2 §F): JSON text frames `{event, data, id?}`
 * (the shape of Nest's WsAdapter), and the close codes, which follow graphql-ws's
 * (4400/4401/4403/4408/4429/4500, already known to clients) plus 4410 for a revoked session.
 * RFC 6455 §7.4.2 leaves 4000–4999 to applications.
 */

/** The subprotocol a client may offer; the server selects and echoes it. */
export const SUBPROTOCOL = 'gatehouse.v1';

/** A close: its code and the reason sent with it (a stable, machine-readable word). */
export interface CloseReason {
  code: number;
  reason: string;
}

const close = (code: number, reason: string): CloseReason => ({ code, reason });

export const CLOSE = {
  /** Server shutdown or restart: reconnect. */
  GOING_AWAY: close(1001, ''),
  /** More than 1 MiB waiting to be sent: the client reads too slowly. */
  BACKPRESSURE: close(1013, ''),
  /** A dependency (database, external issuer) is briefly unavailable: reconnect later. */
  TRY_AGAIN_LATER: close(1013, 'TRY_AGAIN_LATER'),
  BAD_MESSAGE: close(4400, 'BAD_MESSAGE'),
  UNAUTHORIZED: close(4401, 'UNAUTHORIZED'),
  INVALID_TOKEN: close(4401, 'INVALID_TOKEN'),
  TOKEN_EXPIRED: close(4401, 'TOKEN_EXPIRED'),
  IDENTITY_CHANGED: close(4403, 'IDENTITY_CHANGED'),
  INSUFFICIENT_SCOPE: close(4403, 'INSUFFICIENT_SCOPE'),
  AUTH_TIMEOUT: close(4408, 'AUTH_TIMEOUT'),
  SESSION_REVOKED: close(4410, 'SESSION_REVOKED'),
  TOO_MANY_CONNECTIONS: close(4429, 'TOO_MANY_CONNECTIONS'),
  TOO_MANY_MESSAGES: close(4429, 'TOO_MANY_MESSAGES'),
  INTERNAL_ERROR: close(4500, 'INTERNAL_ERROR'),
} as const;

/** What a client may send. */
export const CLIENT_EVENTS = ['auth', 'subscribe', 'unsubscribe'] as const;
export type ClientEvent = (typeof CLIENT_EVENTS)[number];

export interface ClientMessage {
  event: ClientEvent;
  data: unknown;
  /** Echoed in the direct answer to this message (auth.ok, subscribed, error). */
  id?: string | number;
}

/** Most topics one message may name, and one connection may hold. */
export const MAX_TOPICS_PER_MESSAGE = 20;
export const MAX_TOPICS_PER_CONNECTION = 100;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The message of a frame, or null when it breaks the protocol (4400 BAD_MESSAGE): a binary
 * frame, text that is not JSON, JSON that is not an object with a known string `event` and
 * a `data` member, or an `id` that is neither a short string nor a number.
 */
export function parseFrame(data: Buffer, isBinary: boolean): ClientMessage | null {
  if (isBinary) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString('utf8'));
  } catch {
    return null;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return null;
  const m = parsed as Record<string, unknown>;
  if (typeof m.event !== 'string' || !(CLIENT_EVENTS as readonly string[]).includes(m.event)) return null;
  if (!Object.hasOwn(m, 'data')) return null;
  const id = m.id;
  if (
    id !== undefined &&
    !(typeof id === 'string' && id.length <= 64) &&
    !(typeof id === 'number' && Number.isFinite(id))
  ) {
    return null;
  }
  return { event: m.event as ClientEvent, data: m.data, ...(id !== undefined ? { id } : {}) };
}

/** The token of an `auth` message's data, or null when there is none. */
export function tokenOf(data: unknown): string | null {
  if (data === null || typeof data !== 'object') return null;
  const token = (data as { token?: unknown }).token;
  return typeof token === 'string' && token.length > 0 ? token : null;
}

/**
 * The tenant ids of a `subscribe`/`unsubscribe` message's `topics` (`tenant:<uuid>`, lower
 * case), or a reason why they are not acceptable.
 */
export function tenantTopics(data: unknown): { tenants: string[] } | { error: string } {
  const topics = data !== null && typeof data === 'object' ? (data as { topics?: unknown }).topics : undefined;
  if (!Array.isArray(topics) || topics.length === 0) return { error: 'data.topics must be a non-empty array' };
  if (topics.length > MAX_TOPICS_PER_MESSAGE) {
    return { error: `data.topics may name at most ${MAX_TOPICS_PER_MESSAGE} topics` };
  }
  const tenants = new Set<string>();
  for (const t of topics) {
    if (typeof t !== 'string' || !t.startsWith('tenant:') || !UUID.test(t.slice(7))) {
      return { error: 'every topic must be "tenant:<tenant id>"' };
    }
    tenants.add(t.slice(7).toLowerCase());
  }
  return { tenants: [...tenants] };
}
