import type { PatchResult, PatchSetResult, SweepResult } from './result';
import type { SweepName } from './spec';

/**
 * The partial result `patchlens run --shard i/n` writes (`<name>.shard-i-of-n.json`): the run's fields
 * as a result file has them, with each sweep holding only the cells this shard computed.
 * `patchlens merge` combines the n shards into the result file one machine would have written.
 */
export const SHARD_FORMAT = 'patchlens.shard/1';

/** What a shard is a share of: merge refuses shards whose identities disagree. */
export interface ShardIdentity {
  /** 1-based: shard `index` of `count`. */
  readonly index: number;
  readonly count: number;
  /** sha256 of what the sweeps compute: the spec, every pair's tokens and labels, the metric, direction and ablation. */
  readonly specHash: string;
  /** sha256 of the model's config and float32 weights as loaded. */
  readonly modelHash: string;
  /** The memory budget, which sizes the batches the work is cut into. */
  readonly memoryBudgetMiB: number;
  /** How many batches the whole run's sweeps were cut into, and a sha256 of that cut (each batch's slots and cost). */
  readonly units: number;
  readonly planHash: string;
}

/** The part of a list (a sweep's values, the patch sets) a shard holds. */
export interface ShardCells<T> {
  /** The indices this shard holds (row-major over a sweep's `shape`), as [start, end) ranges in increasing order. */
  readonly cells: [number, number][];
  /** Their values, in order. */
  readonly values: T[];
}

/** A sweep's layout as in a result file, with the values of this shard's cells only (the cells a model lacks, null, are shard 1's). */
export interface ShardSweep extends Omit<SweepResult, 'values' | 'score' | 'verification'>, ShardCells<number | null> {}

export interface ShardResult extends Omit<PatchResult, 'format' | 'status' | 'message' | 'sweeps' | 'attribution' | 'patchSets'> {
  readonly format: typeof SHARD_FORMAT;
  /** A shard file is written only when its share finished. */
  readonly status: 'done';
  readonly shard: ShardIdentity;
  readonly sweeps: Partial<Record<SweepName, ShardSweep>>;
  /** The spec's patch sets this shard evaluated (indices into the spec's list). */
  readonly patchSets?: ShardCells<PatchSetResult>;
}
