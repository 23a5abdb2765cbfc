import { registerDecorator, type ValidationOptions } from 'class-validator';

/**
 * The account rules every part of Gatehouse shares (signup, the admin bootstrap in the
 * configuration, tokens, the admin API): one source for each.
 */

/** The roles a user can have: everyone is a "user", some are also "admin". */
export const ROLES = ['user', 'admin'] as const;
export type Role = (typeof ROLES)[number];
export const isRole = (value: unknown): value is Role => (ROLES as readonly unknown[]).includes(value);

/** ["user"] or ["user","admin"], in that order ("user" is always kept). */
export function sortRoles(roles: readonly string[]): Role[] {
  return roles.includes('admin') ? ['user', 'admin'] : ['user'];
}

/** Usernames: 3–32 characters of letters, digits, "_", "." and "-" (unique case-insensitively). */
export const USERNAME_MIN = 3;
export const USERNAME_MAX = 32;
export const USERNAME_PATTERN = /^[A-Za-z0-9_.-]+$/;
export const USERNAME_RULE = 'may contain only letters, digits, "_", "." and "-"';
/**
 * `svc.` starts the usernames of machine clients' service users (`svc.<client_id>`): nobody
 * signs up with it, so a look-alike account cannot pass for a service user, and signup
 * cannot tell which client ids exist.
 */
export const SERVICE_USERNAME_PREFIX = 'svc.';
export const NOT_RESERVED_USERNAME = /^(?!svc\.)/i;
export const isValidUsername = (value: string): boolean =>
  value.length >= USERNAME_MIN && value.length <= USERNAME_MAX && USERNAME_PATTERN.test(value);

export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 128;

/** Length in characters (Unicode code points, so an emoji counts once), not UTF-16 units. */
// Spreading a string yields code points: exactly the unit the contract counts here.
// oxlint-disable-next-line typescript/no-misused-spread
export const passwordLength = (value: string): number => [...value].length;

/** A new password: a string of 8–128 characters. */
export function IsPassword(options?: ValidationOptions): PropertyDecorator {
  return (target, propertyName) =>
    registerDecorator({
      name: 'isPassword',
      target: target.constructor,
      propertyName: propertyName as string,
      options: { message: `${String(propertyName)} must be ${PASSWORD_MIN}–${PASSWORD_MAX} characters`, ...options },
      validator: {
        validate: (value: unknown) =>
          typeof value === 'string' && passwordLength(value) >= PASSWORD_MIN && passwordLength(value) <= PASSWORD_MAX,
      },
    });
}
