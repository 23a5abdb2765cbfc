import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/** A message as the test SMTP server received it: envelope, parsed mail and raw source. */
export interface ReceivedMail {
  from: string;
  to: string[];
  parsed: ParsedMail;
  raw: string;
}

export interface TestSmtp {
  /** smtp://127.0.0.1:<port> for SMTP_URL. */
  url: string;
  received: ReceivedMail[];
  /** The next (not yet taken) mail to this address, waiting up to `timeoutMs`. */
  waitForMail(to: string, timeoutMs?: number): Promise<ReceivedMail>;
  /** Mails to this address received so far (taken or not). */
  mailsTo(to: string): ReceivedMail[];
  close(): Promise<void>;
}

export type SmtpBehaviour =
  /** Accept every message. */
  | 'accept'
  /** Accept the connection and the envelope, then never answer DATA. */
  | 'hang-on-data'
  /** Reject every message with 451. */
  | 'reject';

/**
 * A real SMTP server on 127.0.0.1:0 (the `smtp-server` package, no STARTTLS, optional
 * auth) whose messages are parsed with `mailparser`.
 */
export async function startSmtp(behaviour: SmtpBehaviour = 'accept'): Promise<TestSmtp> {
  const received: ReceivedMail[] = [];
  const taken = new Set<ReceivedMail>();
  const waiters: Array<() => void> = [];
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    logger: false,
    onData(stream, session, callback) {
      if (behaviour === 'hang-on-data') {
        stream.resume(); // read and never answer
        return;
      }
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (behaviour === 'reject') {
          const error = Object.assign(new Error('try again later'), { responseCode: 451 });
          callback(error);
          return;
        }
        const raw = Buffer.concat(chunks).toString('utf8');
        simpleParser(raw)
          .then((parsed) => {
            received.push({
              from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
              to: session.envelope.rcptTo.map((r) => r.address),
              parsed,
              raw,
            });
            for (const w of waiters.splice(0)) w();
            callback();
          })
          .catch((error: Error) => callback(error));
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  const mailsTo = (to: string) => received.filter((m) => m.to.some((a) => a.toLowerCase() === to.toLowerCase()));
  return {
    url: `smtp://127.0.0.1:${port}`,
    received,
    mailsTo,
    async waitForMail(to, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const mail = mailsTo(to).find((m) => !taken.has(m));
        if (mail) {
          taken.add(mail);
          return mail;
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no mail to ${to} within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(left, 200));
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The token of the link in a mail's text (`#token=…`). */
export function tokenOf(mail: ReceivedMail): string {
  const match = /#token=([A-Za-z0-9_%-]+)/.exec(mail.parsed.text ?? '');
  if (!match) throw new Error(`no #token= link in: ${mail.parsed.text}`);
  return decodeURIComponent(match[1]!);
}
