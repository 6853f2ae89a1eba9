import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { parseModelConfig } from '../../src/engine/architectures/registry';
import { modelParamCount } from '../../src/engine/model/weights';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import { readSafetensors, writeSafetensors } from '../../src/engine/model/safetensors';
import type { Tensor32 } from '../../src/engine/tensor';
import { UserError } from '../../src/common/userError';
import { makeTmpDir, writeRandomGpt2Checkpoint } from '../helpers/checkpoint';
import { GPT2_SMALL_CONFIG } from '../helpers/configs';

const GOLDEN = resolve(__dirname, '../fixtures/golden/gpt2-2l4h/model');

function expectUserError(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), 'a UserError message is one line');
    for (const p of parts) assert.ok(e.message.includes(p), `message '${e.message}' should mention '${p}'`);
    return true;
  });
}

const small = { nLayers: 2, nHeads: 4, dModel: 32, dVocab: 100, nCtx: 16, seed: 7 };

function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): void {
  const p = join(dir, 'config.json');
  const c = JSON.parse(readFileSync(p, 'utf8'));
  edit(c);
  writeFileSync(p, JSON.stringify(c));
}

test('a random checkpoint loads back with every tensor in the right slot', () => {
  const dir = makeTmpDir('ckpt-roundtrip');
  const cfg = writeRandomGpt2Checkpoint(dir, { ...small, dMlp: 48 });
  const { config, weights } = loadCheckpoint(dir);
  assert.deepEqual(config, cfg);
  assert.equal(config.dMlp, 48);
  const raw = readSafetensors(join(dir, 'model.safetensors'));
  const same = (t: Tensor32, name: string) => {
    const r = raw.get(name)!;
    assert.deepEqual(t.shape, r.shape, name);
    assert.deepEqual(t.data, r.data, name);
  };
  same(weights.wte, 'wte.weight');
  same(weights.wpe!, 'wpe.weight');
  same(weights.lnfW, 'ln_f.weight');
  same(weights.lnfB!, 'ln_f.bias');
  assert.equal(weights.blocks.length, 2);
  weights.blocks.forEach((b, l) => {
    const p = `h.${l}.`;
    same(b.ln1W, `${p}ln_1.weight`);
    same(b.ln1B!, `${p}ln_1.bias`);
    same(b.wQkv, `${p}attn.c_attn.weight`);
    same(b.bQkv, `${p}attn.c_attn.bias`);
    same(b.wO, `${p}attn.c_proj.weight`);
    same(b.bO, `${p}attn.c_proj.bias`);
    same(b.ln2W!, `${p}ln_2.weight`);
    same(b.ln2B!, `${p}ln_2.bias`);
    same(b.wIn!, `${p}mlp.c_fc.weight`);
    same(b.bIn!, `${p}mlp.c_fc.bias`);
    same(b.wOut!, `${p}mlp.c_proj.weight`);
    same(b.bOut!, `${p}mlp.c_proj.bias`);
  });
  assert.equal(weights.unembed, weights.wte, 'tied checkpoint: unembed is the same object as wte');
  // The random checkpoint must not look like a default-initialised one.
  assert.ok(weights.blocks[0]!.ln1W.data.some((v) => Math.abs(v - 1) > 0.1));
  assert.ok(weights.blocks[0]!.bQkv.data.every((v) => v !== 0));
  // No copies: every tensor is a view into the one file buffer.
  assert.equal(weights.wte.data.buffer, weights.blocks[1]!.wOut!.data.buffer);
});

