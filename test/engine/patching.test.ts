import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SWEEP_NAMES, type MetricName, type ResolvedPair, type ResolvedSpec, type SweepName } from '../../src/protocol/spec';
import { runPatching } from '../../src/engine/patching/runPatching';
import type { PatchingMode } from '../../src/protocol/engineRpc';
import { referenceSweep, refLogitDiff, refSweepAxes, type SweepName as RefSweepName } from '../helpers/referencePatching';
import { type RefActivation } from '../helpers/reference';
import { expectGoldenMatches, loadGolden, sameAxes } from '../helpers/golden';
import { maxAbsDiff, randomModel, seededInts, type TestModel } from '../helpers/models';
import { paddedPrompts } from '../helpers/patchingCases';

const TOL = 1e-4;
const MODES: PatchingMode[] = ['naive', 'fast'];

for (const mode of MODES) {
  test(`${mode}: every sweep on the golden checkpoint equals the TransformerLens-checked values`, async () => {
    await expectGoldenMatches('gpt2-2l4h', mode);
    const { dir, model, spec } = await loadGolden('gpt2-2l4h');
    assert.equal(spec.sweeps.length, SWEEP_NAMES.length, 'GPT-2 has every sweep');
    const norm = JSON.parse(readFileSync(join(dir, 'expected', 'resid_pre.normalized_logit_diff.json'), 'utf8'));
    const n = await runPatching(model.model, { ...spec, metric: 'normalized_logit_diff', sweeps: ['resid_pre'] }, { mode });
    assert.ok(maxAbsDiff(n.sweeps.resid_pre!.values, (norm.values as number[][]).flat()) <= TOL);
  });
}

/** Two pairs of different lengths; each pair's clean and corrupted differ in a few tokens. */
function makePairs(m: TestModel, seed: number, lengths: number[]): ResolvedPair[] {
  const rnd = seededInts(seed);
  return lengths.map((len) => {
    const clean = Array.from({ length: len }, () => rnd(0, m.cfg.dVocab));
    const corrupted = clean.map((t, i) => (i % 2 === 1 ? rnd(0, m.cfg.dVocab) : t));
    const answer = rnd(0, m.cfg.dVocab);
    const targets = [
      { pos: len - 2, token: clean[len - 1]! },
      { pos: len - 1, token: rnd(0, m.cfg.dVocab) },
    ];
    return { clean, corrupted, answer, wrong: (answer + 1) % m.cfg.dVocab, targets };
  });
}

/** The metrics written out plainly on reference logits [B, P, V], for the comparison. */
function refMetric(name: MetricName, pairs: ResolvedPair[], cleanLogits: RefActivation): (l: RefActivation) => number {
  const [, P, V] = cleanLogits.shape as [number, number, number];
  const logProbs = (l: RefActivation, b: number, p: number) => {
    const row = Array.from(l.data.subarray((b * P + p) * V, (b * P + p + 1) * V));
    const mx = Math.max(...row);
    const lse = mx + Math.log(row.reduce((s, x) => s + Math.exp(x - mx), 0));
    return row.map((x) => x - lse);
  };
  const positions = (pair: ResolvedPair) => (name === 'logit_diff' ? [pair.clean.length - 1] : pair.targets!.map((t) => t.pos));
  if (name === 'logit_diff')
    return refLogitDiff(
      pairs.map((p) => p.clean.length - 1),
      pairs.map((p) => [p.answer!, p.wrong!]),
    );
  return (l) => {
    let total = 0;
    pairs.forEach((pair, b) => {
      let s = 0;
      positions(pair).forEach((p, k) => {
        const lp = logProbs(l, b, p);
        if (name === 'kl_divergence') {
          const cl = logProbs(cleanLogits, b, p);
          s += cl.reduce((acc, c, v) => acc + Math.exp(c) * (c - lp[v]!), 0);
        } else {
          const x = lp[pair.targets![k]!.token]!;
          s += name === 'answer_prob' ? Math.exp(x) : x;
        }
      });
      total += s / positions(pair).length;
    });
    return total / pairs.length;
  };
}

const RANDOM = [
  { nLayers: 2, nHeads: 3, dModel: 12, dVocab: 50, nCtx: 16, seed: 21 },
  { nLayers: 3, nHeads: 2, dModel: 8, dVocab: 40, nCtx: 16, seed: 22 },
];

