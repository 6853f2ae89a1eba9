/**
 * Random checkpoints in the exact Hugging Face layouts of the Llama-layout families: LlamaForCausalLM,
 * MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM and
 * Olmo2ForCausalLM. config.json as save_pretrained writes it (with the keys each family's hub configs
 * carry), `model.`-prefixed tensor names, nn.Linear weights [out, in], each family's norms (Gemma's four
 * per layer stored as w for a gain 1 + w, OLMo 2's two after the sublayers, q/k norms), lm_head only when
 * untied, in one file or sharded with model.safetensors.index.json, in float32, float16 or bfloat16. Norm
 * gains and every bias the family has are random and far from their defaults, so a loader that drops or
 * misplaces one gives visibly different numbers.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type StoredDtype, type TensorSource, writeSafetensors, writeSafetensorsFrom } from '../../../src/engine/model/safetensors';
import { mulberry32 } from '../../../src/engine/random';
import type { Tensor32 } from '../../../src/engine/tensor';
import { normalSource } from '../checkpoint';

export type LlamaArch = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'gemma2' | 'gemma3_text' | 'olmo2';

const isGemma = (arch: LlamaArch) => arch === 'gemma2' || arch === 'gemma3_text';

export interface RandomLlamaOptions {
  arch: LlamaArch;
  nLayers: number;
  nHeads: number;
  /** Key/value heads (grouped-query attention when fewer than nHeads). Default nHeads. */
  nKvHeads?: number;
  dModel: number;
  /** Written as head_dim (Llama, Mistral) when given; default dModel / nHeads. */
  dHead?: number;
  dMlp: number;
  dVocab: number;
  nCtx: number;
  seed: number;
  tied?: boolean;
  ropeTheta?: number;
  /** config.json's rope_scaling, as written (e.g. Llama 3.2's llama3 block). */
  ropeScaling?: Record<string, unknown>;
  /** attention_bias (Llama, Qwen3, Gemma, OLMo 2): biases on q, k, v and o. */
  attentionBias?: boolean;
  /**
   * Mistral: sliding_window (null: none). Qwen2, Qwen3: use_sliding_window with this window from layer
   * maxWindowLayers on. Gemma: the local layers' window (default 4096).
   */
  slidingWindow?: number | null;
  maxWindowLayers?: number;
  /** Qwen3, Gemma: write layer_types, as recent Transformers versions do ('sliding_attention' / 'full_attention'). */
  layerTypes?: boolean;
  /** Gemma 3: every this-th layer is global (sliding_window_pattern, default 6). */
  slidingWindowPattern?: number;
  /** Gemma: query_pre_attn_scalar (default head_dim). */
  queryPreAttnScalar?: number;
  /** Gemma: attn_logit_softcapping and final_logit_softcapping (Gemma 2's defaults 50 and 30; Gemma 3's null). */
  attnSoftcap?: number | null;
  finalSoftcap?: number | null;
  /** Gemma 3: rope_local_base_freq (default 10000). */
  ropeLocalTheta?: number;
  /** Gemma 3: write rope_parameters per layer type, as Transformers 5 does, instead of rope_theta / rope_scaling / rope_local_base_freq. */
  ropeParametersByLayerType?: boolean;
  dtype?: StoredDtype;
  /** Split the tensors over this many files with an index, as save_pretrained does for large models. */
  shards?: number;
  bosTokenId?: number;
  eosTokenId?: number;
  /** Standard deviation of matrix entries (default 0.2). */
  scale?: number;
}

const TORCH_DTYPE: Record<StoredDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };
const ARCHITECTURE: Record<LlamaArch, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
  gemma2: 'Gemma2ForCausalLM',
  gemma3_text: 'Gemma3ForCausalLM',
  olmo2: 'Olmo2ForCausalLM',
};

/** Per layer, whether it is a sliding-window layer, as each family's config class lays them out. */
function slidingPattern(o: RandomLlamaOptions): boolean[] {
  return Array.from({ length: o.nLayers }, (_, l) =>
    o.arch === 'gemma2'
      ? l % 2 === 0
      : o.arch === 'gemma3_text'
        ? (l + 1) % (o.slidingWindowPattern ?? 6) !== 0
        : typeof o.slidingWindow === 'number' && l >= (o.maxWindowLayers ?? o.nLayers),
  );
}
const layerTypes = (o: RandomLlamaOptions) => (o.layerTypes ? { layer_types: slidingPattern(o).map((s) => (s ? 'sliding_attention' : 'full_attention')) } : {});

