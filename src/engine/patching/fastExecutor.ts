import { throwIfCancelled } from '../cancel';
import { gatheredHooks } from '../graph/blockGraph';
import { type BlockHook, blockHookName, blockHooks, hookInfo, hookMaskGraphDims, hookMaskShape } from '../hooks';
import { numel, type Tensor32 } from '../tensor';
import { concatRows, sliceAxis, tileRows } from '../tensorOps';
import { bytesPerRow } from './memory';
import { forEachSlotCell, markSlot } from './patchMask';
import { type CaptureHooks, type ExecuteOptions, type ExecutorUnit, type Patch, type PatchPart, type PatchProblem, partSource } from './problem';
import { isPositioned, type PatchSlot, shiftSlot, slotPositions, slotStart } from './sweeps';

/**
 * Exact patching with less work than one forward per patch. In a causal model a patch whose first part
 * is in block l and whose first touched position (in any pair) is p leaves every block below l, and
 * every position before p, as in the unpatched run. So a patch's run starts at block l with the run's
 * residual stream of positions p.., attends to the run's keys/values of positions ..p-1, and is
 * unembedded only at the positions the metric reads. Patches with the same p share runs on the batch
 * axis; a patch joins the batch at its first layer (batches grow layer by layer), so no row computes a
 * block it does not need, and each of its parts is written at its own layer. A labelled slot patches
 * each pair at that pair's own positions.
 *
 * Within a block, attention is cheap and the output projection and MLP are most of the work, so a block
 * computes those only where its output can matter: in the last block, at the positions the metric reads;
 * in the block a position-local patch joins (a head's output, query or pattern row, or a residual-stream
 * vector after attention, at some positions), at those positions: every other position of that block is
 * exactly the run's, and is read back from its cache. Likewise a block projects to queries, keys and values
 * only the tokens whose input differs from the run's (a residual patch's positions where a patch joins, a
 * position-local patch's positions in the next block) and reads every other token's from the cache. A
 * logit difference is read from two columns of the unembedding, not all of them.
 */
export async function executeFast(problem: PatchProblem, patches: readonly Patch[], opts: ExecuteOptions): Promise<Float64Array> {
  const plan = planFast(problem, patches);
  const out = new Float64Array(patches.length);
  for (const i of plan.unchanged) out[i] = plan.unchangedValue;
  await runPlan(problem, plan, opts, undefined, (i, k, r) => (out[i] = r.values![k]!));
  return out;
}

/**
 * The values of `capture`'s hooks in each patched run, [pairs, positions, ...] as the run's cache holds
 * them (what a path patch's second stage writes into its receivers). Each chunk stops at the last layer
 * captured; positions before a chunk's start, layers below a patch's first, and patches that change
 * nothing read the run's own values.
 */
export async function captureFast(problem: PatchProblem, patches: readonly Patch[], capture: CaptureHooks, opts: ExecuteOptions): Promise<Map<string, Tensor32>[]> {
  const plan = planFast(problem, patches, Math.max(...capture.keys()));
  const out = patches.map(() => unpatchedCaptures(problem, capture));
  await runPlan(problem, plan, opts, capture, (i, k, r) => (out[i] = r.captured![k]!));
  return out;
}

/** What the capture hooks hold in the unpatched run. */
function unpatchedCaptures(problem: PatchProblem, capture: CaptureHooks): Map<string, Tensor32> {
  const names = [...capture].flatMap(([l, hooks]) => hooks.map((h) => blockHookName(l, h)));
  return new Map(names.map((n) => [n, problem.runCache.get(n)!]));
}

/** Runs a plan's chunks in order, with progress and cancellation; `take` gets patch i's result, copy k of its chunk's. */
async function runPlan(
  problem: PatchProblem,
  plan: FastPlan,
  opts: ExecuteOptions,
  capture: CaptureHooks | undefined,
  take: (patch: number, copy: number, chunk: ChunkResult) => void,
): Promise<void> {
  let done = plan.unchanged.length;
  if (done > 0) opts.onProgress?.(done);
  for (const chunk of plan.chunks) {
    throwIfCancelled(opts.signal);
    const before = done;
    const result = await runChunk(
      problem,
      chunk.members.map((i) => plan.effective[i]!),
      chunk.p,
      opts.signal,
      (fraction) => opts.onProgress?.(before + fraction * chunk.members.length),
      capture,
    );
    chunk.members.forEach((i, k) => take(i, k, result));
    done += chunk.members.length;
    opts.onProgress?.(done);
  }
}

