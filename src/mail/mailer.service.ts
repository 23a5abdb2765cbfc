import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Transporter } from 'nodemailer';
import { AuditService } from '../audit/audit.service.js';
import { Clock, type ClockTimer } from '../common/clock.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { ensurePrivateDir } from '../config/private-dir.js';
import type { MailContent } from './mail-templates.js';

/** An address and, optionally, a display name: both go into structured header fields. */
export interface Recipient {
  address: string;
  name?: string | null;
}

export interface OutgoingMail extends MailContent {
  to: Recipient;
  /** For the log and the audit trail: whose mail, and which kind. */
  userId: string | null;
  kind: string;
}

/** Mails waiting at most; beyond it new ones are dropped (and logged): memory stays bounded. */
const QUEUE_BOUND = 1000;
/** Sends in flight at most. */
const CONCURRENCY = 2;
/** Waits before the 2nd and 3rd tries; after the 3rd failure the mail is given up (audited). */
const RETRY_DELAYS_MS = [1_000, 5_000];

/**
 * What to send: a mail, or a function that builds it in the queue, off the request path
 * (issuing a one-time token, for example); it runs once, and null means "nothing to send".
 */
export type MailJob = OutgoingMail | (() => Promise<OutgoingMail | null>);

interface Job {
  mail: MailJob;
  attempt: number;
}

/**
 * Mail, always off the request path: `send()` only queues (O(1), never throws, never waits),
 * and an in-process queue sends with CONCURRENCY workers, three tries (the first at once,
 * then after 1 s and 5 s; each SMTP try is bounded by nodemailer's connection, greeting and
 * socket timeouts), `mail.failed` audited after the last. There is no database outbox, which
 * would hold live tokens at rest: a crash may lose a queued mail, and the user asks again.
 *
 * With SMTP_URL the mail goes over SMTP; without it nodemailer's stream transport renders
 * each message and it is written as an `.eml` file (mode 0600) to MAIL_OUTBOX_DIR, so that a
 * developer can open it. Headers are nodemailer's structured fields only (recipient name and
 * address separately, never concatenated text), so no header injection.
 */
@Injectable()
export class MailerService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Mail');
  /** Made with the first mail (see transporter()). */
  private transport: Promise<Transporter> | undefined;
  private readonly queue: Job[] = [];
  private readonly timers = new Set<ClockTimer>();
  private active = 0;
  private idleWaiters: Array<() => void> = [];
  private closed = false;

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly audit: AuditService,
    private readonly clock: Clock,
  ) {}

  onModuleInit(): void {
    if (this.config.SMTP_URL) return;
    ensurePrivateDir(this.config.MAIL_OUTBOX_DIR, this.config.DATA_DIR);
    const where = `mail is written to ${this.config.MAIL_OUTBOX_DIR} (no SMTP_URL)`;
    if (this.config.isProduction) this.logger.warn(`NO MAIL IS SENT: ${where}; set SMTP_URL in production`);
    else this.logger.log(where);
  }

  onApplicationShutdown(): void {
    this.closed = true;
    for (const timer of this.timers) timer.cancel();
    void this.transport?.then((transport) => transport.close()).catch(() => undefined);
  }

  /**
   * nodemailer's transport, made when the first mail is delivered: nodemailer (and its
   * dependencies, some MB of memory) is loaded only by a server that sends mail. Neither
   * transport connects or fails when it is made; an SMTP server is reached per mail.
   */
  private transporter(): Promise<Transporter> {
    this.transport ??= import('nodemailer').then(({ createTransport }) =>
      this.config.SMTP_URL
        ? createTransport({
            url: this.config.SMTP_URL,
            connectionTimeout: 10_000,
            greetingTimeout: 10_000,
            socketTimeout: 30_000,
          })
        : createTransport({ streamTransport: true, buffer: true, newline: 'unix' }),
    );
    // A failure (the module cannot load) is not kept: the next mail tries again.
    this.transport.catch(() => (this.transport = undefined));
    return this.transport;
  }

  /** Queues a mail; false when the queue is full (the mail is dropped and logged). */
  send(mail: MailJob): boolean {
    if (this.closed) return false;
    if (this.queue.length >= QUEUE_BOUND) {
      this.logger.warn(
        `mail queue full (${QUEUE_BOUND}): dropped a ${typeof mail === 'function' ? 'queued' : mail.kind} mail`,
      );
      return false;
    }
    this.queue.push({ mail, attempt: 1 });
    // Started on a later turn of the event loop: the caller's answer leaves first, so the
    // work a mail needs (issuing its token) never shows in the answer's timing.
    setImmediate(() => this.pump());
    return true;
  }

  /** Resolves once nothing is queued, in flight or waiting for a retry (for tests and shutdown). */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return this.queue.length === 0 && this.active === 0 && this.timers.size === 0;
  }

  private pump(): void {
    while (this.active < CONCURRENCY && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.active += 1;
      void this.deliver(job).finally(() => {
        this.active -= 1;
        this.pump();
        if (this.isIdle()) for (const resolve of this.idleWaiters.splice(0)) resolve();
      });
    }
  }

  private async deliver(job: Job): Promise<void> {
    let mail: OutgoingMail;
    try {
      if (typeof job.mail === 'function') {
        const built = await job.mail();
        if (built === null) return;
        job.mail = built; // built once: a retry resends the same mail
      }
      mail = job.mail;
    } catch (error) {
      this.logger.error(`building a queued mail failed: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    try {
      const transport = await this.transporter();
      const info = await transport.sendMail({
        from: this.config.MAIL_FROM,
        to: mail.to.name ? { name: mail.to.name, address: mail.to.address } : mail.to.address,
        subject: mail.subject,
        text: mail.text,
        html: mail.html,
        headers: { 'Auto-Submitted': 'auto-generated' },
      });
      const where = this.config.SMTP_URL ? 'SMTP' : await this.writeOutbox(info as { message?: unknown });
      this.logger.log(`sent "${mail.subject}" (${mail.kind}) to ${JSON.stringify(mail.to.address)} via ${where}`);
    } catch (error) {
      if (this.closed) return;
      const reason = error instanceof Error ? error.message : String(error);
      if (job.attempt <= RETRY_DELAYS_MS.length) {
        const delay = RETRY_DELAYS_MS[job.attempt - 1]!;
        this.logger.warn(
          `${mail.kind} mail to ${JSON.stringify(mail.to.address)}: try ${job.attempt} failed (${reason}); retrying in ${delay / 1000} s`,
        );
        const timer = this.clock.setTimeout(() => {
          this.timers.delete(timer);
          this.queue.push({ mail, attempt: job.attempt + 1 });
          this.pump();
        }, delay);
        this.timers.add(timer);
        return;
      }
      this.logger.error(
        `${mail.kind} mail to ${JSON.stringify(mail.to.address)}: given up after ${job.attempt} tries (${reason})`,
      );
      await this.audit
        .record(
          'mail.failed',
          { userId: mail.userId },
          {},
          { kind: mail.kind, tries: job.attempt, reason: reason.slice(0, 200) },
        )
        .catch(() => undefined);
    }
  }

  /** The rendered message as an .eml file only the owner can read; returns the path. */
  private async writeOutbox(info: { message?: unknown }): Promise<string> {
    if (!Buffer.isBuffer(info.message)) throw new Error('stream transport returned no message');
    const name = `${new Date(this.clock.nowMs()).toISOString().replace(/[:.]/g, '-')}-${randomBytes(4).toString('hex')}.eml`;
    const path = join(this.config.MAIL_OUTBOX_DIR, name);
    await writeFile(path, info.message, { mode: 0o600 });
    return path;
  }
}