/** config.json as transformers 4.4x / 4.5x's save_pretrained writes it for each family. */
export function llamaConfigJson(o: RandomLlamaOptions): Record<string, unknown> {
  const E = o.dHead ?? o.dModel / o.nHeads;
  const qwen = o.arch === 'qwen2' || o.arch === 'qwen3';
  const common = {
    architectures: [ARCHITECTURE[o.arch]],
    attention_dropout: 0.0,
    bos_token_id: o.bosTokenId ?? (qwen ? o.dVocab - 1 : isGemma(o.arch) ? 2 : 1),
    eos_token_id: o.eosTokenId ?? (qwen ? o.dVocab - 1 : isGemma(o.arch) ? 1 : 2),
    hidden_act: isGemma(o.arch) ? 'gelu_pytorch_tanh' : 'silu',
    hidden_size: o.dModel,
    initializer_range: 0.02,
    intermediate_size: o.dMlp,
    max_position_embeddings: o.nCtx,
    model_type: o.arch,
    num_attention_heads: o.nHeads,
    num_hidden_layers: o.nLayers,
    num_key_value_heads: o.nKvHeads ?? o.nHeads,
    rms_norm_eps: o.arch === 'llama' || o.arch === 'mistral' ? 1e-5 : 1e-6,
    rope_theta: o.ropeTheta ?? (qwen || o.arch === 'gemma3_text' ? 1000000.0 : o.arch === 'olmo2' ? 500000.0 : 10000.0),
    tie_word_embeddings: o.tied ?? isGemma(o.arch),
    torch_dtype: TORCH_DTYPE[o.dtype ?? 'F32'],
    transformers_version: '4.46.3',
    use_cache: true,
    vocab_size: o.dVocab,
  };
  const gemma = {
    attention_bias: o.attentionBias ?? false,
    cache_implementation: 'hybrid',
    head_dim: E,
    hidden_activation: 'gelu_pytorch_tanh',
    pad_token_id: 0,
    query_pre_attn_scalar: o.queryPreAttnScalar ?? E,
    sliding_window: o.slidingWindow ?? 4096,
    ...layerTypes(o),
  };
  switch (o.arch) {
    case 'llama':
      return {
        ...common,
        attention_bias: o.attentionBias ?? false,
        head_dim: E,
        mlp_bias: false,
        pretraining_tp: 1,
        rope_scaling: o.ropeScaling ?? null,
      };
    case 'mistral':
      return { ...common, head_dim: E, sliding_window: o.slidingWindow === undefined ? 4096 : o.slidingWindow };
    case 'qwen2':
      return {
        ...common,
        max_window_layers: o.maxWindowLayers ?? o.nLayers,
        rope_scaling: o.ropeScaling ?? null,
        sliding_window: o.slidingWindow ?? 4096,
        use_sliding_window: o.slidingWindow !== undefined && o.slidingWindow !== null,
      };
    case 'qwen3':
      return {
        ...common,
        attention_bias: o.attentionBias ?? false,
        head_dim: E,
        max_window_layers: o.maxWindowLayers ?? o.nLayers,
        rope_scaling: o.ropeScaling ?? null,
        sliding_window: o.slidingWindow ?? null,
        use_sliding_window: typeof o.slidingWindow === 'number',
        ...layerTypes(o),
      };
    case 'olmo2':
      return { ...common, attention_bias: o.attentionBias ?? false, pad_token_id: 1, rope_scaling: o.ropeScaling ?? null };
    case 'gemma2':
      return {
        ...common,
        ...gemma,
        attn_logit_softcapping: o.attnSoftcap === undefined ? 50.0 : o.attnSoftcap,
        final_logit_softcapping: o.finalSoftcap === undefined ? 30.0 : o.finalSoftcap,
      };
    case 'gemma3_text': {
      const { rope_theta: theta, ...rest } = common;
      const rope = o.ropeParametersByLayerType
        ? {
            rope_parameters: {
              full_attention: { rope_type: 'default', rope_theta: theta, ...(o.ropeScaling ?? {}) },
              sliding_attention: { rope_type: 'default', rope_theta: o.ropeLocalTheta ?? 10000.0 },
            },
          }
        : { rope_theta: theta, rope_scaling: o.ropeScaling ?? null, rope_local_base_freq: o.ropeLocalTheta ?? 10000.0 };
      return {
        ...rest,
        ...gemma,
        ...rope,
        attn_logit_softcapping: o.attnSoftcap ?? null,
        final_logit_softcapping: o.finalSoftcap ?? null,
        sliding_window_pattern: o.slidingWindowPattern ?? 6,
      };
    }
  }
}