/** A chunk's metric values, or (capturing) its hooks' values, per copy of the pairs. */
interface ChunkResult {
  readonly values?: Float64Array;
  readonly captured?: Map<string, Tensor32>[];
}

/** How executeFast evaluates a list of patches: which need no run, and the batches the others run in. */
export interface FastPlan {
  /** Patches that cannot change the metric: they write what the run already has, or start after every position it reads. */
  readonly unchanged: number[];
  /** Their value: the unpatched run's metric. */
  readonly unchangedValue: number;
  /** Batches of patches (indices) that start at position `p`, in the order they run. */
  readonly chunks: { readonly p: number; readonly members: number[] }[];
  /** Each patch without its parts that change nothing. */
  readonly effective: (Patch | undefined)[];
}

/**
 * executeFast's units: each batch, and the patches that need no run. Planning a batch's patches alone
 * gives that batch again (one start position, already in layer order, within the batch size), so its
 * values are the same bit for bit wherever it runs.
 */
export function fastUnits(problem: PatchProblem, patches: readonly Patch[]): ExecutorUnit[] {
  const plan = planFast(problem, patches);
  const { nLayers } = problem.model.cfg;
  const n = problem.pairs.length;
  const batches = plan.chunks.map((c) => ({ members: c.members, cost: c.members.reduce((a, i) => a + (nLayers - firstLayer(plan.effective[i]!)) * n * (problem.nPos - c.p), 0) }));
  return plan.unchanged.length > 0 ? [{ members: plan.unchanged, cost: 0 }, ...batches] : batches;
}

const firstLayer = (q: Patch): number => Math.min(...q.map((s) => s.layer));

/**
 * `captureUpTo`: the plan is for reading hooks up to that layer (captureFast), not the metric: a patch
 * that starts above it changes nothing read, one that starts after the metric's positions may.
 */
export function planFast(problem: PatchProblem, patches: readonly Patch[], captureUpTo?: number): FastPlan {
  const { model, pairs, nPos } = problem;
  const n = pairs.length;
  const budgetCopies = Math.max(1, Math.floor(problem.memoryBudget / bytesPerRow(model.cfg, nPos) / n));
  const tokenCap = model.runtime.provider === 'cpu' ? CPU_TOKENS_PER_RUN : GPU_TOKENS_PER_RUN;
  // A patch that starts after every position the metric reads cannot reach it (causality).
  const lastRead = captureUpTo === undefined ? Math.max(...problem.metric.positions.flat()) : Infinity;
  const unchanged: number[] = [];
  const effective: (Patch | undefined)[] = [];
  const byStart = new Map<number, number[]>();
  patches.forEach((q, i) => {
    const live = liveParts(problem, q);
    const p = live.length === 0 ? Infinity : patchStart(problem, live);
    if (live.length === 0 || p > lastRead || firstLayer(live) > (captureUpTo ?? Infinity)) {
      unchanged.push(i);
      return;
    }
    effective[i] = live;
    const group = byStart.get(p);
    if (group) group.push(i);
    else byStart.set(p, [i]);
  });
  const chunks: FastPlan['chunks'][number][] = [];
  for (const { p, members } of mergeSmallGroups(
    [...byStart].sort((a, b) => a[0] - b[0]),
    n,
    nPos,
    (p) => Math.min(tokenCap, budgetCopies * n * (nPos - p)),
  )) {
    members.sort((a, b) => firstLayer(effective[a]!) - firstLayer(effective[b]!));
    const maxCopies = Math.max(1, Math.min(budgetCopies, Math.floor(tokenCap / (n * (nPos - p)))));
    for (let c = 0; c < members.length; c += maxCopies) chunks.push({ p, members: members.slice(c, c + maxCopies) });
  }
  return { unchanged, unchangedValue: problem.metric.raw(problem.runLogits), chunks, effective };
}

