/**
 * An error the user caused and can fix (bad spec, missing file, prompt too long...). Its message is
 * one line that says what is wrong, where, and how to fix it; front ends print it as is, without a
 * stack trace. Anything that is not a UserError is a bug and is reported as one.
 */
export class UserError extends Error {
  override readonly name = 'UserError';
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}
