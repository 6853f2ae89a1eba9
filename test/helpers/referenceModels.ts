/**
 * Reads a checkpoint folder into the float64 reference's TransformerLens form, one adapter per family,
 * each written from that family's Hugging Face modelling code (which tensor is which, how heads are laid
 * out, what the config keys mean) and not from the engine's loaders: the engine's layout conversion is
 * part of what the reference checks. Only the file formats (safetensors, .pth) are read with the engine's
 * readers, which have tests of their own.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPthStateDict } from '../../src/engine/model/pth';
import { readSafetensors } from '../../src/engine/model/safetensors';
import type { RefConfig, RefModel } from './reference';

export type RawTensors = Map<string, { shape: readonly number[]; data: Float32Array }>;
type Json = Record<string, unknown>;

/** A family's adapter: does this config belong to it, and its reference model from the raw tensors. */
export interface ReferenceFamily {
  readonly recognizes: (config: Json) => boolean;
  readonly load: (config: Json, dir: string) => RefModel;
}

export const f64 = (t: { data: Float32Array } | undefined, what: string): Float64Array => {
  if (!t) throw new Error(`reference: tensor ${what} is missing`);
  return Float64Array.from(t.data);
};

/** [rows, cols] -> [cols, rows]. */
export function transpose(x: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c]!;
  return out;
}

/** A [D, heads·E] matrix whose columns are head-major (x @ W gives each head's E values in turn) as [heads, D, E]. */
export function splitHeadColumns(w: Float64Array, D: number, heads: number, E: number): Float64Array {
  const out = new Float64Array(heads * D * E);
  for (let d = 0; d < D; d++) for (let h = 0; h < heads; h++) for (let e = 0; e < E; e++) out[(h * D + d) * E + e] = w[d * heads * E + h * E + e]!;
  return out;
}

/** Reads every tensor of the folder's safetensors file(s), with any of `prefixes` stripped from the names. */
export function rawTensors(dir: string, prefixes: readonly string[] = []): RawTensors {
  const files = existsSync(join(dir, 'model.safetensors'))
    ? ['model.safetensors']
    : [...new Set(Object.values((JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Json }).weight_map) as string[])];
  const out: RawTensors = new Map();
  for (const f of files) {
    for (const [name, t] of readSafetensors(join(dir, f))) {
      const p = prefixes.find((x) => name.startsWith(x));
      const bare = p ? name.slice(p.length) : name;
      if (!out.has(bare) || !p) out.set(bare, t);
    }
  }
  return out;
}

/** The defaults every family starts from; each adapter overrides what its modelling code does differently. */
export function baseConfig(o: Pick<RefConfig, 'nLayers' | 'nHeads' | 'dModel' | 'dMlp' | 'dVocab' | 'nCtx'> & Partial<RefConfig>): RefConfig {
  const dHead = o.dHead ?? o.dModel / o.nHeads;
  return {
    nKvHeads: o.nHeads,
    dHead,
    norm: 'LN',
    eps: 1e-5,
    normPlacement: 'pre',
    positional: 'standard',
    rotaryDim: 0,
    rotaryInvFreq: [],
    parallel: false,
    attnOnly: false,
    gated: false,
    act: 'gelu_new',
    attnScale: new Array<number>(o.nLayers).fill(Math.sqrt(dHead)),
    attnSoftcap: 0,
    finalSoftcap: 0,
    qkNorm: null,
    window: new Array<number>(o.nLayers).fill(0),
    ...o,
  };
}

