/**
 * A shard file on disk (`<name>.shard-i-of-n.json`, what `patchlens run --shard i/n` writes): its name,
 * the hash that says which sweep it is a share of, written atomically, read back and checked. Plain Node.
 */
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { PatchResult } from '../protocol/result';
import { SHARD_FORMAT, type ShardResult } from '../protocol/shard';
import { safeFileStem } from './fileName';
import { readJsonFile } from './fileRead';
import { replaceFile } from './fileWrite';
import { oneLine, UserError } from './userError';

const SHARD_NAME = /\.shard-(\d+)-of-(\d+)\.json$/;

/** Shard i of n of run `name`; a shard run again (a job retried) replaces its earlier file. */
export function shardFileName(name: string, index: number, count: number): string {
  return `${safeFileStem(name)}.shard-${index}-of-${count}.json`;
}

/** The shard files in a folder (by name), sorted. */
export function shardFilesIn(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => SHARD_NAME.test(n))
    .sort()
    .map((n) => join(dir, n));
}

/**
 * sha256 of what a run's sweeps compute: the spec as given, and what it resolved to (every pair's tokens
 * and labels, which a dataset file supplies, the metric, the direction, the ablation).
 */
export function specHash(r: Pick<PatchResult, 'spec' | 'tokens' | 'metric' | 'direction' | 'ablation'>): string {
  return createHash('sha256')
    .update(JSON.stringify([r.spec, r.tokens, r.metric, r.direction ?? null, r.ablation ?? null]))
    .digest('hex');
}

export function writeShardFile(path: string, shard: ShardResult): void {
  replaceFile(path, JSON.stringify(shard) + '\n');
}

/** The most a shard file may hold: as much as a whole result. */
const MAX_SHARD_BYTES = 512 * 1024 * 1024;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 1;

/** Why `value` is not a shard file merge can use, or undefined when it is one. */
export function shardProblem(value: unknown): string | undefined {
  if (!isObject(value)) return 'not a JSON object';
  if (value.format === 'patchlens.result/1') return 'it is a whole result, not a shard; merge takes the files `patchlens run --shard i/n` writes';
  if (value.format !== SHARD_FORMAT) return `not a PatchLens shard (format ${JSON.stringify(value.format ?? null)}, expected "${SHARD_FORMAT}")`;
  const s = value.shard;
  if (!isObject(s) || !isCount(s.index) || !isCount(s.count) || s.index > s.count) return 'no valid "shard" (index and count)';
  if (typeof s.modelHash !== 'string' || typeof s.planHash !== 'string' || typeof s.memoryBudgetMiB !== 'number') return '"shard" lacks its model hash, memory budget or plan hash';
  if (value.status !== 'done') return `status ${JSON.stringify(value.status)}: only a finished shard is written`;
  if (typeof value.name !== 'string' || !isObject(value.model) || typeof value.model.id !== 'string') return 'no "name" or "model.id"';
  if (!isObject(value.engine) || !isObject(value.baselines) || !Array.isArray(value.tokens) || !isObject(value.sweeps)) return 'no "engine", "baselines", "tokens" or "sweeps"';
  for (const [name, w] of Object.entries(value.sweeps)) {
    if (!isObject(w) || !Array.isArray(w.shape) || !Array.isArray(w.axes)) return `sweep ${name} is malformed`;
    const size = (w.shape as unknown[]).reduce<number>((a, d) => a * (isCount(d) ? d : NaN), 1);
    const problem = cellsProblem(`sweep ${name}`, w, size, (v) => v === null || typeof v === 'number');
    if (problem) return problem;
  }
  if (value.patchSets !== undefined) {
    const spec = isObject(value.spec) ? value.spec : {};
    const size = Array.isArray(spec.patch_sets) ? spec.patch_sets.length : 0;
    return cellsProblem(
      'patchSets',
      value.patchSets,
      size,
      (v) => isObject(v) && typeof v.name === 'string' && Array.isArray(v.components) && (v.value === null || typeof v.value === 'number'),
    );
  }
  return undefined;
}

/** Why `held` is not a well-formed share of a list of `size` values (ranges in order, one value each), or undefined. */
function cellsProblem(what: string, held: unknown, size: number, isValue: (v: unknown) => boolean): string | undefined {
  if (!isObject(held) || !Array.isArray(held.cells) || !Array.isArray(held.values)) return `${what} has no "cells" and "values"`;
  let count = 0;
  let end = 0;
  for (const c of held.cells as unknown[]) {
    if (!Array.isArray(c) || c.length !== 2 || !Number.isInteger(c[0]) || !Number.isInteger(c[1]) || c[0] < end || c[1] <= c[0] || c[1] > size)
      return `${what} has a cell range ${JSON.stringify(c)} out of order or outside its ${size} values`;
    count += c[1] - c[0];
    end = c[1];
  }
  if (count !== held.values.length) return `${what} holds ${held.values.length} values for ${count} cells`;
  if (!(held.values as unknown[]).every(isValue)) return `${what} has a malformed value`;
  return undefined;
}

/** Reads and checks a shard file; a UserError saying what is wrong when it is not one. */
export function readShardFile(path: string): ShardResult {
  const value = readJsonFile(path, { noun: 'shard file', maxBytes: MAX_SHARD_BYTES, fix: 'give the files `patchlens run --shard i/n` wrote' });
  const problem = shardProblem(value);
  if (problem) throw new UserError(`${path} is not a shard patchlens merge can use: ${oneLine(problem)}`);
  return value as ShardResult;
}
