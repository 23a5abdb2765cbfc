import { AppError } from '../common/errors/app-error.js';
import { ErrorCode } from '../common/errors/error-codes.js';
import type { AppConfig } from '../config/config.schema.js';
import type { Principal } from '../tokens/principal.js';

/**
 * 403 STEP_UP_REQUIRED with RFC 9470's challenge (contract v2 §0.10: 403, not RFC 9470's
 * 401, because a 401 makes the browser client refresh and then sign out).
 */
export function stepUpRequired(): AppError {
  return new AppError(
    ErrorCode.STEP_UP_REQUIRED,
    'This needs a session signed in with a second factor: turn on two-step sign-in, then sign in again',
    { 'WWW-Authenticate': 'Bearer error="insufficient_user_authentication", acr_values="aal2"' },
  );
}

/** The scope that admin powers outside the admin routes need, with the admin role. */
export const ADMIN_POWERS_SCOPE = 'users:admin';

/**
 * Whether the caller may use admin powers now: the admin role, a token carrying
 * `users:admin` (a token asked for narrower scopes does narrower things), and, with
 * ADMIN_REQUIRE_MFA=true, a session that proved a second factor (acr aal2). Every admin
 * override outside @Roles('admin') routes (e.g. reading others' resources) asks this.
 */
export function hasAdminPowers(caller: Principal, config: AppConfig): boolean {
  return (
    caller.roles.includes('admin') && caller.scopes.includes(ADMIN_POWERS_SCOPE) && !adminNeedsStepUp(caller, config)
  );
}

/**
 * ADMIN_REQUIRE_MFA applies to people: a session without a second factor (aal1) gets no
 * admin powers. A machine client's token is exempt: it proves a 256-bit secret, no second
 * factor exists for it, and only an admin who met this requirement can create the client,
 * allow it admin scopes or give its service user the admin role.
 */
export function adminNeedsStepUp(caller: Principal, config: AppConfig): boolean {
  return config.ADMIN_REQUIRE_MFA && caller.kind !== 'client' && caller.acr !== 'aal2';
}
