/**
 * The Llama family (llama, mistral, qwen2) end to end: random checkpoints in each family's exact Hugging
 * Face layout, loaded by the engine and by the float64 reference's own adapter (written from
 * modeling_llama / modeling_qwen2), every hook point and every sweep in both modes compared; the golden
 * values TransformerLens's algorithm gives on a GQA Llama; half-precision and sharded files; the configs
 * PatchLens refuses.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { allHookNames } from '../../src/engine/hooks';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import { runPatching } from '../../src/engine/patching/runPatching';
import { UserError } from '../../src/common/userError';
import { SWEEP_NAMES, type ResolvedPair, type ResolvedSpec, type SweepName } from '../../src/protocol/spec';
import { makeTmpDir } from '../helpers/checkpoint';
import { llamaConfigJson, type RandomLlamaOptions, writeRandomLlamaCheckpoint } from '../helpers/checkpoints/llama';
import { loadTestModel, maxAbsDiff, seededInts, type TestModel } from '../helpers/models';
import { referenceForward } from '../helpers/reference';
import { referenceSweep, refLogitDiff, type SweepName as RefSweepName } from '../helpers/referencePatching';

const TOL = 1e-4;
const GOLDEN = join(__dirname, '../fixtures/golden/llama-2l4h-gqa');

const base = { nLayers: 2, nHeads: 4, dModel: 32, dMlp: 48, dVocab: 120, nCtx: 32 };

/** Each family's layout with the mechanisms the issue names, several per checkpoint. */
const CASES: [string, RandomLlamaOptions, { sweeps: boolean }][] = [
  [
    'llama: GQA 4/2, untied, llama3 rope scaling with all three frequency bands',
    {
      ...base, arch: 'llama', nKvHeads: 2, seed: 11, ropeTheta: 10000,
      // d_head 8 gives wavelengths 6.3, 63, 628 and 6283: kept, interpolated, and two divided by the factor.
      ropeScaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 64, rope_type: 'llama3' },
    },
    { sweeps: true },
  ],
  [
    'qwen2: q/k/v biases, tied, GQA 4/2, sliding window on layer 1',
    { ...base, arch: 'qwen2', nKvHeads: 2, seed: 12, tied: true, slidingWindow: 3, maxWindowLayers: 1 },
    { sweeps: true },
  ],
  [
    'mistral: sliding window 3 shorter than the prompt, GQA 4/1, head_dim 6 (not d_model / heads)',
    { ...base, arch: 'mistral', nKvHeads: 1, dHead: 6, seed: 13, slidingWindow: 3 },
    { sweeps: true },
  ],
  ['llama: attention_bias (q, k, v and o), tied, no GQA', { ...base, arch: 'llama', seed: 14, tied: true, attentionBias: true }, { sweeps: false }],
  ["llama: linear rope scaling in the old 'type' spelling", { ...base, arch: 'llama', nKvHeads: 2, seed: 15, ropeScaling: { type: 'linear', factor: 4.0 } }, { sweeps: false }],
  ['mistral: sliding_window null (Mistral 7B v0.2 on)', { ...base, arch: 'mistral', nKvHeads: 2, seed: 16, slidingWindow: null }, { sweeps: false }],
];

const models = new Map<string, Promise<TestModel>>();
function model(o: RandomLlamaOptions): Promise<TestModel> {
  const key = JSON.stringify(o);
  let m = models.get(key);
  if (!m) {
    const dir = makeTmpDir(`${o.arch}-${o.seed}`);
    writeRandomLlamaCheckpoint(dir, o);
    models.set(key, (m = loadTestModel(dir)));
  }
  return m;
}

function checkHooks(m: TestModel, ids: number[][]): Promise<void> {
  return m.model.runWithCache(ids).then((got) => {
    const ref = referenceForward(m.ref, ids);
    assert.deepEqual([...got.cache.keys()].sort(), [...ref.cache.keys()].sort(), "the engine has exactly the reference's hook points");
    assert.deepEqual([...got.cache.keys()], allHookNames(m.cfg));
    const d = maxAbsDiff(got.logits.data, ref.logits.data);
    assert.ok(d <= TOL, `logits differ by ${d}`);
    for (const [name, a] of got.cache) {
      const r = ref.cache.get(name)!;
      assert.deepEqual(a.shape, r.shape, name);
      const dh = maxAbsDiff(a.data, r.data);
      assert.ok(dh <= TOL, `${name} differs by ${dh}`);
    }
  });
}

