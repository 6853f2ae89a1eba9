/**
 * Checks the float64 reference (the oracle the engine is tested against) against golden values computed
 * independently in PyTorch float64 and checked against TransformerLens, and checks a few invariants of
 * the forward itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import { allHookNames, hookShape, parseHookName, type BlockHook, type GlobalHook } from '../../src/engine/hooks';
import { erf, referenceForward, type RefActivation } from '../helpers/reference';
import { loadReferenceModel } from '../helpers/referenceModels';
import { REF_SWEEPS, refLogitDiff, referenceSweep, type SweepName } from '../helpers/referencePatching';

const GOLDEN = join(__dirname, '..', 'fixtures', 'golden', 'gpt2-2l4h');
// Both float64; the only differences left are summation order, around 1e-16 of values near 0.2.
const TOL = 1e-9;

interface GoldenFile {
  sweep: string;
  shape: number[];
  axes: string[];
  values: unknown;
  n_forward: number;
  metric: string;
  clean_logit_diff: number;
  corrupted_logit_diff: number;
}

function goldenFile(name: string): GoldenFile {
  return JSON.parse(readFileSync(join(GOLDEN, 'expected', name), 'utf8')) as GoldenFile;
}

function flatten(v: unknown, out: number[] = []): number[] {
  if (Array.isArray(v)) for (const x of v) flatten(x, out);
  else out.push(v as number);
  return out;
}

const { config: cfg, weights } = loadCheckpoint(join(GOLDEN, 'model'));
const refModel = loadReferenceModel(join(GOLDEN, 'model'));
const prompts = JSON.parse(readFileSync(join(GOLDEN, 'prompts.json'), 'utf8')) as {
  clean: number[][];
  corrupted: number[][];
  answers: [number, number][];
};
const nPos = prompts.clean[0].length;
const metric = refLogitDiff(
  prompts.clean.map(() => nPos - 1),
  prompts.answers,
);

function assertClose(actual: ArrayLike<number>, expected: number[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} values, golden has ${expected.length}`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  assert.ok(worst <= TOL, `${what}: max |diff| ${worst} at flat index ${at} (ref ${actual[at]}, golden ${expected[at]})`);
}

test('the golden spec is the one these checks assume', () => {
  const spec = JSON.parse(readFileSync(join(GOLDEN, 'golden.patch.json'), 'utf8')) as {
    prepend_bos: boolean;
    metric: string;
    sweeps: string[];
    pairs: { clean_ids: number[]; corrupted_ids: number[]; answer_id: number; wrong_id: number }[];
  };
  assert.equal(spec.prepend_bos, false);
  assert.equal(spec.metric, 'logit_diff');
  assert.deepEqual([...spec.sweeps].sort(), [...REF_SWEEPS].sort());
  assert.deepEqual(
    spec.pairs.map((p) => p.clean_ids),
    prompts.clean,
  );
  assert.deepEqual(
    spec.pairs.map((p) => p.corrupted_ids),
    prompts.corrupted,
  );
  assert.deepEqual(
    spec.pairs.map((p) => [p.answer_id, p.wrong_id]),
    prompts.answers,
  );
});

test('baselines match the golden clean and corrupted logit differences', () => {
  const g = goldenFile('resid_pre.json');
  const clean = metric(referenceForward(refModel, prompts.clean).logits);
  const corrupted = metric(referenceForward(refModel, prompts.corrupted).logits);
  assertClose([clean], [g.clean_logit_diff], 'clean_logit_diff');
  assertClose([corrupted], [g.corrupted_logit_diff], 'corrupted_logit_diff');
});

const results = new Map<SweepName, ReturnType<typeof referenceSweep>>();
function sweep(name: SweepName): ReturnType<typeof referenceSweep> {
  let r = results.get(name);
  if (!r) {
    r = referenceSweep(refModel, prompts.clean, prompts.corrupted, name, metric);
    results.set(name, r);
  }
  return r;
}

for (const name of REF_SWEEPS) {
  test(`sweep ${name} matches the golden values`, () => {
    const g = goldenFile(`${name}.json`);
    assert.equal(g.sweep, name);
    assert.equal(g.metric, 'logit_diff');
    const r = sweep(name);
    assert.deepEqual(r.shape, g.shape, 'shape');
    assert.deepEqual(r.axes, g.axes, 'axes');
    assert.equal(r.nForward, g.n_forward, 'number of patched forwards');
    assertClose(r.values, flatten(g.values), name);
  });
}

test('the normalized logit difference of resid_pre matches its golden file', () => {
  const g = goldenFile('resid_pre.normalized_logit_diff.json');
  const r = sweep('resid_pre');
  const norm = Array.from(r.values, (v) => (v - g.corrupted_logit_diff) / (g.clean_logit_diff - g.corrupted_logit_diff));
  assertClose(norm, flatten(g.values), 'normalized resid_pre');
});

test('the golden comparison is sensitive to index order (swapping two axes breaks it)', () => {
  // If a sweep's values were symmetric under swapping its last two axes, a transposed result would pass
  // unnoticed; make sure none of the multi-axis sweeps is.
  for (const name of REF_SWEEPS) {
    const r = sweep(name);
    if (r.shape.length < 2) continue;
    const [a, b] = r.shape.slice(-2);
    const outer = r.values.length / (a * b);
    const golden = flatten(goldenFile(`${name}.json`).values);
    const swapped = new Float64Array(r.values.length);
    for (let o = 0; o < outer; o++) for (let i = 0; i < a; i++) for (let j = 0; j < b; j++) swapped[o * a * b + j * a + i] = r.values[o * a * b + i * b + j];
    assert.throws(() => assertClose(swapped, golden, name), `${name} does not notice its last two axes swapped`);
  }
});

test('every hook point fires once, in TransformerLens order, with its documented shape', () => {
  const B = prompts.clean.length;
  const seen: string[] = [];
  const { cache } = referenceForward(refModel, prompts.clean, (name, act) => {
    seen.push(name);
    const ref = parseHookName(name, cfg);
    assert.ok(ref, `unknown hook ${name}`);
    assert.deepEqual(act.shape, hookShape(cfg, ref.hook as BlockHook | GlobalHook, B, nPos), name);
    assert.equal(
      act.data.length,
      act.shape.reduce((x, y) => x * y, 1),
      name,
    );
  });
  assert.deepEqual(seen, allHookNames(cfg));
  assert.deepEqual([...cache.keys()], allHookNames(cfg));
});

test('attention scores are -Infinity above the diagonal and the pattern is causal and sums to 1', () => {
  const { cache } = referenceForward(refModel, prompts.corrupted);
  for (let l = 0; l < cfg.nLayers; l++) {
    const scores = cache.get(`blocks.${l}.attn.hook_attn_scores`)!;
    const pattern = cache.get(`blocks.${l}.attn.hook_pattern`)!;
    const [B, H, P] = pattern.shape;
    for (let row = 0; row < B * H * P; row++) {
      const dest = row % P;
      let sum = 0;
      for (let src = 0; src < P; src++) {
        const s = scores.data[row * P + src];
        const p = pattern.data[row * P + src];
        if (src > dest) {
          assert.equal(s, -Infinity);
          assert.equal(p, 0);
        } else {
          assert.ok(Number.isFinite(s));
          assert.ok(p > 0);
        }
        sum += p;
      }
      assert.ok(Math.abs(sum - 1) < 1e-14, `pattern row sums to ${sum}`);
    }
  }
});

test('a hook that changes nothing gives bit-identical logits and activations', () => {
  const plain = referenceForward(refModel, prompts.clean);
  const hooked = referenceForward(refModel, prompts.clean, (_name, act) => {
    for (let i = 0; i < act.data.length; i++) act.data[i] = act.data[i] + 0;
  });
  assert.deepEqual(hooked.logits.data, plain.logits.data);
  for (const [name, act] of plain.cache) assert.deepEqual(hooked.cache.get(name)!.data, act.data, name);
});

test('resid_post of layer l equals resid_pre of layer l+1, and block 0 starts from embed + pos_embed', () => {
  const { cache } = referenceForward(refModel, prompts.clean);
  const get = (n: string) => cache.get(n)!.data;
  for (let l = 0; l + 1 < cfg.nLayers; l++) {
    assert.deepEqual(get(`blocks.${l + 1}.hook_resid_pre`), get(`blocks.${l}.hook_resid_post`));
  }
  const e = get('hook_embed');
  const pe = get('hook_pos_embed');
  assert.deepEqual(
    get('blocks.0.hook_resid_pre'),
    e.map((x, i) => x + pe[i]),
  );
});

test('ln_final.hook_normalized is (x - mean) / scale, before the gain and bias', () => {
  const { cache, logits } = referenceForward(refModel, prompts.clean);
  const n = cache.get('ln_final.hook_normalized')!;
  const D = cfg.dModel;
  const rows = n.data.length / D;
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    let sq = 0;
    for (let d = 0; d < D; d++) mean += n.data[r * D + d];
    for (let d = 0; d < D; d++) sq += n.data[r * D + d] ** 2;
    assert.ok(Math.abs(mean / D) < 1e-12);
    // mean square is var / (var + eps): just under 1, never the gain's scale
    assert.ok(sq / D < 1 && sq / D > 0.99, `row ${r}: mean square ${sq / D}`);
  }
  // The logits follow from the hooked value with the affine step applied afterwards.
  const V = cfg.dVocab;
  const w = weights.lnfW.data;
  const b = weights.lnfB!.data;
  for (const [r, t] of [
    [0, 0],
    [rows - 1, V - 1],
    [3, 123],
  ]) {
    let s = 0;
    for (let d = 0; d < D; d++) s += (n.data[r * D + d] * w[d] + b[d]) * weights.unembed.data[t * D + d];
    assert.ok(Math.abs(s - logits.data[r * V + t]) < 1e-12);
  }
});

test('an edit in a hook reaches everything downstream and is what the cache holds', () => {
  const plain = referenceForward(refModel, prompts.clean);
  const target = 'blocks.1.attn.hook_pattern';
  const edited = referenceForward(refModel, prompts.clean, (name, act: RefActivation) => {
    if (name === target) act.data.fill(0);
  });
  assert.ok(edited.cache.get(target)!.data.every((x) => x === 0));
  // a zero pattern makes z zero, so attn_out is just b_O
  const attnOut = edited.cache.get('blocks.1.hook_attn_out')!.data;
  const bO = weights.blocks[1].bO.data;
  for (let i = 0; i < attnOut.length; i++) assert.equal(attnOut[i], bO[i % cfg.dModel]);
  assert.deepEqual(edited.cache.get('blocks.1.hook_resid_pre')!.data, plain.cache.get('blocks.1.hook_resid_pre')!.data);
  assert.notDeepEqual(edited.logits.data, plain.logits.data);
});

test('erf (for the exact GELU) agrees with Python math.erf', () => {
  // values of math.erf, CPython 3
  const known: [number, number][] = [
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [-1, -0.8427007929497149],
    [2, 0.9953222650189527],
    [3.5, 0.9999992569016276],
    [5, 0.9999999999984626],
  ];
  for (const [x, e] of known) assert.ok(Math.abs(erf(x) - e) < 1e-15, `erf(${x}) = ${erf(x)}, expected ${e}`);
});
