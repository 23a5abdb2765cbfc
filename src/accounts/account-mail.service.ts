import { Injectable } from '@nestjs/common';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { mailLink } from '../mail/mail-links.js';
import { mailTemplates } from '../mail/mail-templates.js';
import { MailerService } from '../mail/mailer.service.js';
import { OneTimeTokensService } from './one-time-tokens.service.js';

/** What a mail about an account needs to know of it. */
export interface MailedAccount {
  id: string;
  email: string;
  displayName: string | null;
}

/**
 * The account mails that several capabilities send (signup and the recovery endpoints both
 * send verification mail): a one-time token is issued (or not, inside the 60 s
 * frequency window) and the mail queued. Never waits for mail and never fails the caller
 * because of it.
 */
@Injectable()
export class AccountMailService {
  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly tokens: OneTimeTokensService,
    private readonly mailer: MailerService,
  ) {}

  /** A verification link for the account's current address; false when none was sent. */
  async sendVerification(account: MailedAccount, ip: string | null): Promise<boolean> {
    const ttl = this.config.EMAIL_VERIFICATION_TTL;
    const token = await this.tokens.issue({
      userId: account.id,
      purpose: 'verify_email',
      targetEmail: account.email,
      ttlSeconds: ttl,
      ip,
    });
    if (!token) return false;
    const link = mailLink(this.config, 'verify', token);
    return this.mailer.send({
      ...mailTemplates.verifyEmail(link, Math.round(ttl / 3600)),
      to: { address: account.email, name: account.displayName },
      userId: account.id,
      kind: 'verify_email',
    });
  }

  /** Tells an account's previous (verified) address that the email changed to `newEmail`. */
  noticeEmailChanged(previous: MailedAccount, newEmail: string): boolean {
    return this.mailer.send({
      ...mailTemplates.emailChanged(newEmail),
      to: { address: previous.email, name: previous.displayName },
      userId: previous.id,
      kind: 'email_changed',
    });
  }
}
