import { CONFIG_LIMITS as LIMIT, type ConfigFields } from '../../model/configFields';
import type { ModelConfig } from '../../model/config';
import type { Architecture } from '../architecture';
import { assembleLlama, llamaTensors } from './layout';
import { ropeInverseFrequencies } from './rope';

/**
 * The Llama family as Hugging Face's modeling_llama computes it, and the two families that differ from it
 * only in their config: Mistral (a sliding window) and Qwen2 (q/k/v biases, TransformerLens prepends no
 * BOS). RMSNorm before attention and MLP, rotary embeddings on whole heads (rotate-half) with rope_theta
 * and optional linear or llama3 scaling, grouped-query attention, SwiGLU, tied or untied unembedding.
 */
interface Rules {
  readonly family: string;
  readonly defaults: { readonly ctx: number; readonly bos: number; readonly eos: number };
  /** Which attention projections have biases. */
  readonly attnBiases: (f: ConfigFields) => ModelConfig['attnBiases'];
  /** Per layer, the sliding window (0: none). */
  readonly windows: (f: ConfigFields, nLayers: number) => number[];
  /** TransformerLens's default_prepend_bos for the family (loading_from_pretrained). */
  readonly defaultPrependBos: boolean;
}

const ACTIVATIONS = { silu: 'silu', swish: 'silu', gelu: 'gelu', gelu_pytorch_tanh: 'gelu_new', gelu_new: 'gelu_new', relu: 'relu' } as const;

const noWindows = (_: ConfigFields, n: number) => new Array<number>(n).fill(0);

function parseLlamaConfig(f: ConfigFields, r: Rules): Omit<ModelConfig, 'weightsDtype'> {
  const dModel = f.int('hidden_size', LIMIT.dModel);
  const nHeads = f.int('num_attention_heads', LIMIT.heads);
  const nLayers = f.int('num_hidden_layers', LIMIT.layers);
  const dVocab = f.int('vocab_size', LIMIT.vocab);
  const dMlp = f.int('intermediate_size', LIMIT.dMlp);
  const nKvHeads = f.int('num_key_value_heads', LIMIT.heads, nHeads);
  if (nHeads % nKvHeads !== 0) f.fail('num_key_value_heads', `'num_attention_heads' (${nHeads}) is not a multiple of it; fix the config`);
  if (!f.has('head_dim') && dModel % nHeads !== 0) f.fail('hidden_size', `it is not divisible by 'num_attention_heads' (${nHeads}) and there is no 'head_dim'; fix the config`);
  const dHead = f.int('head_dim', LIMIT.dModel, dModel / nHeads);
  if (dHead % 2 !== 0) f.fail(f.has('head_dim') ? 'head_dim' : 'hidden_size', 'rotary embeddings need an even head dimension; fix the config');
  if (f.bool('mlp_bias', false)) {
    f.fail('mlp_bias', "PatchLens's gated MLP (TransformerLens's GatedMLP) has no biases on gate_proj and up_proj; use a checkpoint without MLP biases");
  }
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
    normEps: f.num('rms_norm_eps', 0, 1, 1e-6),
    normPlacement: 'pre',
    positional: 'rotary',
    rotary: { dim: dHead, invFreq: ropeInverseFrequencies(f, dHead) },
    parallelAttnMlp: false,
    attnOnly: false,
    gatedMlp: true,
    activation: f.choice('hidden_act', ACTIVATIONS, 'silu'),
    attnScale: new Array<number>(nLayers).fill(Math.sqrt(dHead)),
    window: r.windows(f, nLayers),
    ...(r.attnBiases(f) ? { attnBiases: r.attnBiases(f) } : {}),
    tiedEmbeddings: f.bool('tie_word_embeddings', false),
    unembedBias: false,
    bosTokenId: f.tokenId('bos_token_id', dVocab, Math.min(r.defaults.bos, dVocab - 1)),
    eosTokenId: f.tokenId('eos_token_id', dVocab, Math.min(r.defaults.eos, dVocab - 1)),
    defaultPrependBos: r.defaultPrependBos,
  };
}

