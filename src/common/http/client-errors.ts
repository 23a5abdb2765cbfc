import { STATUS_CODES, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { ERROR_STATUS, ErrorCode } from '../errors/error-codes.js';

/**
 * What Node's HTTP parser refuses before any route sees the request (a malformed request line
 * or header, conflicting Content-Length and Transfer-Encoding, headers over 16 KiB, a request
 * not received within the server's timeouts), answered in the contract's shape like every
 * other error instead of Node's bodiless default. Node's rules are kept: an answer only while
 * nothing of a response has been written on the connection, and the connection then closed.
 * A HEAD request gets the same head without the body (RFC 9110 §9.3.2): a client reading the
 * answer to HEAD takes no body, and bytes after it on a closing connection are an error to it.
 * The method is read from the start of the bytes the parser refused, which is where the request
 * begins whenever it arrived in one read (a request split across reads, or timed out, is taken
 * as not HEAD).
 */
export function answerClientErrors(server: Server): void {
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    // The response in flight on this connection, if any (Node's own check, lib/_http_server.js).
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && inFlight?.headersSent !== true) socket.write(answer(error.code, isHead(error)));
    socket.destroy();
  });
}

function isHead(error: NodeJS.ErrnoException): boolean {
  const raw = (error as { rawPacket?: unknown }).rawPacket;
  return Buffer.isBuffer(raw) && raw.subarray(0, 5).toString('latin1') === 'HEAD ';
}

function answer(cause: string | undefined, head: boolean): string {
  const [code, message] =
    cause === 'HPE_HEADER_OVERFLOW'
      ? [ErrorCode.HEADERS_TOO_LARGE, 'The request headers are larger than the server accepts']
      : cause === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [ErrorCode.REQUEST_TIMEOUT, 'The request was not received in time']
        : [ErrorCode.MALFORMED_REQUEST, 'The request is not valid HTTP/1.1'];
  const status = ERROR_STATUS[code];
  const body = JSON.stringify({ statusCode: status, error: STATUS_CODES[status], message, code });
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' +
    (head ? '' : body)
  );
}
