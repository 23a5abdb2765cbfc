/**
 * How many times the raw `Cookie` header carries a cookie called `name`.
 *
 * cookie-parser silently keeps the first of two same-named cookies, and which one a browser
 * sends first depends on path length and creation time: a cookie planted by a sibling
 * subdomain or an injected `Set-Cookie` can so be put in front of the real one. Callers use
 * this count to refuse the ambiguity instead of guessing. Names are compared after trimming
 * spaces and tabs, as cookie-parser reads them; a pair without "=" is no cookie (ignored by
 * cookie-parser too). Node joins repeated `Cookie` headers with "; ", so they count as well.
 */
export function cookieCount(header: string | string[] | undefined, name: string): number {
  if (header === undefined) return 0;
  const text = Array.isArray(header) ? header.join('; ') : header;
  let count = 0;
  for (const pair of text.split(';')) {
    const eq = pair.indexOf('=');
    if (eq !== -1 && pair.slice(0, eq).replace(/^[ \t]+|[ \t]+$/g, '') === name) count += 1;
  }
  return count;
}
