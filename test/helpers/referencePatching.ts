/**
 * The naive activation-patching loop of TransformerLens's `transformer_lens.patching`, on the float64
 * reference forward: one clean run with a cache, then one full corrupted forward per index, with a hook
 * that copies one slice of the clean activation into the corrupted one. The oracle for the fast engine.
 */
import { referenceForward, type RefActivation, type RefConfig, type RefModel } from './reference';

export type SweepName =
  | 'resid_pre'
  | 'resid_mid'
  | 'resid_post'
  | 'attn_out'
  | 'mlp_out'
  | 'attn_head_out_all_pos'
  | 'attn_head_q_all_pos'
  | 'attn_head_k_all_pos'
  | 'attn_head_v_all_pos'
  | 'attn_head_pattern_all_pos'
  | 'attn_head_out_by_pos'
  | 'attn_head_q_by_pos'
  | 'attn_head_k_by_pos'
  | 'attn_head_v_by_pos'
  | 'attn_head_pattern_by_pos'
  | 'attn_head_pattern_dest_src_pos'
  | 'attn_head_all_pos_every'
  | 'attn_head_by_pos_every'
  | 'block_every';

type Axis = 'layer' | 'pos' | 'head' | 'dest_pos' | 'src_pos';

/**
 * One of TransformerLens's `get_act_patch_*` partials: the hook it patches and its index axes. `slice`
 * maps each index axis after `layer` to the activation axis it fixes (TransformerLens's patch setters);
 * every other activation axis (batch included) is copied whole.
 */
interface SimpleSweep {
  hook: string;
  axes: Axis[];
  slice: number[];
}

// Residual-like [batch, pos, d]: layer_pos_patch_setter, act[:, pos].
const residSweep = (hook: string): SimpleSweep => ({ hook, axes: ['layer', 'pos'], slice: [1] });
// [batch, pos, head, d_head]: layer_pos_head_vector_patch_setter act[:, pos, head] and
// layer_head_vector_patch_setter act[:, :, head]. 'out' is hook_z, as in TransformerLens.
const byPos = (hook: string): SimpleSweep => ({ hook, axes: ['layer', 'pos', 'head'], slice: [1, 2] });
const allPos = (hook: string): SimpleSweep => ({ hook, axes: ['layer', 'head'], slice: [2] });

const SIMPLE: Record<string, SimpleSweep> = {
  resid_pre: residSweep('hook_resid_pre'),
  resid_mid: residSweep('hook_resid_mid'),
  resid_post: residSweep('hook_resid_post'),
  attn_out: residSweep('hook_attn_out'),
  mlp_out: residSweep('hook_mlp_out'),
  attn_head_out_by_pos: byPos('attn.hook_z'),
  attn_head_q_by_pos: byPos('attn.hook_q'),
  attn_head_k_by_pos: byPos('attn.hook_k'),
  attn_head_v_by_pos: byPos('attn.hook_v'),
  attn_head_out_all_pos: allPos('attn.hook_z'),
  attn_head_q_all_pos: allPos('attn.hook_q'),
  attn_head_k_all_pos: allPos('attn.hook_k'),
  attn_head_v_all_pos: allPos('attn.hook_v'),
  // Pattern [batch, head, dest, src]: pattern[:, head], pattern[:, head, dest] (a whole row),
  // pattern[:, head, dest, src]. Note the index order puts head before the position here.
  attn_head_pattern_all_pos: { hook: 'attn.hook_pattern', axes: ['layer', 'head'], slice: [1] },
  attn_head_pattern_by_pos: { hook: 'attn.hook_pattern', axes: ['layer', 'head', 'dest_pos'], slice: [1, 2] },
  attn_head_pattern_dest_src_pos: {
    hook: 'attn.hook_pattern',
    axes: ['layer', 'head', 'dest_pos', 'src_pos'],
    slice: [1, 2, 3],
  },
};

/**
 * The `_every` helpers stack whole sweeps on a new leading axis. `permute` is how a part's own axes map
 * onto the stacked ones: get_act_patch_attn_head_by_pos_every rearranges pattern_by_pos's
 * [layer, head, dest] to [layer, pos, head] ("batch head pos -> batch pos head" in its einops call).
 */