const byType = (modelType: string, architecture: string) => (c: Readonly<Record<string, unknown>>) =>
  c.model_type === modelType || (c.model_type === undefined && Array.isArray(c.architectures) && c.architectures.includes(architecture));

/** Shared by the three: they read the same checkpoint layout. */
const LAYOUT = {
  weightFormat: 'safetensors',
  namePrefixes: ['model.'],
  tensors: llamaTensors,
  assemble: assembleLlama,
} as const;

export const llama: Architecture = {
  id: 'llama',
  label: 'Llama',
  examples: [
    { id: 'meta-llama/Llama-3.2-1B', description: 'Llama 3.2 1B (gated on the hub: accept its licence there and set HF_TOKEN)' },
    { id: 'HuggingFaceTB/SmolLM2-135M', description: 'SmolLM2 135M, a small Llama-architecture model' },
    { id: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0', description: 'TinyLlama 1.1B chat, with the Llama 2 tokenizer' },
  ],
  recognizes: byType('llama', 'LlamaForCausalLM'),
  parseConfig: (f) =>
    parseLlamaConfig(f, {
      family: 'llama',
      defaults: { ctx: 2048, bos: 1, eos: 2 },
      attnBiases: (c) => (c.bool('attention_bias', false) ? 'qkvo' : undefined),
      windows: noWindows,
      defaultPrependBos: true,
    }),
  aliases: {
    'llama-3.2-1b': 'meta-llama/Llama-3.2-1B',
    'smollm2-135m': 'HuggingFaceTB/SmolLM2-135M',
    'smollm2-360m': 'HuggingFaceTB/SmolLM2-360M',
    tinyllama: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0',
  },
  ...LAYOUT,
};

export const mistral: Architecture = {
  id: 'mistral',
  label: 'Mistral',
  examples: [{ id: 'mistralai/Mistral-7B-v0.1', description: 'Mistral 7B (29 GB of float32 weights: needs a machine with that much memory)' }],
  recognizes: byType('mistral', 'MistralForCausalLM'),
  parseConfig: (f) =>
    parseLlamaConfig(f, {
      family: 'mistral',
      defaults: { ctx: 131072, bos: 1, eos: 2 },
      attnBiases: () => undefined,
      // Every layer attends within the window; Hugging Face's default applies when the key is absent, and
      // an explicit null (Mistral 7B v0.2 and later) means full attention.
      windows: (c, n) => new Array<number>(n).fill(c.json.sliding_window === null ? 0 : c.int('sliding_window', LIMIT.ctx, 4096)),
      defaultPrependBos: true,
    }),
  aliases: { 'mistral-7b': 'mistralai/Mistral-7B-v0.1' },
  ...LAYOUT,
};

export const qwen2: Architecture = {
  id: 'qwen2',
  label: 'Qwen2',
  examples: [
    { id: 'Qwen/Qwen2.5-0.5B', description: 'Qwen2.5 0.5B (Qwen2 architecture)' },
    { id: 'Qwen/Qwen2.5-1.5B', description: 'Qwen2.5 1.5B' },
  ],
  recognizes: byType('qwen2', 'Qwen2ForCausalLM'),
  parseConfig: (f) =>
    parseLlamaConfig(f, {
      family: 'qwen2',
      defaults: { ctx: 32768, bos: 0, eos: 0 },
      attnBiases: () => 'qkv',
      // Qwen2's sliding window, when switched on, covers the layers from max_window_layers on.
      windows: (c, n) => {
        if (!c.bool('use_sliding_window', false)) return noWindows(c, n);
        const w = c.int('sliding_window', LIMIT.ctx, 4096);
        const from = c.has('max_window_layers') ? c.num('max_window_layers', 0, LIMIT.layers + 1) : 28;
        return Array.from({ length: n }, (_, l) => (l >= from ? w : 0));
      },
      // Qwen's tokenizers have no BOS token; TransformerLens prepends none by default.
      defaultPrependBos: false,
    }),
  aliases: { 'qwen2.5-0.5b': 'Qwen/Qwen2.5-0.5B', 'qwen2.5-1.5b': 'Qwen/Qwen2.5-1.5B' },
  ...LAYOUT,
};
