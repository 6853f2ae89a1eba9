/**
 * Gemma 2, Gemma 3, Qwen3 and OLMo 2 end to end: random checkpoints in each family's exact Hugging Face
 * layout and config keys, loaded by the engine and by the float64 reference's own adapters (written from
 * modeling_gemma2 / gemma3 / qwen3 / olmo2), every hook point and all 19 sweeps in both modes compared,
 * with sliding windows shorter than the prompt, soft-caps in their non-linear range and head_dim ≠
 * d_model / n_heads; golden values from TransformerLens's algorithm; the real configs of the Select Model
 * examples read as Hugging Face reads them; the configs PatchLens refuses.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseModelConfig } from '../../src/engine/architectures/registry';
import { allHookNames } from '../../src/engine/hooks';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import type { ModelConfig } from '../../src/engine/model/config';
import { modelParamCount } from '../../src/engine/model/weights';
import { seededInts } from '../../src/engine/random';
import { UserError } from '../../src/common/userError';
import { makeTmpDir } from '../helpers/checkpoint';
import { llamaConfigJson, type RandomLlamaOptions, writeRandomLlamaCheckpoint } from '../helpers/checkpoints/llama';
import { expectGoldenMatches, GOLDEN_ROOT } from '../helpers/golden';
import { type LlamaCase, llamaTestModel, testLlamaCases } from '../helpers/llamaCases';
import { loadTestModel, maxAbsDiff, type TestModel } from '../helpers/models';
import { referenceForward } from '../helpers/reference';
import { expectForwardMatches } from '../helpers/referenceChecks';

const base = { nLayers: 2, nHeads: 4, dModel: 32, dMlp: 48, dVocab: 120, nCtx: 32 };

/** Each family with the mechanisms the issue names; windows of 3 are shorter than the 6- and 7-token prompts. */
const CASES: LlamaCase[] = [
  [
    'gemma2: soft-caps 2 and 1.5, local even layers (window 3), GQA 4/2, head_dim 12, query_pre_attn_scalar 20',
    { ...base, arch: 'gemma2', nKvHeads: 2, dHead: 12, seed: 41, slidingWindow: 3, attnSoftcap: 2, finalSoftcap: 1.5, queryPreAttnScalar: 20, scale: 0.4 },
    { sweeps: true },
  ],
  [
    'gemma3_text: q/k norms, local layer 0 (window 3, base 10000), global layer 1 (base 1e6, linear scaling 4), GQA 4/1, head_dim 6, layer_types',
    {
      ...base,
      arch: 'gemma3_text',
      nKvHeads: 1,
      dHead: 6,
      seed: 42,
      slidingWindow: 3,
      slidingWindowPattern: 2,
      layerTypes: true,
      queryPreAttnScalar: 16,
      ropeScaling: { rope_type: 'linear', factor: 4.0 },
    },
    { sweeps: true },
  ],
  [
    'qwen3: q/k norms per head, head_dim 12, GQA 4/2, sliding window 3 from layer 1',
    { ...base, arch: 'qwen3', nKvHeads: 2, dHead: 12, seed: 43, slidingWindow: 3, maxWindowLayers: 1 },
    { sweeps: true },
  ],
  ['olmo2: norms after the sublayers, q/k norms over all heads, GQA 4/2', { ...base, arch: 'olmo2', nKvHeads: 2, seed: 44 }, { sweeps: true }],
  [
    "gemma3_text: Transformers 5's rope_parameters per layer type, the default pattern (layer 5 global), soft-caps set, attention_bias",
    {
      ...base,
      nLayers: 7,
      arch: 'gemma3_text',
      nKvHeads: 2,
      seed: 45,
      slidingWindow: 4,
      ropeParametersByLayerType: true,
      ropeLocalTheta: 20000,
      ropeScaling: { rope_type: 'linear', factor: 2.0 },
      attnSoftcap: 3,
      finalSoftcap: 4,
      attentionBias: true,
    },
    { sweeps: false },
  ],
  [
    'gemma2: no soft-caps (null), untied, layer_types',
    { ...base, arch: 'gemma2', seed: 46, attnSoftcap: null, finalSoftcap: null, tied: false, layerTypes: true, slidingWindow: 2 },
    { sweeps: false },
  ],
  ['qwen3: attention_bias, tied, no windows', { ...base, arch: 'qwen3', nKvHeads: 2, seed: 47, attentionBias: true, tied: true }, { sweeps: false }],
  ['olmo2: attention_bias, tied, no GQA', { ...base, arch: 'olmo2', seed: 48, attentionBias: true, tied: true }, { sweeps: false }],
];

