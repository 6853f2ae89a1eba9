import { CONFIG_LIMITS as LIMIT, type ConfigFields } from '../../model/configFields';
import type { ModelConfig } from '../../model/config';
import type { BlockWeights, ModelWeights } from '../../model/weights';
import type { Tensor32 } from '../../tensor';
import { type Architecture, type CheckpointTensors, must } from '../architecture';

/**
 * GPT-NeoX and Pythia: Hugging Face's GPTNeoXForCausalLM (modeling_gpt_neox.py). LayerNorm, attention and
 * MLP in parallel on the block's input (sequential when use_parallel_residual is false), rotary embeddings
 * in the rotate-half convention on the first int(d_head · rotary_pct) dims of each head, exact GELU, and an
 * untied unembedding `embed_out`. nn.Linear weights are [out, in]; the fused query_key_value's rows are
 * grouped per head (head 0's q, k, v, then head 1's, ...), unlike GPT-2's q | k | v.
 */

const ACTIVATIONS = { gelu: 'gelu', gelu_new: 'gelu_new', gelu_fast: 'gelu_new', gelu_pytorch_tanh: 'gelu_new', relu: 'relu', silu: 'silu' } as const;

/** The fields Transformers v5 moved into `rope_parameters`, read from there when the old keys are absent. */
function ropeParameter(f: ConfigFields, key: string): number | undefined {
  const p = f.json.rope_parameters;
  const v = typeof p === 'object' && p !== null ? (p as Record<string, unknown>)[key] : undefined;
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) f.fail('rope_parameters', `its '${key}' must be a positive number`);
  return v as number;
}

/** [rows, cols] -> [cols, rows]: nn.Linear's [out, in] to the engine's [in, out]. */
function transposed(t: Tensor32): Tensor32 {
  const [rows, cols] = t.shape as [number, number];
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = t.data[r * cols + c]!;
  return { shape: [cols, rows], data: out };
}

