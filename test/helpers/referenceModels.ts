/**
 * Reads a checkpoint folder into the float64 reference's TransformerLens form, one adapter per family,
 * each written from that family's Hugging Face modelling code (which tensor is which, how heads are laid
 * out, what the config keys mean) and not from the engine's loaders: the engine's layout conversion is
 * part of what the reference checks. Only the file formats (safetensors) are read with the engine's
 * readers, which have tests of their own.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '../../src/engine/model/safetensors';
import type { RefConfig, RefModel } from './reference';

export type RawTensors = Map<string, { shape: readonly number[]; data: Float32Array }>;
type Json = Record<string, unknown>;

/** A family's adapter: does this config belong to it, and its reference model from the raw tensors. */
export interface ReferenceFamily {
  readonly recognizes: (config: Json) => boolean;
  readonly load: (config: Json, dir: string) => RefModel;
}

export const f64 = (t: { data: Float32Array } | undefined, what: string): Float64Array => {
  if (!t) throw new Error(`reference: tensor ${what} is missing`);
  return Float64Array.from(t.data);
};

/** [rows, cols] -> [cols, rows]. */
export function transpose(x: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c]!;
  return out;
}

/** A [D, heads·E] matrix whose columns are head-major (x @ W gives each head's E values in turn) as [heads, D, E]. */
export function splitHeadColumns(w: Float64Array, D: number, heads: number, E: number): Float64Array {
  const out = new Float64Array(heads * D * E);
  for (let d = 0; d < D; d++) for (let h = 0; h < heads; h++) for (let e = 0; e < E; e++) out[(h * D + d) * E + e] = w[d * heads * E + h * E + e]!;
  return out;
}

/** Reads every tensor of the folder's safetensors file(s), with any of `prefixes` stripped from the names. */
export function rawTensors(dir: string, prefixes: readonly string[] = []): RawTensors {
  const files = existsSync(join(dir, 'model.safetensors'))
    ? ['model.safetensors']
    : [...new Set(Object.values((JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Json }).weight_map) as string[])];
  const out: RawTensors = new Map();
  for (const f of files) {
    for (const [name, t] of readSafetensors(join(dir, f))) {
      const p = prefixes.find((x) => name.startsWith(x));
      const bare = p ? name.slice(p.length) : name;
      if (!out.has(bare) || !p) out.set(bare, t);
    }
  }
  return out;
}

/** The defaults every family starts from; each adapter overrides what its modelling code does differently. */
export function baseConfig(o: Pick<RefConfig, 'nLayers' | 'nHeads' | 'dModel' | 'dMlp' | 'dVocab' | 'nCtx'> & Partial<RefConfig>): RefConfig {
  const dHead = o.dHead ?? o.dModel / o.nHeads;
  return {
    nKvHeads: o.nHeads,
    dHead,
    norm: 'LN',
    eps: 1e-5,
    normPlacement: 'pre',
    positional: 'standard',
    rotaryDim: 0,
    rotaryInvFreq: [],
    parallel: false,
    attnOnly: false,
    gated: false,
    act: 'gelu_new',
    attnScale: new Array<number>(o.nLayers).fill(Math.sqrt(dHead)),
    attnSoftcap: 0,
    finalSoftcap: 0,
    qkNorm: null,
    window: new Array<number>(o.nLayers).fill(0),
    ...o,
  };
}

/** Hugging Face GPT2LMHeadModel (modeling_gpt2.py): Conv1D weights [in, out], c_attn's columns q | k | v, head-major. */
const gpt2: ReferenceFamily = {
  recognizes: (c) => c.model_type === 'gpt2' || (Array.isArray(c.architectures) && c.architectures.includes('GPT2LMHeadModel')),
  load(c, dir) {
    const D = c.n_embd as number;
    const H = c.n_head as number;
    const E = D / H;
    const M = (c.n_inner as number | null) ?? 4 * D;
    const V = c.vocab_size as number;
    const L = c.n_layer as number;
    const acts: Record<string, RefConfig['act']> = { gelu_new: 'gelu_new', gelu_pytorch_tanh: 'gelu_new', gelu: 'gelu', relu: 'relu' };
    const cfg = baseConfig({
      nLayers: L,
      nHeads: H,
      dModel: D,
      dMlp: M,
      dVocab: V,
      nCtx: (c.n_positions ?? c.n_ctx) as number,
      eps: (c.layer_norm_epsilon as number | undefined) ?? 1e-5,
      act: acts[(c.activation_function as string | undefined) ?? 'gelu_new']!,
    });
    const t = rawTensors(dir, ['transformer.']);
    const g = (n: string) => f64(t.get(n), n);
    const blocks = Array.from({ length: L }, (_, l) => {
      const p = `h.${l}.`;
      const cAttn = g(`${p}attn.c_attn.weight`); // [D, 3D]
      const bAttn = g(`${p}attn.c_attn.bias`);
      const part = (j: number) => {
        const w = new Float64Array(D * D);
        for (let d = 0; d < D; d++) for (let o = 0; o < D; o++) w[d * D + o] = cAttn[d * 3 * D + j * D + o]!;
        return { W: splitHeadColumns(w, D, H, E), b: bAttn.slice(j * D, (j + 1) * D) };
      };
      const [q, k, v] = [part(0), part(1), part(2)];
      return {
        ln1W: g(`${p}ln_1.weight`),
        ln1B: g(`${p}ln_1.bias`),
        W_Q: q.W,
        b_Q: q.b,
        W_K: k.W,
        b_K: k.b,
        W_V: v.W,
        b_V: v.b,
        W_O: g(`${p}attn.c_proj.weight`), // [H·E, D] = [H, E, D]
        b_O: g(`${p}attn.c_proj.bias`),
        ln2W: g(`${p}ln_2.weight`),
        ln2B: g(`${p}ln_2.bias`),
        W_in: g(`${p}mlp.c_fc.weight`),
        b_in: g(`${p}mlp.c_fc.bias`),
        W_out: g(`${p}mlp.c_proj.weight`),
        b_out: g(`${p}mlp.c_proj.bias`),
      };
    });
    // lm_head, when present, is [V, D] (nn.Linear); otherwise the unembedding is tied to wte.
    const unembed = t.has('lm_head.weight') ? g('lm_head.weight') : g('wte.weight');
    return {
      cfg,
      W_E: g('wte.weight'),
      embedScale: 1,
      W_pos: g('wpe.weight'),
      blocks,
      lnfW: g('ln_f.weight'),
      lnfB: g('ln_f.bias'),
      W_U: transpose(unembed, V, D),
      b_U: new Float64Array(V),
    };
  },
};

/** Every family the reference reads; a new family adds its adapter here. */
const FAMILIES: readonly ReferenceFamily[] = [gpt2];

const loaded = new Map<string, RefModel>();

/** The reference model of a checkpoint folder (cached: a sweep runs hundreds of forwards on one model). */
export function loadReferenceModel(dir: string): RefModel {
  let m = loaded.get(dir);
  if (!m) {
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Json;
    const family = FAMILIES.find((f) => f.recognizes(config));
    if (!family) throw new Error(`reference: no adapter for the config in ${dir}`);
    m = family.load(config, dir);
    loaded.set(dir, m);
  }
  return m;
}
