/**
 * Path patching as ARENA's IOI exercises write it (get_path_patch_head_to_final_resid_post and
 * get_path_patch_head_to_heads), on the float64 reference forward and independent of the engine:
 * step 1 caches both runs; step 2 runs the prompts patched into with a hook on every layer's hook_z that
 * sets every head to that run's cached value and the sender heads to the source's
 * (patch_or_freeze_head_vectors), keeping the receivers' inputs, or its logits when the receiver is the
 * final residual stream; step 3 runs the same prompts with only the receiver heads' inputs replaced by
 * step 2's (patch_head_input), and its logits are measured.
 */
import { referenceForward, type RefActivation, type RefModel } from './reference';
import { copySlice } from './referencePatching';

export interface RefReceiver {
  layer: number;
  /** A query head for q, a key/value head for k and v (hook_k and hook_v have n_key_value_heads). */
  head: number;
  input: 'q' | 'k' | 'v';
}

/** Both runs' caches: `source` (new_cache: what the senders take), `run` (orig_cache: the prompts patched into and their frozen heads). */
export interface RefPathRuns {
  source: Map<string, RefActivation>;
  run: number[][];
  runCache: Map<string, RefActivation>;
}

/** The metric of one path patch: `senders` ([layer, head]) patched together, measured through `receivers`. */
export function referencePathPatch(
  model: RefModel,
  runs: RefPathRuns,
  senders: [number, number][],
  receivers: RefReceiver[] | 'resid_final',
  metric: (logits: RefActivation) => number,
): number {
  const received = new Map<string, RefActivation>();
  const wanted = receivers === 'resid_final' ? [] : receivers.map((r) => `blocks.${r.layer}.attn.hook_${r.input}`);
  const step2 = referenceForward(model, runs.run, (name, act) => {
    const m = /^blocks\.(\d+)\.attn\.hook_z$/.exec(name);
    if (m) {
      const layer = Number(m[1]);
      act.data.set(runs.runCache.get(name)!.data);
      for (const [l, h] of senders) if (l === layer) copySlice(act, runs.source.get(name)!, new Map([[2, h]]));
    }
    if (wanted.includes(name)) received.set(name, { shape: [...act.shape], data: Float64Array.from(act.data) });
  });
  if (receivers === 'resid_final') return metric(step2.logits);
  const step3 = referenceForward(model, runs.run, (name, act) => {
    for (const r of receivers) if (name === `blocks.${r.layer}.attn.hook_${r.input}`) copySlice(act, received.get(name)!, new Map([[2, r.head]]));
  });
  return metric(step3.logits);
}

/** The [layer, head] heatmap: every head alone as the sender, over the layers below the last receiver's (every layer for resid_final). */
export function referencePathPatchingSweep(
  model: RefModel,
  runs: RefPathRuns,
  receivers: RefReceiver[] | 'resid_final',
  metric: (logits: RefActivation) => number,
): { shape: [number, number]; values: Float64Array } {
  const layers = receivers === 'resid_final' ? model.cfg.nLayers : Math.max(...receivers.map((r) => r.layer));
  const H = model.cfg.nHeads;
  const values = new Float64Array(layers * H);
  for (let l = 0; l < layers; l++) for (let h = 0; h < H; h++) values[l * H + h] = referencePathPatch(model, runs, [[l, h]], receivers, metric);
  return { shape: [layers, H], values };
}
