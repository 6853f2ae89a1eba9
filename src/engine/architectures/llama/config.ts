import { ConfigFields, CONFIG_LIMITS as LIMIT } from '../../model/configFields';
import type { Activation, ModelConfig, RotaryConfig } from '../../model/config';
import { ropeInverseFrequencies } from './rope';

/**
 * A Llama-style config.json (LlamaConfig and the configs built like it: Mistral, Qwen2, Qwen3, Gemma 2
 * and 3, OLMo 2) read into the engine's description, with what each family does differently given by its
 * rules: defaults where its config class has its own, biases, sliding windows, the BOS default. A family
 * with more (norm placement, q/k norms, soft-caps) spreads those over the result.
 */
export interface Rules {
  readonly family: string;
  /** The family's config class defaults for keys a config.json may leave out. */
  readonly defaults: {
    readonly ctx: number;
    readonly bos: number;
    readonly eos: number;
    /** head_dim when absent (Qwen3 and Gemma: their own; otherwise hidden_size / num_attention_heads). */
    readonly dHead?: number;
    readonly tied?: boolean;
    readonly eps?: number;
  };
  /** The config key naming the MLP's activation and its default (Gemma: hidden_activation, tanh GELU); else hidden_act, SiLU. */
  readonly activation?: { readonly key: string; readonly fallback: Activation };
  /** Rotary frequencies, when the family's differ by layer (Gemma 3); else rope_theta with rope_scaling. */
  readonly rotary?: (f: ConfigFields, dHead: number) => RotaryConfig;
  /** Which attention projections have biases. */
  readonly attnBiases: (f: ConfigFields) => ModelConfig['attnBiases'];
  /** Per layer, the sliding window (0: none). */
  readonly windows: (f: ConfigFields, nLayers: number) => number[];
  /** TransformerLens's default_prepend_bos for the family (loading_from_pretrained). */
  readonly defaultPrependBos: boolean;
}

const ACTIVATIONS = { silu: 'silu', swish: 'silu', gelu: 'gelu', gelu_pytorch_tanh: 'gelu_new', gelu_new: 'gelu_new', relu: 'relu' } as const;

export const noWindows = (_: ConfigFields, n: number) => new Array<number>(n).fill(0);

/** Llama's attention_bias (and the families that copied it): biases on q, k, v and o, or none. */
export const attentionBias = (f: ConfigFields): ModelConfig['attnBiases'] => (f.bool('attention_bias', false) ? 'qkvo' : undefined);

/** A config that names its model_type, or (older exports) only its architectures. */
export const byType = (modelType: string, architecture: string) => (c: Readonly<Record<string, unknown>>) =>
  c.model_type === modelType || (c.model_type === undefined && Array.isArray(c.architectures) && c.architectures.includes(architecture));

/**
 * Per layer, whether it is a sliding-window layer: `layer_types` as recent Transformers versions write
 * it ('sliding_attention' or 'full_attention' for each layer), else the family's own pattern.
 */
export function slidingLayers(f: ConfigFields, nLayers: number, pattern: (layer: number) => boolean): boolean[] {
  if (!f.has('layer_types')) return Array.from({ length: nLayers }, (_, l) => pattern(l));
  const types = f.json.layer_types;
  if (!Array.isArray(types) || types.length !== nLayers || !types.every((t) => t === 'sliding_attention' || t === 'full_attention')) {
    f.fail('layer_types', `it must list 'sliding_attention' or 'full_attention' for each of the ${nLayers} layers; fix the config`);
  }
  return types.map((t) => t === 'sliding_attention');
}

/**
 * The config with `key` narrowed to its first entry where it is a list: instruction-tuned configs list
 * several end tokens (Gemma 3's [1, 106]: <eos>, <end_of_turn>), the first being the vocabulary's own EOS.
 */
function firstOf(f: ConfigFields, key: string): ConfigFields {
  const v = f.json[key];
  return Array.isArray(v) && v.length > 0 ? new ConfigFields({ [key]: v[0] }, f.file, f.family, f.keyPrefix) : f;
}

export function parseLlamaConfig(f: ConfigFields, r: Rules): Omit<ModelConfig, 'weightsDtype'> {
  const dModel = f.int('hidden_size', LIMIT.dModel);
  const nHeads = f.int('num_attention_heads', LIMIT.heads);
  const nLayers = f.int('num_hidden_layers', LIMIT.layers);
  const dVocab = f.int('vocab_size', LIMIT.vocab);
  const dMlp = f.int('intermediate_size', LIMIT.dMlp);
  const nKvHeads = f.int('num_key_value_heads', LIMIT.heads, nHeads);
  if (nHeads % nKvHeads !== 0) f.fail('num_key_value_heads', `'num_attention_heads' (${nHeads}) is not a multiple of it; fix the config`);
  if (!f.has('head_dim') && r.defaults.dHead === undefined && dModel % nHeads !== 0) {
    f.fail('hidden_size', `it is not divisible by 'num_attention_heads' (${nHeads}) and there is no 'head_dim'; fix the config`);
  }
  const dHead = f.int('head_dim', LIMIT.dModel, r.defaults.dHead ?? dModel / nHeads);
  if (dHead % 2 !== 0) f.fail(f.has('head_dim') ? 'head_dim' : 'hidden_size', 'rotary embeddings need an even head dimension; fix the config');
  if (f.bool('mlp_bias', false)) {
    f.fail('mlp_bias', "PatchLens's gated MLP (TransformerLens's GatedMLP) has no biases on gate_proj and up_proj; use a checkpoint without MLP biases");
  }
  const attnBiases = r.attnBiases(f);
  return {
    architecture: r.family,
    nLayers,
    nHeads,
    nKvHeads,
    dModel,
    dHead,
    dMlp,
    dVocab,
    nCtx: f.int('max_position_embeddings', LIMIT.ctx, r.defaults.ctx),
    norm: 'rmsnorm',
    normEps: f.num('rms_norm_eps', 0, 1, r.defaults.eps ?? 1e-6),
    normPlacement: 'pre',
    positional: 'rotary',
    rotary: r.rotary ? r.rotary(f, dHead) : { dim: dHead, invFreq: ropeInverseFrequencies(f, dHead) },
    parallelAttnMlp: false,
    attnOnly: false,
    gatedMlp: true,
    activation: f.choice(r.activation?.key ?? 'hidden_act', ACTIVATIONS, r.activation?.fallback ?? 'silu'),
    attnScale: new Array<number>(nLayers).fill(Math.sqrt(dHead)),
    window: r.windows(f, nLayers),
    ...(attnBiases ? { attnBiases } : {}),
    tiedEmbeddings: f.bool('tie_word_embeddings', r.defaults.tied ?? false),
    unembedBias: false,
    bosTokenId: f.tokenId('bos_token_id', dVocab, Math.min(r.defaults.bos, dVocab - 1)),
    eosTokenId: firstOf(f, 'eos_token_id').tokenId('eos_token_id', dVocab, Math.min(r.defaults.eos, dVocab - 1)),
    defaultPrependBos: r.defaultPrependBos,
  };
}
