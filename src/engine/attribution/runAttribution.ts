import type { AttributionInfo, SweepResult, SweepVerification } from '../../protocol/result';
import type { ResolvedSpec, SweepName } from '../../protocol/spec';
import { CancelledError } from '../cancel';
import type { HookedTransformer } from '../hookedTransformer';
import { uniform } from '../random';
import { executeFast } from '../patching/fastExecutor';
import { type PatchingOptions, type PatchingOutcome, preparePatching } from '../patching/runPatching';
import { type PatchSlot, planSweep, type SweepPlan } from '../patching/sweeps';
import { type AtpDirection, estimateAtp } from './atp';

export interface AttributionOutcome extends PatchingOutcome {
  readonly attribution: AttributionInfo;
}

const slotKey = (s: PatchSlot): string => `${s.layer}|${s.hook}|${s.pos}|${s.head}|${s.dest}|${s.src}`;

/**
 * A spec run by attribution patching: the baselines, AtP or AtP* estimates of every sweep (in each
 * sweep's shape, so every view of a result reads them as it reads exact values), and with verify_top,
 * exact fast patching of each sweep's k largest estimated effects and k random others.
 */
export async function runAttribution(model: HookedTransformer, spec: ResolvedSpec, opts: PatchingOptions & { direction?: AtpDirection } = {}): Promise<AttributionOutcome> {
  const method = spec.method === 'atp_star' ? 'atp_star' : 'atp';
  const direction = opts.direction ?? 'denoising';
  const flops0 = model.flops;
  const { problem, baselines } = await preparePatching(model, spec, opts);
  const forwardFlops = (model.flops - flops0) / 2;
  const { metric, nPos } = problem;
  const plans = spec.sweeps.map((name) => planSweep(name, model.cfg, nPos));
  const index = new Map<string, number>();
  const slots: PatchSlot[] = [];
  for (const plan of plans) {
    for (const s of plan.slots) {
      if (index.has(slotKey(s))) continue;
      index.set(slotKey(s), slots.length);
      slots.push(s);
    }
  }
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
    const est = await estimateAtp(problem, slots, {
      direction,
      star: method === 'atp_star',
      signal: opts.signal,
      onProgress: (done, total) => opts.onProgress?.({ done, total, sweep: spec.sweeps[0]! }),
    });
    estimateFlops = model.flops - before;
    const value = (plan: SweepPlan, i: number) => metric.normalize(est.values[index.get(slotKey(plan.slots[i]!))!]!, baselines);
    for (const plan of plans) {
      const values = Array.from(plan.valueSlot, (i) => (i < 0 ? null : value(plan, i)));
      const score = method === 'atp_star' ? Array.from(plan.valueSlot, (i) => (i < 0 ? null : est.scores[index.get(slotKey(plan.slots[i]!))!]!)) : undefined;
      sweeps[plan.name] = { shape: plan.shape, axes: plan.axes, values, ...(plan.components ? { components: plan.components } : {}), ...(score ? { score } : {}) };
    }
    const k = spec.verifyTop ?? 0;
    if (k === 0) return { status: 'done', baselines, sweeps, nPos, attribution: attribution(0) };

    // Each sweep's cells to check, then one exact run of every distinct slot among them.
    const picks = new Map<SweepName, { index: number; slot: number; chosen: 'top' | 'random' }[]>();
    plans.forEach((plan, p) => {
      const cells = Array.from(plan.valueSlot, (slot, i) => ({ i, slot: slot < 0 ? -1 : index.get(slotKey(plan.slots[slot]!))! })).filter((c) => c.slot >= 0);
      cells.sort((a, b) => est.scores[b.slot]! - est.scores[a.slot]! || a.i - b.i);
      const top = cells.slice(0, k);
      const rest = cells.slice(k);
      // A seeded shuffle: the same spec checks the same cells on every run.
      const u = uniform(1000 + p);
      for (let i = rest.length - 1; i > 0; i--) {
        const j = Math.floor(u() * (i + 1));
        [rest[i], rest[j]] = [rest[j]!, rest[i]!];
      }
      picks.set(plan.name, [...top.map((c) => ({ index: c.i, slot: c.slot, chosen: 'top' as const })), ...rest.slice(0, k).map((c) => ({ index: c.i, slot: c.slot, chosen: 'random' as const }))]);
    });
    const todo = [...new Set([...picks.values()].flat().map((c) => c.slot))];
    const verifyStart = model.flops;
    const exact = await executeFast(
      problem,
      todo.map((s) => slots[s]!),
      { signal: opts.signal, onProgress: (done) => opts.onProgress?.({ done, total: todo.length, sweep: spec.sweeps[0]! }) },
    );
    const exactOf = new Map(todo.map((s, i) => [s, metric.normalize(exact[i]!, baselines)]));
    for (const plan of plans) {
      const result = sweeps[plan.name]!;
      const cells = picks.get(plan.name)!.map((c) => ({ index: c.index, estimate: result.values[c.index]!, exact: exactOf.get(c.slot)!, chosen: c.chosen }));
      sweeps[plan.name] = { ...result, verification: verificationOf(cells) };
    }
    return { status: 'done', baselines, sweeps, nPos, attribution: attribution(model.flops - verifyStart) };
  } catch (e) {
    if (e instanceof CancelledError) return { status: 'cancelled', baselines, sweeps, nPos, attribution: attribution(0) };
    throw e;
  }
}

const round = (x: number) => Math.round(x * 100) / 100;

export function verificationOf(cells: SweepVerification['cells']): SweepVerification {
  let miss: SweepVerification['largestMiss'] = null;
  for (const c of cells) if (!miss || Math.abs(c.estimate - c.exact) > Math.abs(miss.estimate - miss.exact)) miss = { index: c.index, estimate: c.estimate, exact: c.exact };
  return { cells, spearman: spearman(cells.map((c) => c.estimate), cells.map((c) => c.exact)), largestMiss: miss };
}

/** Ranks with ties averaged (1-based). */
function ranks(x: readonly number[]): number[] {
  const order = x.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const r = new Array<number>(x.length);
  for (let i = 0; i < order.length; ) {
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
