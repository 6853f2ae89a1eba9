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
import { parseModelConfig } from '../../src/engine/architectures/registry';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import { modelParamCount } from '../../src/engine/model/weights';
import { runPatching } from '../../src/engine/patching/runPatching';
import { UserError } from '../../src/common/userError';
import { makeTmpDir } from '../helpers/checkpoint';
import { LLAMA_3_2_1B, llamaConfigJson, type RandomLlamaOptions, writeRandomLlamaCheckpoint } from '../helpers/checkpoints/llama';
import { expectGoldenMatches, loadGolden } from '../helpers/golden';
import { type LlamaCase, testLlamaCases } from '../helpers/llamaCases';
import { loadTestModel } from '../helpers/models';
import { expectForwardMatches } from '../helpers/referenceChecks';

const base = { nLayers: 2, nHeads: 4, dModel: 32, dMlp: 48, dVocab: 120, nCtx: 32 };

/** Qwen/Qwen2.5-0.5B's config.json. */
const QWEN2_5_0_5B = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: 'silu',
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 24,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.40.1',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

/** Each family's layout with the mechanisms the issue names, several per checkpoint. */
const CASES: LlamaCase[] = [
  [
    'llama: GQA 4/2, untied, llama3 rope scaling with all three frequency bands',
    {
      ...base,
      arch: 'llama',
      nKvHeads: 2,
      seed: 11,
      ropeTheta: 10000,
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

testLlamaCases(CASES);

test("real configs read as Hugging Face reads them: Llama 3.2 1B (llama3 rope scaling, tied), Qwen2.5 0.5B (biases, no window), Hugging Face's parameter counts", () => {
  const llama = parseModelConfig(llamaConfigJson(LLAMA_3_2_1B), 'Llama-3.2-1B/config.json').config;
  assert.deepEqual(
    [llama.nLayers, llama.nHeads, llama.nKvHeads, llama.dHead, llama.tiedEmbeddings, llama.defaultPrependBos, llama.bosTokenId],
    [16, 32, 8, 64, true, true, 128000],
  );
  // Hugging Face's llama3 frequencies for head_dim 64 and rope_theta 500000: the first is kept, the last divided by 32.
  assert.equal(llama.rotary!.invFreq[0], 1);
  assert.ok(Math.abs(llama.rotary!.invFreq[31]! - 500000 ** (-62 / 64) / 32) < 1e-18);
  const qwen = parseModelConfig(QWEN2_5_0_5B, 'Qwen2.5-0.5B/config.json').config;
  assert.deepEqual(
    [qwen.nHeads, qwen.nKvHeads, qwen.dHead, qwen.attnBiases, qwen.tiedEmbeddings, qwen.defaultPrependBos, qwen.window.every((w) => w === 0)],
    [14, 2, 64, 'qkv', true, false, true],
  );
  // The engine also counts the biases it feeds as zeros (o, MLP in and out: 6,656 a layer).
  assert.equal(modelParamCount({ ...qwen, weightsDtype: 'F32' }), 494_032_768 + 24 * 6_656);
});

test("golden GQA Llama: every sweep in both modes equals the values TransformerLens's algorithm gives (rope_theta 500000)", async () => {
  for (const mode of ['naive', 'fast'] as const) {
    const worst = await expectGoldenMatches('llama-2l4h-gqa', mode);
    console.log(`golden llama-2l4h-gqa, ${mode}: worst |diff| ${worst.toExponential(2)}`);
  }
  const { model: m, spec } = await loadGolden('llama-2l4h-gqa');
  const out = await runPatching(m.model, { ...spec, sweeps: ['attn_head_k_all_pos', 'attn_head_all_pos_every'] });
  assert.deepEqual(out.sweeps.attn_head_k_all_pos!.axes, ['layer', 'kv_head']);
  assert.equal(out.sweeps.attn_head_all_pos_every!.values.filter((v) => v === null).length, 2 * 2 * 2, 'key and value rows of heads 2 and 3 in both layers');
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
  for (const [dtype, relative] of [
    ['BF16', 2 ** -8],
    ['F16', 2 ** -11],
  ] as const) {
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
    await expectForwardMatches(m.model, m.ref, m.cfg, 5);
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