/**
 * The parts of a patch that can change anything. Writing in a value the run already has changes nothing
 * while nothing before it has changed the run: such a part is left out when no changing part comes
 * earlier (a layer below, or an earlier hook of its layer), and a patch of only such parts is the
 * baseline. After a changing part, the run's own value is a patch like any other (a path patch's frozen
 * heads). Parts after the first changing one are kept without comparing them.
 */
function liveParts(problem: PatchProblem, patch: Patch): Patch {
  const order = [...blockHooks(problem.model.cfg).keys()];
  const rank = (s: PatchSlot) => s.layer * order.length + order.indexOf(s.hook);
  const kept = new Set<PatchPart>();
  let first = Infinity;
  for (const part of [...patch].sort((a, b) => rank(a) - rank(b))) {
    if (rank(part) > first) kept.add(part);
    else if (firstDifference(problem, part) !== Infinity) {
      first = rank(part);
      kept.add(part);
    }
  }
  return patch.filter((part) => kept.has(part));
}

/**
 * Where a patch's run starts: the earliest position any of its parts changes. A part at given positions
 * starts at them; a part over every position where its source first differs from the run, which for a
 * clean/corrupted pair is the first token they differ in (every earlier position of both runs is the
 * same computation). A part that writes the run's own tensor (a path patch's frozen heads) changes
 * nothing before the patch's other parts do.
 */
function patchStart(problem: PatchProblem, patch: Patch): number {
  return Math.min(...patch.map((part) => (isPositioned(part) ? slotStart(part) : firstDifference(problem, part))));
}

/**
 * The first position at which a part's source and the run differ, bit for bit, over the cells the part
 * overwrites; Infinity where they agree everywhere (writing the part changes nothing).
 */
function firstDifference(problem: PatchProblem, part: PatchPart): number {
  const name = blockHookName(part.layer, part.hook);
  const source = partSource(problem, part, name);
  const run = problem.runCache.get(name)!;
  if (source === run) return Infinity;
  const n = problem.pairs.length;
  const dims = hookMaskShape(problem.model.cfg, part.hook, n, problem.nPos);
  const cell = source.data.length / numel(dims);
  // Attention hooks index [row, head, dest, src]; the others [row, position, ...].
  const posAxis = part.layout === 'attn' ? 2 : 1;
  const posStride = dims.slice(posAxis + 1).reduce((a, b) => a * b, 1);
  let first = Infinity;
  forEachSlotCell(dims, part, 0, n, (c) => {
    const pos = Math.floor(c / posStride) % dims[posAxis]!;
    if (pos >= first) return;
    for (let k = c * cell; k < (c + 1) * cell; k++) {
      if (source.data[k] !== run.data[k]) {
        first = pos;
        return;
      }
    }
  });
  return first;
}

/**
 * Groups of patches that start at different positions, merged into one run from the earliest where
 * each group alone would make a small batch: a matrix product of a few dozen rows runs at half the rate
 * of one of a thousand, so running a later group's few extra positions (the run's own values, recomputed)
 * costs less than running it alone. A group joins only while the merged groups stay one batch (under
 * the token cap and the memory budget: planning a batch's patches alone then gives the same batch) and
 * its extra positions are at most a quarter of its own.
 */
function mergeSmallGroups(groups: readonly [number, number[]][], n: number, nPos: number, capFrom: (p: number) => number): { p: number; members: number[] }[] {
  const merged: { p: number; members: number[] }[] = [];
  for (const [p, members] of groups) {
    const open = merged.at(-1);
    const fits = open !== undefined && (open.members.length + members.length) * n * (nPos - open.p) <= capFrom(open.p) && 4 * (p - open.p) <= nPos - p;
    if (fits) open.members.push(...members);
    else merged.push({ p, members: [...members] });
  }
  return merged;
}

