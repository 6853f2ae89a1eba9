import { throwIfCancelled } from '../cancel';
import { blockHookName, hookMaskShape } from '../hooks';
import { numel } from '../tensor';
import { markSlot } from './patchMask';
import { type ExecuteOptions, metricRows, type PatchProblem } from './problem';
import type { PatchSlot } from './sweeps';

/**
 * TransformerLens's algorithm, kept as the reference mode (--naive) and the benchmark's baseline: for
 * every slot, one full forward pass of the corrupted prompts (the batch is the prompt pairs) with one
 * slice of the clean activations written in, and logits at every position.
 */
export async function executeNaive(problem: PatchProblem, slots: readonly PatchSlot[], opts: ExecuteOptions): Promise<Float64Array> {
  const { model, pairs, nPos, metric } = problem;
  const V = model.cfg.dVocab;
  const rows = metricRows(problem, 1);
  const read = new Float32Array(metric.rowsPerEval * V);
  const out = new Float64Array(slots.length);
  for (let i = 0; i < slots.length; i++) {
    throwIfCancelled(opts.signal);
    const slot = slots[i]!;
    const name = blockHookName(slot.layer, slot.hook);
    const maskShape = hookMaskShape(model.cfg, slot.hook, pairs.length, nPos);
    const mask = new Uint8Array(numel(maskShape));
    markSlot(mask, maskShape, slot, 0, pairs.length);
    const patches = new Map([[name, { source: problem.cleanCache.get(name)!, mask }]]);
    const { logits } = await model.forward(problem.corrupted, { patches, signal: opts.signal });
    rows.forEach((row, k) => read.set(logits.data.subarray(row * V, (row + 1) * V), k * V));
    out[i] = metric.raw(read);
    opts.onProgress?.(i + 1);
  }
  return out;
}