testLlamaCases(CASES);

test("every block's hook points named as TransformerLens names them (attn.hook_result aside), in forward order: ln1_post / ln2_post before hook_attn_out / hook_mlp_out on Gemma, OLMo 2's ln1 / ln2 after them", () => {
  const attn = (qkNorm: boolean) => [
    'attn.hook_q',
    'attn.hook_k',
    'attn.hook_v',
    ...(qkNorm ? ['attn.q_norm.hook_scale', 'attn.q_norm.hook_normalized', 'attn.k_norm.hook_scale', 'attn.k_norm.hook_normalized'] : []),
    // One scores hook, after the soft-cap and the mask: TransformerLens has none on uncapped scores.
    'attn.hook_rot_q',
    'attn.hook_rot_k',
    'attn.hook_attn_scores',
    'attn.hook_pattern',
    'attn.hook_z',
  ];
  const ln = (name: string) => [`${name}.hook_scale`, `${name}.hook_normalized`];
  const mlp = ['mlp.hook_pre', 'mlp.hook_pre_linear', 'mlp.hook_post'];
  const gemma = (qkNorm: boolean) => [
    'hook_resid_pre',
    ...ln('ln1'),
    ...attn(qkNorm),
    ...ln('ln1_post'),
    'hook_attn_out',
    'hook_resid_mid',
    ...ln('ln2'),
    ...mlp,
    ...ln('ln2_post'),
    'hook_mlp_out',
    'hook_resid_post',
  ];
  const expected: Record<string, string[]> = {
    'gemma2-2l4h': gemma(false),
    'gemma3-2l4h': gemma(true),
    'qwen3-2l4h': ['hook_resid_pre', ...ln('ln1'), ...attn(true), 'hook_attn_out', 'hook_resid_mid', ...ln('ln2'), ...mlp, 'hook_mlp_out', 'hook_resid_post'],
    // OLMo 2: ln1 and ln2 normalise the sublayers' outputs, after hook_attn_out and hook_mlp_out.
    'olmo2-2l4h': ['hook_resid_pre', ...attn(true), 'hook_attn_out', ...ln('ln1'), 'hook_resid_mid', ...mlp, 'hook_mlp_out', ...ln('ln2'), 'hook_resid_post'],
  };
  for (const [name, hooks] of Object.entries(expected)) {
    const { config } = loadCheckpoint(join(GOLDEN_ROOT, name, 'model'));
    const blocks = Array.from({ length: config.nLayers }, (_, l) => hooks.map((h) => `blocks.${l}.${h}`));
    assert.deepEqual(allHookNames(config), ['hook_embed', ...blocks.flat(), 'ln_final.hook_scale', 'ln_final.hook_normalized'], name);
  }
});

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-14 * Math.abs(b);

/** Logits of the reference on random 7-token prompts, with its config changed by `edit`. */
function referenceLogits(m: TestModel, seed: number, edit: (c: TestModel['ref']['cfg']) => Partial<TestModel['ref']['cfg']> = () => ({})) {
  const rnd = seededInts(seed);
  const ids = Array.from({ length: 2 }, () => Array.from({ length: 7 }, () => rnd(0, m.cfg.dVocab)));
  return referenceForward({ ...m.ref, cfg: { ...m.ref.cfg, ...edit(m.ref.cfg) } }, ids);
}

