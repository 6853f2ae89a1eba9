import { CONFIG_LIMITS as LIMIT } from '../../model/configFields';
import type { Architecture } from '../architecture';
import { attentionBias, byType, parseLlamaConfig, slidingLayers } from '../llama/config';
import { llamaLayout, PRE_NORMS } from '../llama/layout';

/**
 * Qwen3 as Hugging Face's modeling_qwen3 computes it (Qwen3ForCausalLM): the Llama family plus an RMSNorm
 * over each head's d_head on queries and keys, after the projections and before rotary embeddings, and a
 * head_dim of its own (128 unless the config says otherwise, whatever hidden_size / num_attention_heads
 * is). Sliding windows as Qwen2's (use_sliding_window, from max_window_layers on) or per layer_types.
 */
export const qwen3: Architecture = {
  id: 'qwen3',
  label: 'Qwen3',
  examples: [
    { id: 'Qwen/Qwen3-0.6B', description: 'Qwen3 0.6B, one of the Qwen3 models circuit-tracer has transcoders for' },
    { id: 'Qwen/Qwen3-0.6B-Base', description: 'Qwen3 0.6B before instruction tuning' },
    { id: 'Qwen/Qwen3-1.7B', description: 'Qwen3 1.7B' },
  ],
  recognizes: byType('qwen3', 'Qwen3ForCausalLM'),
  parseConfig: (f) => ({
    ...parseLlamaConfig(f, {
      family: 'qwen3',
      defaults: { ctx: 32768, bos: 0, eos: 0, dHead: 128 },
      attnBiases: attentionBias,
      windows: (c, n) => {
        // Qwen3Config keeps sliding_window only when use_sliding_window is set.
        const window = c.bool('use_sliding_window', false) ? c.int('sliding_window', LIMIT.ctx, 4096) : 0;
        const from = c.has('max_window_layers') ? c.num('max_window_layers', 0, LIMIT.layers + 1) : 28;
        return slidingLayers(c, n, (l) => window > 0 && l >= from).map((s) => (s ? window : 0));
      },
      // Qwen's tokenizers have no BOS token; TransformerLens prepends none by default.
      defaultPrependBos: false,
    }),
    qkNorm: 'head',
  }),
  aliases: { 'qwen3-0.6b': 'Qwen/Qwen3-0.6B', 'qwen3-0.6b-base': 'Qwen/Qwen3-0.6B-Base', 'qwen3-1.7b': 'Qwen/Qwen3-1.7B' },
  ...llamaLayout(PRE_NORMS),
};
