// Noising (corrupted activations into the clean run) and ablations (zeros, or means over the dataset's clean
// runs, into the clean run, with no corrupted prompt): every sweep against the float64 reference's naive
// loop writing the same values into the same run, in both modes, on pairs of different lengths with labels.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SWEEP_NAMES, type SweepName } from '../../src/protocol/spec';
import { runPatching } from '../../src/engine/patching/runPatching';
import { referenceForward } from '../helpers/reference';
import { refAblationCache, referenceSweep, sweepWithCache, type SweepName as RefSweepName } from '../helpers/referencePatching';
import { maxAbsDiff, randomModel } from '../helpers/models';
import { labelledPairs, padded, paddedPrompts, refLabels, refMetricOf, specOf } from '../helpers/patchingCases';

const TOL = 1e-4;
const O = { nLayers: 2, nHeads: 3, dModel: 12, dVocab: 50, nCtx: 16, seed: 81 };
const PATTERN = /pattern|_every$/;

for (const mode of ['naive', 'fast'] as const) {
  test(`${mode}: noising writes the corrupted run's activations into the clean run, every sweep, over labels and positions`, async () => {
    const m = await randomModel(O);
    const bos = m.cfg.bosTokenId;
    for (const labelled of [true, false]) {
      const pairs = labelledPairs(m, 81, [7, 4, 6]).map((p) => (labelled ? p : { ...p, labels: undefined }));
      const spec = specOf(pairs, [...SWEEP_NAMES], { direction: 'noising' });
      const out = await runPatching(m.model, spec, { mode, memoryBudgetMiB: 0.02 });
      const { clean, corrupted } = paddedPrompts(pairs, bos);
      for (const name of SWEEP_NAMES) {
        // The reference's loop with the roles swapped: the corrupted run is the source, the clean prompts are run.
        const ref = referenceSweep(m.ref, corrupted, clean, name as RefSweepName, refMetricOf(pairs), labelled ? refLabels(spec) : undefined);
        const d = maxAbsDiff(out.sweeps[name as SweepName]!.values, ref.values);
        assert.ok(d <= TOL, `${labelled ? 'labelled' : 'positions'} ${name}: max abs diff ${d}`);
      }
    }
  });

  test(`${mode}: noising's normalized metric is 0 at the clean run and 1 at the corrupted one`, async () => {
    const m = await randomModel(O);
    const pairs = labelledPairs(m, 82, [6, 5]);
    const metric = refMetricOf(pairs);
    const bos = m.cfg.bosTokenId;
    const { clean, corrupted } = paddedPrompts(pairs, bos);
    const lc = metric(referenceForward(m.ref, clean).logits);
    const lk = metric(referenceForward(m.ref, corrupted).logits);
    const out = await runPatching(m.model, specOf(pairs, ['resid_pre'], { direction: 'noising', metric: 'normalized_logit_diff' }), { mode });
    const ref = referenceSweep(m.ref, corrupted, clean, 'resid_pre', metric, refLabels(specOf(pairs, [])));
    const want = Array.from(ref.values, (v) => (v - lc) / (lk - lc));
    assert.ok(maxAbsDiff(out.sweeps.resid_pre!.values, want) <= TOL);
    assert.ok(Math.abs(out.baselines.clean - lc) <= TOL && Math.abs(out.baselines.corrupted! - lk) <= TOL);
  });

  for (const ablation of ['zero', 'mean', 'mean_over_positions'] as const) {
    test(`${mode}: ${ablation} ablation of the clean run equals the reference's, every sweep${ablation === 'mean_over_positions' ? ' but the pattern ones' : ''}, over labels`, async () => {
      const m = await randomModel(O);
      const bos = m.cfg.bosTokenId;
      const pairs = labelledPairs(m, 83, [7, 4, 6]);
      const sweeps = SWEEP_NAMES.filter((s) => ablation !== 'mean_over_positions' || !PATTERN.test(s));
      const spec = specOf(pairs, sweeps, { ablation });
      const out = await runPatching(m.model, spec, { mode, memoryBudgetMiB: 0.02 });
      assert.equal(out.baselines.corrupted, undefined, 'an ablation has no corrupted run');
      const clean = padded(
        pairs.map((p) => p.clean),
        bos,
      );
      const source = refAblationCache(
        referenceForward(m.ref, clean).cache,
        ablation,
        pairs.map((p) => p.clean.length),
      );
      for (const name of sweeps) {
        const ref = sweepWithCache(m.ref, source, clean, name as RefSweepName, refMetricOf(pairs), refLabels(spec));
        const d = maxAbsDiff(out.sweeps[name as SweepName]!.values, ref.values);
        assert.ok(d <= TOL, `${name}: max abs diff ${d}`);
      }
    });
  }
}

test('a pattern sweep with mean_over_positions is refused with one message before any work', async () => {
  const m = await randomModel(O);
  const spec = specOf(labelledPairs(m, 84, [5, 6]), ['attn_head_pattern_all_pos'], { ablation: 'mean_over_positions' });
  await assert.rejects(
    runPatching(m.model, spec),
    /attention pattern, whose entries belong to a destination and a source position and have no mean over positions; use ablation "mean" or "zero"/,
  );
});
