/**
 * A result file on disk (`<name>.result.json`): its name, written atomically, read back and checked.
 * The engine writes results; the extension also writes the record of a run whose engine died, and
 * reads results for the panel and the runs view. Plain Node.
 */
import { lstatSync, mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { type PatchResult, RESULT_FORMAT, type RunStatus } from '../protocol/result';
import { SHARD_FORMAT } from '../protocol/shard';
import { errnoCode } from './errorReason';
import { safeFileStem } from './fileName';
import { readJsonFile } from './fileRead';
import { createNewFile, replaceFile } from './fileWrite';
import { oneLine, UserError } from './userError';

export const RESULT_SUFFIX = '.result.json';

/** The most a result file may hold: a dest x src sweep of a large model is tens of MB. */
const MAX_RESULT_BYTES = 512 * 1024 * 1024;

/** Whether anything is at `path`, a dangling symlink included. */
const taken = (path: string): boolean => {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
};

/**
 * Claims `<dir>/<stem>.result.json`, or `<stem>-2.result.json`, ... when that exists: a second run of a
 * spec never overwrites the first. The claim is an exclusive create, so two windows cannot take the
 * same name. `companions` are the suffixes of the other files the run will write beside its result
 * (`.resid_pre.png`): a number is taken only when none of them exists either (a file, a folder or a
 * symlink), so a run's files all share its result file's stem and never replace another's.
 */
export function claimResultPath(dir: string, name: string, companions: readonly string[] = []): string {
  mkdirSync(dir, { recursive: true });
  const stem = safeFileStem(name);
  for (let n = 1; ; n++) {
    const numbered = `${stem}${n === 1 ? '' : `-${n}`}`;
    if (companions.some((c) => taken(join(dir, `${numbered}${c}`)))) continue;
    const path = join(dir, `${numbered}${RESULT_SUFFIX}`);
    try {
      createNewFile(path, '');
      return path;
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
    }
  }
}

/** The stem a claimed result path gives the run's other files (`dir/speaker-2.result.json` → `speaker-2`). */
export function resultStem(path: string): string {
  return basename(path).slice(0, -RESULT_SUFFIX.length);
}

/** Writes a result atomically (temp file + rename): a reader sees the old content or the new, never half. */
export function writeResultFile(path: string, result: PatchResult): void {
  replaceFile(path, JSON.stringify(result) + '\n');
}

const STATUSES: readonly RunStatus[] = ['done', 'cancelled', 'failed'];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Why `value` is not a result file the panel can show, or undefined when it is one. */
export function resultProblem(value: unknown): string | undefined {
  if (!isObject(value)) return 'not a JSON object';
  if (value.format === SHARD_FORMAT) {
    const s: Record<string, unknown> = isObject(value.shard) ? value.shard : {};
    return `it is shard ${String(s.index)} of ${String(s.count)} of a split run, not a whole result; combine the shards with 'patchlens merge OUT SHARDS...' and open the merged result`;
  }
  if (value.format !== RESULT_FORMAT) return `not a PatchLens result (format ${JSON.stringify(value.format ?? null)}, expected "${RESULT_FORMAT}")`;
  if (typeof value.name !== 'string') return 'no "name"';
  if (!STATUSES.includes(value.status as RunStatus)) return `unknown status ${JSON.stringify(value.status)}`;
  if (!isObject(value.model) || typeof value.model.id !== 'string') return 'no "model.id"';
  if (!isObject(value.sweeps)) return 'no "sweeps"';
  if (!Array.isArray(value.tokens)) return 'no "tokens"';
  for (const [name, s] of Object.entries(value.sweeps)) {
    if (!isObject(s) || !Array.isArray(s.shape) || !Array.isArray(s.values) || !Array.isArray(s.axes)) return `sweep ${name} is malformed`;
    const size = (s.shape as unknown[]).reduce<number>((a, d) => a * (typeof d === 'number' ? d : NaN), 1);
    if (size !== s.values.length) return `sweep ${name} has ${s.values.length} values for shape [${(s.shape as unknown[]).join(', ')}]`;
  }
  return undefined;
}

/** Reads and checks a result file; a UserError saying what is wrong when it is not one. */
export function readResultFile(path: string): PatchResult {
  const value = readJsonFile(path, { noun: 'result file', maxBytes: MAX_RESULT_BYTES, fix: 'it is not a PatchLens result; delete it or run again' });
  const problem = resultProblem(value);
  if (problem) throw new UserError(`${basename(path)} is not a result PatchLens can show: ${oneLine(problem)}`);
  return value as PatchResult;
}