interface EverySweep {
  parts: { sweep: SweepName; permute?: number[] }[];
  axes: Axis[];
}

/** Labels of the leading 'act' axis of each `_every` sweep, in stacking order. */
export const REF_EVERY_PARTS: Record<'block_every' | 'attn_head_all_pos_every' | 'attn_head_by_pos_every', string[]> = {
  block_every: ['resid_pre', 'attn_out', 'mlp_out'],
  attn_head_all_pos_every: ['out', 'q', 'k', 'v', 'pattern'],
  attn_head_by_pos_every: ['out', 'q', 'k', 'v', 'pattern'],
};

const EVERY: Record<string, EverySweep> = {
  block_every: { parts: [{ sweep: 'resid_pre' }, { sweep: 'attn_out' }, { sweep: 'mlp_out' }], axes: ['layer', 'pos'] },
  attn_head_all_pos_every: {
    parts: [
      { sweep: 'attn_head_out_all_pos' },
      { sweep: 'attn_head_q_all_pos' },
      { sweep: 'attn_head_k_all_pos' },
      { sweep: 'attn_head_v_all_pos' },
      { sweep: 'attn_head_pattern_all_pos' },
    ],
    axes: ['layer', 'head'],
  },
  attn_head_by_pos_every: {
    parts: [
      { sweep: 'attn_head_out_by_pos' },
      { sweep: 'attn_head_q_by_pos' },
      { sweep: 'attn_head_k_by_pos' },
      { sweep: 'attn_head_v_by_pos' },
      // stacked axis i takes the part's axis permute[i]: [layer, pos, head] <- [layer, head, dest][0, 2, 1]
      { sweep: 'attn_head_pattern_by_pos', permute: [0, 2, 1] },
    ],
    axes: ['layer', 'pos', 'head'],
  },
};

export const REF_SWEEPS: readonly SweepName[] = [...Object.keys(SIMPLE), ...Object.keys(EVERY)] as SweepName[];

/**
 * Index axes of each sweep (the golden files' names; TransformerLens calls the pattern sweeps' head axis
 * 'head_index' and the stacked axis of the `_every` sweeps 'patch_type', the golden files 'act').
 */
export function refSweepAxes(sweep: SweepName): string[] {
  const simple = SIMPLE[sweep];
  if (simple) return [...simple.axes];
  return ['act', ...EVERY[sweep].axes];
}

/** A sweep's head axis: key/value heads for the k and v sweeps (TransformerLens's patching since its GQA fix). */
function headsOf(cfg: RefConfig, hook: string): number {
  return hook === 'attn.hook_k' || hook === 'attn.hook_v' ? cfg.nKvHeads : cfg.nHeads;
}

export function refSweepShape(cfg: RefConfig, nPos: number, sweep: SweepName): number[] {
  const size = (a: string): number => {
    switch (a) {
      case 'act':
        return REF_EVERY_PARTS[sweep as keyof typeof REF_EVERY_PARTS].length;
      case 'layer':
        return cfg.nLayers;
      case 'head':
        return cfg.nHeads;
      default:
        return nPos;
    }
  };
  return refSweepAxes(sweep).map(size);
}

function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Every multi-index of `shape` in row-major order (last axis fastest), as itertools.product does. */
function* indices(shape: readonly number[]): Generator<number[]> {
  const n = shape.reduce((a, b) => a * b, 1);
  const st = strides(shape);
  for (let flat = 0; flat < n; flat++) yield shape.map((s, i) => Math.floor(flat / st[i]) % s);
}

/**
 * dst[fixed axes = values, every other axis whole] = src[same]: one TransformerLens patch setter. An axis
 * may fix a different set of indices in each batch row (axis 0): a labelled position, each prompt at its own.
 */
export function copySlice(dst: RefActivation, src: RefActivation, fixed: Map<number, number | number[][]>): void {
  const shape = dst.shape;
  for (const [axis, v] of fixed) {
    for (const x of typeof v === 'number' ? [v] : v.flat()) {
      if (x < 0 || x >= shape[axis]) throw new Error(`reference patch: index ${x} outside axis ${axis} of [${shape}]`);
    }
  }
  const st = strides(shape);
  for (let flat = 0; flat < dst.data.length; flat++) {
    const row = Math.floor(flat / st[0]);
    let inSlice = true;
    for (const [axis, v] of fixed) {
      const i = Math.floor(flat / st[axis]) % shape[axis];
      if (typeof v === 'number' ? i !== v : !v[row].includes(i)) {
        inSlice = false;
        break;
      }
    }
    if (inSlice) dst.data[flat] = src.data[flat];
  }
}

