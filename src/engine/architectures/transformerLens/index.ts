import { CONFIG_LIMITS as LIMIT, type ConfigFields } from '../../model/configFields';
import type { ModelConfig } from '../../model/config';
import type { BlockWeights, ModelWeights } from '../../model/weights';
import type { Tensor32 } from '../../tensor';
import { UserError } from '../../../common/userError';
import { type Architecture, type CheckpointTensors, must } from '../architecture';

/**
 * TransformerLens-native checkpoints: the NeelNanda/* models (attn-only, GELU and SoLU, 1-4 layers, trained
 * on C4 and code), a config.json in TransformerLens's own terms (convert_neel_model_config reads it) and
 * model_final.pth, a state dict with TransformerLens's parameter names and per-head shapes (W_Q [n_heads,
 * d_model, d_head], W_O [n_heads, d_head, d_model], W_U [d_model, d_vocab]). LayerNorm, learned or
 * shortformer positions, an unembedding bias; the tokenizer lives in the repo the config names.
 */

const ACTIVATIONS = { gelu: 'gelu', gelu_new: 'gelu_new', gelu_fast: 'gelu_new', relu: 'relu', silu: 'silu', solu_ln: 'solu_ln' } as const;

/** A hub repo id ('org/name' or 'name') as a config may name one; anything else is not fetched. */
const HUB_ID = /^(?:[A-Za-z0-9][A-Za-z0-9._-]*\/)?[A-Za-z0-9][A-Za-z0-9._-]*$/;

const isTlConfig = (c: Readonly<Record<string, unknown>>) =>
  c.model_type === undefined && typeof c.d_model === 'number' && typeof c.n_layers === 'number' && typeof c.attn_only === 'boolean';