/** Hugging Face GPT2LMHeadModel (modeling_gpt2.py): Conv1D weights [in, out], c_attn's columns q | k | v, head-major. */
const gpt2: ReferenceFamily = {
  recognizes: (c) => c.model_type === 'gpt2' || (Array.isArray(c.architectures) && c.architectures.includes('GPT2LMHeadModel')),
  load(c, dir) {
    const D = c.n_embd as number;
    const H = c.n_head as number;
    const E = D / H;
    const M = (c.n_inner as number | null) ?? 4 * D;
    const V = c.vocab_size as number;
    const L = c.n_layer as number;
    const acts: Record<string, RefConfig['act']> = { gelu_new: 'gelu_new', gelu_pytorch_tanh: 'gelu_new', gelu: 'gelu', relu: 'relu' };
    const cfg = baseConfig({
      nLayers: L,
      nHeads: H,
      dModel: D,
      dMlp: M,
      dVocab: V,
      nCtx: (c.n_positions ?? c.n_ctx) as number,
      eps: (c.layer_norm_epsilon as number | undefined) ?? 1e-5,
      act: acts[(c.activation_function as string | undefined) ?? 'gelu_new']!,
    });
    const t = rawTensors(dir, ['transformer.']);
    const g = (n: string) => f64(t.get(n), n);
    const blocks = Array.from({ length: L }, (_, l) => {
      const p = `h.${l}.`;
      const cAttn = g(`${p}attn.c_attn.weight`); // [D, 3D]
      const bAttn = g(`${p}attn.c_attn.bias`);
      const part = (j: number) => {
        const w = new Float64Array(D * D);
        for (let d = 0; d < D; d++) for (let o = 0; o < D; o++) w[d * D + o] = cAttn[d * 3 * D + j * D + o]!;
        return { W: splitHeadColumns(w, D, H, E), b: bAttn.slice(j * D, (j + 1) * D) };
      };
      const [q, k, v] = [part(0), part(1), part(2)];
      return {
        ln1W: g(`${p}ln_1.weight`),
        ln1B: g(`${p}ln_1.bias`),
        W_Q: q.W,
        b_Q: q.b,
        W_K: k.W,
        b_K: k.b,
        W_V: v.W,
        b_V: v.b,
        W_O: g(`${p}attn.c_proj.weight`), // [H·E, D] = [H, E, D]
        b_O: g(`${p}attn.c_proj.bias`),
        ln2W: g(`${p}ln_2.weight`),
        ln2B: g(`${p}ln_2.bias`),
        W_in: g(`${p}mlp.c_fc.weight`),
        b_in: g(`${p}mlp.c_fc.bias`),
        W_out: g(`${p}mlp.c_proj.weight`),
        b_out: g(`${p}mlp.c_proj.bias`),
      };
    });
    // lm_head, when present, is [V, D] (nn.Linear); otherwise the unembedding is tied to wte.
    const unembed = t.has('lm_head.weight') ? g('lm_head.weight') : g('wte.weight');
    return {
      cfg,
      W_E: g('wte.weight'),
      embedScale: 1,
      W_pos: g('wpe.weight'),
      blocks,
      lnfW: g('ln_f.weight'),
      lnfB: g('ln_f.bias'),
      W_U: transpose(unembed, V, D),
      b_U: new Float64Array(V),
    };
  },
};

/**
 * Hugging Face GPTNeoXForCausalLM (modeling_gpt_neox.py). GPTNeoXAttention views query_key_value's output
 * as [.., heads, 3·head_size] and takes q, k, v as the three head_size slices of each head, so row
 * h·3E + j·E + e of the [3D, D] weight is head h's q (j = 0), k (1) or v (2) dim e. Rotary: the first
 * rotary_ndims = int(head_size · rotary_pct) dims, inv_freq = base^(-2i/rotary_ndims). GPTNeoXLayer adds
 * attention and MLP (each on its own LayerNorm of the input) to the input when use_parallel_residual,
 * else runs them one after the other. nn.Linear weights are [out, in]; embed_out is untied by default, and
 * a tied model unembeds with embed_in.
 */