test('the mechanisms change the numbers where the tests look: windows shorter than the prompt, soft-caps near saturation, both rope bases', async () => {
  const gemma2 = await llamaTestModel(CASES[0]![1]);
  assert.deepEqual(gemma2.cfg.window, [3, 0], 'Gemma 2: the even layers are local');
  const withWindows = referenceLogits(gemma2, 1);
  // The windows mask something at 7 tokens: without them the model's numbers are far from these.
  assert.ok(maxAbsDiff(withWindows.logits.data, referenceLogits(gemma2, 1, (c) => ({ window: c.window.map(() => 0) })).logits.data) > 1e-2);
  // Soft-capping is in its non-linear range: capped scores and logits come near ±cap, uncapped logits pass it.
  const scores = withWindows.cache.get('blocks.0.attn.hook_attn_scores')!.data.filter(Number.isFinite);
  assert.ok(Math.max(...scores.map(Math.abs)) > 0.8 * 2, 'attention scores near the cap of 2');
  assert.ok(Math.max(...withWindows.logits.data.map(Math.abs)) > 0.8 * 1.5, 'logits near the cap of 1.5');
  assert.ok(Math.max(...referenceLogits(gemma2, 1, () => ({ finalSoftcap: 0 })).logits.data.map(Math.abs)) > 1.5, 'uncapped logits beyond the cap');

  const gemma3 = await llamaTestModel(CASES[1]![1]);
  assert.deepEqual(gemma3.cfg.window, [3, 0]);
  const r = gemma3.cfg.rotary!;
  assert.ok(close(r.localInvFreq![1]!, 10000 ** (-2 / 6)));
  assert.ok(close(r.invFreq[1]!, 1e6 ** (-2 / 6) / 4), 'the global layer: rope_theta with linear scaling');
  const swapped = referenceLogits(gemma3, 2, (c) => ({ rotaryInvFreq: c.rotaryInvFreq.map(() => [...r.invFreq]) }));
  assert.ok(maxAbsDiff(referenceLogits(gemma3, 2).logits.data, swapped.logits.data) > 1e-3, 'the local base matters');

  const qwen3 = await llamaTestModel(CASES[2]![1]);
  assert.deepEqual(qwen3.cfg.window, [0, 3]);
});

test("golden Gemma 2, Gemma 3, Qwen3 and OLMo 2: every sweep in both modes equals the values TransformerLens's algorithm gives", async () => {
  for (const name of ['gemma2-2l4h', 'gemma3-2l4h', 'qwen3-2l4h', 'olmo2-2l4h']) {
    for (const mode of ['naive', 'fast'] as const) {
      const worst = await expectGoldenMatches(name, mode);
      console.log(`golden ${name}, ${mode}: worst |diff| ${worst.toExponential(2)}`);
    }
  }
});

