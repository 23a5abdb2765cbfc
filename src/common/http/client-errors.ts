import { STATUS_CODES, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { ERROR_STATUS, ErrorCode } from '../errors/error-codes.js';

/**
 * What Node's HTTP parser refuses before any route sees the request (a malformed request line
 * or header, conflicting Content-Length and Transfer-Encoding, headers over 16 KiB, a request
 * not received within the server's timeouts), answered in the contract's shape like every
 * other error instead of Node's bodiless default. Node's rules are kept: an answer only while
 * nothing of a response has been written on the connection, and the connection then closed.
 *
 * The body goes only where the client will read it (RFC 9110 §9.3.2: no content in answer to
 * HEAD; a client that reads a body after such an answer sees bytes past a closing answer, an
 * error; one told a length that never comes sees an aborted answer). A client takes the answer
 * for its oldest unanswered request: the one whose response is in flight on the connection,
 * if any, else the refused one. Node's parser keeps no method before a request's headers end,
 * so the refused request's method is taken only from bytes that cannot belong to another
 * request: the connection's first read, beginning with a whole request line. Whenever that
 * does not hold (a later read, a timeout), the answer has no body at all (Content-Length: 0),
 * which every client reads correctly.
 */
export function answerClientErrors(server: Server): void {
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    // The response in flight on this connection, if any (Node's own check, lib/_http_server.js).
    const inFlight = (socket as { _httpMessage?: ServerResponse | null })._httpMessage ?? null;
    if (socket.writable && inFlight?.headersSent !== true)
      socket.write(answer(error.code, form(error, socket, inFlight)));
    socket.destroy();
  });
}

/** Whole (with the body), head (HEAD: the headers of the whole answer), or empty (no body, length 0). */
type Form = 'whole' | 'head' | 'empty';

/**
 * A whole request line (RFC 9112 §3: method, target, version), after optional empty lines
 * (§2.2); its method captured. A whole line, so that a header line of a request begun in an
 * earlier read ("Bad Header: 1") is not taken for one.
 */
const REQUEST_LINE = /^(?:\r?\n)*([!#$%&'*+.^_`|~0-9A-Za-z-]+) [^\s]+ HTTP\/\d\.\d\r?\n/;

/** How far into the refused bytes a request line is looked for (a longer one is not recognised). */
const REQUEST_LINE_MAX = 8 * 1024;

function form(error: NodeJS.ErrnoException, socket: Duplex, inFlight: ServerResponse | null): Form {
  if (inFlight) return inFlight.req.method === 'HEAD' ? 'head' : 'whole';
  const raw = (error as { rawPacket?: unknown }).rawPacket;
  // The refused bytes are the parser's current read: only the connection's first starts at a
  // request. Within that read the refused request is the first one: a request before it would
  // have its response on the connection still (in flight, or written and not yet finished, when
  // Node writes no answer at all).
  if (!Buffer.isBuffer(raw) || (socket as { bytesRead?: number }).bytesRead !== raw.length) return 'empty';
  const text = raw.subarray(0, REQUEST_LINE_MAX).toString('latin1');
  const method = REQUEST_LINE.exec(text)?.[1];
  if (method === undefined) return 'empty';
  return method === 'HEAD' ? 'head' : 'whole';
}

function answer(cause: string | undefined, shape: Form): string {
  const [code, message] =
    cause === 'HPE_HEADER_OVERFLOW'
      ? [ErrorCode.HEADERS_TOO_LARGE, 'The request headers are larger than the server accepts']
      : cause === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [ErrorCode.REQUEST_TIMEOUT, 'The request was not received in time']
        : [ErrorCode.MALFORMED_REQUEST, 'The request is not valid HTTP/1.1'];
  const status = ERROR_STATUS[code];
  const statusLine = `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n`;
  if (shape === 'empty') return `${statusLine}Content-Length: 0\r\nConnection: close\r\n\r\n`;
  const body = JSON.stringify({ statusCode: status, error: STATUS_CODES[status], message, code });
  return (
    statusLine +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' +
    (shape === 'head' ? '' : body)
  );
}
