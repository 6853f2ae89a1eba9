import { throwIfCancelled } from '../cancel';
import { type BlockHook, blockHookName, hookMaskGraphDims, hookMaskShape } from '../hooks';
import { numel, type Tensor32 } from '../tensor';
import { concatRows, sliceAxis, tileRows } from '../tensorOps';
import { bytesPerRow } from './memory';
import { forEachSlotCell, markSlot } from './patchMask';
import type { ExecuteOptions, PatchProblem } from './problem';
import { type PatchSlot, slotStart } from './sweeps';

/**
 * Exact patching with less work than one forward per slot. In a causal model a patch in block l whose
 * first touched position is p leaves every block below l, and every position before p, as in the
 * corrupted run. So a slot's run starts at block l with the corrupted residual stream of positions
 * p.., attends to the corrupted keys/values of positions ..p-1, and is unembedded only at the
 * positions the metric reads. Slots with the same p share runs on the batch axis; a slot joins the
 * batch at its own layer (batches grow layer by layer), so no row computes a block it does not need.
 */
export async function executeFast(problem: PatchProblem, slots: readonly PatchSlot[], opts: ExecuteOptions): Promise<Float64Array> {
  const { model, pairs, nPos } = problem;
  const n = pairs.length;
  const out = new Float64Array(slots.length);
  const budgetCopies = Math.max(1, Math.floor(problem.memoryBudget / bytesPerRow(model.cfg, nPos) / n));
  const tokenCap = model.runtime.provider === 'cpu' ? CPU_TOKENS_PER_RUN : GPU_TOKENS_PER_RUN;
  const byStart = new Map<number, number[]>();
  let done = 0;
  const unchangedValue = problem.metric.raw(problem.corruptedLogits);
  slots.forEach((s, i) => {
    // Writing in a value the corrupted run already has changes nothing: its metric is the baseline.
    if (patchIsNoOp(problem, s)) {
      out[i] = unchangedValue;
      done++;
      return;
    }
    const p = slotStart(s);
    const group = byStart.get(p);
    if (group) group.push(i);
    else byStart.set(p, [i]);
  });
  if (done > 0) opts.onProgress?.(done);
  for (const [p, members] of [...byStart].sort((a, b) => a[0] - b[0])) {
    members.sort((a, b) => slots[a]!.layer - slots[b]!.layer);
    const maxCopies = Math.max(1, Math.min(budgetCopies, Math.floor(tokenCap / (n * (nPos - p)))));
    for (let c = 0; c < members.length; c += maxCopies) {
      throwIfCancelled(opts.signal);
      const chunk = members.slice(c, c + maxCopies);
      const before = done;
      const values = await runChunk(problem, chunk.map((i) => slots[i]!), p, opts.signal, (fraction) =>
        opts.onProgress?.(before + fraction * chunk.length),
      );
      chunk.forEach((i, k) => (out[i] = values[k]!));
      done += chunk.length;
      opts.onProgress?.(done);
    }
  }
  return out;
}

/** True when the clean and corrupted activations agree bit for bit on every cell the slot overwrites. */
function patchIsNoOp(problem: PatchProblem, slot: PatchSlot): boolean {
  const name = blockHookName(slot.layer, slot.hook);
  const clean = problem.cleanCache.get(name)!;
  const corrupted = problem.corruptedCache.get(name)!;
  const n = problem.pairs.length;
  const dims = hookMaskShape(problem.model.cfg, slot.hook, n, problem.nPos);
  const cell = clean.data.length / numel(dims);
  let same = true;
  forEachSlotCell(dims, slot, 0, n, (c) => {
    for (let k = c * cell; same && k < (c + 1) * cell; k++) same = clean.data[k] === corrupted.data[k];
  });
  return same;
}

/**
 * Tokens (rows x suffix positions) one block run may carry: on a CPU that keeps a run well under a
 * second on GPT-2 small, so progress and cancellation stay responsive; a GPU wants large batches.
 */
const CPU_TOKENS_PER_RUN = 2048;
const GPU_TOKENS_PER_RUN = 65536;

