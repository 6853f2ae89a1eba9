/**
 * How PatchLens writes a file: never through a symlink planted where the file goes, and never over a
 * file it did not mean to replace. New outputs (result files, PNGs) are created exclusively: anything
 * already at the path (a file, a folder, a symlink, dangling or not) makes the create fail with EEXIST.
 * Files meant to be replaced (a claimed result file, an export the user chose, the model cache's
 * records) are written to a new temp file beside them and renamed over: a rename replaces a symlink
 * itself, never its target, and a reader sees the old content or the new, never half. Every file
 * PatchLens writes goes through here.
 */
import { closeSync, constants, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

/** open() flags of a new file: O_EXCL with O_CREAT never follows a symlink at the last component, it fails with EEXIST. */
export const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
/** open() flags to append to a file of ours (a partial download): a symlink there is refused (ELOOP), not followed. */
export const APPEND_NO_FOLLOW = constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | (constants.O_NOFOLLOW ?? 0);

function writeAll(fd: number, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
}

/** Creates `path` holding `data`; EEXIST when anything is already there. A failed write leaves nothing behind. */
export function createNewFile(path: string, data: string | Uint8Array): void {
  const fd = openSync(path, CREATE_NEW, 0o644);
  try {
    writeAll(fd, data);
    closeSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(path, { force: true });
    throw e;
  }
}

/** A new, exclusively created temp file beside `path` (a random name: a planted one is never reused). */
export function createTempBeside(path: string): { fd: number; tmp: string } {
  for (let attempt = 0; ; attempt++) {
    const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
    try {
      return { fd: openSync(tmp, CREATE_NEW, 0o644), tmp };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 5) throw e;
    }
  }
}

/** Writes a file through a temp file beside it, filled by `fill`, then renamed over `path`. */
export function replaceFileWith(path: string, fill: (fd: number) => void): void {
  const { fd, tmp } = createTempBeside(path);
  try {
    fill(fd);
    closeSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Replaces `path` with `data` atomically; a symlink at `path` is replaced, not followed. */
export function replaceFile(path: string, data: string | Uint8Array): void {
  replaceFileWith(path, (fd) => writeAll(fd, data));
}

/** The errno code (EACCES, ENOSPC, ...) of a failed file-system call, or undefined for any other error. */
export function fileErrorCode(e: unknown): string | undefined {
  const err = e as NodeJS.ErrnoException;
  return e instanceof Error && typeof err.code === 'string' && typeof err.syscall === 'string' ? err.code : undefined;
}

/** What to do about a folder PatchLens cannot write to (`folder`: how the user names it): free space on a full disk, else choose another. */
export function writableFolderFix(code: string, folder: string): string {
  return code === 'ENOSPC' ? `free some space, or choose another ${folder}` : `choose a writable ${folder}`;
}
