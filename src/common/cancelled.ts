/**
 * A run stopped by the user (Ctrl-C, SIGTERM, the Cancel button) before it had anything to keep: not a
 * user error and not a bug. Front ends report it in one line (the CLI exits 130, or 128 + the signal).
 */
export class CancelledError extends Error {
  override readonly name = 'CancelledError';
}

export function isCancelled(e: unknown): e is CancelledError {
  return e instanceof CancelledError;
}
