import { ApiError } from './gatehouse-client.js';

/**
 * Inline validation from the API's error bodies: each string of a 400's `message` array
 * that starts with a field name goes under that field; the stable `code`s map to plain
 * sentences. The browser's own validation is off (`novalidate`): the server is the judge.
 */

const LABELS: Record<string, string> = {
  username: 'Username',
  password: 'Password',
  email: 'Email',
  displayName: 'Display name',
  title: 'Title',
  body: 'Text',
  visibility: 'Visibility',
  login: 'Username or email',
  newPassword: 'New password',
  newEmail: 'New email address',
  code: 'Code',
  recoveryCode: 'Recovery code',
  name: 'Name',
  slug: 'Slug',
  role: 'Role',
  roles: 'Roles',
  subjectToken: 'Token',
  confirm: 'Username',
};

/**
 * `fields`: the form controls (by name) the sentence belongs under, the first one the form
 * has; without one (or in a form without them) it goes in the form's error box.
 */
const BY_CODE: Record<string, { fields?: string[]; text: string }> = {
  USERNAME_TAKEN: { fields: ['username'], text: 'That username is already taken.' },
  EMAIL_TAKEN: { fields: ['email', 'newEmail'], text: 'That email address is already used by another account.' },
  INVALID_CREDENTIALS: { text: 'The username or password is incorrect.' },
  ACCOUNT_DISABLED: { text: 'This account has been disabled. Contact an administrator.' },
  ORIGIN_NOT_ALLOWED: { text: 'This page is not allowed to sign in to Gatehouse.' },
  RESOURCE_NOT_FOUND: { text: 'That resource no longer exists.' },
  NOT_OWNER: { text: 'Only the owner can change that resource.' },
  EMAIL_NOT_VERIFIED: { text: 'Confirm your email address first: open the link in the mail we sent you.' },
  INVALID_PASSWORD: { fields: ['password'], text: 'That is not your current password.' },
  EMAIL_UNCHANGED: { fields: ['newEmail', 'email'], text: 'That is already your email address.' },
  EMAIL_CHANGE_REQUIRES_VERIFICATION: {
    text: 'A new email address must be confirmed: use “Change email address”.',
  },
  NO_EMAIL: { text: 'Your account has no email address to verify: add one first.' },
  EMAIL_ALREADY_VERIFIED: { text: 'Your email address is already verified.' },
  RESET_TOKEN_EXPIRED: { text: 'This link has expired: ask for a new one.' },
  RESET_TOKEN_INVALID: { text: 'This link is invalid or was already used.' },
  VERIFICATION_TOKEN_EXPIRED: { text: 'This link has expired: ask for a new one.' },
  VERIFICATION_TOKEN_INVALID: { text: 'This link is invalid or was already used.' },
  INVALID_MFA_CODE: {
    fields: ['code', 'recoveryCode'],
    text: 'That code is not valid, or it was already used. Check it and try again.',
  },
  MFA_TOKEN_INVALID: {
    text: 'That sign-in attempt has expired or had too many wrong codes. Enter your password again.',
  },
  MFA_ENROLLMENT_NOT_FOUND: { text: 'The set-up expired (it lasts 10 minutes). Please start again.' },
  MFA_ALREADY_ENABLED: { text: 'Two-step sign-in is already on.' },
  MFA_NOT_ENABLED: { text: 'Two-step sign-in is not on.' },
  NO_LOCAL_PASSWORD: { text: 'Your account has no password: two-step sign-in cannot be set up here.' },
  STEP_UP_REQUIRED: {
    text: 'This needs a two-step sign-in: sign out, then sign in again with your authenticator code.',
  },
  TENANT_SLUG_TAKEN: { fields: ['slug'], text: 'That slug is already taken: choose another.' },
  TENANT_LIMIT_REACHED: {
    text: 'A limit was reached: you own as many tenants as allowed, or the tenant has as many members as allowed.',
  },
  TENANT_CREATION_DISABLED: { text: 'Only administrators can create tenants here.' },
  TENANT_NOT_FOUND: { text: 'That tenant does not exist, or you are no longer a member of it.' },
  INSUFFICIENT_TENANT_PERMISSION: { text: 'Your role in this tenant does not allow that.' },
  USER_NOT_FOUND: { fields: ['username'], text: 'There is no account with that username.' },
  ALREADY_MEMBER: { fields: ['username', 'email'], text: 'That person is already a member of this tenant.' },
  LAST_OWNER: { text: 'A tenant needs an owner: make another member an owner first.' },
  INVITATION_INVALID: {
    text: 'This invitation link is not valid: it was already used, revoked, or replaced by a newer invitation.',
  },
  INVITATION_EXPIRED: { text: 'This invitation has expired: ask for a new one.' },
  FEDERATED_TOKEN_INVALID: {
    fields: ['subjectToken'],
    text: 'That token was not accepted: it is not valid, or more than 5 minutes old. Sign in at your provider again for a new one.',
  },
  FEDERATED_TOKEN_REUSED: {
    fields: ['subjectToken'],
    text: 'That token was already used: each one works once. Sign in at your provider again for a new one.',
  },
  FEDERATED_USER_NOT_PROVISIONED: {
    text: 'Your organisation account has no Gatehouse account yet. Ask an administrator to set one up for you.',
  },
  FEDERATION_UNAVAILABLE: {
    text: "Your organisation's sign-in service cannot be reached right now. Please try again in a moment.",
  },
  IDENTITY_ALREADY_LINKED: {
    fields: ['subjectToken'],
    text: 'That sign-in is already linked to a Gatehouse account, this one or another.',
  },
  LAST_LOGIN_METHOD: {
    text: 'This is the only way to sign in to your account, which has no password: it cannot be unlinked.',
  },
  CONFIRMATION_MISMATCH: { fields: ['confirm'], text: 'That does not match: type it exactly as shown.' },
  LAST_ADMIN: { text: 'You are the last administrator: make another account an administrator first.' },
  USER_SESSION_REQUIRED: { text: 'This needs a signed-in session: sign out, then sign in again.' },
  INVITATION_EMAIL_MISMATCH: {
    text: 'This invitation is for another email address, or your address is not verified yet. Accept it with the account of the invited address, once that address is confirmed.',
  },
};

