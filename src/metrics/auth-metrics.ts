import { Injectable } from '@nestjs/common';
import { AuditService, type AuditEventType } from '../audit/audit.service.js';
import { MetricsRegistry } from './metrics.registry.js';
import { promClient } from './prom-client.js';

/** The audit events that are login outcomes, and the `outcome` label each one counts under. */
const LOGIN_OUTCOMES = new Map<AuditEventType, string>([
  ['login.succeeded', 'succeeded'],
  ['login.failed', 'failed'],
  ['login.throttled', 'throttled'],
  ['login.mfa_required', 'mfa_required'],
  ['login.mfa_succeeded', 'mfa_succeeded'],
  ['mfa.challenge_failed', 'mfa_failed'],
]);

/**
 * Sign-in outcomes and refresh-token reuse, counted from the audit events as they are
 * recorded (AuditService.observe): the same events the audit log keeps, so the two agree.
 * An event recorded inside a transaction that then rolls back is counted all the same.
 */
@Injectable()
export class AuthMetrics {
  constructor(registry: MetricsRegistry, audit: AuditService) {
    const { Counter } = promClient();
    const logins = new Counter({
      name: 'gatehouse_logins_total',
      help: 'Sign-in attempts by outcome (succeeded, failed, throttled, mfa_required, mfa_succeeded, mfa_failed)',
      labelNames: ['outcome'],
      registers: [registry.registry],
    });
    const reuse = new Counter({
      name: 'gatehouse_refresh_reuse_detected_total',
      help: 'Refresh tokens presented again after their rotation (the session is revoked)',
      registers: [registry.registry],
    });
    // One label object per outcome, made once; every outcome shows from the first scrape (at 0).
    const labels = new Map<AuditEventType, { outcome: string }>();
    for (const [type, outcome] of LOGIN_OUTCOMES) {
      labels.set(type, { outcome });
      logins.inc({ outcome }, 0);
    }
    audit.observe((type) => {
      const outcome = labels.get(type);
      if (outcome !== undefined) logins.inc(outcome);
      else if (type === 'refresh.reuse_detected') reuse.inc();
    });
  }
}
