/**
 * The engine's backward pass (graph/backward.ts on the graphs of every family) against float64 central
 * differences of the reference: for every hook point, the directional derivative of the metric along a
 * random direction equals the engine's gradient dotted with that direction, to 1e-4 of the sum of the
 * products' magnitudes (a relative bound that cancellation within the dot product cannot loosen).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { MetricBackward } from '../../src/engine/attribution/gradients';
import { HookedTransformer } from '../../src/engine/hookedTransformer';
import { allHookNames, type BlockHook, blockHookName } from '../../src/engine/hooks';
import type { Tensor32 } from '../../src/engine/tensor';
import type { ModelConfig } from '../../src/engine/model/config';
import { Metric } from '../../src/engine/patching/metrics';
import { seededInts } from '../../src/engine/random';
import { Runtime } from '../../src/engine/runtime';
import type { MetricName, ResolvedPair } from '../../src/protocol/spec';
import { GOLDEN_ROOT } from '../helpers/golden';
import { loadTestModel } from '../helpers/models';
import { referenceForward, type RefActivation, type RefModel } from '../helpers/reference';
import { randomDirection, referenceDirectional } from '../helpers/referenceGradients';
import { randomWeights, SYNTHETIC_CASES, toReference } from '../helpers/syntheticModels';

const REL = 1e-4;

function pairsFor(cfg: ModelConfig, seed: number, P = 6): ResolvedPair[] {
  const rnd = seededInts(seed);
  return [0, 1].map(() => {
    const clean = Array.from({ length: P }, () => rnd(0, cfg.dVocab));
    const answer = rnd(0, cfg.dVocab);
    return {
      clean,
      corrupted: clean,
      answer,
      wrong: (answer + 1) % cfg.dVocab,
      targets: [
        { pos: P - 3, token: rnd(0, cfg.dVocab) },
        { pos: P - 1, token: answer },
      ],
    };
  });
}

/** The metric on reference logits, written out plainly. */
function refMetric(name: MetricName, pairs: ResolvedPair[], cleanLogits: RefActivation): (l: RefActivation) => number {
  const [, P, V] = cleanLogits.shape as [number, number, number];
  const logProbs = (l: RefActivation, b: number, p: number) => {
    const row = Array.from(l.data.subarray((b * P + p) * V, (b * P + p + 1) * V));
    const mx = Math.max(...row);
    const lse = mx + Math.log(row.reduce((s, x) => s + Math.exp(x - mx), 0));
    return row.map((x) => x - lse);
  };
  return (l) => {
    let total = 0;
    pairs.forEach((pair, b) => {
      if (name === 'logit_diff') {
        const base = (b * P + P - 1) * V;
        total += l.data[base + pair.answer!]! - l.data[base + pair.wrong!]!;
        return;
      }
      let s = 0;
      for (const t of pair.targets!) {
        const lp = logProbs(l, b, t.pos);
        if (name === 'kl_divergence') s += logProbs(cleanLogits, b, t.pos).reduce((acc, c, v) => acc + Math.exp(c) * (c - lp[v]!), 0);
        else s += name === 'answer_prob' ? Math.exp(lp[t.token]!) : lp[t.token]!;
      }
      total += s / pair.targets!.length;
    });
    return total / pairs.length;
  };
}

/**
 * With `only`, the gradients of those block hooks alone, a block at a time, from a run given to `start`
 * (attribution's path: the norms no hook reads stay fused, a logit difference's unembedding reads two
 * columns); without, every hook point's from `all`.
 */
