import { createHash } from 'node:crypto';
import type { PatchSetResult } from '../../protocol/result';
import type { ShardCells, ShardSweep } from '../../protocol/shard';
import type { ResolvedSpec, SweepName } from '../../protocol/spec';
import { CancelledError } from '../cancel';
import type { HookedTransformer } from '../hookedTransformer';
import type { Patch } from './problem';
import { type Baselines, EXECUTORS, type PatchingOptions, patchSetParts, patchSetResult, preparePatching, UNIT_PLANNERS } from './runPatching';
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
  /** The spec's patch sets this shard evaluated, when it has any. */
  readonly patchSets?: ShardCells<PatchSetResult>;
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
  /** What it is part of (for progress): a sweep, or the patch sets. */
  readonly sweep: string;
  readonly patches: Patch[];
  readonly keys: string[];
  readonly cost: number;
}

/**
 * One shard's share of a spec's sweeps and patch sets (`patchlens run --shard i/n`). The whole run
 * evaluates, sweep by sweep, the slots no earlier sweep evaluated, then the patch sets, each list cut by
 * its executor into batches; a shard makes the same cuts and evaluates only the batches dealt to it. A batch evaluated alone gives the same values as in
 * the whole run (see UnitPlanner), so the merged shards are the whole run's result bit for bit.
 */
export async function runShard(model: HookedTransformer, spec: ResolvedSpec, share: ShardShare, opts: PatchingOptions = {}): Promise<ShardOutcome> {
  const mode = opts.mode ?? 'fast';
  const sets = patchSetParts(spec, model.cfg);
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
  const setKey = (k: number) => `set ${k}`;
  for (const u of sets.length > 0 ? UNIT_PLANNERS[mode](problem, sets) : []) {
    units.push({ sweep: 'patch sets', patches: u.members.map((i) => sets[i]!), keys: u.members.map(setKey), cost: u.cost });
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

  const normalize = (raw: number) => problem.metric.normalize(raw, baselines, direction);
  const sweeps: Partial<Record<SweepName, ShardSweep>> = {};
  for (const plan of plans) {
    // A cell the model lacks is nobody's work: shard 1 holds its null.
    const held = heldCells(plan.valueSlot.length, (n) => {
      const slot = plan.valueSlot[n]!;
      if (slot < 0) return share.index === 1 ? { value: null } : undefined;
      const raw = known.get(slotKey(plan.slots[slot]!));
      return raw === undefined ? undefined : { value: normalize(raw) };
    });
    sweeps[plan.name] = {
      shape: plan.shape,
      axes: plan.axes,
      ...(plan.components ? { components: plan.components } : {}),
      ...(plan.labels ? { labels: plan.labels } : {}),
      ...held,
    };
  }
  const patchSets = heldCells(sets.length, (k) => {
    const raw = known.get(setKey(k));
    return raw === undefined ? undefined : { value: patchSetResult(spec.patchSets![k]!, normalize(raw)) };
  });
  return { status: 'done', baselines, sweeps, ...(sets.length > 0 ? { patchSets } : {}), units: units.length, planHash };
}

/** The indices 0..size-1 this shard holds (`value` says: undefined when it does not), as ranges, and their values. */
function heldCells<T>(size: number, value: (i: number) => { value: T } | undefined): ShardCells<T> {
  const cells: [number, number][] = [];
  const values: T[] = [];
  for (let i = 0; i < size; i++) {
    const v = value(i);
    if (!v) continue;
    values.push(v.value);
    const last = cells[cells.length - 1];
    if (last && last[1] === i) last[1] = i + 1;
    else cells.push([i, i + 1]);
  }
  return { cells, values };
}
