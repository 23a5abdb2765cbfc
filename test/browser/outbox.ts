import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { sleep } from './harness.js';

/** The mail outbox of a server started with MAIL_OUTBOX_DIR, as the browser tests read it. */
export interface Mail {
  file: string;
  subject: string;
  text: string;
  /** The first link of the text part with a `#token=` fragment. */
  link: string;
}

/**
 * A reader of the outbox `dir()` (a getter: the folder is made in beforeAll). It hands out
 * each .eml file once: the newest not yet taken mail to `to` whose subject matches, once it is
 * in the outbox. Mail leaves the server off the request path, and an earlier mail may still be
 * on its way (the signup's verification link, say): after the first match the outbox is given
 * a moment more, and the newest match wins. The older matches are marked taken too.
 */
export function outboxReader(dir: () => string): (to: string, subject: RegExp) => Promise<Mail> {
  const taken = new Set<string>();
  return async function mailTo(to: string, subject: RegExp): Promise<Mail> {
    const outbox = dir();
    const deadline = Date.now() + 15_000;
    let settleUntil = 0;
    for (;;) {
      const matches: Mail[] = [];
      // The names start with an ISO time: sorted, the newest comes last.
      for (const file of readdirSync(outbox)
        .filter((f) => f.endsWith('.eml') && !taken.has(f))
        .sort()) {
        const parsed = await simpleParser(readFileSync(join(outbox, file)));
        const recipients = (Array.isArray(parsed.to) ? parsed.to : parsed.to ? [parsed.to] : []).flatMap((a) =>
          a.value.map((v) => (v.address ?? '').toLowerCase()),
        );
        if (!recipients.includes(to.toLowerCase()) || !subject.test(parsed.subject ?? '')) continue;
        const body = parsed.text ?? '';
        const link = /https?:\/\/\S+#token=\S+/.exec(body)?.[0] ?? '';
        matches.push({ file, subject: parsed.subject ?? '', text: body, link });
      }
      if (matches.length > 0 && settleUntil === 0) settleUntil = Date.now() + 1_000;
      if (matches.length > 0 && Date.now() >= settleUntil) {
        for (const m of matches) taken.add(m.file);
        const newest = matches[matches.length - 1]!;
        if (!newest.link) throw new Error(`no #token= link in "${newest.subject}":\n${newest.text}`);
        return newest;
      }
      if (Date.now() > deadline) {
        throw new Error(`no mail to ${to} matching ${subject} in ${outbox}: ${readdirSync(outbox).join(', ')}`);
      }
      await sleep(100);
    }
  };
}