const gptNeox: ReferenceFamily = {
  recognizes: (c) => c.model_type === 'gpt_neox',
  load(c, dir) {
    const D = c.hidden_size as number;
    const H = c.num_attention_heads as number;
    const E = D / H;
    const M = c.intermediate_size as number;
    const V = c.vocab_size as number;
    const L = c.num_hidden_layers as number;
    const rotaryNdims = Math.floor(E * ((c.rotary_pct as number | undefined) ?? 0.25));
    const base = (c.rotary_emb_base as number | undefined) ?? 10000;
    // GPTNeoXLinearScalingRotaryEmbedding divides the positions by rope_scaling.factor.
    const scaling = c.rope_scaling as { type?: string; factor?: number } | null | undefined;
    const factor = scaling?.type === 'linear' ? scaling.factor! : 1;
    const invFreq = Array.from({ length: rotaryNdims / 2 }, (_, i) => 1 / base ** ((2 * i) / rotaryNdims) / factor);
    const acts: Record<string, RefConfig['act']> = { gelu: 'gelu', gelu_new: 'gelu_new', gelu_fast: 'gelu_new', relu: 'relu' };
    const cfg = baseConfig({
      nLayers: L,
      nHeads: H,
      dModel: D,
      dMlp: M,
      dVocab: V,
      nCtx: c.max_position_embeddings as number,
      eps: (c.layer_norm_eps as number | undefined) ?? 1e-5,
      act: acts[(c.hidden_act as string | undefined) ?? 'gelu']!,
      positional: 'rotary',
      rotaryDim: rotaryNdims,
      rotaryInvFreq: new Array<number[]>(L).fill(invFreq),
      parallel: (c.use_parallel_residual as boolean | undefined) ?? true,
    });
    const t = rawTensors(dir, ['gpt_neox.']);
    const g = (n: string) => f64(t.get(n), n);
    // attention_bias: false has no attention biases; HF's _init_weights zeroes a missing one anyway.
    const orZeros = (n: string, len: number) => (t.has(n) ? g(n) : new Float64Array(len));
    const blocks = Array.from({ length: L }, (_, l) => {
      const p = `layers.${l}.`;
      const qkv = g(`${p}attention.query_key_value.weight`); // [3D, D]
      const qkvB = orZeros(`${p}attention.query_key_value.bias`, 3 * D);
      const part = (j: number) => {
        const W = new Float64Array(H * D * E);
        const b = new Float64Array(H * E);
        for (let h = 0; h < H; h++) {
          for (let e = 0; e < E; e++) {
            const row = h * 3 * E + j * E + e;
            for (let d = 0; d < D; d++) W[(h * D + d) * E + e] = qkv[row * D + d]!;
            b[h * E + e] = qkvB[row]!;
          }
        }
        return { W, b };
      };
      const [q, k, v] = [part(0), part(1), part(2)];
      return {
        ln1W: g(`${p}input_layernorm.weight`),
        ln1B: g(`${p}input_layernorm.bias`),
        W_Q: q.W,
        b_Q: q.b,
        W_K: k.W,
        b_K: k.b,
        W_V: v.W,
        b_V: v.b,
        // dense maps the merged heads (h·E + e) to D: W_O[h, e, d] = dense.weight[d, h·E + e].
        W_O: transpose(g(`${p}attention.dense.weight`), D, D),
        b_O: orZeros(`${p}attention.dense.bias`, D),
        ln2W: g(`${p}post_attention_layernorm.weight`),
        ln2B: g(`${p}post_attention_layernorm.bias`),
        W_in: transpose(g(`${p}mlp.dense_h_to_4h.weight`), M, D),
        b_in: g(`${p}mlp.dense_h_to_4h.bias`),
        W_out: transpose(g(`${p}mlp.dense_4h_to_h.weight`), D, M),
        b_out: g(`${p}mlp.dense_4h_to_h.bias`),
      };
    });
    const unembed = c.tie_word_embeddings ? g('embed_in.weight') : g('embed_out.weight');
    return {
      cfg,
      W_E: g('embed_in.weight'),
      embedScale: 1,
      blocks,
      lnfW: g('final_layer_norm.weight'),
      lnfB: g('final_layer_norm.bias'),
      W_U: transpose(unembed, V, D),
      b_U: new Float64Array(V),
    };
  },
};

/**
 * TransformerLens-native checkpoints (NeelNanda/*): config.json in HookedTransformerConfig's terms and a
 * *final.pth state dict whose parameters already have TransformerLens's names and shapes, which are the
 * reference's own: W_Q [H, D, E], b_Q [H, E], W_O [H, E, D], W_U [D, V], SoLU's mlp.ln. Shortformer
 * positions when shortformer_pos (or positional_embedding_type 'shortformer').
 */
