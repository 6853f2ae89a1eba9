import type { ResolvedPair } from '../../protocol/spec';
import type { HookedTransformer } from '../hookedTransformer';
import type { BlockHook } from '../hooks';
import type { Tensor32 } from '../tensor';
import type { Metric } from './metrics';
import type { PatchSlot } from './sweeps';

/**
 * Everything an executor needs to evaluate patches on one batch of prompt pairs. The prompts a patch
 * goes into are the run (the corrupted prompts when denoising), the activations it writes come from
 * the source (the clean run's when denoising).
 */
export interface PatchProblem {
  readonly model: HookedTransformer;
  readonly pairs: readonly ResolvedPair[];
  /** Length of the (right-padded) rows; pairs may be shorter. */
  readonly nPos: number;
  /** The token rows the patched runs are of, right-padded to nPos. */
  readonly run: readonly number[][];
  readonly metric: Metric;
  /** What the patches write: the source's activation of every hook the sweeps patch, full names, [nPairs, ...]. */
  readonly sourceCache: ReadonlyMap<string, Tensor32>;
  /**
   * The run's own activations: resid_pre, hook_q, hook_k, hook_v and every hook the sweeps patch, of every
   * layer, full names, [nPairs, ...].
   */
  readonly runCache: ReadonlyMap<string, Tensor32>;
  /** The unpatched run's logits at the metric's positions (what an unchanged position reads). */
  readonly runLogits: Float32Array;
  /** Working memory one patched run may use, in bytes. */
  readonly memoryBudget: number;
}

/**
 * One slot of a patch, optionally with its own values to write (the hook's activation for every pair,
 * as the run has it); without them it writes the problem's source.
 */
export interface PatchPart extends PatchSlot {
  readonly source?: Tensor32;
}

/**
 * What one patched run overwrites: a sweep's slot, or several parts patched together (a patch set).
 * Parts on the same hook of the same layer write the same source.
 */
export type Patch = readonly PatchPart[];

export interface ExecuteOptions {
  /** Called with the number of patches finished so far (fractional while a batch is under way). */
  readonly onProgress?: (done: number) => void;
  readonly signal?: AbortSignal;
}

/** Computes the raw metric for each patch (in order). */
export type PatchExecutor = (problem: PatchProblem, patches: readonly Patch[], opts: ExecuteOptions) => Promise<Float64Array>;

/** Block hooks to read from patched runs, by layer (a path patch's receivers' inputs). */
export type CaptureHooks = ReadonlyMap<number, readonly BlockHook[]>;

/** Each patched run's values of the capture hooks, by full name, [nPairs, nPos, ...] as the run's cache holds them. */
export type PatchCapturer = (problem: PatchProblem, patches: readonly Patch[], capture: CaptureHooks, opts: ExecuteOptions) => Promise<Map<string, Tensor32>[]>;

/**
 * Patches (indices into the list given) that an executor evaluates together, as one batch. The executor
 * given only these, in this order, evaluates them as the same batch: their values do not depend on what
 * else was in the list, bit for bit. `cost`: the batch's work in block-tokens (rows × positions × blocks).
 */
export interface ExecutorUnit {
  readonly members: readonly number[];
  readonly cost: number;
}

/** How an executor cuts a list of patches into units (what `patchlens run --shard` deals out). */
export type UnitPlanner = (problem: PatchProblem, patches: readonly Patch[]) => ExecutorUnit[];

/** The source tensor a part writes. */
export function partSource(problem: PatchProblem, part: PatchPart, name: string): Tensor32 {
  return part.source ?? problem.sourceCache.get(name)!;
}

/** Flat logit rows (row * nPos + pos) the metric reads for `copies` stacked copies of the pairs. */
export function metricRows(problem: Pick<PatchProblem, 'pairs' | 'metric' | 'nPos'>, copies: number): number[] {
  const rows: number[] = [];
  const n = problem.pairs.length;
  for (let c = 0; c < copies; c++) {
    problem.metric.positions.forEach((positions, i) => {
      for (const p of positions) rows.push((c * n + i) * problem.nPos + p);
    });
  }
  return rows;
}
