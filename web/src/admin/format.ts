import { h, time } from '../dom.js';

/**
 * Small pure helpers of the admin console (no DOM state, no requests): formatting what the
 * API returns, and turning form input into what it takes.
 */

/** A user agent cut to `max` characters (the whole of it goes in a `title`). */
export function shortAgent(userAgent: string | null, max = 48): string {
  if (!userAgent) return '—';
  return userAgent.length <= max ? userAgent : `${userAgent.slice(0, max - 1)}…`;
}

/**
 * A `datetime-local` value ("2026-12-01T14:30", this computer's time) as an ISO 8601 instant;
 * '' → null; a value the browser's Date cannot read → undefined (the caller says so).
 */
export function localInputToIso(value: string): string | null | undefined {
  const trimmed = value.trim();
  if (!trimmed) return null;
  const date = new Date(trimmed);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** An ISO instant as a `datetime-local` value in this computer's time ('' for none or a bad one). */
export function isoToLocalInput(iso: string | null | undefined): string {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const pad = (n: number) => String(n).padStart(2, '0');
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}

/** "login.*, account.disabled ,," → ['login.*', 'account.disabled']. */
export function splitTypes(value: string): string[] {
  return value
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/**
 * The audit event's JSON, for its "Details" cell: indented text, shown with textContent only.
 * Long values stay whole: the cell scrolls.
 */
export function eventJson(value: unknown): string {
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}

/** A secret's state, from its dates (`now` in ms). */
export function secretState(
  secret: { revokedAt: string | null; expiresAt: string | null },
  now = Date.now(),
): 'revoked' | 'expired' | 'live' {
  if (secret.revokedAt) return 'revoked';
  if (secret.expiresAt && new Date(secret.expiresAt).getTime() <= now) return 'expired';
  return 'live';
}

// ---- DOM building (textContent only, through dom.ts's h()) ------------------------------------

/** One `<div><dt>…</dt><dd>…</dd></div>` of a `dl.facts`. */
export function fact(term: string, ...value: Array<Node | string | null>): HTMLDivElement {
  return h('div', {}, h('dt', {}, term), h('dd', {}, ...value));
}

export function badge(text: string, kind: string): HTMLSpanElement {
  return h('span', { class: `badge ${kind}` }, text);
}

/** A time, or a dash for none. */
export function timeOrDash(iso: string | null | undefined): Node | string {
  return iso ? time(iso) : '—';
}