const transformerLens: ReferenceFamily = {
  recognizes: (c) => 'd_model' in c && 'attn_only' in c,
  load(c, dir) {
    const pth = readdirSync(dir).find((n) => n.endsWith('final.pth'));
    if (!pth) throw new Error(`reference: no *final.pth in ${dir}`);
    // Buffers such as the bool attention masks are not parameters.
    const dict = readPthStateDict(join(dir, pth));
    const sd = dict.read((n) => dict.header.get(n)!.dtype !== 'BOOL');
    const g = (n: string) => f64(sd.get(n), n);
    const L = c.n_layers as number;
    const attnOnly = c.attn_only as boolean;
    const shortformer = c.positional_embedding_type === 'shortformer' || c.shortformer_pos === true;
    const cfg = baseConfig({
      nLayers: L,
      nHeads: c.n_heads as number,
      dHead: c.d_head as number,
      dModel: c.d_model as number,
      dMlp: c.d_mlp as number,
      dVocab: c.d_vocab as number,
      nCtx: c.n_ctx as number,
      eps: (c.ln_eps as number | undefined) ?? 1e-5,
      act: attnOnly ? 'gelu' : (c.act_fn as RefConfig['act']),
      positional: shortformer ? 'shortformer' : 'standard',
      attnOnly,
    });
    const blocks = Array.from({ length: L }, (_, l) => {
      const b = (n: string) => g(`blocks.${l}.${n}`);
      return {
        ln1W: b('ln1.w'),
        ln1B: b('ln1.b'),
        W_Q: b('attn.W_Q'),
        b_Q: b('attn.b_Q'),
        W_K: b('attn.W_K'),
        b_K: b('attn.b_K'),
        W_V: b('attn.W_V'),
        b_V: b('attn.b_V'),
        W_O: b('attn.W_O'),
        b_O: b('attn.b_O'),
        ...(attnOnly
          ? {}
          : {
              ln2W: b('ln2.w'),
              ln2B: b('ln2.b'),
              W_in: b('mlp.W_in'),
              b_in: b('mlp.b_in'),
              W_out: b('mlp.W_out'),
              b_out: b('mlp.b_out'),
              ...(c.act_fn === 'solu_ln' ? { mlpLnW: b('mlp.ln.w'), mlpLnB: b('mlp.ln.b') } : {}),
            }),
      };
    });
    return {
      cfg,
      W_E: g('embed.W_E'),
      embedScale: 1,
      W_pos: g('pos_embed.W_pos'),
      blocks,
      lnfW: g('ln_final.w'),
      lnfB: g('ln_final.b'),
      W_U: g('unembed.W_U'),
      b_U: g('unembed.b_U'),
    };
  },
};

/**
 * Rotary inverse frequencies as modeling_rope_utils's init functions compute them from a config: the
 * default 1 / base^(2i/dim), 'linear' (all divided by the factor) and 'llama3' (wavelengths beyond
 * original_max_position_embeddings / low_freq_factor divided by the factor, those below
 * original / high_freq_factor kept, a linear blend of the two in between).
 */
function hfRopeInvFreq(c: Json, dim: number): number[] {
  const base = (c.rope_theta as number | undefined) ?? 10000;
  const invFreq: number[] = [];
  for (let i = 0; i < dim; i += 2) invFreq.push(1.0 / base ** (i / dim));
  const scaling = c.rope_scaling as Json | null | undefined;
  const type = scaling ? ((scaling.rope_type ?? scaling.type) as string) : 'default';
  if (type === 'default') return invFreq;
  const factor = scaling!.factor as number;
  if (type === 'linear') return invFreq.map((f) => f / factor);
  if (type !== 'llama3') throw new Error(`reference: rope type ${type}`);
  const lowFreqFactor = scaling!.low_freq_factor as number;
  const highFreqFactor = scaling!.high_freq_factor as number;
  const oldContextLen = scaling!.original_max_position_embeddings as number;
  const lowFreqWavelen = oldContextLen / lowFreqFactor;
  const highFreqWavelen = oldContextLen / highFreqFactor;
  return invFreq.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    const llama = wavelen > lowFreqWavelen ? f / factor : f;
    const smoothFactor = (oldContextLen / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    const smoothed = ((1 - smoothFactor) * llama) / factor + smoothFactor * llama;
    const isMediumFreq = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
    return isMediumFreq ? smoothed : llama;
  });
}

