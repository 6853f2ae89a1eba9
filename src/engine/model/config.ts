import { totalmem } from 'node:os';
import type { ModelShape } from '../../protocol/result';
import { UserError } from '../../common/userError';

/**
 * A decoder-only transformer as the engine computes it, in TransformerLens's terms (HookedTransformerConfig):
 * every model family is translated into this one description by its architecture (src/engine/architectures),
 * and the graphs, the hook table, the FLOP counts and the memory estimates read nothing else. A family whose
 * computation these fields cannot describe adds a field here, to the graphs and to the test reference.
 */
export interface ModelConfig extends ModelShape {
  /** The registry id of the family that read the checkpoint ('gpt2', 'gpt_neox', 'llama', ...). */
  readonly architecture: string;
  /** Key/value heads: fewer than nHeads with grouped-query attention (query head h reads h / (nHeads / nKvHeads)). */
  readonly nKvHeads: number;
  readonly norm: 'layernorm' | 'rmsnorm';
  readonly normEps: number;
  /**
   * Where each sublayer's norms sit: 'pre' (ln1 before attention, ln2 before the MLP), 'pre_post' (Gemma 2/3:
   * also ln1_post / ln2_post on each sublayer's output, before hook_attn_out / hook_mlp_out), 'post' (OLMo 2:
   * no input norms; ln1 / ln2 normalise the sublayer outputs after hook_attn_out / hook_mlp_out).
   */
  readonly normPlacement: 'pre' | 'pre_post' | 'post';
  /** 'learned' adds W_pos to the residual stream; 'shortformer' adds it to the query and key inputs only. */
  readonly positional: 'learned' | 'shortformer' | 'rotary';
  readonly rotary?: RotaryConfig;
  /** GPT-NeoX's parallel residual: attention and MLP both read resid_pre (no hook_resid_mid). */
  readonly parallelAttnMlp: boolean;
  /** No MLP at all (TransformerLens's attn-only models): no resid_mid, ln2, MLP hooks or hook_mlp_out. */
  readonly attnOnly: boolean;
  /** SwiGLU/GeGLU: post = act(x·W_gate) * (x·W_in) + b_in, with hook_pre on the gate and hook_pre_linear. */
  readonly gatedMlp: boolean;
  readonly activation: Activation;
  /** Attention scores are divided by attnScale[layer] (√d_head unless the family says otherwise). */
  readonly attnScale: readonly number[];
  /** Gemma 2: scores become cap·tanh(scores/cap) before the mask (and before hook_attn_scores). */
  readonly attnSoftcap?: number;
  /** Gemma 2: logits become cap·tanh(logits/cap) after the unembedding. */
  readonly finalSoftcap?: number;
  /** Gemma: token embeddings are multiplied by this (√d_model rounded to float32) before hook_embed. */
  readonly embedScale?: number;
  /** RMSNorm of queries and keys after hook_q / hook_k: per head over d_head (Qwen3, Gemma 3) or over all heads (OLMo 2). */
  readonly qkNorm?: 'head' | 'full';
  /** Per layer, the sliding window of a local layer (a query at q sees keys q−w < k ≤ q), or 0 for a global layer. */
  readonly window: readonly number[];
  /** Which attention projections a Llama-layout checkpoint stores biases for (Qwen2: q, k, v; Llama's attention_bias: all four); absent: none, or the family's own layout decides. */
  readonly attnBiases?: 'qkv' | 'qkvo';
  /** The unembedding is the token embedding (the memory check counts it once). */
  readonly tiedEmbeddings: boolean;
  /** The unembedding has a bias b_U (TransformerLens-native checkpoints). */
  readonly unembedBias: boolean;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  /** Whether text prompts get BOS prepended unless the spec says otherwise (TransformerLens's default_prepend_bos). */
  readonly defaultPrependBos: boolean;
  /** The dtype the checkpoint stores its weights in ('F32', 'F16', 'BF16', ...); the engine computes in float32. */
  readonly weightsDtype: string;
}

export type Activation = 'gelu_new' | 'gelu' | 'relu' | 'silu' | 'solu_ln';

/**
 * Rotary embeddings in the rotate-half convention (GPT-NeoX, Llama, HF): dims i and i + dim/2 of the first
 * `dim` dims of each head turn together by position · invFreq[i]. Frequencies are computed by the family in
 * float64 (scaling included), so every family's rope variant is data here.
 */
export interface RotaryConfig {
  readonly dim: number;
  /** dim/2 inverse frequencies of the global layers. */
  readonly invFreq: readonly number[];
  /** Gemma 3's local layers use their own base. */
  readonly localInvFreq?: readonly number[];
}

/** Bytes as a person reads them: 1.5 GiB, 320.0 MiB, 97.7 KiB. */
export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 2 ** 10).toFixed(1)} KiB`;
}

/**
 * The most float32 weight bytes a model may have here: $PATCHLENS_MAX_MODEL_BYTES when set, else the
 * machine's total memory (free memory is no guide: the page cache counts as used). `what` names the
 * limit for messages.
 */
export function modelMemoryLimit(): { bytes: number; what: string } {
  const env = process.env.PATCHLENS_MAX_MODEL_BYTES;
  if (env !== undefined && env !== '') {
    const bytes = Number(env);
    if (!(Number.isFinite(bytes) && bytes > 0)) {
      throw new UserError(`PATCHLENS_MAX_MODEL_BYTES is '${env}'; set it to a positive number of bytes, or unset it to use the machine's memory`);
    }
    return { bytes, what: `the limit PATCHLENS_MAX_MODEL_BYTES=${env} (${formatBytes(bytes)})` };
  }
  const bytes = totalmem();
  return { bytes, what: `this machine's memory (${formatBytes(bytes)})` };
}

/** Whether layer `layer` uses the local (Gemma 3) rope base. */
export function isLocalLayer(cfg: ModelConfig, layer: number): boolean {
  return cfg.window[layer]! > 0;
}