/** Each family's per-layer norms, by their names under `layers.{l}.`. */
const NORMS: Record<LlamaArch, readonly string[]> = {
  llama: ['input_layernorm', 'post_attention_layernorm'],
  mistral: ['input_layernorm', 'post_attention_layernorm'],
  qwen2: ['input_layernorm', 'post_attention_layernorm'],
  qwen3: ['input_layernorm', 'post_attention_layernorm'],
  gemma2: ['input_layernorm', 'post_attention_layernorm', 'pre_feedforward_layernorm', 'post_feedforward_layernorm'],
  gemma3_text: ['input_layernorm', 'post_attention_layernorm', 'pre_feedforward_layernorm', 'post_feedforward_layernorm'],
  olmo2: ['post_attention_layernorm', 'post_feedforward_layernorm'],
};

/** The checkpoint's tensor names and shapes, in the order save_pretrained meets them (layer by layer). */
export function llamaTensorShapes(o: RandomLlamaOptions): [string, number[], 'matrix' | 'gain' | 'bias'][] {
  const D = o.dModel;
  const E = o.dHead ?? D / o.nHeads;
  const H = o.nHeads;
  const K = o.nKvHeads ?? H;
  const M = o.dMlp;
  const out: [string, number[], 'matrix' | 'gain' | 'bias'][] = [['model.embed_tokens.weight', [o.dVocab, D], 'matrix']];
  const qkvBias = o.arch === 'qwen2' || o.attentionBias === true;
  const qkNorm = o.arch === 'qwen3' || o.arch === 'gemma3_text' ? [E, E] : o.arch === 'olmo2' ? [H * E, K * E] : undefined;
  for (let l = 0; l < o.nLayers; l++) {
    const p = `model.layers.${l}.`;
    for (const n of NORMS[o.arch]) out.push([`${p}${n}.weight`, [D], 'gain']);
    out.push([`${p}self_attn.q_proj.weight`, [H * E, D], 'matrix']);
    out.push([`${p}self_attn.k_proj.weight`, [K * E, D], 'matrix']);
    out.push([`${p}self_attn.v_proj.weight`, [K * E, D], 'matrix']);
    if (qkvBias) {
      out.push([`${p}self_attn.q_proj.bias`, [H * E], 'bias']);
      out.push([`${p}self_attn.k_proj.bias`, [K * E], 'bias']);
      out.push([`${p}self_attn.v_proj.bias`, [K * E], 'bias']);
    }
    out.push([`${p}self_attn.o_proj.weight`, [D, H * E], 'matrix']);
    if (o.attentionBias) out.push([`${p}self_attn.o_proj.bias`, [D], 'bias']);
    if (qkNorm) {
      out.push([`${p}self_attn.q_norm.weight`, [qkNorm[0]!], 'gain']);
      out.push([`${p}self_attn.k_norm.weight`, [qkNorm[1]!], 'gain']);
    }
    out.push([`${p}mlp.gate_proj.weight`, [M, D], 'matrix']);
    out.push([`${p}mlp.up_proj.weight`, [M, D], 'matrix']);
    out.push([`${p}mlp.down_proj.weight`, [D, M], 'matrix']);
  }
  out.push(['model.norm.weight', [D], 'gain']);
  if (!(o.tied ?? isGemma(o.arch))) out.push(['lm_head.weight', [o.dVocab, D], 'matrix']);
  return out;
}

function writeConfig(dir: string, config: Record<string, unknown>): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
}

/** Writes `names` into one file, or into `shards` files with the index save_pretrained writes. */
function writeFiles(dir: string, names: string[], bytesOf: (name: string) => number, shards: number, write: (file: string, names: string[]) => void): void {
  if (shards <= 1) {
    write(join(dir, 'model.safetensors'), names);
    return;
  }
  const per = Math.ceil(names.length / shards);
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = names.slice(s * per, (s + 1) * per);
    for (const n of part) weightMap[n] = file;
    write(join(dir, file), part);
  }
  const total = names.reduce((a, n) => a + bytesOf(n), 0);
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
}

/**
 * A small random checkpoint of one of the families; returns the tensors as written (before rounding to
 * dtype). Gemma stores its gains as w (applied as 1 + w), so its gains are drawn around 0, the others' around 1.
 */
