import { errorMessage } from './errorReason';

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

/** Text from a file or a user, made safe to put inside a one-line message: line breaks become spaces. */
export function oneLine(text: string): string {
  return text.replace(/[\r\n\u2028\u2029\u0085]+/g, ' ');
}

/** JSON.parse's reason without the piece of the file V8 quotes, which may span lines. */
export function jsonErrorReason(e: unknown): string {
  return oneLine(errorMessage(e).replace(/, ".*"(\.\.\.)? is not valid JSON$/s, ''));
}
