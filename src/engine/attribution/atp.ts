/**
 * Attribution patching: a first-order estimate of every slot's patching effect from one backward pass
 * (Nanda's AtP), and AtP* (Kramár et al. 2024, "AtP*: An efficient and scalable method for localizing
 * LLM behaviour to components"), which repairs its two failure modes:
 *
 * - Attention saturation. A query or key patch acts on the metric through the attention softmax, whose
 *   gradient vanishes where attention is saturated. The QK fix computes the patched attention scores
 *   exactly (one block run with every query, or every key, patched), recomputes the softmax row of each
 *   affected query, and linearises only after the pattern: Σ (pattern' − pattern) · ∂M/∂pattern, summed
 *   over every query a key feeds.
 * - Cancellation. A component whose direct and indirect effects cancel in the gradient gets a small
 *   estimate however large each effect is. GradDrop reruns the backward pass once per layer ℓ with the
 *   gradient through that layer's contribution to the residual stream dropped, and scores a slot by
 *   Σ_ℓ |estimate_ℓ| / (L − 1): its own layer's drop zeroes a component inside that layer, so L − 1 terms
 *   remain (the paper's normalisation); a residual-stream slot keeps all L, so it averages over L.
 *
 * Estimates are of the sweep's exact patching (the run is the corrupted prompts, the source the clean
 * ones, for TransformerLens's denoising; the reverse for noising), summed over exactly the cells each
 * slot's patch overwrites, in every batch row. They are computed a simple sweep at a time, in typed
 * arrays: per hook, (source − run) · gradient summed over each mask cell's vector and the batch, then
 * each sweep's slots as sums of those cells (a map from cell to slot made once per sweep).
 */
import * as ort from 'onnxruntime-node';
import { throwIfCancelled } from '../cancel';
import { buildBlockGraph } from '../graph/blockGraph';
import { variantKey } from '../graph/hookPoint';
import { type BlockHook, blockHookName, hookInfo, hookMaskShape } from '../hooks';
import type { ModelConfig } from '../model/config';
import { metricRows, type PatchProblem } from '../patching/problem';
import { type PatchSlot, partSlot, type SweepPart } from '../patching/sweeps';
import type { SweepName } from '../../protocol/spec';
import { numel, type Tensor32 } from '../tensor';
import { tileRows } from '../tensorOps';
import { type ForwardRun, MetricBackward } from './gradients';

