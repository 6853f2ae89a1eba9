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

const ERRNO_WORDS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'not permitted',
  EROFS: 'a read-only file system',
  ENOSPC: 'the disk is full',
  EDQUOT: 'over the disk quota',
  EEXIST: 'a file is in the way',
  ENOTDIR: 'part of the path is a file',
  ENAMETOOLONG: 'the name is too long',
  ELOOP: 'too many symlinks',
  ENOENT: 'it does not exist',
  EISDIR: 'it is a folder',
};

/** An errno code with what it means to a user: `EACCES: permission denied`. */
export function errnoWords(code: string): string {
  return ERRNO_WORDS[code] ? `${code}: ${ERRNO_WORDS[code]}` : code;
}
