import { registerDecorator, type ValidationOptions } from 'class-validator';

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