export interface AtpOptions {
  /** AtP*: the QK fix and GradDrop. */
  readonly star?: boolean;
  readonly signal?: AbortSignal;
  /** Called after each block's backward pass with the passes done so far and their total. */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface AtpEstimates {
  /** The raw metric of the run the gradient is taken on (the corrupted run when denoising). */
  readonly base: number;
  /** Per simple sweep, the estimated change of the raw metric for each of its slots (its own index order). */
  readonly deltas: ReadonlyMap<SweepName, Float64Array>;
  /** Per simple sweep, what the ranking reads: |delta|, or AtP*'s GradDrop score. */
  readonly scores: ReadonlyMap<SweepName, Float64Array>;
  /** Block-sized backward passes run (each a block's forward recomputed plus its backward). */
  readonly blockBackwards: number;
  /** Block forwards run for the QK fix's patched attention scores. */
  readonly blockForwards: number;
}

const QK_HOOKS: ReadonlySet<BlockHook> = new Set(['attn.hook_q', 'attn.hook_k']);
const RESIDUAL_HOOKS: ReadonlySet<BlockHook> = new Set(['hook_resid_pre', 'hook_resid_mid', 'hook_resid_post']);

/** A simple sweep being estimated: its slots of one layer are `perLayer` consecutive values. */
interface SweepSums {
  readonly part: SweepPart;
  readonly perLayer: number;
  /** For each cell of the hook's mask (batch axis left out), the slot of the layer it belongs to. */
  readonly slotOfCell: Int32Array;
}

/** The run's attention at one layer, with every query / key patched, for the QK fix. */
interface QkScores {
  readonly scores: Tensor32;
  readonly pattern: Tensor32;
  q?: PatchedScores;
  k?: PatchedScores;
}

interface PatchedScores {
  readonly scores: Tensor32;
  /** Per-head copies of the batch (a q/k norm over all heads couples them): copy c patched head c only. */
  readonly copies: number;
}

/**
 * AtP (or AtP*) estimates of every slot of the simple sweeps `parts` (each once). `run`, when given, is
 * the forward pass already run on the prompts the gradient is taken on (its cache keeps every block's
 * input and the last block's output), so none is run again.
 */
export async function estimateAtp(problem: PatchProblem, parts: readonly SweepPart[], opts: AtpOptions & { run?: ForwardRun } = {}): Promise<AtpEstimates> {
  const { model, pairs, nPos, metric } = problem;
  const cfg = model.cfg;
  const L = cfg.nLayers;
  const B = pairs.length;
  // The problem is already oriented: its run is the corrupted prompts when denoising, the clean ones when noising.
  const runIds = problem.run;
  const runCache = problem.runCache;
  const srcCache = problem.sourceCache;
  const star = opts.star ?? false;

  const sums: SweepSums[] = parts.map((part) => ({ part, perLayer: part.count / L, slotOfCell: slotOfCell(cfg, part, nPos) }));
  const hooks = [...new Set(parts.map((p) => p.hook))];
  const qk = star && hooks.some((h) => QK_HOOKS.has(h));
  const linear = (hook: BlockHook) => !(star && QK_HOOKS.has(hook));
  const want = {
    grads: [...new Set([...hooks.filter(linear), ...(qk ? ['attn.hook_pattern' as const] : [])])],
    acts: qk ? (['attn.hook_attn_scores', 'attn.hook_pattern'] as BlockHook[]) : [],
  };
  const zeros = () => new Map(parts.map((p) => [p.sweep, new Float64Array(p.count)]));

  const back = await MetricBackward.start(model, runIds, metric, metricRows(problem, 1), { signal: opts.signal, ...(opts.run ? { run: opts.run } : {}) });
  const total = L + (star ? (L * (L - 1)) / 2 : 0);
  let blockBackwards = 0;
  let blockForwards = 0;
  const step = () => opts.onProgress?.(++blockBackwards, total);

  /** Each hook's per-cell sums at `layer` under `grads` (the hooks a backward pass returned). */
  const cellsOf = (layer: number, grads: ReadonlyMap<BlockHook, Tensor32>, only: (h: BlockHook) => boolean) =>
    new Map(
      hooks
        .filter((h) => linear(h) && only(h))
        .map((h) => [h, cellSums(srcCache.get(blockHookName(layer, h))!, runCache.get(blockHookName(layer, h))!, grads.get(h)!, hookMaskShape(cfg, h, B, nPos))]),
    );

  /** Writes layer `layer`'s slots of every sweep from one backward pass through it. */
  const deltas = (layer: number, grads: ReadonlyMap<BlockHook, Tensor32>, out: ReadonlyMap<SweepName, Float64Array>) => {
    const cells = cellsOf(layer, grads, () => true);
    for (const s of sums) {
      const target = out.get(s.part.sweep)!.subarray(layer * s.perLayer, (layer + 1) * s.perLayer);
      if (linear(s.part.hook)) sumCells(cells.get(s.part.hook)!, s.slotOfCell, target);
      else
        for (let j = 0; j < s.perLayer; j++)
          target[j] = qkDelta(partSlot(s.part, cfg, layer * s.perLayer + j), qkAt[layer]!, grads.get('attn.hook_pattern')!, cfg.nHeads / hookInfo(cfg, 'attn.hook_k').heads);
    }
  };

  // The plain backward pass, top to bottom; each block's output gradient is kept for GradDrop.
  const delta = zeros();
  const gradOut: Tensor32[] = new Array<Tensor32>(L);
  const qkAt: QkScores[] = [];
  let grad = back.gradFinal;
  for (let l = L - 1; l >= 0; l--) {
    gradOut[l] = grad;
    const r = await back.block(l, grad, want, opts.signal);
    step();
    if (qk) {
      const at: QkScores = (qkAt[l] = { scores: r.acts.get('attn.hook_attn_scores')!, pattern: r.acts.get('attn.hook_pattern')! });
      for (const hook of ['attn.hook_q', 'attn.hook_k'] as const) {
        if (!hooks.includes(hook)) continue;
        at[hook === 'attn.hook_q' ? 'q' : 'k'] = await patchedScores(problem, back.input(l), l, hook, srcCache.get(blockHookName(l, hook))!);
        blockForwards++;
      }
    }
    deltas(l, r.grads, delta);
    grad = r.gradInput;
  }
  const scores = new Map([...delta].map(([name, d]) => [name, d.map(Math.abs)]));
  if (!star || L < 2) return { base: back.value, deltas: delta, scores, blockBackwards, blockForwards };

  // GradDrop: for each layer ℓ, the gradient below it without ℓ's contribution (its output gradient passes
  // straight to its input); layers above ℓ keep the plain estimate.
  const dropSum = zeros();
  const dropped = zeros();
  const addAbs = (to: Float64Array, from: Float64Array) => from.forEach((v, i) => (to[i] += Math.abs(v)));
  const layerOf = (s: SweepSums, a: Float64Array, l: number) => a.subarray(l * s.perLayer, (l + 1) * s.perLayer);
  for (let drop = 0; drop < L; drop++) {
    throwIfCancelled(opts.signal);
    for (const s of sums) for (let l = drop + 1; l < L; l++) addAbs(layerOf(s, dropSum.get(s.part.sweep)!, l), layerOf(s, delta.get(s.part.sweep)!, l));
    // In the dropped layer only the residual stream carries the gradient: its output's, unchanged.
    const ownGrads = new Map(hooks.filter((h) => RESIDUAL_HOOKS.has(h)).map((h) => [h, gradOut[drop]!]));
    const own = cellsOf(drop, ownGrads, (h) => RESIDUAL_HOOKS.has(h));
    for (const s of sums) {
      if (!own.has(s.part.hook)) continue;
      const target = layerOf(s, dropped.get(s.part.sweep)!, drop);
      sumCells(own.get(s.part.hook)!, s.slotOfCell, target);
      addAbs(layerOf(s, dropSum.get(s.part.sweep)!, drop), target);
    }
    let g = gradOut[drop]!;
    for (let l = drop - 1; l >= 0; l--) {
      const r = await back.block(l, g, { grads: want.grads }, opts.signal);
      step();
      deltas(l, r.grads, dropped);
      for (const s of sums) addAbs(layerOf(s, dropSum.get(s.part.sweep)!, l), layerOf(s, dropped.get(s.part.sweep)!, l));
      g = r.gradInput;
    }
  }
  for (const s of sums) {
    const n = RESIDUAL_HOOKS.has(s.part.hook) ? L : L - 1;
    scores.set(
      s.part.sweep,
      dropSum.get(s.part.sweep)!.map((v) => v / n),
    );
  }
  return { base: back.value, deltas: delta, scores, blockBackwards, blockForwards };
}

/**
 * For a simple sweep, the slot (within its layer) each cell of its hook's mask belongs to: a mask axis
 * the sweep indexes picks the slot, the others are summed over (a head's all-position slot takes every
 * position). Mask axes per layout as the patch masks have them: resid [pos], head [pos, head], attention
 * [head, dest, src].
 */
function slotOfCell(cfg: ModelConfig, part: SweepPart, nPos: number): Int32Array {
  const inner = hookMaskShape(cfg, part.hook, 1, nPos).slice(1);
  const layout = hookInfo(cfg, part.hook).layout;
  const fields = layout === 'head' ? ['pos', 'head'] : layout === 'attn' ? ['head', 'dest_pos', 'src_pos'] : ['pos'];
  const axes = part.axes.slice(1);
  const shape = part.shape.slice(1);
  const strides = shape.map((_, k) => shape.slice(k + 1).reduce((a, b) => a * b, 1));
  const mult = fields.map((f) => {
    const k = axes.indexOf(f as (typeof axes)[number]);
    return k < 0 ? 0 : strides[k]!;
  });
  const out = new Int32Array(numel(inner));
  for (let c = 0; c < out.length; c++) {
    let rest = c;
    let slot = 0;
    for (let m = inner.length - 1; m >= 0; m--) {
      slot += (rest % inner[m]!) * mult[m]!;
      rest = Math.floor(rest / inner[m]!);
    }
    out[c] = slot;
  }
  return out;
}

/** Each slot's sum of its cells. */
function sumCells(cells: Float64Array, slotOf: Int32Array, out: Float64Array): void {
  out.fill(0);
  for (let c = 0; c < cells.length; c++) out[slotOf[c]!] += cells[c]!;
}

/**
 * Σ over batch rows and each cell's vector of (src − run) · grad, per cell of the hook's patch mask
 * (mask shape without its batch axis). Cells where src equals run contribute exactly 0.
 */
function cellSums(src: Tensor32, run: Tensor32, grad: Tensor32, maskShape: number[]): Float64Array {
  const rows = maskShape[0]!;
  const cells = numel(maskShape) / rows;
  const width = src.data.length / numel(maskShape);
  const [s, r, g] = [src.data, run.data, grad.data];
  const out = new Float64Array(cells);
  for (let b = 0, i = 0; b < rows; b++) {
    for (let c = 0; c < cells; c++) {
      let sum = 0;
      for (const end = i + width; i < end; i++) {
        const diff = s[i]! - r[i]!;
        if (diff !== 0) sum += diff * g[i]!;
      }
      out[c] += sum;
    }
  }
  return out;
}

/**
 * The run's attention scores at `layer` with every query (or key) replaced by the source run's: one
 * block forward. Patching each (position, head) alone changes only its own score row (or column), so one
 * run gives every slot's patched scores, unless a q/k norm over all heads couples the heads: then each
 * head is patched in its own copy of the batch.
 */
async function patchedScores(problem: PatchProblem, residPre: Tensor32, layer: number, hook: 'attn.hook_q' | 'attn.hook_k', src: Tensor32): Promise<PatchedScores> {
  const { model, nPos } = problem;
  const cfg = model.cfg;
  const B = problem.pairs.length;
  const heads = hookInfo(cfg, hook).heads;
  const copies = cfg.qkNorm === 'full' ? heads : 1;
  const mask = new Uint8Array(copies * B * nPos * heads);
  for (let c = 0; c < copies; c++) {
    for (let i = 0; i < B * nPos; i++) for (let h = 0; h < heads; h++) if (copies === 1 || h === c) mask[(c * B * nPos + i) * heads + h] = 1;
  }
  const variant = { capture: ['attn.hook_attn_scores'], patch: [hook], withPast: false, gather: false };
  const out = await model.runGraphWith(
    'block',
    layer,
    variantKey('block', variant),
    () => buildBlockGraph(cfg, variant),
    {
      resid_pre: tileRows(residPre, copies),
      [`patch:${hook}`]: tileRows(src, copies),
      [`mask:${hook}`]: new ort.Tensor('bool', mask, [copies * B, nPos, heads, 1]),
    },
    ['hook:attn.hook_attn_scores'],
  );
  return { scores: out['hook:attn.hook_attn_scores']!, copies };
}

/**
 * The QK fix for one query or key slot: the softmax of each affected score row recomputed exactly with
 * the patched query or key, then Σ (pattern' − pattern) · ∂M/∂pattern over every batch row, affected
 * query head and row. `group` is the number of query heads that share a key/value head.
 */
function qkDelta(s: PatchSlot, qk: QkScores, gradPattern: Tensor32, group: number): number {
  const [B, H, P, K] = qk.scores.shape as [number, number, number, number];
  const isQuery = s.hook === 'attn.hook_q';
  const patched = isQuery ? qk.q! : qk.k!;
  const row = new Float64Array(K);
  let total = 0;
  const heads = isQuery ? [s.head!] : Array.from({ length: group }, (_, i) => s.head! * group + i);
  for (let b = 0; b < B; b++) {
    for (const h of heads) {
      const copy = patched.copies === 1 ? 0 : s.head!;
      const rowsOf = isQuery && s.pos !== undefined ? [s.pos] : Array.from({ length: P }, (_, t) => t);
      for (const t of rowsOf) {
        // A key is seen only by the queries at or after it.
        if (!isQuery && s.pos !== undefined && t < s.pos) continue;
        const at = ((b * H + h) * P + t) * K;
        const from = ((copy * B + b) * H + h) * P * K + t * K;
        if (isQuery || s.pos === undefined) {
          for (let j = 0; j < K; j++) row[j] = patched.scores.data[from + j]!;
        } else {
          for (let j = 0; j < K; j++) row[j] = qk.scores.data[at + j]!;
          row[s.pos] = patched.scores.data[from + s.pos]!;
        }
        softmaxInPlace(row);
        for (let j = 0; j < K; j++) total += (row[j]! - qk.pattern.data[at + j]!) * gradPattern.data[at + j]!;
      }
    }
  }
  return total;
}

function softmaxInPlace(x: Float64Array): void {
  let max = -Infinity;
  for (const v of x) if (v > max) max = v;
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i] = Number.isFinite(x[i]!) ? Math.exp(x[i]! - max) : 0;
  for (let i = 0; i < x.length; i++) x[i]! /= sum;
}
