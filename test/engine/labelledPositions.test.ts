// Labelled positions: every sweep of a spec whose pairs (of different lengths) name positions runs over the
// labels, each pair patched at its own positions for a label, and equals the float64 reference's naive loop
// doing exactly that (test/helpers/referencePatching.ts), in both modes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SWEEP_NAMES, type SweepName } from '../../src/protocol/spec';
import { runPatching } from '../../src/engine/patching/runPatching';
import { referenceSweep, type SweepName as RefSweepName } from '../helpers/referencePatching';
import { maxAbsDiff, randomModel } from '../helpers/models';
import { labelledPairs, paddedPrompts, refLabels, refMetricOf, specOf } from '../helpers/patchingCases';

const TOL = 1e-4;

for (const mode of ['naive', 'fast'] as const) {
  test(`${mode}: every sweep over labels equals the reference's naive loop with each pair at its own positions (lengths 7, 4, 6)`, async () => {
    const m = await randomModel({ nLayers: 2, nHeads: 3, dModel: 12, dVocab: 50, nCtx: 16, seed: 71 });
    const spec = specOf(labelledPairs(m, 71, [7, 4, 6]), [...SWEEP_NAMES]);
    // A small budget splits the fast executor's batches.
    const out = await runPatching(m.model, spec, { mode, memoryBudgetMiB: 0.02 });
    const bos = m.cfg.bosTokenId;
    const { clean, corrupted } = paddedPrompts(spec.pairs, bos);
    for (const name of SWEEP_NAMES) {
      const ref = referenceSweep(m.ref, clean, corrupted, name as RefSweepName, refMetricOf(spec.pairs), refLabels(spec));
      const got = out.sweeps[name as SweepName]!;
      assert.deepEqual(got.shape, ref.shape, name);
      assert.deepEqual(got.labels, got.axes.some((a) => /label/.test(a)) ? ['A', 'B', 'END'] : undefined, name);
      assert.ok(!got.axes.some((a) => /pos/.test(a)), `${name}: a labelled sweep has no token-position axis (${got.axes})`);
      const d = maxAbsDiff(got.values, ref.values);
      assert.ok(d <= TOL, `${name}: max abs diff ${d}`);
    }
  });
}

test('fast equals naive to 1e-5 on labelled sweeps of a deeper model, whole batches and split ones', async () => {
  const m = await randomModel({ nLayers: 3, nHeads: 2, dModel: 8, dVocab: 40, nCtx: 16, seed: 72 });
  const spec = specOf(labelledPairs(m, 72, [5, 9, 6, 8]), [...SWEEP_NAMES]);
  const naive = await runPatching(m.model, spec, { mode: 'naive' });
  for (const budget of [1024, 0.02]) {
    const fast = await runPatching(m.model, spec, { mode: 'fast', memoryBudgetMiB: budget });
    for (const name of SWEEP_NAMES) {
      const d = maxAbsDiff(fast.sweeps[name]!.values, naive.sweeps[name]!.values);
      assert.ok(d <= 1e-5, `${name} budget ${budget}: fast vs naive differ by ${d}`);
    }
  }
});
