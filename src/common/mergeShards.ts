/**
 * `patchlens merge`: the shards of one split run combined into the result file one machine would have
 * written. Each shard evaluated the very batches the whole run would have, so its values are the whole
 * run's bit for bit, and merging only places them. Refused, with one message: shards of different specs,
 * models or splits, a shard missing or given twice, shards whose baselines differ (different arithmetic:
 * their values would not be one machine's). Fields that belong to the runs, not the result: `createdAt`
 * (the earliest shard's start), `engine.seconds` (the shards' seconds added up), `source` and
 * `model.location` (shard 1's: machines may keep the spec and the model at different paths).
 */
import type { PatchResult, PatchSetResult, SweepResult } from '../protocol/result';
import { RESULT_FORMAT } from '../protocol/result';
import type { ShardCells, ShardResult } from '../protocol/shard';
import type { SweepName } from '../protocol/spec';
import { specHash } from './shardFile';
import { UserError } from './userError';

export interface ShardInput {
  /** Where the shard was read from, as the user named it (for messages). */
  readonly path: string;
  readonly shard: ShardResult;
}

const short = (hash: string) => hash.slice(0, 12);
const listed = (xs: string[]) => (xs.length === 1 ? xs[0]! : `${xs.slice(0, -1).join(', ')} and ${xs[xs.length - 1]!}`);

/** How a shard cut the work: what must agree for two shards' batches to be cut alike. */
function splitOf(s: ShardResult): string {
  return `${s.engine.mode} mode, ${s.shard.memoryBudgetMiB} MiB memory budget, ${s.model.provider ?? 'unknown'} provider, engine ${s.engine.version}`;
}

/** Refuses shards that are not all shares of one split of one run, naming the first two that disagree. */
function checkSameRun(inputs: readonly ShardInput[]): void {
  const [first, ...rest] = inputs;
  const a = first!.shard;
  const hashA = specHash(a);
  for (const { path, shard: b } of rest) {
    const hashB = specHash(b);
    if (hashB !== hashA) {
      throw new UserError(
        `shards of different specs: ${first!.path} is a shard of '${a.name}' (spec sha256 ${short(hashA)}), ${path} of '${b.name}' (spec sha256 ${short(hashB)}); merge the shards of one run (the same spec and dataset)`,
      );
    }
    if (b.shard.modelHash !== a.shard.modelHash) {
      throw new UserError(
        `shards of different models: ${first!.path} ran '${a.model.id}' (weights sha256 ${short(a.shard.modelHash)}), ${path} ran '${b.model.id}' (weights sha256 ${short(b.shard.modelHash)}); run every shard on the same model`,
      );
    }
    if (b.shard.count !== a.shard.count) {
      throw new UserError(
        `${first!.path} is shard ${a.shard.index} of ${a.shard.count} but ${path} is shard ${b.shard.index} of ${b.shard.count}; merge the shards of one split (--shard i/N with the same N)`,
      );
    }
    if (splitOf(b) !== splitOf(a) || b.shard.planHash !== a.shard.planHash) {
      const how = splitOf(b) !== splitOf(a) ? `${first!.path}: ${splitOf(a)}; ${path}: ${splitOf(b)}` : `${splitOf(a)} in both, yet different batches`;
      throw new UserError(
        `${first!.path} and ${path} cut the sweeps into batches differently (${how}); run every shard with the same --naive, --memory-budget, --device and PatchLens version`,
      );
    }
    if (JSON.stringify(b.baselines) !== JSON.stringify(a.baselines)) {
      throw new UserError(
        `${first!.path} and ${path} computed different baselines (${JSON.stringify(a.baselines)} vs ${JSON.stringify(b.baselines)}): they ran with different arithmetic (another CPU or GPU kind, another onnxruntime), so their values are not one machine's; run every shard on the same kind of machine`,
      );
    }
  }
}

/** Refuses a shard given twice or missing: every index 1..n exactly once. */
function checkComplete(inputs: readonly ShardInput[]): void {
  const count = inputs[0]!.shard.shard.count;
  const byIndex = new Map<number, string>();
  for (const { path, shard } of inputs) {
    const other = byIndex.get(shard.shard.index);
    if (other !== undefined) throw new UserError(`shard ${shard.shard.index}/${count} is given twice: ${other} and ${path}; give each shard once`);
    byIndex.set(shard.shard.index, path);
  }
  const missing = Array.from({ length: count }, (_, i) => i + 1).filter((i) => !byIndex.has(i));
  if (missing.length > 0) {
    const names = missing.slice(0, 10).map((i) => `${i}/${count}`);
    const more = missing.length > 10 ? ` (and ${missing.length - 10} more)` : '';
    throw new UserError(
      `missing shard${missing.length > 1 ? 's' : ''} ${listed(names)}${more} of '${inputs[0]!.shard.name}': run them (patchlens run SPEC --shard ${names[0]} ...) and merge all ${count}`,
    );
  }
}

