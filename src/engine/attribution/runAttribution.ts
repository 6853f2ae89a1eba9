import type { AttributionInfo, SweepResult, SweepVerification } from '../../protocol/result';
import type { Direction, ResolvedSpec, SweepName } from '../../protocol/spec';
import { CancelledError } from '../cancel';
import { UserError } from '../../common/userError';
import type { HookedTransformer } from '../hookedTransformer';
import { uniform } from '../random';
import { executeFast } from '../patching/fastExecutor';
import { type PatchingOptions, type PatchingOutcome, preparePatching } from '../patching/runPatching';
import { partSlot, type SweepLayout, type SweepPart, sweepLayout } from '../patching/sweeps';
import { estimateAtp } from './atp';

export interface AttributionOutcome extends PatchingOutcome {
  readonly attribution: AttributionInfo;
}

/**
 * A spec run by attribution patching: the baselines, AtP or AtP* estimates of every sweep (in each
 * sweep's shape, so every view of a result reads them as it reads exact values), and with verify_top,
 * exact fast patching of each sweep's k largest estimated effects and k random others.
 */
export async function runAttribution(model: HookedTransformer, spec: ResolvedSpec, opts: PatchingOptions & { direction?: Direction } = {}): Promise<AttributionOutcome> {
  const method = spec.method === 'atp_star' ? 'atp_star' : 'atp';
  // The estimates sum each slot's cells over the batch at one position; a label's positions differ per pair.
  if (spec.patchSets) throw new UserError(`patch_sets are patched exactly; run them with method exact (the default), apart from the ${method} estimates`);
  if (spec.pathPatching)
    throw new UserError(`path_patching is exact patching in two stages, which ${method} does not estimate; use method exact (the default), or leave out path_patching`);
  if (spec.labels) throw new UserError(`method ${method} cannot estimate sweeps over labelled positions yet; use method exact, or leave out the labels (marks and "positions")`);
  const flops0 = model.flops;
  // The problem comes oriented: its run is the corrupted prompts when denoising, the clean ones when noising or ablating.
  const { problem, baselines, direction } = await preparePatching(model, opts.direction ? { ...spec, direction: opts.direction } : spec, { ...opts, gradient: true });
  const forwardFlops = (model.flops - flops0) / 2;
  const { metric, nPos } = problem;
  const layouts = spec.sweeps.map((name) => sweepLayout(name, model.cfg, { kind: 'index', n: nPos }));
  // Each simple sweep once, however many of the sweeps show it.
  const parts = [...new Map(layouts.flatMap((l) => l.parts).map((p) => [p.sweep, p])).values()];
  const attribution = (verifyFlops: number): AttributionInfo => ({
    method,
    direction,
    forwardEquivalents: round((estimateFlops + 2 * forwardFlops) / forwardFlops),
    verifyForwardEquivalents: round(verifyFlops / forwardFlops),
    ...(spec.verifyTop !== undefined ? { verifyTop: spec.verifyTop } : {}),
  });
  let estimateFlops = 0;
  const sweeps: Partial<Record<SweepName, SweepResult>> = {};
  try {
    const before = model.flops;
    const est = await estimateAtp(problem, parts, {
      star: method === 'atp_star',
      signal: opts.signal,
      run: { cache: problem.runCache, logits: problem.runLogits },
      onProgress: (done, total) => opts.onProgress?.({ done, total, sweep: spec.sweeps[0]! }),
    });
    estimateFlops = model.flops - before;
    /** A layout's slots' numbers, laid out as its valueSlot numbers them. */
    const bySlot = (layout: SweepLayout, of: ReadonlyMap<SweepName, Float64Array>) => {
      const all = new Float64Array(layout.parts.reduce((n, p) => n + p.count, 0));
      for (const p of layout.parts) all.set(of.get(p.sweep)!, p.base);
      return all;
    };
    const scores = new Map<SweepName, Float64Array>();
    for (const layout of layouts) {
      const delta = bySlot(layout, est.deltas);
      const score = bySlot(layout, est.scores);
      scores.set(layout.name, score);
      const n = layout.valueSlot.length;
      const values = new Array<number | null>(n);
      const scored = method === 'atp_star' ? new Array<number | null>(n) : undefined;
      for (let j = 0; j < n; j++) {
        const i = layout.valueSlot[j]!;
        values[j] = i < 0 ? null : metric.normalize(est.base + delta[i]!, baselines, direction);
        if (scored) scored[j] = i < 0 ? null : score[i]!;
      }
      sweeps[layout.name] = {
        shape: layout.shape,
        axes: layout.axes,
        values,
        ...(layout.components ? { components: layout.components } : {}),
        ...(scored ? { score: scored } : {}),
      };
    }
    const k = spec.verifyTop ?? 0;
    if (k === 0) return { status: 'done', baselines, sweeps, nPos, attribution: attribution(0) };

    // Each sweep's cells to check, then one exact run of every distinct slot among them.
    const picks = layouts.map((layout, p) => pickCells(layout, scores.get(layout.name)!, k, 1000 + p));
    const todo = new Map<string, { part: SweepPart; n: number }>();
    for (const [l, cells] of picks.entries()) {
      for (const c of cells) {
        const slot = slotIn(layouts[l]!, layouts[l]!.valueSlot[c.index]!);
        todo.set(`${slot.part.sweep}:${slot.n}`, slot);
      }
    }
    const keys = [...todo.keys()];
    const verifyStart = model.flops;
    const exact = await executeFast(
      problem,
      [...todo.values()].map((t) => [partSlot(t.part, model.cfg, t.n)]),
      { signal: opts.signal, onProgress: (done) => opts.onProgress?.({ done, total: keys.length, sweep: spec.sweeps[0]! }) },
    );
    const exactOf = new Map(keys.map((key, i) => [key, metric.normalize(exact[i]!, baselines, direction)]));
    layouts.forEach((layout, l) => {
      const result = sweeps[layout.name]!;
      const cells = picks[l]!.map((c) => {
        const slot = slotIn(layout, layout.valueSlot[c.index]!);
        return { index: c.index, estimate: result.values[c.index]!, exact: exactOf.get(`${slot.part.sweep}:${slot.n}`)!, chosen: c.chosen };
      });
      sweeps[layout.name] = { ...result, verification: verificationOf(cells) };
    });
    return { status: 'done', baselines, sweeps, nPos, attribution: attribution(model.flops - verifyStart) };
  } catch (e) {
    if (e instanceof CancelledError) return { status: 'cancelled', baselines, sweeps, nPos, attribution: attribution(0) };
    throw e;
  }
}