for (const mode of MODES) {
  for (const o of RANDOM) {
    test(`${mode} ${o.nLayers}L/${o.nHeads}H: every sweep equals the naive loop on the float64 reference, pairs of lengths 6 and 4`, async () => {
      const m = await randomModel(o);
      const pairs = makePairs(m, o.seed, [6, 4]);
      const resolved: ResolvedSpec = { name: 't', model: undefined, metric: 'logit_diff', sweeps: [...SWEEP_NAMES], prependBos: false, pairs };
      const out = await runPatching(m.model, resolved, { mode, memoryBudgetMiB: 0.05 });
      const { clean, corrupted } = paddedPrompts(pairs, m.cfg.bosTokenId);
      const metric = refMetric('logit_diff', pairs, { shape: [2, 6, m.cfg.dVocab], data: new Float64Array(0) });
      for (const name of SWEEP_NAMES) {
        const ref = referenceSweep(m.ref, clean, corrupted, name as RefSweepName, metric);
        const got = out.sweeps[name as SweepName]!;
        assert.deepEqual(got.shape, ref.shape, name);
        assert.deepEqual(sameAxes(got.axes, refSweepAxes(name as RefSweepName)), refSweepAxes(name as RefSweepName), name);
        const d = maxAbsDiff(got.values, ref.values);
        assert.ok(d <= TOL, `${name}: max abs diff ${d}`);
      }
    });
  }

  test(`${mode}: answer_logprob, answer_prob and kl_divergence equal the reference's`, async () => {
    const m = await randomModel(RANDOM[0]!);
    const pairs = makePairs(m, 5, [5, 7]);
    const { clean, corrupted } = paddedPrompts(pairs, m.cfg.bosTokenId);
    const { referenceForward } = await import('../helpers/reference');
    const cleanLogits = referenceForward(m.ref, clean).logits;
    const corruptedLogits = referenceForward(m.ref, corrupted).logits;
    for (const metricName of ['answer_logprob', 'answer_prob', 'kl_divergence'] as const) {
      const resolved: ResolvedSpec = { name: 't', model: undefined, metric: metricName, sweeps: ['resid_pre', 'attn_head_v_all_pos'], prependBos: false, pairs };
      const out = await runPatching(m.model, resolved, { mode });
      const metric = refMetric(metricName, pairs, cleanLogits);
      assert.ok(Math.abs(out.baselines.clean - metric(cleanLogits)) <= TOL, `${metricName} clean baseline`);
      assert.ok(Math.abs(out.baselines.corrupted! - metric(corruptedLogits)) <= TOL, `${metricName} corrupted baseline`);
      for (const name of resolved.sweeps) {
        const ref = referenceSweep(m.ref, clean, corrupted, name as RefSweepName, metric);
        const d = maxAbsDiff(out.sweeps[name]!.values, ref.values);
        assert.ok(d <= TOL, `${metricName} ${name}: max abs diff ${d}`);
      }
    }
  });
}

test('normalized_logit_diff with equal baselines is an error that shows both raw values', async () => {
  const m = await randomModel(RANDOM[1]!);
  const [pair] = makePairs(m, 9, [5]);
  const same = { ...pair!, corrupted: [...pair!.clean] };
  const resolved: ResolvedSpec = { name: 't', model: undefined, metric: 'normalized_logit_diff', sweeps: ['resid_pre'], prependBos: false, pairs: [same] };
  await assert.rejects(runPatching(m.model, resolved), (e: Error) => {
    assert.equal(e.name, 'UserError');
    assert.match(e.message, /clean (-?\d\.\d+).*corrupted \1/);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
});

test('fast equals naive to 1e-5 on several checkpoints and prompt batches, for every sweep, with batches split by a small memory budget', async () => {
  const cases = [
    { o: { nLayers: 3, nHeads: 4, dModel: 16, dVocab: 60, nCtx: 20, seed: 31 }, lengths: [9, 5, 7] },
    { o: { nLayers: 2, nHeads: 2, dModel: 8, dVocab: 30, nCtx: 12, seed: 32, dMlp: 20 }, lengths: [4] },
  ];
  for (const { o, lengths } of cases) {
    const m = await randomModel(o);
    const pairs = makePairs(m, o.seed, lengths);
    const resolved: ResolvedSpec = { name: 't', model: undefined, metric: 'logit_diff', sweeps: [...SWEEP_NAMES], prependBos: false, pairs };
    const naive = await runPatching(m.model, resolved, { mode: 'naive' });
    for (const budget of [1024, 0.02]) {
      const fast = await runPatching(m.model, resolved, { mode: 'fast', memoryBudgetMiB: budget });
      for (const name of SWEEP_NAMES) {
        const d = maxAbsDiff(fast.sweeps[name]!.values, naive.sweeps[name]!.values);
        assert.ok(d <= 1e-5, `${o.seed} ${name} budget ${budget}: fast vs naive differ by ${d}`);
      }
    }
  }
});
