import { announce, byId, h, time } from '../dom.js';
import { describeError } from '../form-errors.js';
import type { Activity } from '../gatehouse-client.js';
import { describeAgent } from './sessions-view.js';
import type { SignedInDeps, SignedInPart } from './signed-in.js';

/**
 * The security events' types (the audit log's `type`) in plain words, as the account's owner
 * reads them. The admin console shows them beside the exact type.
 */
const EVENT_TEXT: Record<string, string> = {
  signup: 'Account created',
  'login.succeeded': 'Signed in',
  'login.failed': 'Failed sign-in attempt',
  'login.throttled': 'Sign-in attempts slowed down after too many failures',
  'login.mfa_required': 'Password accepted, second step asked for',
  'login.mfa_succeeded': 'Signed in with two-step sign-in',
  'refresh.reuse_detected': 'Session ended: an old sign-in token was used again',
  logout: 'Signed out',
  logout_all: 'Signed out everywhere',
  'session.revoked': 'Session ended',
  'password.changed': 'Password changed',
  'password.reset': 'Password reset through a mailed link',
  'password.reset_requested': 'Password reset link requested',
  'account.disabled': 'Account disabled',
  'account.enabled': 'Account enabled again',
  'account.deleted': 'Account deleted',
  'roles.changed': 'Roles changed',
  'email.verification_sent': 'Confirmation link sent',
  'email.verified': 'Email address confirmed',
  'email.change_requested': 'Change of email address requested',
  'email.change_cancelled': 'Change of email address cancelled',
  'email.changed': 'Email address changed',
  'mail.failed': 'A mail could not be sent',
  'mfa.enrolled': 'Two-step sign-in turned on',
  'mfa.disabled': 'Two-step sign-in turned off',
  'mfa.reset_by_admin': 'Two-step sign-in reset by an administrator',
  'mfa.challenge_failed': 'Wrong two-step sign-in code',
  'mfa.recovery_code_used': 'Recovery code used',
  'mfa.recovery_codes_regenerated': 'New recovery codes made',
  'client.created': 'Machine client created',
  'client.updated': 'Machine client changed',
  'client.disabled': 'Machine client disabled',
  'client.enabled': 'Machine client enabled',
  'client.deleted': 'Machine client deleted',
  'client.secret_created': 'Client secret created',
  'client.secret_revoked': 'Client secret revoked',
  'client.secret_expiry_set': 'Client secret expiry set',
  'client.auth_failed': 'Failed client authentication',
  'client.token_revoked': 'Client token revoked',
  'tenant.created': 'Tenant created',
  'tenant.updated': 'Tenant renamed',
  'tenant.deleted': 'Tenant deleted',
  'tenant.selected': 'Tenant selected',
  'tenant.member_added': 'Added to a tenant',
  'tenant.member_removed': 'Removed from a tenant',
  'tenant.roles_changed': 'Tenant roles changed',
  'tenant.role_defined': 'Tenant role defined',
  'tenant.role_deleted': 'Tenant role deleted',
  'tenant.invitation_sent': 'Tenant invitation sent',
  'tenant.invitation_revoked': 'Tenant invitation revoked',
  'tenant.invitation_accepted': 'Tenant invitation accepted',
  'tenant.admin_override': 'Administrator acted in a tenant',
  'federation.user_provisioned': "Account created through an organisation's sign-in",
  'federation.session': "Signed in through an organisation's sign-in",
  'federation.token_exchanged': 'Token exchanged for a service',
  'identity.linked': 'Sign-in linked',
  'identity.unlinked': 'Sign-in unlinked',
};

/** 'login.failed' → "Failed sign-in attempt"; an unknown type → its words ("foo.bar_baz" → "Foo bar baz"). */
export function eventText(type: string): string {
  const known = EVENT_TEXT[type];
  if (known) return known;
  const words = type.replace(/[._*]+/g, ' ').trim();
  return words ? words.charAt(0).toUpperCase() + words.slice(1) : type;
}

/** The "Account activity" card: the user's own security events, newest first, with "Load more". */
export function createActivityView({ client, guarded }: SignedInDeps): SignedInPart {
  const list = byId('activity-list', HTMLUListElement);
  const errorBox = byId('activity-error');
  const empty = byId('activity-empty');
  const more = byId('activity-more', HTMLButtonElement);
  let cursor: string | null = null;
  /** Bumped by each load (and by `clear`): answers for an older one are dropped. */
  let generation = 0;

  function showError(error: unknown): void {
    errorBox.textContent = describeError(error);
    errorBox.hidden = false;
  }

  function item(activity: Activity): HTMLLIElement {
    const where = [activity.ip, activity.userAgent ? describeAgent(activity.userAgent) : null].filter(Boolean);
    return h(
      'li',
      { class: 'item activity-item', 'data-type': activity.type },
      h(
        'div',
        { class: 'item-head' },
        h('span', { class: 'item-title', tabindex: -1 }, eventText(activity.type)),
        activity.currentSession ? h('span', { class: 'badge current' }, 'This session') : null,
        activity.byAdministrator ? h('span', { class: 'badge by-admin' }, 'By an administrator') : null,
      ),
      h('p', { class: 'meta' }, time(activity.createdAt), where.length ? ` · ${where.join(' · ')}` : ''),
    );
  }

  async function load(): Promise<void> {
    generation += 1;
    const current = generation;
    await guarded(async () => {
      const page = await client.activity();
      if (current !== generation) return;
      errorBox.hidden = true;
      cursor = page.nextCursor;
      more.hidden = !cursor;
      list.replaceChildren(...page.items.map(item));
      empty.hidden = page.items.length > 0;
    }, showError);
  }

  more.addEventListener('click', () => {
    if (!cursor) return;
    const current = generation;
    const before = list.children.length;
    void guarded(async () => {
      const page = await client.activity(cursor);
      if (current !== generation) return;
      cursor = page.nextCursor;
      more.hidden = !cursor;
      list.append(...page.items.map(item));
      // Focus goes to the first new entry, so a keyboard user reads on from there.
      list.children[before]?.querySelector<HTMLElement>('.item-title')?.focus();
    }, showError);
  });

  byId('activity-reload').addEventListener('click', () => {
    void load().then(() => announce('Account activity updated.'));
  });

  return {
    load,
    clear() {
      generation += 1;
      cursor = null;
      list.replaceChildren();
      more.hidden = true;
      empty.hidden = true;
      errorBox.hidden = true;
    },
  };
}