/** The simple sweep and its slot that a layout's slot number `id` stands for. */
function slotIn(layout: SweepLayout, id: number): { part: SweepPart; n: number } {
  const part = layout.parts.find((p) => id >= p.base && id < p.base + p.count)!;
  return { part, n: id - part.base };
}

/**
 * A sweep's cells to verify: the k of largest score (ties by index) and k others drawn with a seeded
 * generator, so the same spec checks the same cells on every run.
 */
function pickCells(layout: SweepLayout, score: Float64Array, k: number, seed: number): { index: number; chosen: 'top' | 'random' }[] {
  const valid: number[] = [];
  layout.valueSlot.forEach((slot, i) => slot >= 0 && valid.push(i));
  const scoreOf = (i: number) => score[layout.valueSlot[i]!]!;
  const before = (a: number, b: number) => scoreOf(a) > scoreOf(b) || (scoreOf(a) === scoreOf(b) && a < b);
  // The top k by insertion into a short sorted list: a dest×src sweep has 318,000 cells and needs 20.
  const top: number[] = [];
  for (const i of valid) {
    if (top.length === k && !before(i, top[k - 1]!)) continue;
    let at = top.length;
    while (at > 0 && before(i, top[at - 1]!)) at--;
    top.splice(at, 0, i);
    if (top.length > k) top.pop();
  }
  const chosen = new Set(top);
  const rest = valid.filter((i) => !chosen.has(i));
  // The first k steps of a seeded Fisher–Yates shuffle of the others.
  const u = uniform(seed);
  const m = Math.min(k, rest.length);
  for (let i = 0; i < m; i++) {
    const j = i + Math.floor(u() * (rest.length - i));
    [rest[i], rest[j]] = [rest[j]!, rest[i]!];
  }
  return [...top.map((index) => ({ index, chosen: 'top' as const })), ...rest.slice(0, m).map((index) => ({ index, chosen: 'random' as const }))];
}

const round = (x: number) => Math.round(x * 100) / 100;

export function verificationOf(cells: SweepVerification['cells']): SweepVerification {
  let miss: SweepVerification['largestMiss'] = null;
  for (const c of cells) if (!miss || Math.abs(c.estimate - c.exact) > Math.abs(miss.estimate - miss.exact)) miss = { index: c.index, estimate: c.estimate, exact: c.exact };
  return {
    cells,
    spearman: spearman(
      cells.map((c) => c.estimate),
      cells.map((c) => c.exact),
    ),
    largestMiss: miss,
  };
}

/** Ranks with ties averaged (1-based). */
function ranks(x: readonly number[]): number[] {
  const order = x.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const r = new Array<number>(x.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && order[j + 1]![0] === order[i]![0]) j++;
    for (let k = i; k <= j; k++) r[order[k]![1]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return r;
}

/** Spearman's rank correlation: Pearson's of the ranks; null when either side has no spread. */
export function spearman(a: readonly number[], b: readonly number[]): number | null {
  if (a.length < 2) return null;
  const ra = ranks(a);
  const rb = ranks(b);
  const mean = (ra.length + 1) / 2;
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = 0; i < ra.length; i++) {
    num += (ra[i]! - mean) * (rb[i]! - mean);
    da += (ra[i]! - mean) ** 2;
    db += (rb[i]! - mean) ** 2;
  }
  return da > 0 && db > 0 ? num / Math.sqrt(da * db) : null;
}
