/**
 * The checks every model family's tests make against the float64 reference: logits and every hook point of
 * a forward, and every sweep the model has in both executors against the reference's naive loop.
 */
import assert from 'node:assert/strict';
import type { HookedTransformer } from '../../src/engine/hookedTransformer';
import { allHookNames } from '../../src/engine/hooks';
import type { ModelConfig } from '../../src/engine/model/config';
import { runPatching } from '../../src/engine/patching/runPatching';
import { seededInts } from '../../src/engine/random';
import { SWEEP_NAMES, type ResolvedPair, type SweepName } from '../../src/protocol/spec';
import { maxAbsDiff } from './models';
import { referenceForward, type RefModel } from './reference';
import { referenceSweep, refLogitDiff, type SweepName as RefSweepName } from './referencePatching';

export const TOL = 1e-4;

/** The sweeps a model of this config has hooks for (TransformerLens raises KeyError on the others). */
export function sweepsOf(cfg: ModelConfig): SweepName[] {
  const lacks = (s: SweepName) => (cfg.attnOnly && /resid_mid|mlp_out|block_every/.test(s)) || (cfg.parallelAttnMlp && s === 'resid_mid');
  return SWEEP_NAMES.filter((s) => !lacks(s));
}

/** Logits and every hook point of a forward on random ids equal the reference's, with the same hook names and shapes. */
export async function expectForwardMatches(model: HookedTransformer, ref: RefModel, cfg: ModelConfig, seed: number): Promise<void> {
  const rnd = seededInts(seed);
  const ids = Array.from({ length: 2 }, () => Array.from({ length: 7 }, () => rnd(0, cfg.dVocab)));
  const got = await model.runWithCache(ids);
  const want = referenceForward(ref, ids);
  const d = maxAbsDiff(got.logits.data, want.logits.data);
  assert.ok(d <= TOL, `logits differ by ${d}`);
  assert.deepEqual([...got.cache.keys()].sort(), [...want.cache.keys()].sort(), "the engine has exactly the reference's hook points");
  for (const name of allHookNames(cfg)) {
    const a = got.cache.get(name)!;
    const r = want.cache.get(name)!;
    assert.deepEqual(a.shape, r.shape, name);
    const dh = maxAbsDiff(a.data, r.data);
    assert.ok(dh <= TOL, `${name} differs by ${dh}`);
  }
}

/** Every sweep the model has, fast and naive, equals the reference's naive loop on two random pairs of `P` tokens. */
export async function expectSweepsMatch(model: HookedTransformer, ref: RefModel, cfg: ModelConfig, seed: number, P = 6): Promise<void> {
  const rnd = seededInts(seed);
  const pairs: ResolvedPair[] = [0, 1].map(() => {
    const clean = Array.from({ length: P }, () => rnd(0, cfg.dVocab));
    return { clean, corrupted: clean.map((t, k) => (k % 2 ? rnd(0, cfg.dVocab) : t)), answer: rnd(0, cfg.dVocab), wrong: rnd(0, cfg.dVocab) };
  });
  const sweeps = sweepsOf(cfg);
  const metric = refLogitDiff(
    [P - 1, P - 1],
    pairs.map((p) => [p.answer!, p.wrong!]),
  );
  const want = new Map(
    sweeps.map((name) => [
      name,
      referenceSweep(
        ref,
        pairs.map((p) => p.clean),
        pairs.map((p) => p.corrupted),
        name as RefSweepName,
        metric,
      ),
    ]),
  );
  for (const mode of ['fast', 'naive'] as const) {
    // A small memory budget splits the fast executor's batches, as a large model's would be.
    const out = await runPatching(model, { name: 't', model: undefined, metric: 'logit_diff', sweeps, prependBos: false, pairs }, { mode, memoryBudgetMiB: 0.02 });
    for (const name of sweeps) {
      const d = maxAbsDiff(out.sweeps[name]!.values, want.get(name)!.values);
      assert.ok(d <= TOL, `${mode} ${name}: max abs diff ${d}`);
    }
  }
}
