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
 * slot's patch overwrites, in every batch row.
 */
import * as ort from 'onnxruntime-node';
import { throwIfCancelled } from '../cancel';
import { buildBlockGraph } from '../graph/blockGraph';
import { variantKey } from '../graph/hookPoint';
import { type BlockHook, blockHookName, hookInfo, hookMaskShape } from '../hooks';
import { metricRows, type PatchProblem } from '../patching/problem';
import { forEachSlotCell } from '../patching/patchMask';
import type { PatchSlot } from '../patching/sweeps';
import { numel, type Tensor32 } from '../tensor';
import { tileRows } from '../tensorOps';
import { MetricBackward } from './gradients';

export type AtpDirection = 'denoising' | 'noising';

export interface AtpOptions {
  readonly direction?: AtpDirection;
  /** AtP*: the QK fix and GradDrop. */
  readonly star?: boolean;
  readonly signal?: AbortSignal;
  /** Called after each block's backward pass with the passes done so far and their total. */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface AtpEstimates {
  /** The raw metric of the run the gradient is taken on (the corrupted run when denoising). */
  readonly base: number;
  /** Per slot (in the order given), the estimated raw metric with the slot patched. */
  readonly values: Float64Array;
  /** Per slot, what the ranking reads: |estimate − base|, or AtP*'s GradDrop score. */
  readonly scores: Float64Array;
  /** Block-sized backward passes run (each a block's forward recomputed plus its backward). */
  readonly blockBackwards: number;
  /** Block forwards run for the QK fix's patched attention scores. */
  readonly blockForwards: number;
}

const QK_HOOKS: ReadonlySet<BlockHook> = new Set(['attn.hook_q', 'attn.hook_k']);
const RESIDUAL_HOOKS: ReadonlySet<BlockHook> = new Set(['hook_resid_pre', 'hook_resid_mid', 'hook_resid_post']);

/** What a layer's slots need from its backward pass, and the fixed parts of their estimates. */
interface LayerPlan {
  readonly hooks: BlockHook[];
  readonly slots: number[];
  /** For the QK fix: the run's attention scores, with every query / key patched, and per-head copies. */
  qk?: { scores: Tensor32; pattern: Tensor32; q?: PatchedScores; k?: PatchedScores };
}

interface PatchedScores {
  readonly scores: Tensor32;
  /** Per-head copies of the batch (a q/k norm over all heads couples them): copy c patched head c only. */
  readonly copies: number;
}

export async function estimateAtp(problem: PatchProblem, slots: readonly PatchSlot[], opts: AtpOptions = {}): Promise<AtpEstimates> {
  const { model, pairs, nPos, metric } = problem;
  const cfg = model.cfg;
  const L = cfg.nLayers;
  const B = pairs.length;
  const noising = opts.direction === 'noising';
  const runIds = noising ? problem.clean : problem.corrupted;
  const runCache = noising ? problem.cleanCache : problem.corruptedCache;
  const srcCache = noising ? problem.corruptedCache : problem.cleanCache;
  const star = opts.star ?? false;

  const layers: LayerPlan[] = Array.from({ length: L }, () => ({ hooks: [], slots: [] }));
  slots.forEach((s, i) => {
    const plan = layers[s.layer]!;
    plan.slots.push(i);
    if (!plan.hooks.includes(s.hook)) plan.hooks.push(s.hook);
  });
  const usesQk = (plan: LayerPlan) => star && plan.hooks.some((h) => QK_HOOKS.has(h));

  const back = await MetricBackward.start(model, runIds, metric, metricRows(problem, 1), opts.signal);
  const total = L + (star ? (L * (L - 1)) / 2 : 0);
  let blockBackwards = 0;
  let blockForwards = 0;
  const step = () => opts.onProgress?.(++blockBackwards, total);

  /** The change of each of `plan`'s slots under the gradients of one backward pass through its layer. */
  const deltas = (layer: number, plan: LayerPlan, grads: Map<BlockHook, Tensor32>, out: Float64Array) => {
    const sums = new Map<BlockHook, Float64Array>();
    for (const hook of plan.hooks) {
      if (star && QK_HOOKS.has(hook)) continue;
      const name = blockHookName(layer, hook);
      sums.set(hook, cellSums(srcCache.get(name)!, runCache.get(name)!, grads.get(hook)!, hookMaskShape(cfg, hook, B, nPos)));
    }
    for (const i of plan.slots) {
      const s = slots[i]!;
      if (star && QK_HOOKS.has(s.hook)) {
        out[i] = qkDelta(s, plan.qk!, grads.get('attn.hook_pattern')!, cfg.nHeads / hookInfo(cfg, 'attn.hook_k').heads);
        continue;
      }
      const dims = [1, ...hookMaskShape(cfg, s.hook, B, nPos).slice(1)];
      const cells = sums.get(s.hook)!;
      let d = 0;
      forEachSlotCell(dims, s, 0, 1, (c) => (d += cells[c]!));
      out[i] = d;
    }
  };
  const gradHooks = (plan: LayerPlan) => [...new Set([...plan.hooks.filter((h) => !(star && QK_HOOKS.has(h))), ...(usesQk(plan) ? ['attn.hook_pattern'] : [])])];

  // The plain backward pass, top to bottom; each block's output gradient is kept for GradDrop.
  const delta = new Float64Array(slots.length);
  const gradOut: Tensor32[] = new Array<Tensor32>(L);
  let grad = back.gradFinal;
  for (let l = L - 1; l >= 0; l--) {
    const plan = layers[l]!;
    gradOut[l] = grad;
    const r = await back.block(l, grad, { grads: gradHooks(plan), acts: usesQk(plan) ? ['attn.hook_attn_scores', 'attn.hook_pattern'] : [] }, opts.signal);
    step();
    if (usesQk(plan)) {
      plan.qk = { scores: r.acts.get('attn.hook_attn_scores')!, pattern: r.acts.get('attn.hook_pattern')! };
      for (const hook of ['attn.hook_q', 'attn.hook_k'] as const) {
        if (!plan.hooks.includes(hook)) continue;
        plan.qk[hook === 'attn.hook_q' ? 'q' : 'k'] = await patchedScores(problem, back.input(l), l, hook, srcCache.get(blockHookName(l, hook))!);
        blockForwards++;
      }
    }
    deltas(l, plan, r.grads, delta);
    grad = r.gradInput;
  }
  const values = Float64Array.from(delta, (d) => back.value + d);
  const scores = Float64Array.from(delta, Math.abs);
  if (!star || L < 2) return { base: back.value, values, scores, blockBackwards, blockForwards };

  // GradDrop: for each layer ℓ, the gradient below it without ℓ's contribution (its output gradient passes
  // straight to its input); layers above ℓ keep the plain estimate.
  const dropSum = new Float64Array(slots.length);
  const dropped = new Float64Array(slots.length);
  for (let drop = 0; drop < L; drop++) {
    throwIfCancelled(opts.signal);
    for (let l = drop + 1; l < L; l++) for (const i of layers[l]!.slots) dropSum[i] += Math.abs(delta[i]!);
    const own = layers[drop]!;
    // In the dropped layer only the residual stream carries the gradient: its output's, unchanged.
    for (const i of own.slots) dropSum[i] += RESIDUAL_HOOKS.has(slots[i]!.hook) ? Math.abs(residualDelta(slots[i]!, gradOut[drop]!)) : 0;
    let g = gradOut[drop]!;
    for (let l = drop - 1; l >= 0; l--) {
      const plan = layers[l]!;
      const r = await back.block(l, g, { grads: gradHooks(plan) }, opts.signal);
      step();
      deltas(l, plan, r.grads, dropped);
      for (const i of plan.slots) dropSum[i] += Math.abs(dropped[i]!);
      g = r.gradInput;
    }
  }
  slots.forEach((s, i) => (scores[i] = dropSum[i]! / (RESIDUAL_HOOKS.has(s.hook) ? L : L - 1)));
  return { base: back.value, values, scores, blockBackwards, blockForwards };

  /** A residual-stream slot of the dropped layer: its gradient there is the layer output's. */
  function residualDelta(s: PatchSlot, g: Tensor32): number {
    const name = blockHookName(s.layer, s.hook);
    const cells = cellSums(srcCache.get(name)!, runCache.get(name)!, g, hookMaskShape(cfg, s.hook, B, nPos));
    let d = 0;
    forEachSlotCell([1, ...hookMaskShape(cfg, s.hook, B, nPos).slice(1)], s, 0, 1, (c) => (d += cells[c]!));
    return d;
  }
}

/**
 * Σ over batch rows and each cell's vector of (src − run) · grad, per cell of the hook's patch mask
 * (mask shape without its batch axis). Cells where src equals run contribute exactly 0.
 */
function cellSums(src: Tensor32, run: Tensor32, grad: Tensor32, maskShape: number[]): Float64Array {
  const rows = maskShape[0]!;
  const cells = numel(maskShape) / rows;
  const width = src.data.length / numel(maskShape);
  const out = new Float64Array(cells);
  for (let b = 0; b < rows; b++) {
    for (let c = 0; c < cells; c++) {
      const base = (b * cells + c) * width;
      let s = 0;
      for (let k = 0; k < width; k++) {
        const diff = src.data[base + k]! - run.data[base + k]!;
        if (diff !== 0) s += diff * grad.data[base + k]!;
      }
      out[c] += s;
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
function qkDelta(s: PatchSlot, qk: NonNullable<LayerPlan['qk']>, gradPattern: Tensor32, group: number): number {
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
