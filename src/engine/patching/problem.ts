import type { ResolvedPair } from '../../protocol/spec';
import type { HookedTransformer } from '../hookedTransformer';
import type { Tensor32 } from '../tensor';
import type { Metric } from './metrics';
import type { PatchSlot } from './sweeps';

/** Everything an executor needs to evaluate patch slots on one batch of prompt pairs. */
export interface PatchProblem {
  readonly model: HookedTransformer;
  readonly pairs: readonly ResolvedPair[];
  /** Length of the (right-padded) rows; pairs may be shorter. */
  readonly nPos: number;
  readonly clean: readonly number[][];
  readonly corrupted: readonly number[][];
  readonly metric: Metric;
  /** Clean activations of every hook the sweeps patch, full names, [nPairs, ...]. */
  readonly cleanCache: ReadonlyMap<string, Tensor32>;
  /**
   * Corrupted activations: resid_pre, hook_k, hook_v and every hook the sweeps patch, of every layer,
   * full names, [nPairs, ...].
   */
  readonly corruptedCache: ReadonlyMap<string, Tensor32>;
  /** The corrupted run's logits at the metric's positions (what an unchanged position reads). */
  readonly corruptedLogits: Float32Array;
  /** The clean run's logits at the metric's positions. */
  readonly cleanLogits: Float32Array;
  /** Working memory one patched run may use, in bytes. */
  readonly memoryBudget: number;
}

export interface ExecuteOptions {
  /** Called with the number of slots finished so far (fractional while a batch is under way). */
  readonly onProgress?: (done: number) => void;
  readonly signal?: AbortSignal;
}

/** Computes the raw metric for each slot (in order). */
export type SlotExecutor = (problem: PatchProblem, slots: readonly PatchSlot[], opts: ExecuteOptions) => Promise<Float64Array>;

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
