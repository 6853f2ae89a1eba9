/**
 * TransformerLens-native checkpoints (the NeelNanda/* models): the config in TransformerLens's terms, random
 * checkpoints in the hub repos' layout (config.json + model_final.pth) against the float64 reference, the
 * golden values computed with TransformerLens, and the sweeps an attention-only model has no hook for.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseModelConfig } from '../../src/engine/architectures/registry';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import { runPatching } from '../../src/engine/patching/runPatching';
import type { SweepName } from '../../src/protocol/spec';
import { UserError } from '../../src/common/userError';
import { makeTmpDir } from '../helpers/checkpoint';
import { type RandomTlOptions, writeRandomTlCheckpoint } from '../helpers/checkpoints/transformerLens';
import { expectGoldenMatches, GOLDEN_ROOT } from '../helpers/golden';
import { loadTestModel } from '../helpers/models';
import { expectForwardMatches, expectSweepsMatch, sweepsOf } from '../helpers/referenceChecks';

const GOLDEN_CONFIG = JSON.parse(readFileSync(join(GOLDEN_ROOT, 'neel-attn-only-2l4h/model/config.json'), 'utf8')) as Record<string, unknown>;

function expectUserError(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), 'one line');
    for (const p of parts) assert.ok(e.message.includes(p), `message '${e.message}' should mention '${p}'`);
    return true;
  });
}

test("a NeelNanda config: attention-only, LayerNorm, learned positions, unembedding bias, BOS prepended, the tokenizer's repo", () => {
  const { architecture, config } = parseModelConfig(GOLDEN_CONFIG, 'neel/config.json');
  assert.equal(architecture.id, 'transformer_lens');
  assert.equal(architecture.weightFormat, 'pth');
  assert.equal(architecture.tokenizerRepo!(GOLDEN_CONFIG), 'NeelNanda/gpt-neox-tokenizer-digits');
  assert.deepEqual(
    {
      attnOnly: config.attnOnly,
      pos: config.positional,
      norm: config.norm,
      bU: config.unembedBias,
      tied: config.tiedEmbeddings,
      prepend: config.defaultPrependBos,
      bos: config.bosTokenId,
      E: config.dHead,
      scale: config.attnScale,
    },
    { attnOnly: true, pos: 'learned', norm: 'layernorm', bU: true, tied: false, prepend: true, bos: 0, E: 8, scale: [Math.sqrt(8), Math.sqrt(8)] },
  );
  const read = (over: Record<string, unknown>) => parseModelConfig({ ...GOLDEN_CONFIG, ...over }, 'x/config.json').config;
  assert.equal(read({ shortformer_pos: true }).positional, 'shortformer');
  assert.equal(read({ shortformer_pos: undefined, positional_embedding_type: 'shortformer' }).positional, 'shortformer');
  assert.equal(read({ normalization: undefined, normalization_type: 'LN' }).norm, 'layernorm');
  assert.equal(read({ attn_only: false, act_fn: 'gelu' }).activation, 'gelu');
  assert.equal(read({ attn_only: false, act_fn: 'solu_ln' }).activation, 'solu_ln');
  const bad = (over: Record<string, unknown>, ...parts: string[]) => expectUserError(() => read(over), 'x/config.json', ...parts);
  bad({ normalization: 'RMS' }, "'normalization'", 'LayerNorm');
  bad({ normalization: 'LNPre' }, "'normalization'", 'LNPre');
  bad({ normalization: null }, "'normalization_type'");
  bad({ final_rms: true }, "'final_rms'");
  bad({ architecture: 'neel-solu-old' }, "'architecture'", 'neel-solu-old');
  bad({ attn_only: false, act_fn: 'solu' }, "'act_fn'", 'solu_ln');
  bad({ positional_embedding_type: 'rotary' }, "'positional_embedding_type'");
  bad({ d_head: undefined }, "'d_head'");
  expectUserError(() => parseModelConfig(GOLDEN_CONFIG, 'x').architecture.tokenizerRepo!({ ...GOLDEN_CONFIG, tokenizer_name: '../../etc' }), "'tokenizer_name'", 'hub repo id');
  assert.equal(parseModelConfig(GOLDEN_CONFIG, 'x').architecture.tokenizerRepo!({ ...GOLDEN_CONFIG, tokenizer_name: undefined }), undefined);
});

const CASES: [string, Omit<RandomTlOptions, 'seed'>][] = [
  ['attention-only, 2 layers (act_fn solu_ln, unused)', { nLayers: 2, nHeads: 4, dModel: 16, dVocab: 50, nCtx: 16, attnOnly: true }],
  [
    'attention-only with shortformer positions, d_head 6 != d_model / n_heads',
    { nLayers: 2, nHeads: 4, dModel: 16, dHead: 6, dVocab: 50, nCtx: 16, attnOnly: true, shortformer: true },
  ],
  ['SoLU MLPs with their LayerNorm', { nLayers: 2, nHeads: 2, dModel: 16, dMlp: 24, dVocab: 50, nCtx: 16, attnOnly: false, actFn: 'solu_ln' }],
  ['GELU MLPs, weights saved in float16', { nLayers: 1, nHeads: 4, dModel: 16, dMlp: 32, dVocab: 50, nCtx: 16, attnOnly: false, actFn: 'gelu', dtype: 'F16' }],
];

CASES.forEach(([label, o], i) => {
  test(`${label}: every hook point and every sweep it has, fast and naive, equal the reference`, async () => {
    const dir = makeTmpDir(`tl-${i}`);
    writeRandomTlCheckpoint(dir, { ...o, seed: 70 + i });
    const m = await loadTestModel(dir);
    assert.equal(m.cfg.weightsDtype, o.dtype ?? 'F32', 'the mask buffers (bool) are not weights and not counted');
    await expectForwardMatches(m.model, m.ref, m.cfg, 80 + i);
    await expectSweepsMatch(m.model, m.ref, m.cfg, 90 + i, 5);
  });
});

test('mlp_out, block_every and resid_mid on an attention-only model are refused in one line before any work', async () => {
  const dir = makeTmpDir('tl-refuse');
  writeRandomTlCheckpoint(dir, { nLayers: 1, nHeads: 2, dModel: 8, dVocab: 20, nCtx: 8, seed: 75, attnOnly: true });
  const m = await loadTestModel(dir);
  assert.deepEqual(sweepsOf(m.cfg).length, 16);
  for (const sweep of ['mlp_out', 'block_every', 'resid_mid'] as SweepName[]) {
    let progressed = false;
    await assert.rejects(
      runPatching(
        m.model,
        {
          name: 't',
          model: undefined,
          metric: 'logit_diff',
          sweeps: ['resid_pre', sweep],
          prependBos: false,
          pairs: [{ clean: [1, 2, 3], corrupted: [1, 4, 3], answer: 5, wrong: 6 }],
        },
        { onProgress: () => (progressed = true) },
      ),
      (e: unknown) => e instanceof UserError && !e.message.includes('\n') && e.message.includes(`sweep '${sweep}'`) && e.message.includes('attention-only'),
    );
    assert.equal(progressed, false, `${sweep}: refused before any forward`);
  }
});

test('a state dict that lacks a tensor the config implies is refused, naming the tensor', () => {
  const dir = makeTmpDir('tl-files');
  writeRandomTlCheckpoint(dir, { nLayers: 1, nHeads: 2, dModel: 8, dVocab: 20, nCtx: 8, seed: 76, attnOnly: true });
  const edited = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...edited, n_layers: 2 }));
  expectUserError(() => loadCheckpoint(dir), "'blocks.1.ln1.w'", 'missing', 'TransformerLens-native');
});

for (const mode of ['fast', 'naive'] as const) {
  test(`${mode}: the golden attention-only checkpoint (a real torch.save file, values from TransformerLens) matches every sweep it has`, async () => {
    const worst = await expectGoldenMatches('neel-attn-only-2l4h', mode);
    assert.ok(worst <= 1e-4);
  });
}
