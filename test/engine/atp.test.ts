/**
 * Attribution patching against PyTorch autograd (tlref_atp.py's fixtures), against exact patching where the
 * metric is linear in the patched activation by construction, and AtP*'s two repairs on models built to
 * break plain AtP.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runAttribution } from '../../src/engine/attribution/runAttribution';
import { HookedTransformer } from '../../src/engine/hookedTransformer';
import type { ModelConfig } from '../../src/engine/model/config';
import { runPatching } from '../../src/engine/patching/runPatching';
import { seededInts } from '../../src/engine/random';
import { Runtime } from '../../src/engine/runtime';
import { SWEEP_NAMES, type ResolvedPair, type ResolvedSpec, type SweepName } from '../../src/protocol/spec';
import { loadGolden } from '../helpers/golden';
import { maxAbsDiff } from '../helpers/models';
import { randomWeights, syntheticConfig } from '../helpers/syntheticModels';

const FIXTURES = join(__dirname, '../fixtures/atp');

for (const family of ['gpt2-2l4h', 'neox-2l4h', 'neel-attn-only-2l4h']) {
  test(`${family}: AtP of every sweep equals PyTorch autograd's (tlref_atp.py), denoising and noising`, async () => {
    const { model, spec } = await loadGolden(family);
    const sweeps = SWEEP_NAMES.filter((s) => existsSync(join(FIXTURES, family, `${s}.json`)));
    assert.equal(sweeps.length, spec.sweeps.length, 'a fixture for every sweep the golden checkpoint has');
    const out = await runAttribution(model.model, { ...spec, sweeps, method: 'atp' });
    for (const sweep of sweeps) {
      const want = JSON.parse(readFileSync(join(FIXTURES, family, `${sweep}.json`), 'utf8'));
      const got = out.sweeps[sweep]!;
      assert.deepEqual(got.shape, want.shape, sweep);
      const d = maxAbsDiff(got.values, (want.values as number[]).flat(4));
      assert.ok(d <= 1e-4, `${sweep}: AtP differs from autograd's by ${d}`);
    }
    const noising = JSON.parse(readFileSync(join(FIXTURES, family, 'attn_head_by_pos_every.noising.json'), 'utf8'));
    const n = await runAttribution(model.model, { ...spec, sweeps: ['attn_head_by_pos_every'], method: 'atp' }, { direction: 'noising' });
    const d = maxAbsDiff(n.sweeps.attn_head_by_pos_every!.values, (noising.values as number[]).flat(4));
    assert.ok(d <= 1e-4, `noising: AtP differs from autograd's by ${d}`);
  });
}

let runtime: Promise<Runtime> | undefined;
const cpu = () => (runtime ??= Runtime.create('cpu'));

/**
 * Attention-only models whose norms are linear: with eps = 1e12 a norm's divisor √(mean(x²) + eps) is
 * exactly 1e6 in float32 for activations of order 1 (the float32 spacing at 1e12 is 65536), and gains of
 * 1e6 undo it. After the last layer's hook_z the metric is then W_O, a sum, a linear norm and the
 * unembedding: linear in hook_z, so the first-order estimate is the exact patching effect.
 */
function linearAfterAttention(over: Partial<ModelConfig>, seed: number): { cfg: ModelConfig; model: Promise<HookedTransformer> } {
  const cfg = syntheticConfig({ attnOnly: true, normEps: 1e12, ...over });
  const w = randomWeights(cfg, seed);
  for (const b of w.blocks) for (const t of [b.ln1W, b.ln1PostW]) if (t) t.data.forEach((v, i) => (t.data[i] = v * 1e6));
  w.lnfW.data.forEach((v, i) => (w.lnfW.data[i] = v * 1e6));
  return { cfg, model: cpu().then((r) => new HookedTransformer(cfg, w, r)) };
}

function randomPairs(cfg: ModelConfig, seed: number, P = 6): ResolvedPair[] {
  const rnd = seededInts(seed);
  return [0, 1].map(() => {
    const clean = Array.from({ length: P }, () => rnd(0, cfg.dVocab));
    return { clean, corrupted: clean.map((t, k) => (k % 2 ? rnd(0, cfg.dVocab) : t)), answer: rnd(0, cfg.dVocab), wrong: rnd(0, cfg.dVocab) };
  });
}

const invFreq = (dim: number) => Array.from({ length: dim / 2 }, (_, i) => 10000 ** (-(2 * i) / dim));
const LINEAR_CASES: [string, Partial<ModelConfig>][] = [
  ['GPT-2-like', {}],
  ['NeoX-like (rotary, parallel)', { positional: 'rotary', rotary: { dim: 2, invFreq: invFreq(2) }, parallelAttnMlp: true }],
  ['Llama-like (RMSNorm, rotary, GQA)', { norm: 'rmsnorm', positional: 'rotary', rotary: { dim: 4, invFreq: invFreq(4) }, nKvHeads: 2, tiedEmbeddings: false }],
];

LINEAR_CASES.forEach(([label, over], i) => {
  test(`${label}: where the metric is linear in the last layer's hook_z, AtP equals exact patching within 1e-5`, async () => {
    const { cfg, model } = linearAfterAttention(over, 500 + i);
    const m = await model;
    const sweeps: SweepName[] = ['attn_head_out_by_pos', 'attn_head_out_all_pos'];
    const spec: ResolvedSpec = { name: 'linear', model: undefined, metric: 'logit_diff', sweeps, prependBos: false, pairs: randomPairs(cfg, 60 + i) };
    const est = await runAttribution(m, { ...spec, method: 'atp' });
    const exact = await runPatching(m, spec);
    for (const sweep of sweeps) {
      const shape = exact.sweeps[sweep]!.shape;
      const perLayer = shape.slice(1).reduce((a, b) => a * b, 1);
      const last = (v: (number | null)[]) => v.slice((cfg.nLayers - 1) * perLayer);
      const e = last(exact.sweeps[sweep]!.values);
      assert.ok(Math.max(...e.map((x) => Math.abs(x! - exact.baselines.corrupted))) > 1e-2, `${sweep}: the patches change the metric`);
      const d = maxAbsDiff(last(est.sweeps[sweep]!.values), e);
      assert.ok(d <= 1e-5, `${sweep}: AtP and exact patching differ by ${d} in the last layer`);
    }
  });
});
