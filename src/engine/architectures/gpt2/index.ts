import { CONFIG_LIMITS as LIMIT, type ConfigFields } from '../../model/configFields';
import type { ModelConfig } from '../../model/config';
import type { BlockWeights, ModelWeights } from '../../model/weights';
import { type Architecture, type CheckpointTensors, must } from '../architecture';

/**
 * GPT-2 and its relatives (distilgpt2, gpt2-medium/large/xl, the built-in induction-2l): Hugging Face's
 * GPT2LMHeadModel. Its Conv1D weights are already [in, out] with heads as column blocks, the engine's own
 * layout, so every tensor is used as stored.
 */
const BLOCK: readonly [keyof BlockWeights, string][] = [
  ['ln1W', 'ln_1.weight'],
  ['ln1B', 'ln_1.bias'],
  ['wQkv', 'attn.c_attn.weight'],
  ['bQkv', 'attn.c_attn.bias'],
  ['wO', 'attn.c_proj.weight'],
  ['bO', 'attn.c_proj.bias'],
  ['ln2W', 'ln_2.weight'],
  ['ln2B', 'ln_2.bias'],
  ['wIn', 'mlp.c_fc.weight'],
  ['bIn', 'mlp.c_fc.bias'],
  ['wOut', 'mlp.c_proj.weight'],
  ['bOut', 'mlp.c_proj.bias'],
];

const ARCHITECTURES = new Set(['GPT2LMHeadModel', 'GPT2Model']);

const ACTIVATIONS = { gelu_new: 'gelu_new', gelu_pytorch_tanh: 'gelu_new', gelu_fast: 'gelu_new', gelu: 'gelu', relu: 'relu' } as const;

export const gpt2: Architecture = {
  id: 'gpt2',
  label: 'GPT-2',
  examples: [
    { id: 'gpt2', description: 'GPT-2 small (124M), the model of most TransformerLens tutorials' },
    { id: 'distilgpt2', description: 'DistilGPT-2 (82M)' },
    { id: 'gpt2-medium', description: 'GPT-2 medium (355M)' },
  ],
  recognizes: (c) => c.model_type === 'gpt2' || (Array.isArray(c.architectures) && c.architectures.some((a) => ARCHITECTURES.has(a as string))),
  parseConfig(f: ConfigFields) {
    const dModel = f.int('n_embd', LIMIT.dModel);
    const nHeads = f.int('n_head', LIMIT.heads);
    const nLayers = f.int('n_layer', LIMIT.layers);
    const dVocab = f.int('vocab_size', LIMIT.vocab);
    const nCtx = f.int(['n_positions', 'n_ctx'], LIMIT.ctx);
    const dMlp = f.int('n_inner', LIMIT.dMlp, 4 * dModel);
    if (dModel % nHeads !== 0) f.fail('n_embd', `it is not divisible by 'n_head' (${nHeads}); fix the config`);
    const dHead = dModel / nHeads;
    // GPT-2 checkpoints put <|endoftext|> last in the vocabulary; that is the default HF itself uses.
    const eot = dVocab - 1;
    const scaled = f.bool('scale_attn_weights', true);
    const byLayer = f.bool('scale_attn_by_inverse_layer_idx', false);
    return {
      architecture: 'gpt2',
      nLayers,
      nHeads,
      nKvHeads: nHeads,
      dModel,
      dHead,
      dMlp,
      dVocab,
      nCtx,
      norm: 'layernorm',
      normEps: f.num('layer_norm_epsilon', 0, 1, 1e-5),
      normPlacement: 'pre',
      positional: 'learned',
      parallelAttnMlp: false,
      attnOnly: false,
      gatedMlp: false,
      activation: f.choice('activation_function', ACTIVATIONS, 'gelu_new'),
      attnScale: Array.from({ length: nLayers }, (_, l) => (scaled ? Math.sqrt(dHead) : 1) * (byLayer ? l + 1 : 1)),
      window: new Array<number>(nLayers).fill(0),
      tiedEmbeddings: f.bool('tie_word_embeddings', true),
      unembedBias: false,
      bosTokenId: f.tokenId('bos_token_id', dVocab, eot),
      eosTokenId: f.tokenId('eos_token_id', dVocab, eot),
      defaultPrependBos: true,
    };
  },
  aliases: {
    gpt2: 'openai-community/gpt2',
    'gpt2-medium': 'openai-community/gpt2-medium',
    'gpt2-large': 'openai-community/gpt2-large',
    'gpt2-xl': 'openai-community/gpt2-xl',
    distilgpt2: 'distilbert/distilgpt2',
  },
  weightFormat: 'safetensors',
  // Some exports of GPT2LMHeadModel prefix every name with 'transformer.', others don't.
  namePrefixes: ['transformer.'],
  tensors(cfg: ModelConfig): CheckpointTensors {
    const { dModel: D, dMlp: M, dVocab: V, nCtx: C } = cfg;
    const shapes: Record<string, number[]> = {
      'ln_1.weight': [D],
      'ln_1.bias': [D],
      'attn.c_attn.weight': [D, 3 * D],
      'attn.c_attn.bias': [3 * D],
      'attn.c_proj.weight': [D, D],
      'attn.c_proj.bias': [D],
      'ln_2.weight': [D],
      'ln_2.bias': [D],
      'mlp.c_fc.weight': [D, M],
      'mlp.c_fc.bias': [M],
      'mlp.c_proj.weight': [M, D],
      'mlp.c_proj.bias': [D],
    };
    const required = new Map<string, number[]>();
    for (let l = 0; l < cfg.nLayers; l++) for (const [, name] of BLOCK) required.set(`h.${l}.${name}`, shapes[name]!);
    required.set('wte.weight', [V, D]);
    required.set('wpe.weight', [C, D]);
    required.set('ln_f.weight', [D]);
    required.set('ln_f.bias', [D]);
    // lm_head is absent when the unembedding is tied to wte (GPT-2 ties it).
    return { required, optional: new Map([['lm_head.weight', [V, D]]]) };
  },
  assemble(cfg, get): ModelWeights {
    const blocks = Array.from({ length: cfg.nLayers }, (_, l) => Object.fromEntries(BLOCK.map(([key, name]) => [key, must(get, `h.${l}.${name}`)])) as unknown as BlockWeights);
    const wte = must(get, 'wte.weight');
    return { wte, wpe: must(get, 'wpe.weight'), blocks, lnfW: must(get, 'ln_f.weight'), lnfB: must(get, 'ln_f.bias'), unembed: get('lm_head.weight') ?? wte };
  },
};
