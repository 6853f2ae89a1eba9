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
    // The stacked sweep: absent key/value heads of a grouped-query model are null in both, nowhere else.
    const spec: ResolvedSpec = {
      name: 'linear',
      model: undefined,
      metric: 'logit_diff',
      sweeps: [...sweeps, 'attn_head_all_pos_every'],
      prependBos: false,
      pairs: randomPairs(cfg, 60 + i),
    };
    const est = await runAttribution(m, { ...spec, method: 'atp' });
    const exact = await runPatching(m, spec);
    const nulls = (r: typeof exact) => r.sweeps.attn_head_all_pos_every!.values.flatMap((v, k) => (v === null ? [k] : []));
    assert.deepEqual(nulls(est), nulls(exact));
    assert.equal(nulls(exact).length > 0, cfg.nKvHeads < cfg.nHeads);
    for (const sweep of sweeps) {
      const shape = exact.sweeps[sweep]!.shape;
      const perLayer = shape.slice(1).reduce((a, b) => a * b, 1);
      const last = (v: (number | null)[]) => v.slice((cfg.nLayers - 1) * perLayer);
      const e = last(exact.sweeps[sweep]!.values);
      assert.ok(Math.max(...e.map((x) => Math.abs(x! - exact.baselines.corrupted!))) > 1e-2, `${sweep}: the patches change the metric`);
      const d = maxAbsDiff(last(est.sweeps[sweep]!.values), e);
      assert.ok(d <= 1e-5, `${sweep}: AtP and exact patching differ by ${d} in the last layer`);
    }
  });
});

/**
 * Hand-built models in a d_model of 8 whose residual directions are zero-mean pairs (e0 = [1, −1, 0, …],
 * e1 = [0, 0, 1, −1, …], …), so a LayerNorm with eps 1e12 and gain 1e6 (see linearAfterAttention) is the
 * identity on them: every nonlinearity is the one the test builds.
 */
const D = 8;
const dir = (k: number, scale = 1): Float32Array => {
  const v = new Float32Array(D);
  v[2 * k] = scale;
  v[2 * k + 1] = -scale;
  return v;
};
const zeros = (...shape: number[]) => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
const filled = (shape: number[], value: number) => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(value) });
const rowsOf = (rows: Float32Array[]) => ({ shape: [rows.length, D], data: Float32Array.from(rows.flatMap((r) => [...r])) });
/** [D, n] with column c = cols[c]. */
const columns = (cols: Float32Array[]) => {
  const t = zeros(D, cols.length);
  cols.forEach((c, j) => c.forEach((v, i) => (t.data[i * cols.length + j] = v)));
  return t;
};
const handConfig = (over: Partial<ModelConfig>): ModelConfig => ({
  ...syntheticConfig({ nHeads: 1, nKvHeads: 1, dModel: D, dVocab: 4, nCtx: 4, normEps: 1e12, tiedEmbeddings: false, ...over }),
  dHead: 2,
});
const spec1 = (sweeps: SweepName[], clean: number[], corrupted: number[]): ResolvedSpec => ({
  name: 'hand',
  model: undefined,
  metric: 'logit_diff',
  sweeps,
  prependBos: false,
  pairs: [{ clean, corrupted, answer: 0, wrong: 1 }],
});

