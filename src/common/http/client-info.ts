/** Who is calling, as far as the request says: the client IP (X-Forwarded-For only as TRUST_PROXY allows) and user agent. */
export interface ClientInfo {
  ip: string | null;
  userAgent: string | null;
}