/** The sizes a Llama-layout config gives (head_dim: the config's, else the config class's default). */
interface LlamaDims {
  D: number;
  H: number;
  K: number;
  E: number;
  M: number;
  V: number;
  L: number;
}

function llamaDims(c: Json, defaultHeadDim?: number): LlamaDims {
  const D = c.hidden_size as number;
  const H = c.num_attention_heads as number;
  return {
    D,
    H,
    K: (c.num_key_value_heads as number | undefined) ?? H,
    E: (c.head_dim as number | undefined) ?? defaultHeadDim ?? D / H,
    M: c.intermediate_size as number,
    V: c.vocab_size as number,
    L: c.num_hidden_layers as number,
  };
}

/**
 * The attention and MLP of a Llama-layout checkpoint's layers (modeling_llama's LlamaAttention and
 * LlamaMLP, which Mistral, Qwen2/3, Gemma 2/3 and OLMo 2 copy), norms left to each family: nn.Linear
 * projections [out, in] whose output rows are head-major (view(..., heads, head_dim)), biases where the
 * checkpoint has them, down(act(gate(x)) · up(x)). Returns the blocks, the tensors and their reader.
 */
function llamaLayers(dir: string, { D, H, K, E, M, L }: LlamaDims) {
  const t = rawTensors(dir, ['model.']);
  const g = (n: string) => f64(t.get(n), n);
  // q_proj.weight [heads·E, D]: output row h·E + e is head h's dimension e.
  const perHead = (w: Float64Array, heads: number) => {
    const out = new Float64Array(heads * D * E);
    for (let h = 0; h < heads; h++) for (let d = 0; d < D; d++) for (let e = 0; e < E; e++) out[(h * D + d) * E + e] = w[(h * E + e) * D + d]!;
    return out;
  };
  const bias = (n: string, size: number) => (t.has(n) ? g(n) : new Float64Array(size));
  const blocks = Array.from({ length: L }, (_, l) => {
    const p = `layers.${l}.`;
    const a = `${p}self_attn.`;
    // o_proj.weight [D, H·E]: W_O[h, e, d] = o[d, h·E + e].
    const o = g(`${a}o_proj.weight`);
    const W_O = new Float64Array(H * E * D);
    for (let h = 0; h < H; h++) for (let e = 0; e < E; e++) for (let d = 0; d < D; d++) W_O[(h * E + e) * D + d] = o[d * H * E + h * E + e]!;
    return {
      W_Q: perHead(g(`${a}q_proj.weight`), H),
      b_Q: bias(`${a}q_proj.bias`, H * E),
      W_K: perHead(g(`${a}k_proj.weight`), K),
      b_K: bias(`${a}k_proj.bias`, K * E),
      W_V: perHead(g(`${a}v_proj.weight`), K),
      b_V: bias(`${a}v_proj.bias`, K * E),
      W_O,
      b_O: bias(`${a}o_proj.bias`, D),
      W_gate: transpose(g(`${p}mlp.gate_proj.weight`), M, D),
      W_in: transpose(g(`${p}mlp.up_proj.weight`), M, D),
      b_in: new Float64Array(M),
      W_out: transpose(g(`${p}mlp.down_proj.weight`), D, M),
      b_out: new Float64Array(D),
    };
  });
  return { t, g, blocks };
}

/**
 * What every Llama-style family shares: RMSNorm, rotary embeddings over the whole head (the config's
 * rope, the same at every layer unless `o` says otherwise) and a gated SiLU MLP; `o` adds the family's own.
 */
