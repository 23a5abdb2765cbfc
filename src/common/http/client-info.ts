/**
 * Who is calling, as far as the request says: the client IP (X-Forwarded-For only as
 * TRUST_PROXY allows) and user agent; for the audit log also the request's id and, on an
 * authenticated request, the caller (the actor of what the request changes).
 */
export interface ClientInfo {
  ip: string | null;
  userAgent: string | null;
  /** The verified caller's user id (a client's service user for a client token); absent when unauthenticated. */
  actorId?: string | null;
  /** The request's X-Request-Id. */
  requestId?: string | null;
}