test("'transformer.'-prefixed names, a separate lm_head and mask buffers are handled", () => {
  const dir = makeTmpDir('ckpt-prefixed');
  writeRandomGpt2Checkpoint(dir, small);
  const st = join(dir, 'model.safetensors');
  const plain = readSafetensors(st);
  const out: Record<string, Tensor32> = {};
  for (const [k, v] of plain) out[`transformer.${k}`] = { shape: v.shape, data: Float32Array.from(v.data) };
  const lm = Float32Array.from(plain.get('wte.weight')!.data, (v) => 2 * v);
  out['lm_head.weight'] = { shape: [100, 32], data: lm };
  out['transformer.h.0.attn.bias'] = { shape: [1, 1, 16, 16], data: new Float32Array(256) };
  out['transformer.h.0.attn.masked_bias'] = { shape: [], data: Float32Array.from([-1e4]) };
  writeSafetensors(st, out);
  const { weights } = loadCheckpoint(dir);
  assert.notEqual(weights.unembed, weights.wte);
  assert.deepEqual(weights.unembed.data, lm);
  assert.deepEqual(weights.blocks[1]!.wIn!.data, plain.get('h.1.mlp.c_fc.weight')!.data);
});

test('missing files are UserErrors that say what a checkpoint folder needs', () => {
  const dir = makeTmpDir('ckpt-missing');
  writeRandomGpt2Checkpoint(dir, small);
  rmSync(join(dir, 'model.safetensors'));
  expectUserError(() => loadCheckpoint(dir), join(dir, 'model.safetensors'), 'config.json and model.safetensors');
  rmSync(join(dir, 'config.json'));
  expectUserError(() => loadCheckpoint(dir), join(dir, 'config.json'), 'config.json and model.safetensors');
  expectUserError(() => loadCheckpoint(join(dir, 'nope')), join(dir, 'nope'), 'does not exist');

  const d2 = makeTmpDir('ckpt-badjson');
  writeRandomGpt2Checkpoint(d2, small);
  writeFileSync(join(d2, 'config.json'), '{"n_embd": 32,');
  expectUserError(() => loadCheckpoint(d2), join(d2, 'config.json'), 'not valid JSON');
});

test('an unknown architecture is named in the error', () => {
  const dir = makeTmpDir('ckpt-arch');
  writeRandomGpt2Checkpoint(dir, small);
  editConfig(dir, (c) => {
    c.model_type = 'mamba';
    c.architectures = ['MambaForCausalLM'];
  });
  const file = join(dir, 'config.json');
  expectUserError(() => loadCheckpoint(dir), `unknown architecture (model_type 'mamba') in ${file}; PatchLens supports GPT-2`);
  // architectures alone is enough to recognise GPT-2.
  editConfig(dir, (c) => {
    delete c.model_type;
    c.architectures = ['GPT2LMHeadModel'];
  });
  assert.equal(loadCheckpoint(dir).config.nLayers, 2);
});

test('shape mismatches and missing tensors name the tensor and both shapes', () => {
  const dir = makeTmpDir('ckpt-shape');
  writeRandomGpt2Checkpoint(dir, small);
  editConfig(dir, (c) => (c.vocab_size = 101));
  expectUserError(() => loadCheckpoint(dir), "'wte.weight'", '[100, 32]', '[101, 32]');
  editConfig(dir, (c) => {
    c.vocab_size = 100;
    c.n_inner = 64;
  });
  expectUserError(() => loadCheckpoint(dir), "'h.0.mlp.c_fc.weight'", '[32, 128]', '[32, 64]');
  editConfig(dir, (c) => {
    c.n_inner = null;
    c.n_layer = 3;
  });
  expectUserError(() => loadCheckpoint(dir), "'h.2.ln_1.weight'", 'missing');
});

