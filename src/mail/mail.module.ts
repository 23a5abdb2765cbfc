import { Global, Module } from '@nestjs/common';
import { MailerService } from './mailer.service.js';

/** Outgoing mail: SMTP or the outbox directory, through an in-process queue with retries. */
@Global()
@Module({ providers: [MailerService], exports: [MailerService] })
export class MailModule {}
