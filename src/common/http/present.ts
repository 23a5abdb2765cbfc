/**
 * For `@ValidateIf(present)`: an optional field whose rules apply whenever it is sent, null
 * included. `@IsOptional()` skips null too, and null would then reach code (or a NOT NULL
 * column) that expects the field's type.
 */
export const present = (_: object, value: unknown): boolean => value !== undefined;
