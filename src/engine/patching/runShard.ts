import { createHash } from 'node:crypto';
import type { ShardSweep } from '../../protocol/shard';
import type { ResolvedSpec, SweepName } from '../../protocol/spec';
import { CancelledError } from '../cancel';
import type { HookedTransformer } from '../hookedTransformer';
import type { Patch } from './problem';
import { type Baselines, EXECUTORS, type PatchingOptions, preparePatching, UNIT_PLANNERS } from './runPatching';
import { planSweep, slotKey } from './sweeps';

/** Shard `index` (1-based) of `count`. */
export interface ShardShare {
  readonly index: number;
  readonly count: number;
}

export interface ShardOutcome {
  readonly status: 'done' | 'cancelled';
  readonly baselines: Baselines;
  /** Every sweep of the spec, each with the cells this shard computed. */
  readonly sweeps: Partial<Record<SweepName, ShardSweep>>;
  /** How many batches the whole run was cut into, and a sha256 of the cut. */
  readonly units: number;
  readonly planHash: string;
}

/**
 * Deals units of work to `count` shards by cost: the costliest first, each to the least loaded shard
 * (the lowest numbered among equals). Every shard computes the same deal from the same costs.
 */
export function dealUnits(costs: readonly number[], count: number): number[] {
  const owner = new Array<number>(costs.length);
  const load = new Array<number>(count).fill(0);
  const order = costs.map((_, i) => i).sort((a, b) => costs[b]! - costs[a]! || a - b);
  for (const u of order) {
    let least = 0;
    for (let s = 1; s < count; s++) if (load[s]! < load[least]!) least = s;
    owner[u] = least;
    load[least]! += costs[u]!;
  }
  return owner;
}

interface WorkUnit {
  readonly sweep: SweepName;
  readonly patches: Patch[];
  readonly keys: string[];
  readonly cost: number;
}

/**
 * One shard's share of a spec's sweeps (`patchlens run --shard i/n`). The whole run evaluates, sweep by
 * sweep, the slots no earlier sweep evaluated, cut by its executor into batches; a shard makes the same
 * cut and evaluates only the batches dealt to it. A batch evaluated alone gives the same values as in
 * the whole run (see UnitPlanner), so the merged shards are the whole run's result bit for bit.
 */
export async function runShard(model: HookedTransformer, spec: ResolvedSpec, share: ShardShare, opts: PatchingOptions = {}): Promise<ShardOutcome> {
  const mode = opts.mode ?? 'fast';
  const { problem, baselines, positions, direction } = await preparePatching(model, spec, opts);
  const plans = spec.sweeps.map((name) => planSweep(name, model.cfg, positions));
  const units: WorkUnit[] = [];
  const evaluated = new Set<string>();
  for (const plan of plans) {
    const todo = plan.slots.filter((s) => !evaluated.has(slotKey(s)));
    todo.forEach((s) => evaluated.add(slotKey(s)));
    const patches = todo.map((s) => [s]);
    for (const u of UNIT_PLANNERS[mode](problem, patches)) {
      units.push({ sweep: plan.name, patches: u.members.map((i) => patches[i]!), keys: u.members.map((i) => slotKey(todo[i]!)), cost: u.cost });
    }
  }
  const planHash = createHash('sha256')
    .update(JSON.stringify(units.map((u) => [u.keys, u.cost])))
    .digest('hex');
  const owner = dealUnits(
    units.map((u) => u.cost),
    share.count,
  );
  const mine = units.filter((_, k) => owner[k] === share.index - 1);

  const nPairs = spec.pairs.length;
  const total = nPairs * mine.reduce((a, u) => a + u.patches.length, 0);
  const known = new Map<string, number>();
  let done = 0;
  try {
    for (const unit of mine) {
      const raw = await EXECUTORS[mode](problem, unit.patches, {
        signal: opts.signal,
        onProgress: (d) => opts.onProgress?.({ done: nPairs * (done + d), total, sweep: unit.sweep }),
      });
      unit.keys.forEach((k, i) => known.set(k, raw[i]!));
      done += unit.patches.length;
    }
  } catch (e) {
    if (e instanceof CancelledError) return { status: 'cancelled', baselines, sweeps: {}, units: units.length, planHash };
    throw e;
  }

  const sweeps: Partial<Record<SweepName, ShardSweep>> = {};
  for (const plan of plans) {
    const cells: [number, number][] = [];
    const values: (number | null)[] = [];
    plan.valueSlot.forEach((slot, n) => {
      const raw = slot < 0 ? undefined : known.get(slotKey(plan.slots[slot]!));
      // A cell the model lacks is nobody's work: shard 1 holds its null.
      if (slot < 0 ? share.index !== 1 : raw === undefined) return;
      values.push(raw === undefined ? null : problem.metric.normalize(raw, baselines, direction));
      const last = cells[cells.length - 1];
      if (last && last[1] === n) last[1] = n + 1;
      else cells.push([n, n + 1]);
    });
    sweeps[plan.name] = { shape: plan.shape, axes: plan.axes, ...(plan.components ? { components: plan.components } : {}), ...(plan.labels ? { labels: plan.labels } : {}), cells, values };
  }
  return { status: 'done', baselines, sweeps, units: units.length, planHash };
}