/**
 * Labelled positions: `at[label][row]` are row's positions for a label. A sweep's position axes then
 * count labels, and each prompt is patched at its own positions for the label.
 */
export interface RefLabels {
  at: number[][][];
}

function runSimple(
  model: RefModel,
  cleanCache: Map<string, RefActivation>,
  corrupted: number[][],
  sweep: SimpleSweep,
  nPos: number,
  metric: (logits: RefActivation) => number,
  labels?: RefLabels,
): { shape: number[]; values: Float64Array; nForward: number } {
  const cfg = model.cfg;
  const positions = labels ? labels.at.length : nPos;
  const shape = sweep.axes.map((a) => (a === 'layer' ? cfg.nLayers : a === 'head' ? headsOf(cfg, sweep.hook) : positions));
  const values = new Float64Array(shape.reduce((a, b) => a * b, 1));
  let nForward = 0;
  let flat = 0;
  for (const index of indices(shape)) {
    // As generic_activation_patch: the first index is always the layer and names the hook.
    const target = `blocks.${index[0]}.${sweep.hook}`;
    const clean = cleanCache.get(target);
    if (!clean) throw new Error(`reference patch: no clean activation for ${target}`);
    const fixed = new Map<number, number | number[][]>(
      sweep.slice.map((axis, i) => {
        const isPos = sweep.axes[i + 1] !== 'head';
        return [axis, labels && isPos ? labels.at[index[i + 1]] : index[i + 1]];
      }),
    );
    const { logits } = referenceForward(model, corrupted, (name, act) => {
      if (name === target) copySlice(act, clean, fixed);
    });
    nForward++;
    values[flat++] = metric(logits);
  }
  return { shape, values, nForward };
}

/**
 * One sweep the naive way. `nForward` counts the patched forwards only (the golden files' `n_forward`),
 * not the clean run that fills the cache.
 */
export function referenceSweep(
  model: RefModel,
  clean: number[][],
  corrupted: number[][],
  sweep: SweepName,
  metric: (logits: RefActivation) => number,
  labels?: RefLabels,
): { shape: number[]; axes: string[]; values: Float64Array; nForward: number } {
  if (clean.length !== corrupted.length) throw new Error('reference patch: clean and corrupted batches differ in size');
  const nPos = corrupted[0]?.length ?? 0;
  if (clean.some((r) => r.length !== nPos) || corrupted.some((r) => r.length !== nPos)) {
    throw new Error('reference patch: every clean and corrupted prompt needs the same number of tokens');
  }
  const cleanCache = referenceForward(model, clean).cache;
  return sweepWithCache(model, cleanCache, corrupted, sweep, metric, labels);
}

/** One sweep the naive way, writing the activations of `cleanCache` (any source: a clean run, zeros, means) into runs of `corrupted`. */
export function sweepWithCache(
  model: RefModel,
  cleanCache: Map<string, RefActivation>,
  corrupted: number[][],
  sweep: SweepName,
  metric: (logits: RefActivation) => number,
  labels?: RefLabels,
): { shape: number[]; axes: string[]; values: Float64Array; nForward: number } {
  const nPos = labels ? labels.at.length : corrupted[0].length;
  const axes = refSweepAxes(sweep);
  const simple = SIMPLE[sweep];
  if (simple) return { axes, ...runSimple(model, cleanCache, corrupted, simple, corrupted[0].length, metric, labels) };

  const every = EVERY[sweep];
  if (!every) throw new Error(`reference patch: unknown sweep ${sweep}`);
  const shape = refSweepShape(model.cfg, nPos, sweep);
  const partShape = shape.slice(1);
  const partSize = partShape.reduce((a, b) => a * b, 1);
  const values = new Float64Array(shape.reduce((a, b) => a * b, 1));
  let nForward = 0;
  every.parts.forEach((part, p) => {
    const r = sweepWithCache(model, cleanCache, corrupted, part.sweep, metric, labels);
    nForward += r.nForward;
    const perm = part.permute ?? partShape.map((_, i) => i);
    const srcStrides = strides(r.shape);
    let flat = 0;
    for (const idx of indices(partShape)) {
      // Stacked axis i is the part's axis perm[i], so the part's own index has idx[i] at position perm[i].
      // A key/value part of a grouped-query model has fewer heads: TransformerLens pads those rows with
      // zeros; here they are NaN, "not a head", which the engine reports as null.
      let src = 0;
      let inside = true;
      for (let i = 0; i < idx.length; i++) {
        if (idx[i] >= r.shape[perm[i]]) inside = false;
        src += idx[i] * srcStrides[perm[i]];
      }
      values[p * partSize + flat++] = inside ? r.values[src] : NaN;
    }
  });
  return { shape, axes, values, nForward };
}