function llamaConfig(c: Json, { D, H, K, E, M, V, L }: LlamaDims, o: Partial<RefConfig>): RefConfig {
  return baseConfig({
    nLayers: L,
    nHeads: H,
    nKvHeads: K,
    dModel: D,
    dHead: E,
    dMlp: M,
    dVocab: V,
    nCtx: c.max_position_embeddings as number,
    norm: 'RMS',
    positional: 'rotary',
    rotaryDim: E,
    rotaryInvFreq: o.rotaryInvFreq ?? new Array<number[]>(L).fill(hfRopeInvFreq(c, E)),
    gated: true,
    act: 'silu',
    ...o,
  });
}

/** tie_word_embeddings (`tiedByDefault` when absent): lm_head shares embed_tokens' weight; as W_U [D, V]. */
function llamaUnembed(c: Json, g: (n: string) => Float64Array, { D, V }: LlamaDims, tiedByDefault: boolean): Float64Array {
  const tied = (c.tie_word_embeddings as boolean | undefined) ?? tiedByDefault;
  return transpose(tied ? g('embed_tokens.weight') : g('lm_head.weight'), V, D);
}

/**
 * Hugging Face LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM (modeling_llama.py,
 * modeling_mistral.py, modeling_qwen2.py): RMSNorm (input_layernorm, post_attention_layernorm, norm),
 * rotate-half RoPE on q and k, repeat_kv for grouped-query attention, scaling head_dim^-0.5, SwiGLU.
 * Biases: Qwen2 on q/k/v, Llama's attention_bias on q/k/v/o. Sliding windows: Mistral's sliding_window on
 * every layer (the config's default 4096 when absent, none when null); Qwen2's from max_window_layers on
 * when use_sliding_window.
 */
const llamaLike: ReferenceFamily = {
  recognizes: (c) => c.model_type === 'llama' || c.model_type === 'mistral' || c.model_type === 'qwen2',
  load(c, dir) {
    const dims = llamaDims(c);
    const { V, L } = dims;
    const window = (l: number): number => {
      if (c.model_type === 'mistral') return c.sliding_window === null ? 0 : ((c.sliding_window as number | undefined) ?? 4096);
      if (c.model_type === 'qwen2' && c.use_sliding_window === true) return l >= (c.max_window_layers as number) ? (c.sliding_window as number) : 0;
      return 0;
    };
    const cfg = llamaConfig(c, dims, { eps: c.rms_norm_eps as number, window: Array.from({ length: L }, (_, l) => window(l)) });
    const { g, blocks } = llamaLayers(dir, dims);
    return {
      cfg,
      W_E: g('embed_tokens.weight'),
      embedScale: 1,
      blocks: blocks.map((b, l) => ({ ...b, ln1W: g(`layers.${l}.input_layernorm.weight`), ln2W: g(`layers.${l}.post_attention_layernorm.weight`) })),
      lnfW: g('norm.weight'),
      W_U: llamaUnembed(c, g, dims, false),
      b_U: new Float64Array(V),
    };
  },
};

/**
 * Hugging Face Qwen3ForCausalLM (modeling_qwen3.py): Qwen2's layer with Qwen3RMSNorm q_norm / k_norm over
 * each head's head_dim, applied to the projections viewed as heads before rotary embeddings. head_dim is
 * the config's (Qwen3Config's default 128). Biases on q/k/v/o with attention_bias. Layer l is a sliding one
 * where layer_types says so, else (Qwen3Config) when use_sliding_window and l >= max_window_layers; its
 * window is sliding_window, kept only when use_sliding_window.
 */
const qwen3: ReferenceFamily = {
  recognizes: (c) => c.model_type === 'qwen3',
  load(c, dir) {
    const dims = llamaDims(c, 128);
    const { V, L } = dims;
    const slidingWindow = c.use_sliding_window === true ? ((c.sliding_window as number | null | undefined) ?? 0) : 0;
    const types =
      (c.layer_types as string[] | undefined) ??
      Array.from({ length: L }, (_, i) => (slidingWindow && i >= ((c.max_window_layers as number | undefined) ?? 28) ? 'sliding_attention' : 'full_attention'));
    const cfg = llamaConfig(c, dims, {
      eps: (c.rms_norm_eps as number | undefined) ?? 1e-6,
      qkNorm: 'head',
      window: types.map((t) => (t === 'sliding_attention' ? slidingWindow : 0)),
    });
    const { g, blocks } = llamaLayers(dir, dims);
    return {
      cfg,
      W_E: g('embed_tokens.weight'),
      embedScale: 1,
      blocks: blocks.map((b, l) => {
        const p = `layers.${l}.`;
        return {
          ...b,
          ln1W: g(`${p}input_layernorm.weight`),
          ln2W: g(`${p}post_attention_layernorm.weight`),
          qNorm: g(`${p}self_attn.q_norm.weight`),
          kNorm: g(`${p}self_attn.k_norm.weight`),
        };
      }),
      lnfW: g('norm.weight'),
      W_U: llamaUnembed(c, g, dims, false),
      b_U: new Float64Array(V),
    };
  },
};