/** A list of `size` values from every shard's cells (a sweep's, the patch sets'); each must be held by exactly one shard. */
function fillCells<T>(what: string, size: number, parts: readonly { path: string; held: ShardCells<T> }[]): T[] {
  const values = new Array<T>(size);
  const holder = new Array<string | undefined>(size);
  for (const { path, held } of parts) {
    let k = 0;
    for (const [start, end] of held.cells) {
      if (end > size) throw new UserError(`${path} holds value ${end - 1} of ${what}, which has ${size}; the files were edited: run that shard again`);
      for (let i = start; i < end; i++) {
        if (holder[i] !== undefined) throw new UserError(`${holder[i]} and ${path} both hold value ${i} of ${what}; the files were edited: run those shards again`);
        holder[i] = path;
        values[i] = held.values[k++]!;
      }
    }
  }
  const gap = holder.findIndex((h) => h === undefined);
  if (gap >= 0) throw new UserError(`no shard holds value ${gap} of ${what}; the files were edited: run the shards again`);
  return values;
}

/** One sweep from every shard's cells. */
function mergeSweep(name: SweepName, inputs: readonly ShardInput[]): SweepResult {
  const layout = inputs[0]!.shard.sweeps[name]!;
  const parts = inputs.map(({ path, shard }) => {
    const sweep = shard.sweeps[name];
    if (!sweep || JSON.stringify([sweep.shape, sweep.axes, sweep.components, sweep.labels]) !== JSON.stringify([layout.shape, layout.axes, layout.components, layout.labels])) {
      throw new UserError(`${path} lays out sweep ${name} differently from ${inputs[0]!.path}; the files were edited: run those shards again`);
    }
    return { path, held: sweep };
  });
  const values = fillCells(
    `sweep ${name}`,
    layout.shape.reduce((a, b) => a * b, 1),
    parts,
  );
  // Laid out as the whole run lays out a sweep: shape, axes, values, then what else describes it (shard 1's).
  const { shape, axes, cells: _cells, values: _values, ...described } = layout;
  return { shape, axes, values, ...described };
}

/** The spec's patch sets from every shard's share of them. */
function mergePatchSets(inputs: readonly ShardInput[]): PatchSetResult[] {
  const size = inputs[0]!.shard.spec.patch_sets?.length ?? 0;
  const parts = inputs.map(({ path, shard }) => ({ path, held: shard.patchSets ?? { cells: [], values: [] } }));
  return fillCells('the patch sets', size, parts);
}

/** The result one machine would have written, from all the shards of one split run. */
export function mergeShards(inputs: readonly ShardInput[]): PatchResult {
  if (inputs.length === 0) throw new UserError('no shard files to merge; give the files (or folders of them) that patchlens run --shard i/n wrote');
  checkSameRun(inputs);
  checkComplete(inputs);
  const ordered = [...inputs].sort((x, y) => x.shard.shard.index - y.shard.shard.index);
  const first = ordered[0]!.shard;
  const sweepNames = Object.keys(first.sweeps) as SweepName[];
  for (const { path, shard } of ordered) {
    const names = Object.keys(shard.sweeps);
    if (names.join() !== sweepNames.join())
      throw new UserError(`${path} has sweeps ${names.join(', ')} where ${ordered[0]!.path} has ${sweepNames.join(', ')}; the files were edited: run those shards again`);
  }
  // Laid out as runSpec lays out a result: the run's fields, then status, engine, baselines, sweeps.
  const { format: _format, status: _status, engine, baselines, shard: _shard, sweeps: _sweeps, patchSets: shardSets, ...run } = first;
  const createdAt = ordered.map((s) => s.shard.createdAt).reduce((a, b) => (b < a ? b : a));
  const seconds = ordered.reduce((a, s) => a + s.shard.engine.seconds, 0);
  return {
    format: RESULT_FORMAT,
    ...run,
    createdAt,
    status: 'done',
    engine: { ...engine, seconds },
    baselines,
    sweeps: Object.fromEntries(sweepNames.map((name) => [name, mergeSweep(name, ordered)])),
    ...(shardSets ? { patchSets: mergePatchSets(ordered) } : {}),
  };
}