/** Logit difference at each row's last position, mean over rows: logits[row, lastPos, a] - logits[row, lastPos, b]. */
export function refLogitDiff(lastPos: number[], answers: [number, number][]): (logits: RefActivation) => number {
  return (logits) => {
    const [B, P, V] = logits.shape;
    if (lastPos.length !== B || answers.length !== B) {
      throw new Error(`refLogitDiff: ${lastPos.length} positions and ${answers.length} answer pairs for ${B} rows`);
    }
    let sum = 0;
    for (let b = 0; b < B; b++) {
      const base = (b * P + lastPos[b]) * V;
      sum += logits.data[base + answers[b][0]] - logits.data[base + answers[b][1]];
    }
    return sum / B;
  };
}

/**
 * An ablation's source activations from the reference's clean cache, in float64: zeros, or each hook's
 * mean over the prompts at each position (over the rows whose prompt reaches it: `lengths`), or over
 * every real token of every prompt. Attention patterns ([B, H, dest, src]) average each entry over the
 * rows that reach its destination.
 */
export function refAblationCache(cache: Map<string, RefActivation>, kind: 'zero' | 'mean' | 'mean_over_positions', lengths: number[]): Map<string, RefActivation> {
  const out = new Map<string, RefActivation>();
  for (const [name, act] of cache) {
    const data = new Float64Array(act.data.length);
    if (kind !== 'zero') {
      const B = act.shape[0];
      if (/hook_pattern|hook_attn_scores/.test(name)) {
        const [, H, P] = act.shape;
        for (let h = 0; h < H; h++) {
          for (let d = 0; d < P; d++) {
            for (let s = 0; s < P; s++) {
              let sum = 0;
              let n = 0;
              for (let b = 0; b < B; b++) {
                if (d >= lengths[b]) continue;
                sum += act.data[((b * H + h) * P + d) * P + s];
                n++;
              }
              for (let b = 0; b < B; b++) data[((b * H + h) * P + d) * P + s] = sum / n;
            }
          }
        }
      } else {
        const P = act.shape[1];
        const w = act.data.length / (B * P);
        const groups = kind === 'mean' ? Array.from({ length: P }, (_, p) => [p]) : [Array.from({ length: P }, (_, p) => p)];
        for (const ps of groups) {
          for (let k = 0; k < w; k++) {
            let sum = 0;
            let n = 0;
            for (let b = 0; b < B; b++) {
              for (const p of ps) {
                if (p >= lengths[b]) continue;
                sum += act.data[(b * P + p) * w + k];
                n++;
              }
            }
            for (let b = 0; b < B; b++) for (const p of ps) data[(b * P + p) * w + k] = sum / n;
          }
        }
      }
    }
    out.set(name, { shape: act.shape, data });
  }
  return out;
}

/** One slice of a patch: the full hook name and the activation axes it fixes (as copySlice takes them). */
export interface RefPart {
  name: string;
  fixed: Map<number, number | number[][]>;
}

/** One forward of `run` with every part's slice of `source` written in at once: a patch set, the naive way. */
export function referencePatchedRun(model: RefModel, source: Map<string, RefActivation>, run: number[][], parts: RefPart[], metric: (logits: RefActivation) => number): number {
  const { logits } = referenceForward(model, run, (name, act) => {
    for (const p of parts) if (p.name === name) copySlice(act, source.get(name)!, p.fixed);
  });
  return metric(logits);
}