/**
 * Hugging Face Olmo2ForCausalLM (modeling_olmo2.py): no input norms; the attention output goes through
 * post_attention_layernorm and the MLP output through post_feedforward_layernorm before each is added to
 * the residual (TransformerLens's ln1 and ln2 of a post-norm block). q_norm and k_norm are Olmo2RMSNorms
 * of width num_heads·head_dim and num_key_value_heads·head_dim, applied to q_proj(x) and k_proj(x) before
 * the view into heads. head_dim = hidden_size / num_attention_heads; rms_norm_eps defaults to 1e-5.
 */
const olmo2: ReferenceFamily = {
  recognizes: (c) => c.model_type === 'olmo2',
  load(c, dir) {
    const dims = llamaDims(c);
    const { V } = dims;
    const cfg = llamaConfig(c, dims, { eps: (c.rms_norm_eps as number | undefined) ?? 1e-5, normPlacement: 'post', qkNorm: 'full' });
    const { g, blocks } = llamaLayers(dir, dims);
    return {
      cfg,
      W_E: g('embed_tokens.weight'),
      embedScale: 1,
      blocks: blocks.map((b, l) => {
        const p = `layers.${l}.`;
        return {
          ...b,
          ln1W: g(`${p}post_attention_layernorm.weight`),
          ln2W: g(`${p}post_feedforward_layernorm.weight`),
          qNorm: g(`${p}self_attn.q_norm.weight`),
          kNorm: g(`${p}self_attn.k_norm.weight`),
        };
      }),
      lnfW: g('norm.weight'),
      W_U: llamaUnembed(c, g, dims, false),
      b_U: new Float64Array(V),
    };
  },
};

/**
 * Hugging Face Gemma2ForCausalLM and Gemma3ForCausalLM (modeling_gemma2.py, modeling_gemma3.py, text
 * model_type gemma3_text). Gemma2RMSNorm / Gemma3RMSNorm compute x·rsqrt(mean(x²) + eps)·(1.0 + w.float()):
 * the gain 1 + w is formed in float32. Each layer: input_layernorm → attention → post_attention_layernorm,
 * added; pre_feedforward_layernorm → MLP → post_feedforward_layernorm, added. The model multiplies the
 * embeddings by torch.tensor(hidden_size**0.5) in the activations' dtype (float32 here). Attention scores
 * are q·k times query_pre_attn_scalar**-0.5, then (when attn_logit_softcapping is not None) divided by the
 * cap, tanh'd and multiplied back, then masked; logits get the same with final_logit_softcapping. MLP:
 * ACT2FN[hidden_activation] (gelu_pytorch_tanh) on gate_proj. Sliding layers see keys q − window < k ≤ q:
 * Gemma 2's are the even layers (not bool(layer_idx % 2)), Gemma 3's those with (l + 1) %
 * sliding_window_pattern != 0, unless the config lists layer_types. Gemma 3 adds Gemma3RMSNorm q_norm /
 * k_norm over head_dim before rotary embeddings, and its sliding layers use rotary_emb_local: a copy of the
 * config with rope_theta = rope_local_base_freq and default (unscaled) rope; the global layers keep
 * rope_theta and rope_scaling (Transformers 5 writes both as rope_parameters per layer type).
 */