export const transformerLens: Architecture = {
  id: 'transformer_lens',
  label: 'TransformerLens-native',
  examples: [
    { id: 'attn-only-2l', description: "NeelNanda's 2-layer attention-only model (C4 + code): the induction-head model of TransformerLens's tutorials" },
    { id: 'attn-only-1l', description: 'the 1-layer attention-only model' },
    { id: 'gelu-2l', description: 'a 2-layer model with GELU MLPs' },
    { id: 'solu-2l', description: 'a 2-layer model with SoLU MLPs' },
  ],
  recognizes: isTlConfig,
  parseConfig(f: ConfigFields) {
    const norm = f.has('normalization') ? 'normalization' : 'normalization_type';
    if (f.json[norm] !== 'LN') f.fail(norm, "PatchLens reads TransformerLens checkpoints with LayerNorm ('LN'); LNPre, RMS and no normalization are not supported yet");
    if (f.bool('final_rms', false)) f.fail('final_rms', 'a final RMSNorm is not supported; PatchLens reads LayerNorm checkpoints');
    if (f.bool('gated_mlp', false)) f.fail('gated_mlp', 'gated MLPs in TransformerLens checkpoints are not supported');
    if (f.has('architecture') && f.json.architecture !== 'neel') {
      f.fail('architecture', "only the 'neel' layout is supported (the old SoLU models, 'neel-solu-old', name their parameters differently)");
    }
    let positional: ModelConfig['positional'] = f.bool('shortformer_pos', false) ? 'shortformer' : 'learned';
    if (f.has('positional_embedding_type')) {
      positional = f.choice('positional_embedding_type', { standard: 'learned', shortformer: 'shortformer' } as const);
    }
    const dModel = f.int('d_model', LIMIT.dModel);
    const nHeads = f.int('n_heads', LIMIT.heads);
    const nLayers = f.int('n_layers', LIMIT.layers);
    const dVocab = f.int('d_vocab', LIMIT.vocab);
    const dHead = f.int('d_head', LIMIT.dModel);
    const attnOnly = f.bool('attn_only', false);
    // An attention-only model's act_fn (often 'solu_ln') is never used: it is not checked.
    const activation = attnOnly ? 'gelu' : f.choice('act_fn', ACTIVATIONS);
    return {
      architecture: 'transformer_lens',
      nLayers,
      nHeads,
      nKvHeads: nHeads,
      dModel,
      dHead,
      dMlp: f.int('d_mlp', LIMIT.dMlp, 4 * dModel),
      dVocab,
      nCtx: f.int('n_ctx', LIMIT.ctx),
      norm: 'layernorm',
      // TransformerLens ignores ln_eps and uses its default 1e-5; every NeelNanda config says 1e-5 too.
      normEps: f.num('ln_eps', 0, 1, 1e-5),
      normPlacement: 'pre',
      positional,
      parallelAttnMlp: false,
      attnOnly,
      gatedMlp: false,
      activation,
      attnScale: new Array<number>(nLayers).fill(f.bool('use_attn_scale', true) ? Math.sqrt(dHead) : 1),
      window: new Array<number>(nLayers).fill(0),
      tiedEmbeddings: false,
      unembedBias: true,
      // TransformerLens takes BOS from the tokenizer (its bos_token, else eos_token); NeelNanda's tokenizers,
      // like GPT-NeoX's they derive from, hold <|endoftext|> at id 0.
      bosTokenId: 0,
      eosTokenId: 0,
      defaultPrependBos: true,
    };
  },
  aliases: Object.fromEntries([
    ...[1, 2, 3, 4].flatMap((n) => [
      [`attn-only-${n}l`, `NeelNanda/Attn_Only_${n}L512W_C4_Code`],
      [`gelu-${n}l`, `NeelNanda/GELU_${n}L512W_C4_Code`],
      [`solu-${n}l`, `NeelNanda/SoLU_${n}L512W_C4_Code`],
    ]),
    ['solu-6l', 'NeelNanda/SoLU_6L768W_C4_Code'],
    ['solu-8l', 'NeelNanda/SoLU_8L1024W_C4_Code'],
    ['solu-10l', 'NeelNanda/SoLU_10L1280W_C4_Code'],
    ['solu-12l', 'NeelNanda/SoLU_12L1536W_C4_Code'],
    ['attn-only-2l-demo', 'NeelNanda/Attn-Only-2L512W-Shortformer-6B-big-lr'],
  ]),
  tokenizerRepo(c) {
    const name = c.tokenizer_name;
    if (name === undefined || name === null) return undefined;
    if (typeof name !== 'string' || !HUB_ID.test(name) || name.includes('..')) {
      throw new UserError(
        `'tokenizer_name' in the model's config.json is ${JSON.stringify(name)?.slice(0, 80)}; it must be a hub repo id like 'NeelNanda/gpt-neox-tokenizer-digits'`,
      );
    }
    return name;
  },
  weightFormat: 'pth',
  namePrefixes: [],
  tensors(cfg: ModelConfig): CheckpointTensors {
    const { dModel: D, dMlp: M, dVocab: V, nHeads: H, dHead: E } = cfg;
    const required = new Map<string, number[]>([
      ['embed.W_E', [V, D]],
      ['pos_embed.W_pos', [cfg.nCtx, D]],
    ]);
    for (let l = 0; l < cfg.nLayers; l++) {
      const b = `blocks.${l}.`;
      required.set(`${b}ln1.w`, [D]);
      required.set(`${b}ln1.b`, [D]);
      for (const x of ['Q', 'K', 'V']) {
        required.set(`${b}attn.W_${x}`, [H, D, E]);
        required.set(`${b}attn.b_${x}`, [H, E]);
      }
      required.set(`${b}attn.W_O`, [H, E, D]);
      required.set(`${b}attn.b_O`, [D]);
      if (cfg.attnOnly) continue;
      required.set(`${b}ln2.w`, [D]);
      required.set(`${b}ln2.b`, [D]);
      required.set(`${b}mlp.W_in`, [D, M]);
      required.set(`${b}mlp.b_in`, [M]);
      if (cfg.activation === 'solu_ln') {
        required.set(`${b}mlp.ln.w`, [M]);
        required.set(`${b}mlp.ln.b`, [M]);
      }
      required.set(`${b}mlp.W_out`, [M, D]);
      required.set(`${b}mlp.b_out`, [D]);
    }
    required.set('ln_final.w', [D]);
    required.set('ln_final.b', [D]);
    required.set('unembed.W_U', [D, V]);
    required.set('unembed.b_U', [V]);
    return { required, optional: new Map() };
  },
  assemble(cfg, get): ModelWeights {
    const { dModel: D, nHeads: H, dHead: E, dVocab: V } = cfg;
    const blocks = Array.from({ length: cfg.nLayers }, (_, l): BlockWeights => {
      const w = (n: string) => must(get, `blocks.${l}.${n}`);
      // W_Q/W_K/W_V [h, d, e] become column blocks q | k | v of [D, 3·H·E], head-major within each.
      const cols = 3 * H * E;
      const wQkv = new Float32Array(D * cols);
      const bQkv = new Float32Array(cols);
      ['Q', 'K', 'V'].forEach((x, j) => {
        const W = w(`attn.W_${x}`).data;
        for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) for (let e = 0; e < E; e++) wQkv[d * cols + j * H * E + h * E + e] = W[(h * D + d) * E + e]!;
        bQkv.set(w(`attn.b_${x}`).data, j * H * E);
      });
      const mlp = cfg.attnOnly
        ? {}
        : {
            ln2W: w('ln2.w'),
            ln2B: w('ln2.b'),
            wIn: w('mlp.W_in'),
            bIn: w('mlp.b_in'),
            wOut: w('mlp.W_out'),
            bOut: w('mlp.b_out'),
            ...(cfg.activation === 'solu_ln' ? { mlpLnW: w('mlp.ln.w'), mlpLnB: w('mlp.ln.b') } : {}),
          };
      return {
        ln1W: w('ln1.w'),
        ln1B: w('ln1.b'),
        wQkv: { shape: [D, cols], data: wQkv },
        bQkv: { shape: [cols], data: bQkv },
        // [H, E, D] is [H·E, D] row-major: heads are already row blocks.
        wO: { shape: [H * E, D], data: w('attn.W_O').data },
        bO: w('attn.b_O'),
        ...mlp,
      };
    });
    const wU = must(get, 'unembed.W_U').data;
    const unembed: Tensor32 = { shape: [V, D], data: new Float32Array(V * D) };
    for (let d = 0; d < D; d++) for (let v = 0; v < V; v++) unembed.data[v * D + d] = wU[d * V + v]!;
    return {
      wte: must(get, 'embed.W_E'),
      wpe: must(get, 'pos_embed.W_pos'),
      blocks,
      lnfW: must(get, 'ln_final.w'),
      lnfB: must(get, 'ln_final.b'),
      unembed,
      bU: must(get, 'unembed.b_U'),
    };
  },
};
