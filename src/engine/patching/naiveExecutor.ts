import { throwIfCancelled } from '../cancel';
import type { HookPatch } from '../hookedTransformer';
import { blockHookName, hookMaskShape } from '../hooks';
import { numel, type Tensor32 } from '../tensor';
import { markSlot } from './patchMask';
import { type CaptureHooks, type ExecuteOptions, type ExecutorUnit, metricRows, type Patch, type PatchProblem, partSource } from './problem';

/**
 * TransformerLens's algorithm, kept as the reference mode (--naive) and the benchmark's baseline: for
 * every patch, one full forward pass of the run's prompts (the batch is the prompt pairs) with its
 * slices of the source activations written in, and logits at every position.
 */
export async function executeNaive(problem: PatchProblem, patches: readonly Patch[], opts: ExecuteOptions): Promise<Float64Array> {
  const { model, metric } = problem;
  const V = model.cfg.dVocab;
  const rows = metricRows(problem, 1);
  const read = new Float32Array(metric.rowsPerEval * V);
  const out = new Float64Array(patches.length);
  for (let i = 0; i < patches.length; i++) {
    throwIfCancelled(opts.signal);
    const { logits } = await model.forward(problem.run, { patches: hookPatches(problem, patches[i]!), signal: opts.signal });
    rows.forEach((row, k) => read.set(logits.data.subarray(row * V, (row + 1) * V), k * V));
    out[i] = metric.raw(read);
    opts.onProgress?.(i + 1);
  }
  return out;
}

/** The values of `capture`'s hooks in one full patched forward per patch (captureFast's reference mode). */
export async function captureNaive(problem: PatchProblem, patches: readonly Patch[], capture: CaptureHooks, opts: ExecuteOptions): Promise<Map<string, Tensor32>[]> {
  const names = [...capture].flatMap(([l, hooks]) => hooks.map((h) => blockHookName(l, h)));
  const rows = metricRows(problem, 1);
  const out: Map<string, Tensor32>[] = [];
  for (let i = 0; i < patches.length; i++) {
    throwIfCancelled(opts.signal);
    const { cache } = await problem.model.forward(problem.run, { patches: hookPatches(problem, patches[i]!), capture: names, logitRows: rows, signal: opts.signal });
    out.push(cache);
    opts.onProgress?.(i + 1);
  }
  return out;
}

/** executeNaive's units: every patch is its own full forward of the pairs. */
export function naiveUnits(problem: PatchProblem, patches: readonly Patch[]): ExecutorUnit[] {
  const cost = problem.model.cfg.nLayers * problem.pairs.length * problem.nPos;
  return patches.map((_, i) => ({ members: [i], cost }));
}

/** A patch as the forward takes it: one source and mask per hook point it touches. */
export function hookPatches(problem: PatchProblem, patch: Patch): Map<string, HookPatch> {
  const patches = new Map<string, HookPatch>();
  for (const part of patch) {
    const name = blockHookName(part.layer, part.hook);
    let p = patches.get(name);
    if (!p) {
      p = { source: partSource(problem, part, name), mask: new Uint8Array(numel(hookMaskShape(problem.model.cfg, part.hook, problem.pairs.length, problem.nPos))) };
      patches.set(name, p);
    }
    markSlot(p.mask, hookMaskShape(problem.model.cfg, part.hook, problem.pairs.length, problem.nPos), part, 0, problem.pairs.length);
  }
  return patches;
}