for (const [label, o, { sweeps }] of CASES) {
  test(`${label}: logits and every hook point equal the float64 reference`, async () => {
    const m = await model(o);
    assert.equal(m.cfg.architecture, o.arch);
    assert.equal(m.cfg.nKvHeads, o.nKvHeads ?? o.nHeads);
    const rnd = seededInts(o.seed);
    await checkHooks(m, [0, 1].map(() => Array.from({ length: 7 }, () => rnd(0, o.dVocab))));
  });

  if (sweeps) {
    test(`${label}: all 19 sweeps, fast and naive, equal the reference's naive loop`, async () => {
      const m = await model(o);
      const rnd = seededInts(100 + o.seed);
      const P = 6;
      const pairs: ResolvedPair[] = [0, 1].map(() => {
        const clean = Array.from({ length: P }, () => rnd(0, o.dVocab));
        return { clean, corrupted: clean.map((t, k) => (k % 2 ? rnd(0, o.dVocab) : t)), answer: rnd(0, o.dVocab), wrong: rnd(0, o.dVocab) };
      });
      const metric = refLogitDiff([P - 1, P - 1], pairs.map((p) => [p.answer!, p.wrong!]));
      const want = new Map(SWEEP_NAMES.map((n) => [n, referenceSweep(m.ref, pairs.map((p) => p.clean), pairs.map((p) => p.corrupted), n as RefSweepName, metric)]));
      for (const mode of ['fast', 'naive'] as const) {
        const out = await runPatching(m.model, { name: 't', model: undefined, metric: 'logit_diff', sweeps: [...SWEEP_NAMES], prependBos: false, pairs }, { mode, memoryBudgetMiB: 0.05 });
        for (const name of SWEEP_NAMES) {
          const got = out.sweeps[name]!;
          assert.deepEqual(got.shape, want.get(name)!.shape, `${mode} ${name}`);
          const d = maxAbsDiff(got.values, want.get(name)!.values);
          assert.ok(d <= TOL, `${mode} ${name}: max abs diff ${d}`);
        }
      }
    });
  }
}

/** Our 'component' and 'kv_head' axes are TransformerLens's stacked axis and head axis. */
const tlAxes = (ours: string[], theirs: string[]) => ours.map((a, i) => (a === 'component' || a === 'kv_head' ? theirs[i] : a));

test('golden GQA Llama: every sweep in both modes equals the values TransformerLens\'s algorithm gives (rope_theta 500000)', async () => {
  const m = await loadTestModel(join(GOLDEN, 'model'));
  assert.equal(m.cfg.nKvHeads, 2);
  const spec = JSON.parse(readFileSync(join(GOLDEN, 'golden.patch.json'), 'utf8'));
  const pairs: ResolvedPair[] = spec.pairs.map((p: Record<string, unknown>) => ({ clean: p.clean_ids, corrupted: p.corrupted_ids, answer: p.answer_id, wrong: p.wrong_id }));
  const resolved: ResolvedSpec = { name: 'golden', model: 'model', metric: 'logit_diff', sweeps: [...SWEEP_NAMES], prependBos: false, pairs };
  let worst = 0;
  for (const mode of ['naive', 'fast'] as const) {
    const out = await runPatching(m.model, resolved, { mode });
    for (const name of SWEEP_NAMES) {
      const expected = JSON.parse(readFileSync(join(GOLDEN, 'expected', `${name}.json`), 'utf8'));
      const got = out.sweeps[name as SweepName]!;
      assert.deepEqual(got.shape, expected.shape, name);
      assert.deepEqual(tlAxes(got.axes, expected.axes), expected.axes, name);
      const flat = (expected.values as unknown[]).flat(4) as number[];
      // TransformerLens's zero padding of the k/v rows of a stacked sweep is PatchLens's null.
      got.values.forEach((v, i) => v === null && assert.equal(flat[i], 0, `${name}[${i}] is padding in TransformerLens`));
      const d = maxAbsDiff(got.values, flat.map((v, i) => (got.values[i] === null ? null : v)));
      worst = Math.max(worst, d);
      assert.ok(d <= TOL, `${mode} ${name}: max abs diff ${d}`);
      assert.ok(Math.abs(out.baselines.clean - expected.clean_logit_diff) <= TOL);
      assert.ok(Math.abs(out.baselines.corrupted - expected.corrupted_logit_diff) <= TOL);
    }
    assert.equal(out.sweeps.attn_head_k_all_pos!.axes[1], 'kv_head');
    assert.equal(out.sweeps.attn_head_all_pos_every!.values.filter((v) => v === null).length, 2 * 2 * 2, 'k and v rows of heads 2 and 3 in both layers');
  }
  console.log(`golden llama-2l4h-gqa: worst |diff| ${worst.toExponential(2)}`);
});

