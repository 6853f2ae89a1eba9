// The units a split run deals out (UnitPlanner): every patch in exactly one unit, and a unit's patches
// evaluated alone give the values the whole list gives, bit for bit, in both modes, with the fast
// executor's batches cut small by the memory budget; and how units are dealt to shards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SweepName } from '../../src/protocol/spec';
import { EXECUTORS, preparePatching, UNIT_PLANNERS } from '../../src/engine/patching/runPatching';
import { dealUnits } from '../../src/engine/patching/runShard';
import { planSweep } from '../../src/engine/patching/sweeps';
import { randomModel } from '../helpers/models';
import { labelledPairs, specOf } from '../helpers/patchingCases';

for (const mode of ['fast', 'naive'] as const) {
  test(`${mode}: each unit evaluated alone gives the whole list's values bit for bit, over labels and positions`, async () => {
    const m = await randomModel({ nLayers: 2, nHeads: 2, dModel: 8, dVocab: 40, nCtx: 16, seed: 91 });
    // Position-local patches (gathered rows), a key (every later position), pattern rows, a stacked sweep's shared slots.
    const sweeps: SweepName[] = ['resid_pre', 'attn_head_out_by_pos', 'attn_head_k_by_pos', 'attn_head_pattern_by_pos', 'block_every'];
    for (const labelled of [true, false]) {
      const pairs = labelledPairs(m, 91, [6, 4, 5]).map((p) => (labelled ? p : { ...p, labels: undefined }));
      const spec = specOf(pairs, sweeps);
      const { problem, positions } = await preparePatching(m.model, spec, { memoryBudgetMiB: 0.02 });
      const patches = spec.sweeps.flatMap((name) => planSweep(name, m.cfg, positions).slots).map((s) => [s]);
      const all = await EXECUTORS[mode](problem, patches, {});
      const units = UNIT_PLANNERS[mode](problem, patches);
      assert.deepEqual(
        units.flatMap((u) => u.members).sort((a, b) => a - b),
        patches.map((_, i) => i),
        'every patch in exactly one unit',
      );
      assert.ok(units.length > 2 * sweeps.length, `${units.length} units: the budget cuts the work finely`);
      for (const u of units) {
        const alone = await EXECUTORS[mode](
          problem,
          u.members.map((i) => patches[i]!),
          {},
        );
        u.members.forEach((i, k) => assert.ok(Object.is(alone[k], all[i]), `${labelled ? 'labelled' : 'positions'} patch ${i}: ${alone[k]} alone, ${all[i]} in the whole list`));
      }
    }
  });
}

test('units are dealt costliest first to the least loaded shard, the same way every time', () => {
  assert.deepEqual(dealUnits([5, 4, 3, 3, 2, 1], 2), [0, 1, 1, 0, 1, 0]);
  const costs = Array.from({ length: 200 }, (_, i) => ((i * 7919) % 97) + 1);
  for (const n of [1, 3, 7]) {
    const owner = dealUnits(costs, n);
    assert.deepEqual(owner, dealUnits([...costs], n));
    const load = new Array<number>(n).fill(0);
    owner.forEach((s, u) => (load[s]! += costs[u]!));
    // Largest-first greedy: no shard carries more than the mean plus one unit.
    assert.ok(Math.max(...load) <= costs.reduce((a, b) => a + b, 0) / n + Math.max(...costs), `loads ${load}`);
  }
  // More shards than units: the rest are empty, never an error.
  assert.deepEqual(dealUnits([3, 1], 4), [0, 1]);
});