test('saturated attention: plain AtP misses a key patch that moves all the attention, the QK fix gets it', async () => {
  // One attention-only layer. The query at position 2 (token Q, direction e1) meets key 1's sign direction
  // e2 with a score of ±20: the corrupted key (−e2) gets e^-20 of the attention, the clean key (+e2) all of
  // it. Position 1's value (e3, in both tokens) writes e0, the answer's logit direction.
  const cfg = handConfig({ nLayers: 1, attnOnly: true, attnScale: [1] });
  const a = Math.sqrt(20);
  const wQkv = columns([dir(1, a / 2), new Float32Array(D), dir(2, a / 2), new Float32Array(D), dir(3, 0.5), new Float32Array(D)]);
  const wO = { shape: [2, D], data: Float32Array.from([...dir(0), ...new Float32Array(D)]) };
  const weights = {
    wte: rowsOf([new Float32Array(D), dir(1), Float32Array.from(dir(2), (v, i) => v + dir(3)[i]!), Float32Array.from(dir(2), (v, i) => -v + dir(3)[i]!)]),
    wpe: zeros(4, D),
    blocks: [{ ln1W: filled([D], 1e6), ln1B: zeros(D), wQkv, bQkv: zeros(6), wO, bO: zeros(D) }],
    lnfW: filled([D], 1e6),
    lnfB: zeros(D),
    unembed: rowsOf([dir(0, 0.5), new Float32Array(D), new Float32Array(D), new Float32Array(D)]),
  };
  const m = new HookedTransformer(cfg, weights, await cpu());
  const spec = spec1(['attn_head_k_by_pos'], [0, 2, 1], [0, 3, 1]);
  const exact = await runPatching(m, spec);
  const plain = await runAttribution(m, { ...spec, method: 'atp' });
  const star = await runAttribution(m, { ...spec, method: 'atp_star' });
  const at = (v: (number | null)[]) => v[1]!; // [layer 0, pos 1, head 0]
  const base = exact.baselines.corrupted!;
  assert.ok(Math.abs(base) < 1e-6 && Math.abs(at(exact.sweeps.attn_head_k_by_pos!.values) - 1) < 1e-6, 'the clean key takes all the attention');
  assert.ok(Math.abs(at(plain.sweeps.attn_head_k_by_pos!.values) - base) < 1e-6, `plain AtP sees no effect: ${at(plain.sweeps.attn_head_k_by_pos!.values)}`);
  assert.ok(Math.abs(at(star.sweeps.attn_head_k_by_pos!.values) - 1) < 1e-5, `the QK fix recovers it: ${at(star.sweeps.attn_head_k_by_pos!.values)}`);
});

test("GradDrop: a component whose direct and indirect gradients cancel gets AtP's 0 but GradDrop's score of its effect", async () => {
  // Layer 0's MLP writes s·e0 with s = 0.1 − relu(a), a the token's e1 coefficient (clean 5, corrupted −1).
  // Layer 1's MLP writes −relu(s)·e0, and the metric reads e0: M = s − relu(s). At the corrupted s = 0.1
  // the direct (+1) and indirect (−1) gradients cancel; patching in the clean s = −4.9 moves M by −4.9.
  const cfg = handConfig({ nLayers: 2, dMlp: 1, activation: 'relu' });
  const block = (wIn: Float32Array, wOut: Float32Array, bOut: Float32Array) => ({
    ln1W: filled([D], 1e6),
    ln1B: zeros(D),
    wQkv: zeros(D, 6),
    bQkv: zeros(6),
    wO: zeros(2, D),
    bO: zeros(D),
    ln2W: filled([D], 1e6),
    ln2B: zeros(D),
    wIn: columns([wIn]),
    bIn: zeros(1),
    wOut: { shape: [1, D], data: wOut },
    bOut: { shape: [D], data: bOut },
  });
  const weights = {
    wte: rowsOf([new Float32Array(D), new Float32Array(D), dir(1, 5), dir(1, -1)]),
    wpe: zeros(4, D),
    blocks: [block(dir(1, 0.5), dir(0, -1), dir(0, 0.1)), block(dir(0, 0.5), dir(0, -1), zeros(D).data)],
    lnfW: filled([D], 1e6),
    lnfB: zeros(D),
    unembed: rowsOf([dir(0, 0.5), new Float32Array(D), new Float32Array(D), new Float32Array(D)]),
  };
  const m = new HookedTransformer(cfg, weights, await cpu());
  const spec = spec1(['mlp_out'], [0, 2], [0, 3]);
  const exact = await runPatching(m, spec);
  const plain = await runAttribution(m, { ...spec, method: 'atp' });
  const star = await runAttribution(m, { ...spec, method: 'atp_star' });
  const at = (v: (number | null)[]) => v[1]!; // [layer 0, pos 1]
  const effect = at(exact.sweeps.mlp_out!.values) - exact.baselines.corrupted!;
  assert.ok(Math.abs(effect + 4.9) < 1e-5, `patching moves the metric by ${effect}`);
  assert.ok(Math.abs(at(plain.sweeps.mlp_out!.values) - exact.baselines.corrupted!) < 1e-6, 'the gradients cancel: AtP estimates no effect');
  const score = at(star.sweeps.mlp_out!.score!);
  assert.ok(Math.abs(score - 5) < 1e-4, `GradDrop scores |direct effect| = 5: ${score}`);
  const ranked = star.sweeps.mlp_out!.score!.map((s, i) => [s!, i] as const).sort((x, y) => y[0] - x[0]);
  assert.equal(ranked[0]![1], 1, 'and ranks it first');
});
