import { throwIfCancelled } from '../cancel';
import type { HookPatch } from '../hookedTransformer';
import { blockHookName, hookMaskShape } from '../hooks';
import { numel } from '../tensor';
import { markSlot } from './patchMask';
import { tileRows } from '../tensorOps';
import { type ExecuteOptions, metricRows, type PatchProblem } from './problem';
import { bytesPerRow } from './memory';
import type { PatchSlot } from './sweeps';

/**
 * TransformerLens's algorithm: every slot is one full forward pass of the corrupted prompts with one
 * slice of the clean activations written in. Several slots share a run on the batch axis (same work,
 * fewer calls). Kept as the reference mode (--naive) and as the benchmark's baseline.
 */
export async function executeNaive(problem: PatchProblem, slots: readonly PatchSlot[], opts: ExecuteOptions): Promise<Float64Array> {
  const { model, pairs, nPos, metric } = problem;
  const nPairs = pairs.length;
  const V = model.cfg.dVocab;
  // Full logits at every position, as TransformerLens computes them, count against the budget too.
  const rowBytes = bytesPerRow(model.cfg, nPos) + 4 * nPos * V;
  const perRun = Math.max(1, Math.floor(problem.memoryBudget / rowBytes / nPairs));
  const out = new Float64Array(slots.length);
  for (let start = 0; start < slots.length; start += perRun) {
    throwIfCancelled(opts.signal);
    const group = slots.slice(start, start + perRun);
    const copies = group.length;
    const ids = Array.from({ length: copies }, () => problem.corrupted).flat();
    const patches = new Map<string, HookPatch>();
    group.forEach((slot, j) => {
      const name = blockHookName(slot.layer, slot.hook);
      let patch = patches.get(name);
      if (!patch) {
        const source = tileRows(problem.cleanCache.get(name)!, copies);
        patch = { source, mask: new Uint8Array(numel(hookMaskShape(model.cfg, slot.hook, copies * nPairs, nPos))) };
        patches.set(name, patch);
      }
      markSlot(patch.mask, hookMaskShape(model.cfg, slot.hook, copies * nPairs, nPos), slot, j * nPairs, (j + 1) * nPairs);
    });
    const { logits } = await model.forward(ids, { patches, signal: opts.signal });
    const read = new Float32Array(metric.rowsPerEval * copies * V);
    metricRows(problem, copies).forEach((row, k) => read.set(logits.data.subarray(row * V, (row + 1) * V), k * V));
    for (let j = 0; j < copies; j++) out[start + j] = metric.raw(read, j * metric.rowsPerEval * V);
    opts.onProgress?.(start + copies);
  }
  return out;
}