test('absurd or invalid configs are rejected by field before anything is allocated', () => {
  const base = () => ({ model_type: 'gpt2', n_layer: 2, n_head: 4, n_embd: 32, vocab_size: 100, n_positions: 16 });
  const cfgErr = (edit: (c: Record<string, unknown>) => void, ...parts: string[]) => {
    const c: Record<string, unknown> = base();
    edit(c);
    expectUserError(() => parseModelConfig(c, 'x/config.json'), 'x/config.json', ...parts);
  };
  cfgErr((c) => (c.n_embd = 1e9), "'n_embd'", '1000000000');
  cfgErr((c) => (c.n_layer = 100000), "'n_layer'");
  cfgErr((c) => (c.vocab_size = 2e7), "'vocab_size'");
  cfgErr((c) => (c.n_positions = 2 ** 25), "'n_positions'");
  cfgErr((c) => (c.n_head = 2.5), "'n_head'", 'positive integer');
  cfgErr((c) => (c.n_head = 0), "'n_head'");
  cfgErr((c) => (c.n_embd = '32'), "'n_embd'");
  cfgErr((c) => delete c.n_layer, "'n_layer'");
  cfgErr((c) => (c.n_head = 5), "'n_embd'", '32', "'n_head' (5)");
  cfgErr((c) => (c.activation_function = 'swish'), "'activation_function'", 'swish');
  cfgErr((c) => (c.bos_token_id = 100), "'bos_token_id'");
  cfgErr((c) => (c.layer_norm_epsilon = -1), "'layer_norm_epsilon'");
  // Each field within its bound, the whole far beyond 64 GiB.
  cfgErr((c) => Object.assign(c, { n_embd: 65536, n_head: 64, n_layer: 512, vocab_size: 10_000_000 }), 'GiB', '64.0 GiB');
  expectUserError(() => parseModelConfig(null, 'x/config.json'), 'x/config.json', 'not a JSON object');

  // Through the loader: the config is rejected although the weights file is fine.
  const dir = makeTmpDir('ckpt-absurd');
  writeRandomGpt2Checkpoint(dir, small);
  editConfig(dir, (c) => (c.n_embd = 1e9));
  expectUserError(() => loadCheckpoint(dir), "'n_embd'", join(dir, 'config.json'));
});

test('config mapping: defaults, n_ctx fallback, activation aliases, parameter count', () => {
  const c = {
    ...parseModelConfig({ architectures: ['GPT2Model'], n_layer: 12, n_head: 12, n_embd: 768, vocab_size: 50257, n_ctx: 1024, activation_function: 'gelu_pytorch_tanh' }, 'f')
      .config,
    weightsDtype: 'F32',
  };
  assert.deepEqual(c, GPT2_SMALL_CONFIG);
  // Hugging Face reports 124,439,808 parameters for GPT-2 small (tied embeddings).
  assert.equal(modelParamCount(c), 124_439_808);
  const { config: relu } = parseModelConfig(
    {
      model_type: 'gpt2',
      n_layer: 1,
      n_head: 1,
      n_embd: 4,
      vocab_size: 10,
      n_positions: 8,
      n_inner: 6,
      activation_function: 'relu',
      layer_norm_epsilon: 1e-6,
      bos_token_id: 0,
      eos_token_id: 9,
    },
    'f',
  );
  assert.equal(relu.activation, 'relu');
  assert.equal(relu.dMlp, 6);
  assert.equal(relu.normEps, 1e-6);
  assert.equal(relu.bosTokenId, 0);
  assert.equal(relu.eosTokenId, 9);
});

test('the golden 2-layer checkpoint (test/fixtures) loads', (t) => {
  if (!existsSync(GOLDEN)) return t.skip(`${GOLDEN} not present`);
  const { config, weights } = loadCheckpoint(GOLDEN);
  assert.deepEqual(
    { L: config.nLayers, H: config.nHeads, D: config.dModel, M: config.dMlp, V: config.dVocab, C: config.nCtx, act: config.activation },
    { L: 2, H: 4, D: 32, M: 128, V: 1000, C: 64, act: 'gelu_new' },
  );
  assert.equal(config.bosTokenId, 999);
  assert.equal(weights.unembed, weights.wte);
  assert.deepEqual(weights.blocks[1]!.wQkv.shape, [32, 96]);
  assert.ok(
    weights.lnfW.data.some((v) => Math.abs(v - 1) > 1e-3),
    'LayerNorm gains are random, not 1',
  );
  assert.ok(weights.wte.data.every(Number.isFinite));
});