export const gptNeox: Architecture = {
  id: 'gpt_neox',
  label: 'GPT-NeoX (Pythia)',
  examples: [
    { id: 'EleutherAI/pythia-160m', description: 'Pythia 160M, with checkpoints across training (revision step1000 ... step143000)' },
    { id: 'EleutherAI/pythia-70m', description: 'Pythia 70M' },
    { id: 'EleutherAI/pythia-410m', description: 'Pythia 410M' },
  ],
  recognizes: (c) => c.model_type === 'gpt_neox' || (Array.isArray(c.architectures) && c.architectures.includes('GPTNeoXForCausalLM')),
  parseConfig(f: ConfigFields) {
    const dModel = f.int('hidden_size', LIMIT.dModel);
    const nHeads = f.int('num_attention_heads', LIMIT.heads);
    const nLayers = f.int('num_hidden_layers', LIMIT.layers);
    const dVocab = f.int('vocab_size', LIMIT.vocab);
    const nCtx = f.int('max_position_embeddings', LIMIT.ctx);
    const dMlp = f.int('intermediate_size', LIMIT.dMlp, 4 * dModel);
    if (dModel % nHeads !== 0) f.fail('hidden_size', `it is not divisible by 'num_attention_heads' (${nHeads}); fix the config`);
    const dHead = dModel / nHeads;
    const pct = f.has('rotary_pct') ? f.num('rotary_pct', 0, 1.000001) : (ropeParameter(f, 'partial_rotary_factor') ?? f.num('partial_rotary_factor', 0, 1.000001, 0.25));
    // HF truncates (int(head_size * rotary_pct)); TransformerLens rounds, which agrees on every Pythia.
    const dim = Math.floor(dHead * pct);
    if (dim < 2 || dim % 2 !== 0) {
      f.fail(f.has('rotary_pct') ? 'rotary_pct' : 'partial_rotary_factor', `it gives ${dim} rotary dims of d_head ${dHead}; rotary embeddings need an even number, at least 2`);
    }
    const base = f.has('rotary_emb_base') ? f.num('rotary_emb_base', 1, 1e12) : (ropeParameter(f, 'rope_theta') ?? f.num('rope_theta', 1, 1e12, 10000));
    let invFreq = Array.from({ length: dim / 2 }, (_, i) => base ** (-(2 * i) / dim));
    const scaling = f.json.rope_scaling;
    if (scaling !== undefined && scaling !== null) {
      const s = scaling as Record<string, unknown>;
      const type = typeof scaling === 'object' ? (s.rope_type ?? s.type) : undefined;
      const factor = s.factor;
      if ((type !== 'linear' && type !== 'dynamic') || typeof factor !== 'number' || !(factor >= 1)) {
        f.fail('rope_scaling', 'PatchLens supports null, or {"type": "linear" or "dynamic", "factor" >= 1}');
      }
      // Linear scaling divides positions by the factor; dynamic NTK scaling only changes the base for
      // sequences longer than max_position_embeddings, which is also the longest prompt PatchLens runs.
      if (type === 'linear') invFreq = invFreq.map((x) => x / (factor as number));
    }
    const parallel = f.bool('use_parallel_residual', true);
    return {
      architecture: 'gpt_neox',
      nLayers,
      nHeads,
      nKvHeads: nHeads,
      dModel,
      dHead,
      dMlp,
      dVocab,
      nCtx,
      norm: 'layernorm',
      normEps: f.num('layer_norm_eps', 0, 1, 1e-5),
      normPlacement: 'pre',
      positional: 'rotary',
      rotary: { dim, invFreq },
      parallelAttnMlp: parallel,
      attnOnly: false,
      gatedMlp: false,
      activation: f.choice('hidden_act', ACTIVATIONS, 'gelu'),
      attnScale: new Array<number>(nLayers).fill(Math.sqrt(dHead)),
      window: new Array<number>(nLayers).fill(0),
      tiedEmbeddings: f.bool('tie_word_embeddings', false),
      unembedBias: false,
      // Pythia's tokenizer has <|endoftext|> at 0, its BOS and EOS.
      bosTokenId: f.tokenId('bos_token_id', dVocab, 0),
      eosTokenId: f.tokenId('eos_token_id', dVocab, 0),
      // TransformerLens's default for GPTNeoXForCausalLM (Pythia was trained without BOS at the start).
      defaultPrependBos: false,
    };
  },
  aliases: Object.fromEntries(
    ['14m', '31m', '70m', '160m', '410m', '1b', '1.4b', '2.8b', '6.9b', '12b', '70m-deduped', '160m-deduped', '410m-deduped', '1b-deduped', '1.4b-deduped', '2.8b-deduped'].map(
      (s) => [`pythia-${s}`, `EleutherAI/pythia-${s}`],
    ),
  ),
  weightFormat: 'safetensors',
  // GPTNeoXForCausalLM keeps the transformer under 'gpt_neox.' and embed_out at the top level.
  namePrefixes: ['gpt_neox.'],
  tensors(cfg: ModelConfig): CheckpointTensors {
    const { dModel: D, dMlp: M, dVocab: V } = cfg;
    const required = new Map<string, number[]>();
    const optional = new Map<string, number[]>();
    for (let l = 0; l < cfg.nLayers; l++) {
      const p = `layers.${l}.`;
      for (const ln of ['input_layernorm', 'post_attention_layernorm']) {
        required.set(`${p}${ln}.weight`, [D]);
        required.set(`${p}${ln}.bias`, [D]);
      }
      required.set(`${p}attention.query_key_value.weight`, [3 * D, D]);
      required.set(`${p}attention.dense.weight`, [D, D]);
      // attention_bias: false (some NeoX-style models) leaves the attention without biases: zeros.
      optional.set(`${p}attention.query_key_value.bias`, [3 * D]);
      optional.set(`${p}attention.dense.bias`, [D]);
      required.set(`${p}mlp.dense_h_to_4h.weight`, [M, D]);
      required.set(`${p}mlp.dense_h_to_4h.bias`, [M]);
      required.set(`${p}mlp.dense_4h_to_h.weight`, [D, M]);
      required.set(`${p}mlp.dense_4h_to_h.bias`, [D]);
    }
    required.set('embed_in.weight', [V, D]);
    required.set('final_layer_norm.weight', [D]);
    required.set('final_layer_norm.bias', [D]);
    // Tied (tie_word_embeddings): HF unembeds with embed_in even where the file also holds an embed_out.
    if (!cfg.tiedEmbeddings) required.set('embed_out.weight', [V, D]);
    return { required, optional };
  },
  assemble(cfg, get): ModelWeights {
    const { dModel: D, nHeads: H, dHead: E } = cfg;
    const blocks = Array.from({ length: cfg.nLayers }, (_, l): BlockWeights => {
      const p = `layers.${l}.`;
      const w = (n: string) => must(get, `${p}${n}`);
      // Row h·3E + j·E + e of query_key_value (head h, j = q, k, v) is column j·D + h·E + e of wQkv.
      const qkv = w('attention.query_key_value.weight').data;
      const qkvBias = get(`${p}attention.query_key_value.bias`)?.data;
      const wQkv = new Float32Array(D * 3 * D);
      const bQkv = new Float32Array(3 * D);
      for (let h = 0; h < H; h++) {
        for (let j = 0; j < 3; j++) {
          for (let e = 0; e < E; e++) {
            const row = (h * 3 + j) * E + e;
            const col = j * D + h * E + e;
            for (let d = 0; d < D; d++) wQkv[d * 3 * D + col] = qkv[row * D + d]!;
            if (qkvBias) bQkv[col] = qkvBias[row]!;
          }
        }
      }
      return {
        ln1W: w('input_layernorm.weight'),
        ln1B: w('input_layernorm.bias'),
        wQkv: { shape: [D, 3 * D], data: wQkv },
        bQkv: { shape: [3 * D], data: bQkv },
        wO: transposed(w('attention.dense.weight')),
        bO: get(`${p}attention.dense.bias`) ?? { shape: [D], data: new Float32Array(D) },
        ln2W: w('post_attention_layernorm.weight'),
        ln2B: w('post_attention_layernorm.bias'),
        wIn: transposed(w('mlp.dense_h_to_4h.weight')),
        bIn: w('mlp.dense_h_to_4h.bias'),
        wOut: transposed(w('mlp.dense_4h_to_h.weight')),
        bOut: w('mlp.dense_4h_to_h.bias'),
      };
    });
    const wte = must(get, 'embed_in.weight');
    return { wte, blocks, lnfW: must(get, 'final_layer_norm.weight'), lnfB: must(get, 'final_layer_norm.bias'), unembed: cfg.tiedEmbeddings ? wte : must(get, 'embed_out.weight') };
  },
};
