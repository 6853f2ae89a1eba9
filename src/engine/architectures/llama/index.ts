import { CONFIG_LIMITS as LIMIT } from '../../model/configFields';
import type { Architecture } from '../architecture';
import { attentionBias, byType, noWindows, parseLlamaConfig } from './config';
import { llamaLayout, PRE_NORMS } from './layout';

/**
 * The Llama family as Hugging Face's modeling_llama computes it, and the two families that differ from it
 * only in their config: Mistral (a sliding window) and Qwen2 (q/k/v biases, TransformerLens prepends no
 * BOS). RMSNorm before attention and MLP, rotary embeddings on whole heads (rotate-half) with rope_theta
 * and optional linear or llama3 scaling, grouped-query attention, SwiGLU, tied or untied unembedding.
 */

// Shared by the three: they read the same checkpoint layout.
const LAYOUT = llamaLayout(PRE_NORMS);

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
      attnBiases: attentionBias,
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
