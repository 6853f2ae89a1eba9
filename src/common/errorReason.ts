/**
 * What went wrong, as text, for anything a `catch` receives (which need not be an Error).
 */

/** The message of a thrown value: an Error's message, else the value as text. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** For a log: an Error's stack (its message when it has none), else the value as text. */
export function errorDetail(e: unknown): string {
  return e instanceof Error ? (e.stack ?? e.message) : String(e);
}

/** The errno code of a failed system call (ENOENT, EACCES, ...), also when a wrapper holds it as its `cause` (fetch does). */
export function errnoCode(e: unknown): string | undefined {
  for (let c: unknown = e, i = 0; c && i < 5; c = (c as { cause?: unknown }).cause, i++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** Why a file or network operation failed, short: its errno code when it has one, else its message. */
export function errnoReason(e: unknown): string {
  return errnoCode(e) ?? errorMessage(e);
}
