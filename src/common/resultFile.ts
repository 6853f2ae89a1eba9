/**
 * A result file on disk (`<name>.result.json`): its name, written atomically, read back and checked.
 * The engine writes results; the extension also writes the record of a run whose engine died, and
 * reads results for the panel and the runs view. Plain Node.
 */
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { type PatchResult, RESULT_FORMAT, type RunStatus } from '../protocol/result';
import { jsonErrorReason, oneLine, UserError } from './userError';
import { errnoCode, errnoReason } from './errorReason';

export const RESULT_SUFFIX = '.result.json';


/** A file-name-safe form of a run's name. */
export function safeFileStem(name: string): string {
  const stem = name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '');
  return stem === '' ? 'run' : stem.slice(0, 120);
}

/**
 * Claims `<dir>/<name>.result.json`, or `<name>-2.result.json`, ... when that exists: a second run of a
 * spec never overwrites the first. The claim is an exclusive create, so two windows cannot take the
 * same name.
 */
export function claimResultPath(dir: string, name: string): string {
  mkdirSync(dir, { recursive: true });
  const stem = safeFileStem(name);
  for (let n = 1; ; n++) {
    const path = join(dir, `${stem}${n === 1 ? '' : `-${n}`}${RESULT_SUFFIX}`);
    try {
      closeSync(openSync(path, 'wx'));
      return path;
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
    }
  }
}

/** Writes a result atomically (temp file + rename): a reader sees the old content or the new, never half. */
export function writeResultFile(path: string, result: PatchResult): void {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  writeFileSync(tmp, JSON.stringify(result) + '\n');
  renameSync(tmp, path);
}

const STATUSES: readonly RunStatus[] = ['done', 'cancelled', 'failed'];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Why `value` is not a result file the panel can show, or undefined when it is one. */
export function resultProblem(value: unknown): string | undefined {
  if (!isObject(value)) return 'not a JSON object';
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
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read ${path} (${errnoReason(e)})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${basename(path)} is not valid JSON (${jsonErrorReason(e)})`);
  }
  const problem = resultProblem(value);
  if (problem) throw new UserError(`${basename(path)} is not a result PatchLens can show: ${oneLine(problem)}`);
  return value as PatchResult;
}
