import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ModelConfig } from '../../src/engine/model/config';
import { gpt2Config } from './configs';
import { writeGpt2TokenizerFiles } from '../../src/engine/model/gpt2Tokenizer';
import { writeSafetensors } from '../../src/engine/model/safetensors';
import type { Tensor32 } from '../../src/engine/tensor';
import { uniform } from '../../src/engine/random';

const REPO_ROOT = resolve(__dirname, '../..');

/** A fresh folder under the repo's gitignored .test-tmp/ (kept after the run, for post-mortems). */
export function makeTmpDir(prefix: string): string {
  const base = join(REPO_ROOT, '.test-tmp');
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, `${prefix.replace(/[^A-Za-z0-9._-]/g, '_')}-`));
}

/** Standard normal samples (Box-Muller) from a seeded PRNG, so checkpoints are reproducible. */
export function normalSource(seed: number): () => number {
  const u = uniform(seed);
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    const u1 = Math.max(u(), 1e-12);
    const r = Math.sqrt(-2 * Math.log(u1));
    const th = 2 * Math.PI * u();
    spare = r * Math.sin(th);
    return r * Math.cos(th);
  };
}

export interface RandomGpt2Options {
  nLayers: number;
  nHeads: number;
  dModel: number;
  dMlp?: number;
  dVocab: number;
  nCtx: number;
  seed: number;
  withTokenizer?: boolean;
  /** Standard deviation of matrix entries (default 0.2: large enough that activations are not tiny). */
  scale?: number;
}

/**
 * Writes a random-weight GPT-2 checkpoint in Hugging Face's exact format (config.json as
 * GPT2LMHeadModel.save_pretrained writes it, model.safetensors with plain `h.0...` names, tied
 * embeddings, no lm_head). LayerNorm gains and all biases are random and nonzero so a forward pass
 * that mishandles any of them gives visibly different numbers.
 */
export function writeRandomGpt2Checkpoint(dir: string, o: RandomGpt2Options): ModelConfig {
  const dMlp = o.dMlp ?? 4 * o.dModel;
  const scale = o.scale ?? 0.2;
  const eot = o.dVocab - 1;
  mkdirSync(dir, { recursive: true });
  const hfConfig = {
    activation_function: 'gelu_new',
    architectures: ['GPT2LMHeadModel'],
    attn_pdrop: 0.1,
    bos_token_id: eot,
    embd_pdrop: 0.1,
    eos_token_id: eot,
    initializer_range: 0.02,
    layer_norm_epsilon: 1e-5,
    model_type: 'gpt2',
    n_ctx: o.nCtx,
    n_embd: o.dModel,
    n_head: o.nHeads,
    n_inner: o.dMlp === undefined ? null : dMlp,
    n_layer: o.nLayers,
    n_positions: o.nCtx,
    reorder_and_upcast_attn: false,
    resid_pdrop: 0.1,
    scale_attn_by_inverse_layer_idx: false,
    scale_attn_weights: true,
    summary_activation: null,
    summary_first_dropout: 0.1,
    summary_proj_to_labels: true,
    summary_type: 'cls_index',
    summary_use_proj: true,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
    use_cache: true,
    vocab_size: o.dVocab,
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hfConfig, null, 2) + '\n');

  const normal = normalSource(o.seed);
  const t = (shape: number[], f: () => number): Tensor32 => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = f();
    return { shape, data };
  };
  const mat = (shape: number[]) => t(shape, () => scale * normal());
  const bias = (n: number) => t([n], () => 0.1 * normal());
  const gain = (n: number) => t([n], () => 1 + 0.3 * normal());

  const D = o.dModel;
  const tensors: Record<string, Tensor32> = {
    'wte.weight': mat([o.dVocab, D]),
    'wpe.weight': mat([o.nCtx, D]),
  };
  for (let l = 0; l < o.nLayers; l++) {
    const p = `h.${l}.`;
    tensors[`${p}ln_1.weight`] = gain(D);
    tensors[`${p}ln_1.bias`] = bias(D);
    tensors[`${p}attn.c_attn.weight`] = mat([D, 3 * D]);
    tensors[`${p}attn.c_attn.bias`] = bias(3 * D);
    tensors[`${p}attn.c_proj.weight`] = mat([D, D]);
    tensors[`${p}attn.c_proj.bias`] = bias(D);
    tensors[`${p}ln_2.weight`] = gain(D);
    tensors[`${p}ln_2.bias`] = bias(D);
    tensors[`${p}mlp.c_fc.weight`] = mat([D, dMlp]);
    tensors[`${p}mlp.c_fc.bias`] = bias(dMlp);
    tensors[`${p}mlp.c_proj.weight`] = mat([dMlp, D]);
    tensors[`${p}mlp.c_proj.bias`] = bias(D);
  }
  tensors['ln_f.weight'] = gain(D);
  tensors['ln_f.bias'] = bias(D);
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  if (o.withTokenizer) writeGpt2TokenizerFiles(dir);

  return gpt2Config({ nLayers: o.nLayers, nHeads: o.nHeads, dModel: D, dMlp, dVocab: o.dVocab, nCtx: o.nCtx });
}