/**
 * Tokens (rows x suffix positions) one block run may carry: on a CPU that keeps a run well under a
 * second on GPT-2 small, so progress and cancellation stay responsive; a GPU wants large batches.
 */
const CPU_TOKENS_PER_RUN = 2048;
const GPU_TOKENS_PER_RUN = 65536;

/** Hooks whose patch at one position changes only that position's output within the patched block. */
const POSITION_LOCAL = new Set<BlockHook>(['attn.hook_q', 'attn.hook_z', 'attn.hook_pattern', 'hook_attn_out', 'hook_resid_mid', 'hook_mlp_out', 'hook_resid_post']);

const isPositionLocal = (s: PatchSlot): boolean => POSITION_LOCAL.has(s.hook) && isPositioned(s);

/** The suffix positions (from p) each pair's row of a copy keeps when every part at this layer is position-local. */
function localPositions(parts: readonly PatchSlot[], pair: number, p: number): number[] {
  const keep = new Set<number>();
  for (const part of parts) for (const x of slotPositions(part, pair)!) keep.add(x - p);
  return [...keep].sort((a, b) => a - b);
}

/**
 * Evaluates patches that all start at position p, sorted by their first layer; returns their raw metric
 * values. Each patch joins the batch at its first layer and has its parts written at theirs.
 * `progress` gets the fraction of the chunk's block runs done after each one.
 */
