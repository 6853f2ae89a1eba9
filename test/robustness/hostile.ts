/**
 * Shared pieces of the hostile-input tests (hostileFiles, hostileHub, signals): the checks a user-facing
 * failure of `patchlens run` must pass, a folder as another user sees it, and small specs. Not a test file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { CliOptions, CliRun } from '../helpers/cli';

export const BUILT = resolve(__dirname, '..', '..', 'dist', 'cli.js');
const BIN = resolve(__dirname, '..', '..', 'bin', 'patchlens.js');

/** Anything a terminal would act on, or that reorders text: raw control characters (a line end aside), bidi controls. */
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** stderr's lines, without the empty one after the last line end. */
export const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');

/** The checks every failure shown to a user passes: the status, one printable line on stderr naming the problem, no stack. */
export function assertOneLine(r: CliRun, status: number, ...says: (string | RegExp)[]): string {
  assert.ok(!r.timedOut, `the run hung (killed after ${r.ms} ms); stderr: ${r.stderr}`);
  assert.equal(r.status, status, `exit status ${r.status} (signal ${r.signal}), expected ${status}; stderr: ${r.stderr}`);
  const ls = lines(r.stderr);
  assert.equal(ls.length, 1, `stderr has ${ls.length} lines:\n${r.stderr}`);
  const line = ls[0]!;
  assert.match(line, /^patchlens: /);
  assert.doesNotMatch(line, /\bat \S+ \(|node:internal|\.ts:\d+|\.js:\d+|internal error|TypeError|RangeError|AbortError/, line);
  assert.doesNotMatch(line, UNPRINTABLE, `stderr holds a raw control character: ${JSON.stringify(line)}`);
  for (const s of says) {
    if (typeof s === 'string') assert.ok(line.includes(s), `'${line}' should mention '${s}'`);
    else assert.match(line, s);
  }
  return line;
}

export function assertPrintable(text: string): void {
  assert.doesNotMatch(text, UNPRINTABLE, `raw control character in ${JSON.stringify(text.slice(0, 400))}`);
}

/**
 * How a test runs the CLI as a user who cannot write a folder: as root, any folder is writable, so the
 * CLI runs as nobody; as anyone else, the folder's mode bits suffice. Undefined when nobody cannot run
 * the CLI from this checkout (a home directory that only root may enter): those tests skip.
 */
export const unprivileged: { opts: CliOptions } | undefined = (() => {
  if (process.getuid?.() !== 0) return { opts: {} };
  const r = spawnSync(process.execPath, [BIN, 'help'], { uid: 65534, gid: 65534, encoding: 'utf8' });
  return r.status === 0 ? { opts: { uid: 65534, gid: 65534 } } : undefined;
})();

/** A folder the unprivileged user may read but not write. */
export function readOnlyDir(path: string): string {
  mkdirSync(path, { recursive: true });
  chmodSync(path, 0o555);
  return path;
}

/** A folder anyone may write (the unprivileged user among them), e.g. a test's work folder. */
export function openDir(path: string): string {
  mkdirSync(path, { recursive: true });
  chmodSync(path, 0o777);
  return path;
}

export const PAIR = { clean: 'When Alice met Bob, Bob thanked', corrupted: 'When Alice met Bob, Alice thanked', answer: ' Alice', wrong: ' Bob' };

/** A spec's JSON text for `model`, with `extra` keys. */
export function specText(model: string | undefined, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ name: 'speaker', ...(model !== undefined ? { model } : {}), metric: 'logit_diff', sweeps: ['resid_pre', 'attn_out'], pairs: [PAIR], ...extra }, null, 2);
}