/**
 * A refusal decided in the page, before asking the server (a code of the wrong shape would
 * cost one of the few tries): `showErrors` puts it under `field`, as it would the server's 400.
 * `rule` follows the field's name: `localError('code', 'must be 6 digits')`.
 */
export function localError(field: string, rule: string): ApiError {
  return new ApiError(400, 'VALIDATION_FAILED', [`${field} ${rule}`]);
}

/** A sentence for an error that is not about one field. */
export function describeError(error: unknown): string {
  if (!(error instanceof ApiError)) return 'Something went wrong. Please try again.';
  const known = BY_CODE[error.code];
  if (known) return known.text;
  if (error.code === 'NETWORK_ERROR') return 'Gatehouse could not be reached. Check your connection and try again.';
  if (error.status === 429) {
    return error.retryAfter === null
      ? 'Too many attempts. Please wait a moment and try again.'
      : `Too many attempts. Try again in ${waitText(error.retryAfter)}.`;
  }
  if (error.status === 401) return 'Your session has ended. Please sign in again.';
  if (error.status >= 500) {
    return `Something went wrong on the server. Please try again.${error.requestId ? ` (Request id ${error.requestId})` : ''}`;
  }
  return error.messages.map(sentence).join(' ') || 'The request was refused.';
}

/** "45 seconds", "1 second", "3 minutes" (from 2 minutes on, rounded up). */
function waitText(seconds: number): string {
  if (seconds < 120) return `${seconds} second${seconds === 1 ? '' : 's'}`;
  return `${Math.ceil(seconds / 60)} minutes`;
}

export function clearErrors(form: HTMLFormElement): void {
  for (const p of form.querySelectorAll('.field-error')) p.remove();
  for (const input of form.querySelectorAll('[aria-invalid]')) {
    input.removeAttribute('aria-invalid');
    const ids = (input.getAttribute('aria-describedby') ?? '')
      .split(/\s+/)
      .filter((id) => id && !id.endsWith('-error'));
    if (ids.length) input.setAttribute('aria-describedby', ids.join(' '));
    else input.removeAttribute('aria-describedby');
  }
  const formError = form.querySelector<HTMLElement>('.form-error');
  if (formError) {
    formError.textContent = '';
    formError.hidden = true;
  }
}

/** Shows `error` in `form` and moves focus to the first field in error (or the form's error). */
export function showErrors(form: HTMLFormElement, error: unknown): void {
  clearErrors(form);
  const perField = new Map<string, string[]>();
  const general: string[] = [];

  const known = error instanceof ApiError ? BY_CODE[error.code] : undefined;
  const knownField = known?.fields?.find((name) => control(form, name));

  // A 400 with a code of its own (EMAIL_UNCHANGED, RESET_TOKEN_EXPIRED ...) gets its sentence;
  // the others (VALIDATION_FAILED) carry one message per broken rule, each under its field.
  if (error instanceof ApiError && error.status === 400 && error.messages.length && !known) {
    for (const message of error.messages) {
      const field = fieldOf(form, message);
      if (field) perField.set(field, [...(perField.get(field) ?? []), humanize(message, field)]);
      else general.push(sentence(message));
    }
  } else if (known && knownField) {
    perField.set(knownField, [known.text]);
  } else {
    general.push(describeError(error));
  }

  let first: HTMLElement | null = null;
  for (const [field, messages] of perField) {
    const input = control(form, field);
    if (!input) continue;
    const id = `${input.id || `${form.id}-${field}`}-error`;
    const p = document.createElement('p');
    p.className = 'field-error';
    p.id = id;
    p.textContent = messages.join(' ');
    const anchor = input.closest('.field') ?? input.parentElement;
    anchor?.append(p);
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', [id, input.getAttribute('aria-describedby')].filter(Boolean).join(' '));
    first ??= input;
  }
  const formError = form.querySelector<HTMLElement>('.form-error');
  if (general.length && formError) {
    formError.textContent = general.join(' ');
    formError.hidden = false;
    first ??= formError;
  }
  first?.focus();
}

/** Shows `text` (a sentence of the page's own) in the form's error box, and moves focus there. */
export function showFormError(form: HTMLFormElement, text: string): void {
  clearErrors(form);
  const formError = form.querySelector<HTMLElement>('.form-error');
  if (!formError) return;
  formError.textContent = text;
  formError.hidden = false;
  formError.focus();
}

/** The form's control named `name` that is on show (a form may hide the ones of another mode). */
function control(form: HTMLFormElement, name: string): HTMLElement | null {
  const controls = form.querySelectorAll<HTMLElement>(`[name="${CSS.escape(name)}"]`);
  return [...controls].find((c) => !c.closest('[hidden]')) ?? null;
}

function fieldOf(form: HTMLFormElement, message: string): string | null {
  const name = /^([A-Za-z]+)\s/.exec(message)?.[1];
  return name && control(form, name) ? name : null;
}

function humanize(message: string, field: string): string {
  const text = message.startsWith(`${field} `) ? `${LABELS[field] ?? field}${message.slice(field.length)}` : message;
  return sentence(text);
}

function sentence(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return trimmed;
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}