async function expectGradientsMatch(model: HookedTransformer, ref: RefModel, seed: number, metricName: MetricName = 'logit_diff', only?: BlockHook[]): Promise<void> {
  const cfg = model.cfg;
  const pairs = pairsFor(cfg, seed);
  const ids = pairs.map((p) => p.corrupted);
  const P = ids[0]!.length;
  const metric = new Metric(metricName, pairs, cfg.dVocab);
  const rows = pairs.flatMap((_, i) => metric.positions[i]!.map((p) => i * P + p));
  // kl_divergence compares with a "clean" distribution: here another run's (the rows reversed).
  const other = await model.forward([...ids].reverse(), { logitRows: rows });
  metric.setCleanLogits(other.logits.data);
  let grads: Map<string, Tensor32>;
  let back: MetricBackward;
  let names: string[];
  if (only) {
    const capture = [...Array.from({ length: cfg.nLayers }, (_, l) => blockHookName(l, 'hook_resid_pre')), blockHookName(cfg.nLayers - 1, 'hook_resid_post')];
    const run = await model.forward(ids, { capture, logitRows: rows });
    back = await MetricBackward.start(model, ids, metric, rows, { run: { cache: run.cache, logits: run.logits.data } });
    grads = new Map();
    let g = back.gradFinal;
    for (let l = cfg.nLayers - 1; l >= 0; l--) {
      const r = await back.block(l, g, { grads: only });
      for (const [h, t] of r.grads) grads.set(blockHookName(l, h), t);
      g = r.gradInput;
    }
    names = [...grads.keys()];
  } else {
    back = await MetricBackward.start(model, ids, metric, rows);
    grads = await back.all();
    names = allHookNames(cfg);
  }
  const refRun = referenceForward(ref, ids);
  const refM = refMetric(metricName, pairs, referenceForward(ref, [...ids].reverse()).logits);
  assert.ok(Math.abs(back.value - refM(refRun.logits)) < 1e-4, `metric ${back.value} vs reference ${refM(refRun.logits)}`);
  if (!only) assert.deepEqual([...grads.keys()].sort(), [...names].sort(), 'a gradient for every hook point');
  names.forEach((name, k) => {
    // The engine adds shortformer positions from the weights inside each block and only reports
    // hook_pos_embed (patching it changes nothing there); TransformerLens's blocks read the hooked value.
    if (name === 'hook_pos_embed' && cfg.positional === 'shortformer') return;
    const g = grads.get(name)!;
    const act = refRun.cache.get(name)!;
    assert.deepEqual(g.shape, act.shape, name);
    const v = randomDirection(act, seed * 1000 + k);
    let dot = 0;
    let scale = 0;
    for (let i = 0; i < v.length; i++) {
      assert.ok(Number.isFinite(g.data[i]!), `${name}: gradient ${g.data[i]} at ${i}`);
      dot += g.data[i]! * v[i]!;
      scale += Math.abs(g.data[i]! * v[i]!);
    }
    const fd = referenceDirectional(ref, ids, refM, name, v);
    assert.ok(Math.abs(fd - dot) <= REL * scale + 1e-9, `${name}: engine ${dot}, float64 finite difference ${fd} (scale ${scale})`);
  });
}

// The golden checkpoints of every family, read by the real loader: Gemma 2's soft-caps and window, Gemma 3's
// q/k norms and two rope bases, Qwen3's head_dim, OLMo 2's norms after the sublayers, as their hubs store them.
for (const family of ['gpt2-2l4h', 'neox-2l4h', 'neel-attn-only-2l4h', 'llama-2l4h-gqa', 'gemma2-2l4h', 'gemma3-2l4h', 'qwen3-2l4h', 'olmo2-2l4h']) {
  test(`${family}: the gradient of every hook point equals float64 finite differences of the reference`, async () => {
    const m = await loadTestModel(join(GOLDEN_ROOT, family, 'model'));
    await expectGradientsMatch(m.model, m.ref, 11);
  });
}

for (const family of ['gpt2-2l4h', 'neox-2l4h', 'llama-2l4h-gqa', 'gemma2-2l4h', 'gemma3-2l4h', 'qwen3-2l4h', 'olmo2-2l4h']) {
  test(`${family}: the hooks attribution reads, with the norms fused and two columns of the unembedding, equal finite differences`, async () => {
    const m = await loadTestModel(join(GOLDEN_ROOT, family, 'model'));
    await expectGradientsMatch(m.model, m.ref, 13, 'logit_diff', ['hook_resid_pre', 'attn.hook_z', 'attn.hook_pattern', 'hook_mlp_out', 'hook_resid_post']);
  });
}

for (const metric of ['answer_logprob', 'answer_prob', 'kl_divergence'] as const) {
  test(`${metric}: its gradient through the model equals float64 finite differences`, async () => {
    const m = await loadTestModel(join(GOLDEN_ROOT, 'gpt2-2l4h', 'model'));
    await expectGradientsMatch(m.model, m.ref, 12, metric);
  });
}

let runtime: Promise<Runtime> | undefined;
SYNTHETIC_CASES.forEach(([label, cfg], i) => {
  test(`${label}: the gradient of every hook point equals float64 finite differences`, async () => {
    const w = randomWeights(cfg, 300 + i);
    const model = new HookedTransformer(cfg, w, await (runtime ??= Runtime.create('cpu')));
    await expectGradientsMatch(model, toReference(cfg, w), 40 + i);
  });
});
