import { errorMessage } from './errorReason';

/**
 * An error the user caused and can fix (bad spec, missing file, prompt too long...). Its message is
 * one line that says what is wrong, where, and how to fix it; front ends print it as is, without a
 * stack trace. Anything that is not a UserError is a bug and is reported as one.
 *
 * The message is made printable here, once for every UserError: messages quote file content and user
 * input (a tokenizer's parse error, a path, a model name), and a raw escape sequence in one would
 * retitle or clear the terminal it is printed on.
 */
export class UserError extends Error {
  override readonly name = 'UserError';

  constructor(message: string, options?: ErrorOptions) {
    super(printable(message), options);
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}

const SHORT_ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Text from a file or a user, safe to print inside a one-line message: C0 and C1 control characters
 * (line breaks, ESC and so every terminal escape sequence), DEL, the line and paragraph separators, and
 * the bidirectional controls that make text read differently from what it is (U+202E) become visible
 * escapes such as `\n`, `\u001b`, `\u202e`.
 */
export function printable(text: string): string {
  return text.replace(
    // Control characters are what this matches.
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Text from a file or a user, made safe to put inside a one-line message: line breaks become spaces. */
export function oneLine(text: string): string {
  return printable(text.replace(/[\r\n\u2028\u2029\u0085]+/g, ' '));
}

/** JSON.parse's reason without the piece of the file V8 quotes, which may span lines. */
export function jsonErrorReason(e: unknown): string {
  return oneLine(errorMessage(e).replace(/, ".*"(\.\.\.)? is not valid JSON$/s, ''));
}
