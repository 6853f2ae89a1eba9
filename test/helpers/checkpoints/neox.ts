import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors, type StoredDtype } from '../../../src/engine/model/safetensors';
import type { Tensor32 } from '../../../src/engine/tensor';
import { normalSource } from '../checkpoint';

export interface RandomNeoxOptions {
  nLayers: number;
  nHeads: number;
  dModel: number;
  dMlp?: number;
  dVocab: number;
  nCtx: number;
  seed: number;
  /** Default 0.25, Pythia's. */
  rotaryPct?: number;
  rotaryBase?: number;
  /** use_parallel_residual (default true, Pythia's). */
  parallel?: boolean;
  tied?: boolean;
  /** attention_bias (default true): false writes no query_key_value / dense biases. */
  attentionBias?: boolean;
  hiddenAct?: 'gelu' | 'gelu_new' | 'relu';
  dtype?: StoredDtype;
  scale?: number;
}

/**
 * Writes a random-weight GPT-NeoX checkpoint exactly as GPTNeoXForCausalLM.save_pretrained does: config.json
 * with Pythia's keys, model.safetensors with 'gpt_neox.'-prefixed names, the fused per-head query_key_value
 * ([3·D, D], rows head by head: q, k, v), nn.Linear weights [out, in], and embed_out (absent when tied).
 * LayerNorm gains and every bias are random so a forward that drops one gives visibly different numbers.
 */
export function writeRandomNeoxCheckpoint(dir: string, o: RandomNeoxOptions): void {
  const D = o.dModel;
  const M = o.dMlp ?? 4 * D;
  const scale = o.scale ?? 0.2;
  const attentionBias = o.attentionBias ?? true;
  mkdirSync(dir, { recursive: true });
  const config = {
    architectures: ['GPTNeoXForCausalLM'],
    attention_bias: attentionBias,
    attention_dropout: 0.0,
    bos_token_id: 0,
    classifier_dropout: 0.1,
    eos_token_id: 0,
    hidden_act: o.hiddenAct ?? 'gelu',
    hidden_dropout: 0.0,
    hidden_size: D,
    initializer_range: 0.02,
    intermediate_size: M,
    layer_norm_eps: 1e-5,
    max_position_embeddings: o.nCtx,
    model_type: 'gpt_neox',
    num_attention_heads: o.nHeads,
    num_hidden_layers: o.nLayers,
    rope_scaling: null,
    rotary_emb_base: o.rotaryBase ?? 10000,
    rotary_pct: o.rotaryPct ?? 0.25,
    tie_word_embeddings: o.tied ?? false,
    torch_dtype: o.dtype === 'BF16' ? 'bfloat16' : o.dtype === 'F16' ? 'float16' : 'float32',
    transformers_version: '4.46.0',
    use_cache: true,
    use_parallel_residual: o.parallel ?? true,
    vocab_size: o.dVocab,
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');

  const normal = normalSource(o.seed);
  const t = (shape: number[], f: () => number): Tensor32 => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, f) });
  const mat = (rows: number, cols: number) => t([rows, cols], () => scale * normal());
  const bias = (n: number) => t([n], () => 0.1 * normal());
  const gain = (n: number) => t([n], () => 1 + 0.3 * normal());
  const tensors: Record<string, Tensor32> = { 'gpt_neox.embed_in.weight': mat(o.dVocab, D) };
  for (let l = 0; l < o.nLayers; l++) {
    const p = `gpt_neox.layers.${l}.`;
    tensors[`${p}input_layernorm.weight`] = gain(D);
    tensors[`${p}input_layernorm.bias`] = bias(D);
    tensors[`${p}post_attention_layernorm.weight`] = gain(D);
    tensors[`${p}post_attention_layernorm.bias`] = bias(D);
    tensors[`${p}attention.query_key_value.weight`] = mat(3 * D, D);
    tensors[`${p}attention.dense.weight`] = mat(D, D);
    if (attentionBias) {
      tensors[`${p}attention.query_key_value.bias`] = bias(3 * D);
      tensors[`${p}attention.dense.bias`] = bias(D);
    }
    tensors[`${p}mlp.dense_h_to_4h.weight`] = mat(M, D);
    tensors[`${p}mlp.dense_h_to_4h.bias`] = bias(M);
    tensors[`${p}mlp.dense_4h_to_h.weight`] = mat(D, M);
    tensors[`${p}mlp.dense_4h_to_h.bias`] = bias(D);
  }
  tensors['gpt_neox.final_layer_norm.weight'] = gain(D);
  tensors['gpt_neox.final_layer_norm.bias'] = bias(D);
  if (!o.tied) tensors['embed_out.weight'] = mat(o.dVocab, D);
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' }, o.dtype);
}
