/**
 * GPT-NeoX / Pythia: the config read into the engine's terms, random checkpoints in Hugging Face's exact
 * layout against the float64 reference (written from modeling_gpt_neox.py), the golden values computed with
 * TransformerLens, and the sweeps a parallel model has no hook for.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseModelConfig } from '../../src/engine/architectures/registry';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import { loadTokenizer } from '../../src/engine/model/textTokenizer';
import { modelParamCount } from '../../src/engine/model/weights';
import { resolveSpec } from '../../src/engine/patching/resolveSpec';
import { runPatching } from '../../src/engine/patching/runPatching';
import { UserError } from '../../src/common/userError';
import { makeTmpDir } from '../helpers/checkpoint';
import { type RandomNeoxOptions, writeRandomNeoxCheckpoint } from '../helpers/checkpoints/neox';
import { expectGoldenMatches } from '../helpers/golden';
import { loadTestModel } from '../helpers/models';
import { expectForwardMatches, expectSweepsMatch, sweepsOf } from '../helpers/referenceChecks';

/** EleutherAI/pythia-160m's config.json. */
const PYTHIA_160M = {
  architectures: ['GPTNeoXForCausalLM'],
  bos_token_id: 0,
  eos_token_id: 0,
  hidden_act: 'gelu',
  hidden_size: 768,
  initializer_range: 0.02,
  intermediate_size: 3072,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 2048,
  model_type: 'gpt_neox',
  num_attention_heads: 12,
  num_hidden_layers: 12,
  rotary_emb_base: 10000,
  rotary_pct: 0.25,
  tie_word_embeddings: false,
  torch_dtype: 'float16',
  transformers_version: '4.24.0',
  use_cache: true,
  use_parallel_residual: true,
  vocab_size: 50304,
};

function expectUserError(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), 'one line');
    for (const p of parts) assert.ok(e.message.includes(p), `message '${e.message}' should mention '${p}'`);
    return true;
  });
}

test("Pythia's config: partial rotary, parallel residual, exact GELU, untied, no BOS by default, HF's parameter count", () => {
  const { architecture, config } = parseModelConfig(PYTHIA_160M, 'pythia/config.json');
  assert.equal(architecture.id, 'gpt_neox');
  assert.equal(config.positional, 'rotary');
  assert.equal(config.rotary!.dim, 16);
  assert.equal(config.rotary!.invFreq.length, 8);
  assert.equal(config.rotary!.invFreq[1], 10000 ** (-2 / 16));
  assert.deepEqual(
    {
      parallel: config.parallelAttnMlp,
      act: config.activation,
      tied: config.tiedEmbeddings,
      bos: config.bosTokenId,
      prepend: config.defaultPrependBos,
      scale: config.attnScale[0],
      H: config.nHeads,
      E: config.dHead,
    },
    { parallel: true, act: 'gelu', tied: false, bos: 0, prepend: false, scale: 8, H: 12, E: 64 },
  );
  // Hugging Face reports 162,322,944 parameters for pythia-160m (embed_in and embed_out both counted).
  assert.equal(modelParamCount({ ...config, weightsDtype: 'F32' }), 162_322_944);
});

test('config variants: truncated rotary dims, newer rope keys, linear scaling, sequential residual; bad values named', () => {
  const small = { ...PYTHIA_160M, hidden_size: 32, num_attention_heads: 4, intermediate_size: 64, vocab_size: 100, max_position_embeddings: 16 };
  const read = (over: Record<string, unknown>) => parseModelConfig({ ...small, ...over }, 'x/config.json').config;
  // HF truncates int(8 * 0.33) = 2 (TransformerLens would round to 3).
  assert.equal(read({ rotary_pct: 0.33 }).rotary!.dim, 2);
  assert.equal(read({ rotary_pct: 1 }).rotary!.dim, 8);
  const theta = read({ rotary_emb_base: undefined, rope_theta: 500, rotary_pct: 1 }).rotary!;
  assert.equal(theta.invFreq[1], 500 ** (-2 / 8));
  const v5 = read({ rotary_emb_base: undefined, rotary_pct: undefined, rope_parameters: { rope_theta: 1000, partial_rotary_factor: 0.5, rope_type: 'default' } }).rotary!;
  assert.deepEqual([v5.dim, v5.invFreq[1]], [4, 1000 ** (-2 / 4)]);
  assert.equal(read({ rope_scaling: { type: 'linear', factor: 4 } }).rotary!.invFreq[0], 0.25);
  assert.equal(read({ rope_scaling: { type: 'dynamic', factor: 2 } }).rotary!.invFreq[0], 1);
  assert.equal(read({ use_parallel_residual: false }).parallelAttnMlp, false);
  assert.equal(read({ tie_word_embeddings: true }).tiedEmbeddings, true);
  assert.equal(read({ hidden_act: 'gelu_new' }).activation, 'gelu_new');
  const bad = (over: Record<string, unknown>, ...parts: string[]) => expectUserError(() => read(over), 'x/config.json', ...parts);
  bad({ rotary_pct: 0.3, hidden_size: 40, num_attention_heads: 4 }, "'rotary_pct'", '3 rotary dims', 'even');
  bad({ rotary_pct: 0.1 }, "'rotary_pct'", '0 rotary dims');
  bad({ rotary_pct: 2 }, "'rotary_pct'");
  bad({ rope_scaling: { type: 'yarn', factor: 4 } }, "'rope_scaling'", 'linear');
  bad({ hidden_act: 'swish' }, "'hidden_act'", 'gelu');
  bad({ num_attention_heads: 5 }, "'hidden_size'", "'num_attention_heads' (5)");
  bad({ use_parallel_residual: 'yes' }, "'use_parallel_residual'");
  bad({ hidden_size: undefined }, "'hidden_size'");
});