async function runChunk(
  problem: PatchProblem,
  chunk: readonly Patch[],
  p: number,
  signal: AbortSignal | undefined,
  progress: (fraction: number) => void,
  capture?: CaptureHooks,
): Promise<ChunkResult> {
  const { model, pairs, nPos } = problem;
  const cfg = model.cfg;
  const n = pairs.length;
  const S = nPos - p;
  const D = cfg.dModel;
  const gatherable = gatheredHooks(cfg);
  const runAct = (layer: number, hook: BlockHook) => problem.runCache.get(blockHookName(layer, hook))!;
  const last = capture ? Math.max(...capture.keys()) : cfg.nLayers - 1;
  const captured = capture ? chunk.map(() => unpatchedCaptures(problem, capture)) : undefined;
  const start = firstLayer(chunk[0]!);
  const order = [...blockHooks(cfg).keys()];
  const feedsProjection = (hook: BlockHook) => order.indexOf(hook) < order.indexOf('attn.hook_q');
  let resid: Tensor32 | undefined;
  // Which tokens (row * S + s) of `resid` may differ from the run's; the others' q, k and v are the run's.
  let stale: Uint8Array = new Uint8Array(0);
  let active = 0;
  for (let l = start; l <= last; l++) {
    throwIfCancelled(signal);
    let joining = 0;
    while (active + joining < chunk.length && firstLayer(chunk[active + joining]!) === l) joining++;
    const partsAt = (j: number) => chunk[j]!.filter((s) => s.layer === l);
    if (joining > 0) {
      const fresh = tileRows(sliceAxis(runAct(l, 'hook_resid_pre'), 1, p), joining);
      resid = resid ? concatRows([resid, fresh]) : fresh;
      const marked = new Uint8Array((active + joining) * n * S);
      marked.set(stale);
      for (let j = active; j < active + joining; j++) {
        for (const part of partsAt(j).filter((s) => feedsProjection(s.hook))) {
          for (let i = 0; i < n; i++) {
            const positions = slotPositions(part, i);
            if (positions) for (const x of positions) marked[(j * n + i) * S + x - p] = 1;
            else marked.fill(1, (j * n + i) * S, (j * n + i + 1) * S);
          }
        }
      }
      stale = marked;
    }
    const copies = active + joining;
    const rows = copies * n;
    const past = p === 0 ? undefined : { k: sliceAxis(runAct(l, 'attn.hook_k'), 1, 0, p), v: sliceAxis(runAct(l, 'attn.hook_v'), 1, 0, p) };
    // A copy that joins here with only position-local parts changes this block's output at those positions only.
    const local = (j: number) => j >= active && partsAt(j).every(isPositionLocal);
    // Which (row, position) outputs this block must produce; undefined: all of them.
    let outRows: Int32Array | undefined;
    if (l === last && !capture) outRows = metricRows(problem, copies, p);
    else if (joining > 0 && S > 1 && Array.from({ length: joining }, (_, k) => active + k).some(local)) {
      const keep: number[] = [];
      for (let j = 0; j < copies; j++) {
        const parts = local(j) ? partsAt(j) : undefined;
        for (let i = 0; i < n; i++) {
          const ts = parts ? localPositions(parts, i, p) : undefined;
          if (ts) for (const t of ts) keep.push((j * n + i) * S + t);
          else for (let t = 0; t < S; t++) keep.push((j * n + i) * S + t);
        }
      }
      outRows = Int32Array.from(keep);
    }
    const outIndex = new Map<number, number>();
    outRows?.forEach((r, e) => outIndex.set(r, e));

    const patches = new Map<BlockHook, { source: Tensor32; mask: Uint8Array; maskDims: number[] }>();
    const full = new Map<BlockHook, { mask: Uint8Array; maskDims: number[]; axis: number; own: (Tensor32 | undefined)[] }>();
    for (let j = 0; j < copies; j++) {
      for (const part of partsAt(j)) {
        const name = blockHookName(l, part.hook);
        const source = partSource(problem, part, name);
        if (outRows && gatherable.has(part.hook)) {
          // Laid out over the kept outputs: each pair's source vector at the part's positions, where kept.
          const width = hookInfo(cfg, part.hook).width;
          let patch = patches.get(part.hook);
          if (!patch) {
            patch = {
              source: { shape: [1, outRows.length, width], data: new Float32Array(outRows.length * width) },
              mask: new Uint8Array(outRows.length),
              maskDims: [1, outRows.length, 1],
            };
            patches.set(part.hook, patch);
          }
          for (let i = 0; i < n; i++) {
            const positions = slotPositions(part, i) ?? Array.from({ length: S }, (_, t) => p + t);
            for (const x of positions) {
              const e = outIndex.get((j * n + i) * S + (x - p));
              if (e === undefined) continue;
              patch.mask[e] = 1;
              patch.source.data.set(source.data.subarray((i * nPos + x) * width, (i * nPos + x + 1) * width), e * width);
            }
          }
          continue;
        }
        let f = full.get(part.hook);
        if (!f) {
          // Attention hooks index [row, head, dest, src]: the suffix is a range of dest rows.
          const maskDims = part.layout === 'attn' ? [rows, cfg.nHeads, S, nPos] : hookMaskGraphDims(cfg, part.hook, rows, S);
          f = { mask: new Uint8Array(numel(maskDims)), maskDims, axis: part.layout === 'attn' ? 2 : 1, own: [] };
          full.set(part.hook, f);
        }
        if (part.source) f.own[j] = part.source;
        markSlot(f.mask, f.maskDims, shiftSlot(part, p), j * n, (j + 1) * n);
      }
    }
    // Each copy's block of the source: its parts' own values, or the problem's source (unused where its mask is 0).
    for (const [hook, f] of full) {
      const shared = problem.sourceCache.get(blockHookName(l, hook));
      const sliced = new Map<Tensor32, Tensor32>();
      const suffix = (t: Tensor32): Tensor32 => sliced.get(t) ?? sliced.set(t, sliceAxis(t, f.axis, p)).get(t)!;
      const blocks = Array.from({ length: copies }, (_, j) => f.own[j] ?? shared);
      const shape = suffix(blocks.find((t) => t !== undefined)!).shape;
      const size = numel(shape);
      const data = new Float32Array(size * copies);
      blocks.forEach((t, j) => t && data.set(suffix(t).data, j * size));
      patches.set(hook, { source: { shape: [rows, ...shape.slice(1)], data }, mask: f.mask, maskDims: f.maskDims });
    }
    const hooks = capture?.get(l) ?? [];
    if (hooks.some((h) => gatherable.has(h))) throw new Error(`cannot capture ${hooks.join(', ')} from a block that gathers its outputs`);
    const projected = indicesOf(stale);
    // Below about 7/8 of the tokens, projecting fewer rows saves more than placing them among the run's costs.
    const runQkv =
      8 * projected.length <= 7 * stale.length
        ? { rows: projected, q: sliceAxis(runAct(l, 'attn.hook_q'), 1, p), k: sliceAxis(runAct(l, 'attn.hook_k'), 1, p), v: sliceAxis(runAct(l, 'attn.hook_v'), 1, p) }
        : undefined;
    const { output, captured: here } = await model.blockSuffixCapture(l, resid!, past, patches, { outRows, capture: hooks, runQkv });
    for (const [hook, t] of here) for (let j = 0; j < copies; j++) captured![j]!.set(blockHookName(l, hook), withPrefix(t, j, runAct(l, hook), p));
    active = copies;
    progress((l - start + 1) / (last - start + 1));
    if (l === last) return captured ? { captured } : { values: await readMetric(problem, output, copies, p) };
    if (outRows) {
      resid = unpackRows(output, outRows, runAct(l + 1, 'hook_resid_pre'), { rows, S, p, n, D });
      stale = new Uint8Array(rows * S);
      for (const r of outRows) stale[r] = 1;
    } else {
      resid = output;
      stale = staleAfterBlock(stale, S, (r) => partsAt(Math.floor(r / n)).map((part) => slotPositions(part, r % n)), p);
    }
  }
  throw new Error('unreachable: every chunk ends at the last layer');
}