const gemma: ReferenceFamily = {
  recognizes: (c) => c.model_type === 'gemma2' || c.model_type === 'gemma3_text',
  load(c, dir) {
    const three = c.model_type === 'gemma3_text';
    const dims = llamaDims(c, 256);
    const { D, E, V, L } = dims;
    const pattern = (c.sliding_window_pattern as number | undefined) ?? 6;
    const sliding = (l: number) => (Array.isArray(c.layer_types) ? c.layer_types[l] === 'sliding_attention' : three ? (l + 1) % pattern !== 0 : l % 2 === 0);
    const window = (c.sliding_window as number | undefined) ?? 4096;
    const nested = c.rope_parameters as { full_attention?: Json; sliding_attention?: Json } | undefined;
    const globalRope = nested?.full_attention
      ? hfRopeInvFreq({ rope_theta: nested.full_attention.rope_theta, rope_scaling: nested.full_attention }, E)
      : hfRopeInvFreq({ ...c, rope_theta: (c.rope_theta as number | undefined) ?? (three ? 1e6 : 1e4) }, E);
    const localRope = nested?.sliding_attention
      ? hfRopeInvFreq({ rope_theta: nested.sliding_attention.rope_theta, rope_scaling: nested.sliding_attention }, E)
      : hfRopeInvFreq({ rope_theta: (c.rope_local_base_freq as number | undefined) ?? 1e4 }, E);
    const cap = (key: string, fallback: number) => (c[key] === null ? 0 : ((c[key] as number | undefined) ?? fallback));
    const qpas = (c.query_pre_attn_scalar as number | undefined) ?? 256;
    const act = ((c.hidden_activation as string | undefined) ?? 'gelu_pytorch_tanh') === 'gelu_pytorch_tanh' ? 'gelu_new' : (c.hidden_activation as RefConfig['act']);
    const cfg = llamaConfig(c, dims, {
      eps: (c.rms_norm_eps as number | undefined) ?? 1e-6,
      normPlacement: 'pre_post',
      rotaryInvFreq: Array.from({ length: L }, (_, l) => (three && sliding(l) ? localRope : globalRope)),
      act,
      attnScale: new Array<number>(L).fill(1 / qpas ** -0.5),
      attnSoftcap: cap('attn_logit_softcapping', three ? 0 : 50),
      finalSoftcap: cap('final_logit_softcapping', three ? 0 : 30),
      qkNorm: three ? 'head' : null,
      window: Array.from({ length: L }, (_, l) => (sliding(l) ? window : 0)),
    });
    const { g, blocks } = llamaLayers(dir, dims);
    const gain = (n: string) => g(n).map((w) => Math.fround(1 + w));
    return {
      cfg,
      W_E: g('embed_tokens.weight'),
      embedScale: Math.fround(D ** 0.5),
      blocks: blocks.map((b, l) => {
        const p = `layers.${l}.`;
        return {
          ...b,
          ln1W: gain(`${p}input_layernorm.weight`),
          ln1PostW: gain(`${p}post_attention_layernorm.weight`),
          ln2W: gain(`${p}pre_feedforward_layernorm.weight`),
          ln2PostW: gain(`${p}post_feedforward_layernorm.weight`),
          ...(three ? { qNorm: gain(`${p}self_attn.q_norm.weight`), kNorm: gain(`${p}self_attn.k_norm.weight`) } : {}),
        };
      }),
      lnfW: gain('norm.weight'),
      W_U: llamaUnembed(c, g, dims, true),
      b_U: new Float64Array(V),
    };
  },
};

/** Every family the reference reads; a new family adds its adapter here. */
const FAMILIES: readonly ReferenceFamily[] = [gpt2, gptNeox, transformerLens, llamaLike, qwen3, olmo2, gemma];

const loaded = new Map<string, RefModel>();

/** The reference model of a checkpoint folder (cached: a sweep runs hundreds of forwards on one model). */
export function loadReferenceModel(dir: string): RefModel {
  let m = loaded.get(dir);
  if (!m) {
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Json;
    const family = FAMILIES.find((f) => f.recognizes(config));
    if (!family) throw new Error(`reference: no adapter for the config in ${dir}`);
    m = family.load(config, dir);
    loaded.set(dir, m);
  }
  return m;
}