const CASES: [string, Omit<RandomNeoxOptions, 'seed'>][] = [
  ['Pythia-like: parallel, rotary on 1/4 of each head, untied, exact GELU', { nLayers: 2, nHeads: 4, dModel: 32, dMlp: 48, dVocab: 60, nCtx: 16 }],
  [
    'sequential residual, full rotary with base 500, tied embeddings, no attention biases, tanh GELU',
    { nLayers: 2, nHeads: 2, dModel: 16, dMlp: 40, dVocab: 50, nCtx: 16, parallel: false, rotaryPct: 1, rotaryBase: 500, tied: true, attentionBias: false, hiddenAct: 'gelu_new' },
  ],
];

CASES.forEach(([label, o], i) => {
  test(`${label}: every hook point and every sweep it has, fast and naive, equal the reference`, async () => {
    const dir = makeTmpDir(`neox-${i}`);
    writeRandomNeoxCheckpoint(dir, { ...o, seed: 40 + i });
    const m = await loadTestModel(dir);
    assert.equal(m.cfg.parallelAttnMlp, o.parallel ?? true);
    await expectForwardMatches(m.model, m.ref, m.cfg, 50 + i);
    assert.equal(sweepsOf(m.cfg).includes('resid_mid'), o.parallel === false, 'resid_mid only with a sequential residual');
    await expectSweepsMatch(m.model, m.ref, m.cfg, 60 + i, 5);
  });
});

test('bfloat16 weights with linear rope scaling load as float32 and match the reference on the same rounded weights', async () => {
  const dir = makeTmpDir('neox-bf16');
  writeRandomNeoxCheckpoint(dir, { nLayers: 1, nHeads: 4, dModel: 16, dVocab: 40, nCtx: 12, seed: 44, rotaryPct: 0.5, dtype: 'BF16' });
  const cfgPath = join(dir, 'config.json');
  const json = JSON.parse(readFileSync(cfgPath, 'utf8'));
  writeFileSync(cfgPath, JSON.stringify({ ...json, rope_scaling: { type: 'linear', factor: 2 } }));
  const m = await loadTestModel(dir);
  assert.equal(m.cfg.weightsDtype, 'BF16');
  assert.equal(m.cfg.rotary!.invFreq[0], 0.5);
  await expectForwardMatches(m.model, m.ref, m.cfg, 45);
});

test('resid_mid on a parallel model is refused in one line before any work (the sequential model above runs it)', async () => {
  const dir = makeTmpDir('neox-refuse');
  writeRandomNeoxCheckpoint(dir, { nLayers: 1, nHeads: 2, dModel: 8, dVocab: 20, nCtx: 8, seed: 46, rotaryPct: 0.5 });
  const m = await loadTestModel(dir);
  let progressed = false;
  await assert.rejects(
    runPatching(
      m.model,
      {
        name: 't',
        model: undefined,
        metric: 'logit_diff',
        sweeps: ['resid_pre', 'resid_mid'],
        prependBos: false,
        pairs: [{ clean: [1, 2, 3], corrupted: [1, 4, 3], answer: 5, wrong: 6 }],
      },
      { onProgress: () => (progressed = true) },
    ),
    (e: unknown) => e instanceof UserError && !e.message.includes('\n') && /sweep 'resid_mid'.*gpt_neox.*parallel on resid_pre.*remove 'resid_mid'/.test(e.message),
  );
  assert.equal(progressed, false, 'refused before any forward');
});

test('text prompts get no BOS unless the spec asks (TransformerLens: default_prepend_bos False for GPT-NeoX)', async () => {
  const dir = makeTmpDir('neox-bos');
  writeRandomNeoxCheckpoint(dir, { nLayers: 1, nHeads: 2, dModel: 8, dVocab: 120, nCtx: 64, seed: 47, rotaryPct: 0.5 });
  const { config } = loadCheckpoint(dir);
  const tok = await loadTokenizer(dir, config);
  const induction = { seed: 0, token_range: [10, 100] as [number, number], length: 5, batch: 1, corrupted: 'AB' as const };
  const spec = (prepend?: boolean) => ({
    model: 'm',
    metric: 'answer_logprob' as const,
    sweeps: ['resid_pre' as const],
    induction,
    ...(prepend === undefined ? {} : { prepend_bos: prepend }),
  });
  const first = (prepend?: boolean) => resolveSpec(spec(prepend), tok, config, { file: 'x.patch.json' });
  assert.equal(first().prependBos, false);
  assert.equal(first().pairs[0]!.clean.length, 10);
  assert.equal(first(true).pairs[0]!.clean.length, 11);
  assert.equal(first(true).pairs[0]!.clean[0], 0, "Pythia's BOS, <|endoftext|>, is id 0");
});

for (const mode of ['fast', 'naive'] as const) {
  test(`${mode}: the golden NeoX checkpoint (computed with TransformerLens) matches every sweep it has`, async () => {
    const worst = await expectGoldenMatches('neox-2l4h', mode);
    assert.ok(worst <= 1e-4);
  });
}