const indicesOf = (flags: Uint8Array): Int32Array => Int32Array.from(flags.keys()).filter((i) => flags[i] === 1);

/**
 * Which tokens of a block's output may differ from the run's, when the block computed every position:
 * in each row, every position from the first whose input differed or that a part at this layer writes
 * (`partsOf(row)`: each part's positions, undefined for all), since attention carries a change to every
 * later position.
 */
function staleAfterBlock(stale: Uint8Array, S: number, partsOf: (row: number) => (readonly number[] | undefined)[], p: number): Uint8Array {
  const out = new Uint8Array(stale.length);
  for (let r = 0; r * S < stale.length; r++) {
    let first = stale.subarray(r * S, (r + 1) * S).indexOf(1);
    if (first < 0) first = S;
    for (const positions of partsOf(r)) first = Math.min(first, positions ? Math.min(...positions) - p : 0);
    out.fill(1, r * S + Math.max(0, first), (r + 1) * S);
  }
  return out;
}

/** Copy j's rows of a captured suffix ([copies * pairs, S, ...]) as a whole activation: the run's own values before p. */
function withPrefix(t: Tensor32, j: number, run: Tensor32, p: number): Tensor32 {
  const [n, nPos] = run.shape as [number, number];
  const S = nPos - p;
  const cell = run.data.length / (n * nPos);
  const data = Float32Array.from(run.data);
  for (let i = 0; i < n; i++) data.set(t.data.subarray((j * n + i) * S * cell, (j * n + i + 1) * S * cell), (i * nPos + p) * cell);
  return { shape: run.shape, data };
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
    metric.positions.forEach((positions, i) => positions.forEach(() => corrupted.set(columnsOf(problem, i), e++ * C)));
    let k = 0;
    for (let j = 0; j < copies; j++) {
      metric.positions.forEach((positions, i) => positions.forEach((pos) => pos >= p && cols.set(columns.subarray(i * C, (i + 1) * C), k++ * C)));
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
        const src = pos >= p ? logits.subarray(next * V, ++next * V) : problem.runLogits.subarray(r * V, (r + 1) * V);
        block.set(src, r * V);
        r++;
      }
    });
    out[j] = metric.raw(block);
  }
  return out;
}

/** The unpatched run's logits at pair i's metric row, in the metric's columns (what an unpatched position reads). */
function columnsOf(problem: PatchProblem, i: number): Float32Array {
  const { metric, model } = problem;
  const V = model.cfg.dVocab;
  const C = metric.columnsPerRow;
  const row = metric.positions.slice(0, i).reduce((a, ps) => a + ps.length, 0);
  return Float32Array.from({ length: C }, (_, c) => problem.runLogits[row * V + metric.columns![i * C + c]!]!);
}
