import { throwIfCancelled } from '../cancel';
import { gatheredHooks } from '../graph/blockGraph';
import { type BlockHook, blockHookName, hookInfo, hookMaskGraphDims, hookMaskShape } from '../hooks';
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
 *
 * Within a block, attention is cheap and the output projection and MLP are most of the work, so a block
 * computes those only where its output can matter: in the last block, at the positions the metric reads;
 * in the block a position-local patch joins (a head's output, query or pattern row, or a residual-stream
 * vector after attention, at one position), at that one position: every later position of that block is
 * exactly the corrupted run's, and is read back from its cache. A logit difference is read from two
 * columns of the unembedding, not all of them.
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
  // A patch that starts after every position the metric reads cannot reach it (causality).
  const lastRead = Math.max(...problem.metric.positions.flat());
  slots.forEach((s, i) => {
    // Writing in a value the corrupted run already has changes nothing: its metric is the baseline.
    if (slotStart(s) > lastRead || patchIsNoOp(problem, s)) {
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

/** Hooks whose patch at one position changes only that position's output within the patched block. */
const POSITION_LOCAL = new Set<BlockHook>(['attn.hook_q', 'attn.hook_z', 'attn.hook_pattern', 'hook_attn_out', 'hook_resid_mid', 'hook_mlp_out', 'hook_resid_post']);

const isPositionLocal = (s: PatchSlot): boolean => POSITION_LOCAL.has(s.hook) && (s.pos !== undefined || s.dest !== undefined);

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
  const D = cfg.dModel;
  const gatherable = gatheredHooks(cfg);
  const corrupted = (layer: number, hook: BlockHook) => problem.corruptedCache.get(blockHookName(layer, hook))!;
  const last = cfg.nLayers - 1;
  let resid: Tensor32 | undefined;
  let active = 0;
  for (let l = chunk[0]!.layer; l <= last; l++) {
    throwIfCancelled(signal);
    const joiners = chunk.slice(active).filter((s) => s.layer === l);
    const joining = joiners.length;
    if (joining > 0) {
      const fresh = tileRows(sliceAxis(corrupted(l, 'hook_resid_pre'), 1, p), joining);
      resid = resid ? concatRows([resid, fresh]) : fresh;
    }
    const copies = active + joining;
    const rows = copies * n;
    const past = p === 0 ? undefined : { k: sliceAxis(corrupted(l, 'attn.hook_k'), 1, 0, p), v: sliceAxis(corrupted(l, 'attn.hook_v'), 1, 0, p) };
    // Which (row, position) outputs this block must produce; undefined: all of them.
    const local = (j: number) => j >= active && isPositionLocal(chunk[j]!);
    let outRows: Int32Array | undefined;
    if (l === last) outRows = metricRows(problem, copies, p);
    else if (joiners.some((s) => isPositionLocal(s)) && S > 1) {
      const keep: number[] = [];
      for (let j = 0; j < copies; j++) for (let i = 0; i < n; i++) for (let t = 0; t < (local(j) ? 1 : S); t++) keep.push((j * n + i) * S + t);
      outRows = Int32Array.from(keep);
    }
    const outIndex = new Map<number, number>();
    outRows?.forEach((r, e) => outIndex.set(r, e));

    const patches = new Map<BlockHook, { source: Tensor32; mask: Uint8Array; maskDims: number[] }>();
    for (let j = active; j < copies; j++) {
      const slot = chunk[j]!;
      const clean = problem.cleanCache.get(blockHookName(l, slot.hook))!;
      if (outRows && gatherable.has(slot.hook)) {
        // Laid out over the kept outputs: the clean vector of each pair at the slot's position, where kept.
        const width = hookInfo(cfg, slot.hook).width;
        let patch = patches.get(slot.hook);
        if (!patch) {
          patch = { source: { shape: [1, outRows.length, width], data: new Float32Array(outRows.length * width) }, mask: new Uint8Array(outRows.length), maskDims: [1, outRows.length, 1] };
          patches.set(slot.hook, patch);
        }
        for (let i = 0; i < n; i++) {
          const e = outIndex.get((j * n + i) * S + (slot.pos! - p));
          if (e === undefined) continue;
          patch.mask[e] = 1;
          patch.source.data.set(clean.data.subarray((i * nPos + slot.pos!) * width, (i * nPos + slot.pos! + 1) * width), e * width);
        }
        continue;
      }
      let patch = patches.get(slot.hook);
      if (!patch) {
        // Attention hooks index [row, head, dest, src]: the suffix is a range of dest rows.
        const source = tileRows(sliceAxis(clean, slot.layout === 'attn' ? 2 : 1, p), copies);
        const maskDims = slot.layout === 'attn' ? [rows, cfg.nHeads, S, nPos] : hookMaskGraphDims(cfg, slot.hook, rows, S);
        patch = { source, mask: new Uint8Array(numel(maskDims)), maskDims };
        patches.set(slot.hook, patch);
      }
      const shifted: PatchSlot = { ...slot, ...(slot.pos !== undefined ? { pos: slot.pos - p } : {}), ...(slot.dest !== undefined ? { dest: slot.dest - p } : {}) };
      markSlot(patch.mask, patch.maskDims, shifted, j * n, (j + 1) * n);
    }
    const output = await model.blockSuffix(l, resid!, past, patches, outRows);
    active = copies;
    progress((l - chunk[0]!.layer + 1) / (cfg.nLayers - chunk[0]!.layer));
    if (l === last) return readMetric(problem, output, copies, p);
    resid = outRows ? unpackRows(output, outRows, corrupted(l + 1, 'hook_resid_pre'), { rows, S, p, n, D }) : output;
  }
  throw new Error('unreachable: every chunk ends at the last layer');
}

/** The flat (row * S + s) indices of the positions the metric reads, at or after p, for `copies` copies of the pairs. */
function metricRows(problem: PatchProblem, copies: number, p: number): Int32Array {
  const S = problem.nPos - p;
  const n = problem.pairs.length;
  const out: number[] = [];
  for (let j = 0; j < copies; j++) {
    problem.metric.positions.forEach((positions, i) => {
      for (const pos of positions) if (pos >= p) out.push((j * n + i) * S + (pos - p));
    });
  }
  return Int32Array.from(out);
}

/**
 * The next block's input [rows, S, d_model] from a gathered output: kept positions from the output, the
 * others (after a position-local patch, every later position) from the corrupted run's residual stream.
 */
function unpackRows(output: Tensor32, outRows: Int32Array, corruptedNext: Tensor32, d: { rows: number; S: number; p: number; n: number; D: number }): Tensor32 {
  const { rows, S, p, n, D } = d;
  const nPos = corruptedNext.shape[1]!;
  const data = new Float32Array(rows * S * D);
  for (let r = 0; r < rows; r++) {
    const pair = r % n;
    data.set(corruptedNext.data.subarray((pair * nPos + p) * D, (pair * nPos + nPos) * D), r * S * D);
  }
  outRows.forEach((flat, e) => data.set(output.data.subarray(e * D, (e + 1) * D), flat * D));
  return { shape: [rows, S, D], data };
}

/**
 * The metric for each of `copies` stacked copies of the pairs, from the last block's output at the
 * metric's positions at or after p (`metricRows` order). Positions before p read the corrupted run's
 * logits: no patch there can change them.
 */
async function readMetric(problem: PatchProblem, output: Tensor32, copies: number, p: number): Promise<Float64Array> {
  const { model, metric } = problem;
  const kept = output.shape[1]!;
  const rows = Array.from({ length: kept }, (_, i) => i);
  const out = new Float64Array(copies);
  const columns = metric.columns;
  if (columns) {
    const C = metric.columnsPerRow;
    // Each kept row's columns are its pair's; rows follow metricRows' order (copy, pair, position).
    const cols = new Int32Array(kept * C);
    const corrupted = new Float32Array(metric.rowsPerEval * C);
    let e = 0;
    metric.positions.forEach((positions, i) => positions.forEach(() => corrupted.set(columnsOf(problem, i), (e++) * C)));
    let k = 0;
    for (let j = 0; j < copies; j++) {
      metric.positions.forEach((positions, i) => positions.forEach((pos) => pos >= p && cols.set(columns.subarray(i * C, (i + 1) * C), (k++) * C)));
    }
    const logits = kept > 0 ? await model.logitColumns(output, rows, cols, C) : new Float32Array(0);
    const block = new Float32Array(metric.rowsPerEval * C);
    let next = 0;
    for (let j = 0; j < copies; j++) {
      let r = 0;
      metric.positions.forEach((positions) => {
        for (const pos of positions) {
          block.set(pos >= p ? logits.subarray(next * C, ++next * C) : corrupted.subarray(r * C, (r + 1) * C), r * C);
          r++;
        }
      });
      out[j] = metric.rawColumns(block);
    }
    return out;
  }
  const V = model.cfg.dVocab;
  const logits = kept > 0 ? (await model.logitsAt(output, rows)).data : new Float32Array(0);
  const block = new Float32Array(metric.rowsPerEval * V);
  let next = 0;
  for (let j = 0; j < copies; j++) {
    let r = 0;
    metric.positions.forEach((positions) => {
      for (const pos of positions) {
        const src = pos >= p ? logits.subarray(next * V, ++next * V) : problem.corruptedLogits.subarray(r * V, (r + 1) * V);
        block.set(src, r * V);
        r++;
      }
    });
    out[j] = metric.raw(block);
  }
  return out;
}

/** The corrupted run's logits at pair i's metric row, in the metric's columns (what an unpatched position reads). */
function columnsOf(problem: PatchProblem, i: number): Float32Array {
  const { metric, model } = problem;
  const V = model.cfg.dVocab;
  const C = metric.columnsPerRow;
  const row = metric.positions.slice(0, i).reduce((a, ps) => a + ps.length, 0);
  return Float32Array.from({ length: C }, (_, c) => problem.corruptedLogits[row * V + metric.columns![i * C + c]!]!);
}