/** google/gemma-2-2b's config.json. */
const GEMMA_2_2B = {
  architectures: ['Gemma2ForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  attn_logit_softcapping: 50.0,
  bos_token_id: 2,
  cache_implementation: 'hybrid',
  eos_token_id: 1,
  final_logit_softcapping: 30.0,
  head_dim: 256,
  hidden_act: 'gelu_pytorch_tanh',
  hidden_activation: 'gelu_pytorch_tanh',
  hidden_size: 2304,
  initializer_range: 0.02,
  intermediate_size: 9216,
  max_position_embeddings: 8192,
  model_type: 'gemma2',
  num_attention_heads: 8,
  num_hidden_layers: 26,
  num_key_value_heads: 4,
  pad_token_id: 0,
  query_pre_attn_scalar: 256,
  rms_norm_eps: 1e-6,
  rope_theta: 10000.0,
  sliding_window: 4096,
  torch_dtype: 'float32',
  transformers_version: '4.42.4',
  use_cache: true,
  vocab_size: 256000,
};

/** google/gemma-3-1b-pt's config.json. */
const GEMMA_3_1B = {
  architectures: ['Gemma3ForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  attn_logit_softcapping: null,
  bos_token_id: 2,
  cache_implementation: 'hybrid',
  eos_token_id: 1,
  final_logit_softcapping: null,
  head_dim: 256,
  hidden_activation: 'gelu_pytorch_tanh',
  hidden_size: 1152,
  initializer_range: 0.02,
  intermediate_size: 6912,
  max_position_embeddings: 32768,
  model_type: 'gemma3_text',
  num_attention_heads: 4,
  num_hidden_layers: 26,
  num_key_value_heads: 1,
  pad_token_id: 0,
  query_pre_attn_scalar: 256,
  rms_norm_eps: 1e-6,
  rope_local_base_freq: 10000,
  rope_scaling: null,
  rope_theta: 1000000,
  sliding_window: 512,
  sliding_window_pattern: 6,
  torch_dtype: 'bfloat16',
  transformers_version: '4.50.0.dev0',
  use_cache: true,
  vocab_size: 262144,
};

/** Qwen/Qwen3-0.6B's config.json. */
const QWEN3_0_6B = {
  architectures: ['Qwen3ForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  head_dim: 128,
  hidden_act: 'silu',
  hidden_size: 1024,
  initializer_range: 0.02,
  intermediate_size: 3072,
  max_position_embeddings: 40960,
  max_window_layers: 28,
  model_type: 'qwen3',
  num_attention_heads: 16,
  num_hidden_layers: 28,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 1000000,
  sliding_window: null,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.51.0',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

/** allenai/OLMo-2-0425-1B's config.json. */
const OLMO_2_1B = {
  architectures: ['Olmo2ForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: null,
  eos_token_id: 100257,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 8192,
  max_position_embeddings: 4096,
  model_type: 'olmo2',
  num_attention_heads: 16,
  num_hidden_layers: 16,
  num_key_value_heads: 16,
  pad_token_id: 100277,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 500000,
  tie_word_embeddings: false,
  torch_dtype: 'float32',
  transformers_version: '4.48.3',
  use_cache: true,
  vocab_size: 100352,
};

/** The engine's zero biases (q/k/v, o, MLP in and out) per layer, which the memory check counts too. */
const zeroBiases = (c: Omit<ModelConfig, 'weightsDtype'>) => c.nLayers * ((c.nHeads + 2 * c.nKvHeads) * c.dHead + 2 * c.dModel + c.dMlp);
const params = (c: Omit<ModelConfig, 'weightsDtype'>) => modelParamCount({ ...c, weightsDtype: 'F32' }) - zeroBiases(c);

test("the Select Model examples' configs read as Hugging Face reads them, with Hugging Face's parameter counts", () => {
  const g2 = parseModelConfig(GEMMA_2_2B, 'gemma-2-2b/config.json').config;
  assert.deepEqual(
    [g2.architecture, g2.dHead, g2.nKvHeads, g2.normPlacement, g2.activation, g2.tiedEmbeddings, g2.defaultPrependBos],
    ['gemma2', 256, 4, 'pre_post', 'gelu_new', true, true],
  );
  assert.deepEqual([g2.attnScale[0], g2.attnSoftcap, g2.finalSoftcap, g2.embedScale, g2.window.slice(0, 4)], [16, 50, 30, 48, [4096, 0, 4096, 0]]);
  assert.equal(params(g2), 2_614_341_888);

  const g3 = parseModelConfig(GEMMA_3_1B, 'gemma-3-1b-pt/config.json').config;
  assert.deepEqual([g3.architecture, g3.qkNorm, g3.attnSoftcap, g3.finalSoftcap, g3.nKvHeads], ['gemma3_text', 'head', undefined, undefined, 1]);
  assert.deepEqual(g3.window.slice(0, 12), [512, 512, 512, 512, 512, 0, 512, 512, 512, 512, 512, 0]);
  // √1152 rounded to float32, as Hugging Face's normalizer holds it when the model runs in float32.
  assert.equal(g3.embedScale, Math.fround(Math.sqrt(1152)));
  assert.notEqual(g3.embedScale, Math.sqrt(1152));
  assert.ok(close(g3.rotary!.invFreq[1]!, 1e6 ** (-2 / 256)));
  assert.ok(close(g3.rotary!.localInvFreq![1]!, 1e4 ** (-2 / 256)));
  assert.equal(params(g3), 999_885_952);

  const q3 = parseModelConfig(QWEN3_0_6B, 'Qwen3-0.6B/config.json').config;
  assert.deepEqual([q3.dHead, q3.dModel / q3.nHeads, q3.qkNorm, q3.tiedEmbeddings, q3.defaultPrependBos, q3.window.every((w) => w === 0)], [128, 64, 'head', true, false, true]);
  assert.equal(params(q3), 596_049_920);

  const o2 = parseModelConfig(OLMO_2_1B, 'OLMo-2-0425-1B/config.json').config;
  assert.deepEqual([o2.normPlacement, o2.qkNorm, o2.dHead, o2.tiedEmbeddings, o2.defaultPrependBos, o2.eosTokenId], ['post', 'full', 128, false, true, 100257]);
  assert.equal(params(o2), 1_484_916_736);

  // Instruction-tuned configs list several end tokens; Qwen3 without head_dim uses Qwen3Config's 128.
  const listed = parseModelConfig({ ...GEMMA_3_1B, eos_token_id: [1, 106] }, 'gemma-3-1b-it/config.json').config;
  assert.equal(listed.eosTokenId, 1);
  const { head_dim: _, ...noHeadDim } = QWEN3_0_6B;
  assert.equal(parseModelConfig(noHeadDim, 'config.json').config.dHead, 128);
});

function expectUserError(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), 'one line');
    for (const p of parts) assert.ok(typeof p === 'string' ? e.message.includes(p) : p.test(e.message), `'${e.message}' should mention ${p}`);
    return true;
  });
}

test("layer_types decides which layers are local; configs PatchLens can't compute exactly are refused with one line that names the field", async () => {
  const o: RandomLlamaOptions = { ...base, nLayers: 3, arch: 'gemma2', nKvHeads: 2, seed: 51, slidingWindow: 3, layerTypes: true };
  const dir = makeTmpDir('gemma2-layer-types');
  writeRandomLlamaCheckpoint(dir, o);
  const configPath = join(dir, 'config.json');
  const original = readFileSync(configPath, 'utf8');
  const withConfig = (edit: (c: Record<string, unknown>) => void) => {
    const c = JSON.parse(original) as Record<string, unknown>;
    edit(c);
    writeFileSync(configPath, JSON.stringify(c));
  };
  // Odd layers local, against Gemma 2's default: the engine and the reference both follow layer_types.
  withConfig((c) => (c.layer_types = ['full_attention', 'sliding_attention', 'full_attention']));
  const m = await loadTestModel(dir);
  assert.deepEqual(m.cfg.window, [0, 3, 0]);
  await expectForwardMatches(m.model, m.ref, m.cfg, 52);

  const refused = (edit: (c: Record<string, unknown>) => void, ...parts: (string | RegExp)[]) => {
    withConfig(edit);
    expectUserError(() => loadCheckpoint(dir), ...parts);
  };
  refused((c) => (c.layer_types = ['sliding_attention']), "'layer_types'", 'each of the 3 layers');
  refused((c) => (c.layer_types = ['sliding_attention', 'chunked_attention', 'full_attention']), "'layer_types'");
  refused((c) => (c.hidden_activation = 'gelu_fast2'), "'hidden_activation'");
  refused((c) => (c.query_pre_attn_scalar = 0), "'query_pre_attn_scalar'");
  refused((c) => (c.rope_scaling = { rope_type: 'yarn', factor: 4 }), "'rope_scaling.rope_type'", 'yarn');

  // A Gemma 3 config over a Gemma 2 checkpoint: its q/k norms are missing.
  const g3 = makeTmpDir('gemma3-over-gemma2');
  writeRandomLlamaCheckpoint(g3, o);
  writeFileSync(join(g3, 'config.json'), JSON.stringify(llamaConfigJson({ ...o, arch: 'gemma3_text' })));
  expectUserError(() => loadCheckpoint(g3), "tensor 'layers.0.self_attn.q_norm.weight' is missing", 'not a Gemma 3 model');
});