export function writeRandomLlamaCheckpoint(dir: string, o: RandomLlamaOptions): Map<string, Tensor32> {
  writeConfig(dir, llamaConfigJson(o));
  const normal = normalSource(o.seed);
  const scale = o.scale ?? 0.2;
  const gainAround = isGemma(o.arch) ? 0 : 1;
  const tensors = new Map<string, Tensor32>();
  for (const [name, shape, kind] of llamaTensorShapes(o)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = kind === 'matrix' ? scale * normal() : kind === 'gain' ? gainAround + 0.3 * normal() : 0.1 * normal();
    tensors.set(name, { shape, data });
  }
  const dtype = o.dtype ?? 'F32';
  writeFiles(
    dir,
    [...tensors.keys()],
    (n) => tensors.get(n)!.data.length * (dtype === 'F32' ? 4 : 2),
    o.shards ?? 1,
    (file, names) => writeSafetensors(file, Object.fromEntries(names.map((n) => [n, tensors.get(n)!])), { format: 'pt' }, dtype),
  );
  return tensors;
}

/** Llama 3.2 1B's config.json (meta-llama/Llama-3.2-1B), with llama3 rope scaling and tied embeddings. */
export const LLAMA_3_2_1B: RandomLlamaOptions = {
  arch: 'llama',
  nLayers: 16,
  nHeads: 32,
  nKvHeads: 8,
  dModel: 2048,
  dHead: 64,
  dMlp: 8192,
  dVocab: 128256,
  nCtx: 131072,
  seed: 1,
  tied: true,
  ropeTheta: 500000,
  ropeScaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  bosTokenId: 128000,
  eosTokenId: 128001,
  dtype: 'BF16',
};

/** Gemma 2 2B's config.json (google/gemma-2-2b): 26 layers alternating local and global, head_dim 256, soft-caps 50 and 30, tied. */
export const GEMMA_2_2B: RandomLlamaOptions = {
  arch: 'gemma2',
  nLayers: 26,
  nHeads: 8,
  nKvHeads: 4,
  dModel: 2304,
  dHead: 256,
  dMlp: 9216,
  dVocab: 256000,
  nCtx: 8192,
  seed: 2,
  queryPreAttnScalar: 256,
  slidingWindow: 4096,
  bosTokenId: 2,
  eosTokenId: 1,
  dtype: 'BF16',
};

/**
 * A checkpoint of a large shape in bfloat16 without ever holding it: each tensor is streamed chunk by
 * chunk, matrices as runs copied from random offsets of one block of uniform random values of the usual
 * initialisation size (std 0.02), norm gains 1 (Gemma's stored w 0). Copying rather than drawing every value writes the 2.5 GB
 * of a 1B-parameter model in seconds; the runs start at random offsets, so no two rows are alike.
 */
export function writeLargeRandomBf16Checkpoint(dir: string, o: RandomLlamaOptions): void {
  writeConfig(dir, llamaConfigJson({ ...o, dtype: 'BF16' }));
  const next = mulberry32(o.seed);
  const BLOCK = (1 << 20) + 7;
  const block = new Uint16Array(BLOCK);
  const scratch = new Float32Array(1);
  const bits = new Uint32Array(scratch.buffer);
  const halfWidth = 0.02 * Math.sqrt(3);
  for (let i = 0; i < BLOCK; i++) {
    scratch[0] = (next() / 2147483648 - 1) * halfWidth;
    block[i] = bits[0]! >>> 16;
  }
  const CHUNK = 1 << 22;
  const sources: Record<string, TensorSource> = {};
  for (const [name, shape, kind] of llamaTensorShapes(o)) {
    const n = shape.reduce((a, b) => a * b, 1);
    sources[name] = {
      shape,
      write(put) {
        for (let start = 0; start < n; start += CHUNK) {
          const count = Math.min(CHUNK, n - start);
          const out = new Uint16Array(count);
          if (kind === 'gain' && !isGemma(o.arch)) out.fill(0x3f80);
          else if (kind === 'matrix') {
            for (let at = 0; at < count;) {
              const from = next() % BLOCK;
              const len = Math.min(BLOCK - from, count - at);
              out.set(block.subarray(from, from + len), at);
              at += len;
            }
          }
          put(Buffer.from(out.buffer, 0, 2 * count));
        }
      },
    };
  }
  writeSafetensorsFrom(join(dir, 'model.safetensors'), sources, { format: 'pt' }, 'BF16');
}