/**
 * Evaluates slots that all start at position p, sorted by layer; returns their raw metric values.
 * `progress` gets the fraction of the chunk's block runs done after each one.
 */
async function runChunk(
  problem: PatchProblem,
  chunk: readonly PatchSlot[],
  p: number,
  signal: AbortSignal | undefined,
  progress: (fraction: number) => void,
): Promise<Float64Array> {
  const { model, pairs, nPos } = problem;
  const cfg = model.cfg;
  const n = pairs.length;
  const S = nPos - p;
  let resid: Tensor32 | undefined;
  let active = 0;
  for (let l = chunk[0]!.layer; l < cfg.nLayers; l++) {
    throwIfCancelled(signal);
    const joining = chunk.slice(active).filter((s) => s.layer === l).length;
    if (joining > 0) {
      const fresh = tileRows(sliceAxis(problem.corruptedCache.get(blockHookName(l, 'hook_resid_pre'))!, 1, p), joining);
      resid = resid ? concatRows([resid, fresh]) : fresh;
    }
    const rows = (active + joining) * n;
    const past = p === 0 ? undefined : {
      k: tileRows(sliceAxis(problem.corruptedCache.get(blockHookName(l, 'attn.hook_k'))!, 1, 0, p), active + joining),
      v: tileRows(sliceAxis(problem.corruptedCache.get(blockHookName(l, 'attn.hook_v'))!, 1, 0, p), active + joining),
    };
    const patches = new Map<BlockHook, { source: Tensor32; mask: Uint8Array; maskDims: number[] }>();
    for (let j = active; j < active + joining; j++) {
      const slot = chunk[j]!;
      let patch = patches.get(slot.hook);
      if (!patch) {
        const clean = problem.cleanCache.get(blockHookName(l, slot.hook))!;
        // Attention hooks index [row, head, dest, src]: the suffix is a range of dest rows.
        const source = tileRows(sliceAxis(clean, slot.layout === 'attn' ? 2 : 1, p), active + joining);
        const maskDims = slot.layout === 'attn' ? [rows, cfg.nHeads, S, nPos] : hookMaskGraphDims(cfg, slot.hook, rows, S);
        patch = { source, mask: new Uint8Array(numel(maskDims)), maskDims };
        patches.set(slot.hook, patch);
      }
      const shifted: PatchSlot = { ...slot, ...(slot.pos !== undefined ? { pos: slot.pos - p } : {}), ...(slot.dest !== undefined ? { dest: slot.dest - p } : {}) };
      markSlot(patch.mask, patch.maskDims, shifted, j * n, (j + 1) * n);
    }
    active += joining;
    resid = await model.blockSuffix(l, resid!, past, patches);
    progress((l - chunk[0]!.layer + 1) / (cfg.nLayers - chunk[0]!.layer));
  }
  return readMetric(problem, resid!, active, p);
}

/**
 * The metric for each of `copies` stacked copies of the pairs, whose residual streams cover positions
 * p.. only. Positions before p read the corrupted run's logits: no patch there can change them.
 */
async function readMetric(problem: PatchProblem, resid: Tensor32, copies: number, p: number): Promise<Float64Array> {
  const { model, pairs, nPos, metric } = problem;
  const V = model.cfg.dVocab;
  const n = pairs.length;
  const S = nPos - p;
  const wanted: number[] = [];
  for (let j = 0; j < copies; j++) {
    metric.positions.forEach((positions, i) => {
      for (const pos of positions) if (pos >= p) wanted.push((j * n + i) * S + (pos - p));
    });
  }
  const logits = wanted.length > 0 ? (await model.logitsAt(resid, wanted)).data : new Float32Array(0);
  const block = new Float32Array(metric.rowsPerEval * V);
  const out = new Float64Array(copies);
  let next = 0;
  for (let j = 0; j < copies; j++) {
    let k = 0;
    metric.positions.forEach((positions) => {
      for (const pos of positions) {
        const src = pos >= p ? logits.subarray(next * V, ++next * V) : problem.corruptedLogits.subarray(k * V, (k + 1) * V);
        block.set(src, k * V);
        k++;
      }
    });
    out[j] = metric.raw(block);
  }
  return out;
}