test('bfloat16, float16 and sharded checkpoints load: the stored dtype is recorded, values are the float32 ones rounded, shards equal one file', async () => {
  const o: RandomLlamaOptions = { ...base, arch: 'llama', nKvHeads: 2, seed: 21 };
  const load = (extra: Partial<RandomLlamaOptions>) => {
    const dir = makeTmpDir(`llama-dtype-${extra.dtype ?? 'F32'}-${extra.shards ?? 1}`);
    writeRandomLlamaCheckpoint(dir, { ...o, ...extra });
    return { dir, ...loadCheckpoint(dir) };
  };
  const f32 = load({});
  assert.equal(f32.config.weightsDtype, 'F32');
  const sharded = load({ shards: 3 });
  assert.deepEqual(sharded.weights, f32.weights, 'three shards load to exactly the single file');
  for (const [dtype, relative] of [['BF16', 2 ** -8], ['F16', 2 ** -11]] as const) {
    const half = load({ dtype, shards: dtype === 'BF16' ? 2 : 1 });
    assert.equal(half.config.weightsDtype, dtype);
    const a = half.weights.blocks[1]!.wQkv.data;
    const b = f32.weights.blocks[1]!.wQkv.data;
    let exact = 0;
    for (let i = 0; i < a.length; i++) {
      assert.ok(Math.abs(a[i]! - b[i]!) <= relative * Math.abs(b[i]!) + 1e-7, `${dtype} value ${i}: ${a[i]} vs ${b[i]}`);
      if (a[i] === b[i]) exact++;
    }
    assert.ok(exact < a.length / 2, `${dtype} values are rounded, not the float32 ones`);
    // The reference reads the same half-precision file: the whole forward agrees as for float32.
    const m = await loadTestModel(half.dir);
    await checkHooks(m, [[3, 1, 4, 1, 5, 9]]);
  }
});

function expectUserError(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), 'one line');
    for (const p of parts) assert.ok(typeof p === 'string' ? e.message.includes(p) : p.test(e.message), `'${e.message}' should mention ${p}`);
    return true;
  });
}

test('configs PatchLens cannot compute exactly are refused with one line that names the field', () => {
  const dir = makeTmpDir('llama-refused');
  writeRandomLlamaCheckpoint(dir, { ...base, arch: 'llama', nKvHeads: 2, seed: 31 });
  const configPath = join(dir, 'config.json');
  const original = readFileSync(configPath, 'utf8');
  const withConfig = (edit: (c: Record<string, unknown>) => void, ...parts: (string | RegExp)[]) => {
    const c = JSON.parse(original);
    edit(c);
    writeFileSync(configPath, JSON.stringify(c));
    expectUserError(() => loadCheckpoint(dir), ...parts);
  };
  for (const type of ['yarn', 'dynamic', 'longrope']) {
    withConfig((c) => (c.rope_scaling = { rope_type: type, factor: 4.0 }), `'rope_scaling.rope_type' in ${configPath} is '${type}'`, "'linear' or 'llama3'");
  }
  withConfig((c) => (c.rope_scaling = { rope_type: 'llama3', factor: 8.0 }), "has no 'rope_scaling.low_freq_factor'");
  withConfig((c) => (c.mlp_bias = true), "'mlp_bias'", 'gate_proj');
  withConfig((c) => (c.num_key_value_heads = 3), "'num_key_value_heads'", 'not a multiple');
  withConfig((c) => (c.head_dim = 7), "'head_dim'", 'even');
  writeFileSync(configPath, original);
  assert.equal(loadCheckpoint(dir).config.nKvHeads, 2);

  // A Qwen2 config over a checkpoint without q/k/v biases: incomplete, not silently unbiased.
  const q = makeTmpDir('qwen2-nobias');
  writeRandomLlamaCheckpoint(q, { ...base, arch: 'llama', nKvHeads: 2, seed: 32 });
  writeFileSync(join(q, 'config.json'), JSON.stringify(llamaConfigJson({ ...base, arch: 'qwen2', nKvHeads: 2, seed: 32 })));
  expectUserError(() => loadCheckpoint(q), "tensor 'layers.0.self_attn.q_proj.bias' is missing", 'not a Qwen2 model');
});
