/**
 * How PatchLens reads a file: the kind of file is checked before a byte is read (a FIFO would block the
 * reader forever, /dev/zero never ends, a folder is not a file), and the size limit is enforced while
 * reading, so a file that lies about its size or grows meanwhile still costs at most its limit. Every
 * file PatchLens reads (specs, model configs, tokenizers, safetensors headers, result files, the hub
 * cache's records) goes through here.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { Socket } from 'node:net';
import { MAX_SPEC_CHARS } from '../protocol/spec';
import { CancelledError } from './cancelled';
import { errnoReason, errnoWords } from './errorReason';
import { jsonErrorReason, UserError } from './userError';

/** What a file is to PatchLens, for messages: `cannot read the ${noun} PATH: …; ${fix}`. */
export interface FileRole {
  readonly noun: string;
  /** The most bytes a sound file of this role holds. */
  readonly maxBytes: number;
  /** How to fix a file of this role that cannot be read. */
  readonly fix: string;
}

// Non-blocking, so that opening a FIFO without a writer returns at once instead of waiting for one;
// no controlling terminal, should the path be a tty. Neither changes how a regular file reads.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0);

const MiB = 1024 * 1024;

/** A .patch.json: MAX_SPEC_CHARS characters are at most three UTF-8 bytes each; the parser checks the characters. */
export const SPEC_FILE: FileRole = { noun: 'spec', maxBytes: 3 * MAX_SPEC_CHARS, fix: 'check the path' };

export function formatLimit(bytes: number): string {
  return bytes >= MiB ? `${+(bytes / MiB).toFixed(1)} MiB` : `${bytes} bytes`;
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function openForRole(path: string, role: FileRole): { fd: number; st: Stats } {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EISDIR') throw new UserError(`cannot read the ${role.noun} ${path}: it is a folder, not a file; ${role.fix}`);
    throw new UserError(`cannot read the ${role.noun} ${path} (${errnoWords(errnoReason(e))}); ${role.fix}`);
  }
  try {
    return { fd, st: fstatSync(fd) };
  } catch (e) {
    closeSync(fd);
    throw new UserError(`cannot read the ${role.noun} ${path} (${errnoWords(errnoReason(e))}); ${role.fix}`);
  }
}

function tooLarge(path: string, role: FileRole): UserError {
  return new UserError(`cannot read the ${role.noun} ${path}: it is larger than ${formatLimit(role.maxBytes)}, more than a ${role.noun} holds; ${role.fix}`);
}

/**
 * Opens a regular file for reading (a descriptor and its size), refusing anything else up front. For
 * readers that take parts of a large file (safetensors); the caller closes the descriptor.
 */
export function openRegularFile(path: string, role: Omit<FileRole, 'maxBytes'>): { fd: number; size: number } {
  const { fd, st } = openForRole(path, { ...role, maxBytes: Infinity });
  if (!st.isFile()) {
    closeSync(fd);
    throw new UserError(`cannot read the ${role.noun} ${path}: it is ${kindOf(st)}, not a regular file; ${role.fix}`);
  }
  return { fd, size: st.size };
}

function readBounded(fd: number, path: string, role: FileRole): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const chunk = Buffer.allocUnsafe(Math.min(MiB, role.maxBytes + 1 - total));
    let n: number;
    try {
      n = readSync(fd, chunk, 0, chunk.length, null);
    } catch (e) {
      throw new UserError(`cannot read the ${role.noun} ${path} (${errnoWords(errnoReason(e))}); ${role.fix}`);
    }
    if (n === 0) return Buffer.concat(chunks, total);
    chunks.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    total += n;
    if (total > role.maxBytes) throw tooLarge(path, role);
  }
}

/** A regular file's bytes, at most `role.maxBytes`; anything else (or anything more) is a UserError. */
export function readRegularFile(path: string, role: FileRole): Buffer {
  const { fd, st } = openForRole(path, role);
  try {
    if (!st.isFile()) throw new UserError(`cannot read the ${role.noun} ${path}: it is ${kindOf(st)}, not a regular file; ${role.fix}`);
    if (st.size > role.maxBytes) throw tooLarge(path, role);
    return readBounded(fd, path, role);
  } finally {
    closeSync(fd);
  }
}

export function readTextFile(path: string, role: FileRole): string {
  return readRegularFile(path, role).toString('utf8');
}

/** A regular file parsed as JSON; a file that is not JSON is a one-line UserError ending with the role's fix. */
export function readJsonFile(path: string, role: FileRole): unknown {
  const text = readTextFile(path, role);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${path} is not valid JSON (${jsonErrorReason(e)}); ${role.fix}`);
  }
}

/**
 * A file given on the command line, which may also be a pipe: `patchlens run <(cat spec)` and
 * `/dev/stdin`. A pipe is read as a stream, bounded the same way; it waits for its writer like `cat`
 * does, and `signal` ends the wait. `regular` says whether it was a regular file.
 */
export async function readFileOrPipe(path: string, role: FileRole, signal?: AbortSignal): Promise<{ data: Buffer; regular: boolean }> {
  const { fd, st } = openForRole(path, role);
  if (st.isFile()) {
    try {
      if (st.size > role.maxBytes) throw tooLarge(path, role);
      return { data: readBounded(fd, path, role), regular: true };
    } finally {
      closeSync(fd);
    }
  }
  if (!st.isFIFO()) {
    closeSync(fd);
    throw new UserError(`cannot read the ${role.noun} ${path}: it is ${kindOf(st)}, not a file or a pipe; ${role.fix}`);
  }
  // The event loop reads it (the descriptor is non-blocking), so Ctrl-C is heard while it waits.
  const pipe = new Socket({ fd, readable: true, writable: false });
  return new Promise((resolvePipe, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      pipe.destroy();
      reject(e);
    };
    const onAbort = () => fail(new CancelledError(`cancelled while reading the ${role.noun} from ${path}`));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    pipe.on('data', (d: Buffer) => {
      total += d.length;
      if (total > role.maxBytes) return fail(tooLarge(path, role));
      chunks.push(d);
    });
    pipe.on('error', (e) => fail(new UserError(`cannot read the ${role.noun} ${path} (${errnoWords(errnoReason(e))}); ${role.fix}`)));
    pipe.on('end', () => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      pipe.destroy();
      resolvePipe({ data: Buffer.concat(chunks, total), regular: false });
    });
  });
}
