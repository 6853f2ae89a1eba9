import type { Architecture } from '../architecture';
import { attentionBias, byType, noWindows, parseLlamaConfig } from '../llama/config';
import { llamaLayout } from '../llama/layout';

/**
 * OLMo 2 as Hugging Face's modeling_olmo2 computes it (Olmo2ForCausalLM): the Llama layout without input
 * norms; post_attention_layernorm and post_feedforward_layernorm normalise the attention and MLP outputs
 * before they join the residual stream (TransformerLens's ln1 and ln2, after hook_attn_out and
 * hook_mlp_out), and q_norm / k_norm are RMSNorms over the whole query and key projections, all heads at
 * once, before rotary embeddings.
 */
export const olmo2: Architecture = {
  id: 'olmo2',
  label: 'OLMo 2',
  examples: [
    { id: 'allenai/OLMo-2-0425-1B', description: 'OLMo 2 1B, fully open (weights, data and training code)' },
    { id: 'allenai/OLMo-2-1124-7B', description: 'OLMo 2 7B (29 GB of float32 weights)' },
  ],
  recognizes: byType('olmo2', 'Olmo2ForCausalLM'),
  parseConfig: (f) => ({
    ...parseLlamaConfig(f, {
      family: 'olmo2',
      defaults: { ctx: 2048, bos: 100257, eos: 50279, eps: 1e-5 },
      attnBiases: attentionBias,
      windows: noWindows,
      defaultPrependBos: true,
    }),
    normPlacement: 'post',
    qkNorm: 'full',
  }),
  aliases: { 'olmo-2-1b': 'allenai/OLMo-2-0425-1B', 'olmo-2-7b': 'allenai/OLMo-2-1124-7B' },
  ...llamaLayout({
    norms: [
      ['post_attention_layernorm', 'ln1W'],
      ['post_feedforward_layernorm', 'ln2W'],
    ],
    gainPlusOne: false,
  }),
};
