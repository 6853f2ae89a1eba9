import { CONFIG_LIMITS as LIMIT, type ConfigFields } from '../../model/configFields';
import type { ModelConfig, RotaryConfig } from '../../model/config';
import type { Architecture } from '../architecture';
import { attentionBias, byType, parseLlamaConfig, slidingLayers } from '../llama/config';
import { llamaLayout } from '../llama/layout';
import { ropeInverseFrequencies, scaledInverseFrequencies } from '../llama/rope';

/**
 * Gemma 2 and Gemma 3's text model, as Hugging Face's modeling_gemma2 and modeling_gemma3 compute them
 * (Gemma2ForCausalLM, Gemma3ForCausalLM): the Llama layout with RMSNorm gains stored as w and applied as
 * (1 + w), norms before and after attention and MLP, embeddings times √hidden_size (the factor rounded
 * to float32, the dtype PatchLens runs the model in, as Hugging Face rounds it to the activations'
 * dtype), GeGLU with the tanh GELU (hidden_activation), attention scores times query_pre_attn_scalar^-½,
 * sliding-window layers, tied embeddings. Gemma 2 soft-caps attention scores and logits; Gemma 3 adds
 * per-head q/k norms and a rotary base of its own on its local layers.
 */

type Version = 2 | 3;

const GEMMA_NORMS = {
  norms: [
    ['input_layernorm', 'ln1W'],
    ['post_attention_layernorm', 'ln1PostW'],
    ['pre_feedforward_layernorm', 'ln2W'],
    ['post_feedforward_layernorm', 'ln2PostW'],
  ],
  gainPlusOne: true,
} as const;

/**
 * A soft-cap: the config's value, none where it is null (Hugging Face skips the cap then), the config
 * class's default where the key is absent.
 */
function softcap(f: ConfigFields, key: string, fallback: number | undefined): number | undefined {
  if (f.json[key] === null) return undefined;
  return f.has(key) ? f.num(key, 1e-6, Infinity) : fallback;
}

/**
 * Gemma 3's two rotary bases: rope_theta with rope_scaling on the global layers, rope_local_base_freq
 * unscaled on the local ones; or, as Transformers 5 writes them, one rope_parameters entry per layer type.
 */
function gemma3Rotary(f: ConfigFields, dHead: number): RotaryConfig {
  const params = f.object('rope_parameters');
  const full = params?.object('full_attention');
  const sliding = params?.object('sliding_attention');
  if (full || sliding) {
    return {
      dim: dHead,
      invFreq: scaledInverseFrequencies(full?.num('rope_theta', 1, Infinity, 1e6) ?? 1e6, full, dHead),
      localInvFreq: scaledInverseFrequencies(sliding?.num('rope_theta', 1, Infinity, 1e4) ?? 1e4, sliding, dHead),
    };
  }
  return {
    dim: dHead,
    invFreq: ropeInverseFrequencies(f, dHead, 1e6),
    localInvFreq: scaledInverseFrequencies(f.num('rope_local_base_freq', 1, Infinity, 1e4), undefined, dHead),
  };
}

function parseGemmaConfig(f: ConfigFields, version: Version): Omit<ModelConfig, 'weightsDtype'> {
  const base = parseLlamaConfig(f, {
    family: version === 2 ? 'gemma2' : 'gemma3_text',
    defaults: { ctx: version === 2 ? 8192 : 131072, bos: 2, eos: 1, dHead: 256, tied: true },
    activation: { key: 'hidden_activation', fallback: 'gelu_new' },
    attnBiases: attentionBias,
    // Gemma 2: layers 0, 2, 4, ... are local; Gemma 3: all but every sliding_window_pattern-th.
    windows: (c, n) => {
      const window = c.int('sliding_window', LIMIT.ctx, 4096);
      const every = version === 3 ? c.int('sliding_window_pattern', LIMIT.layers, 6) : 2;
      const local = version === 2 ? (l: number) => l % 2 === 0 : (l: number) => (l + 1) % every !== 0;
      return slidingLayers(c, n, local).map((s) => (s ? window : 0));
    },
    ...(version === 3 ? { rotary: gemma3Rotary } : {}),
    defaultPrependBos: true,
  });
  const attnSoftcap = softcap(f, 'attn_logit_softcapping', version === 2 ? 50 : undefined);
  const finalSoftcap = softcap(f, 'final_logit_softcapping', version === 2 ? 30 : undefined);
  return {
    ...base,
    normPlacement: 'pre_post',
    attnScale: new Array<number>(base.nLayers).fill(Math.sqrt(f.num('query_pre_attn_scalar', 1e-6, Infinity, 256))),
    embedScale: Math.fround(Math.sqrt(base.dModel)),
    ...(version === 3 ? { qkNorm: 'head' as const } : {}),
    ...(attnSoftcap !== undefined ? { attnSoftcap } : {}),
    ...(finalSoftcap !== undefined ? { finalSoftcap } : {}),
  };
}

const LICENCE = 'gated on the hub: accept its licence there and set HF_TOKEN';

export const gemma2: Architecture = {
  id: 'gemma2',
  label: 'Gemma 2',
  examples: [
    { id: 'google/gemma-2-2b', description: `Gemma 2 2B, which Gemma Scope's SAEs cover (10.5 GB of float32 weights; ${LICENCE})` },
    { id: 'google/gemma-2-2b-it', description: 'Gemma 2 2B instruction-tuned' },
  ],
  recognizes: byType('gemma2', 'Gemma2ForCausalLM'),
  parseConfig: (f) => parseGemmaConfig(f, 2),
  aliases: { 'gemma-2-2b': 'google/gemma-2-2b', 'gemma-2-2b-it': 'google/gemma-2-2b-it', 'gemma-2-9b': 'google/gemma-2-9b' },
  ...llamaLayout(GEMMA_NORMS),
};

export const gemma3: Architecture = {
  id: 'gemma3_text',
  label: 'Gemma 3',
  examples: [
    { id: 'google/gemma-3-1b-pt', description: `Gemma 3 1B pretrained, text only (${LICENCE})` },
    { id: 'google/gemma-3-270m', description: 'Gemma 3 270M' },
  ],
  recognizes: byType('gemma3_text', 'Gemma3ForCausalLM'),
  parseConfig: (f) => parseGemmaConfig(f, 3),
  aliases: { 'gemma-3-1b': 'google/gemma-3-1b-pt', 'gemma-3-1b-pt': 'google/gemma-3-1b-pt', 'gemma-3-1b-it': 'google/gemma-3-1b-it', 'gemma-3-270m': 'google/gemma-3-270m' },
  ...llamaLayout(GEMMA_NORMS),
};
