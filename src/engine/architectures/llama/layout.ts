import type { ModelConfig } from '../../model/config';
import type { BlockWeights } from '../../model/weights';
import type { Tensor32 } from '../../tensor';
import { transposeInto } from '../../tensorOps';
import { type Architecture, must } from '../architecture';

/**
 * Hugging Face's Llama checkpoint layout (LlamaForCausalLM and the families built on it: Mistral, Qwen2,
 * Qwen3, Gemma 2 and 3, OLMo 2): nn.Linear weights stored [out, in], heads as row blocks of d_head,
 * `self_attn.{q,k,v,o}_proj` and `mlp.{gate,up,down}_proj` under `layers.{l}.` (after the `model.` prefix).
 * The families differ in their norms (where they sit, q/k norms, Gemma's 1 + w), which `NormLayout` says.
 * Each tensor is converted as soon as it is taken, so the checkpoint's own copy can be freed layer by layer.
 */
type Get = (name: string) => Tensor32 | undefined;
type Shapes = Map<string, number[]>;

/** The attention tensors of one layer (`prefix` is e.g. 'layers.3.self_attn.'), with the biases the config has. */
export function attentionTensors(cfg: ModelConfig, prefix: string, out: Shapes): void {
  const { dModel: D, nHeads: H, nKvHeads: K, dHead: E } = cfg;
  const rows = { q: H * E, k: K * E, v: K * E };
  for (const [p, n] of Object.entries(rows)) out.set(`${prefix}${p}_proj.weight`, [n, D]);
  out.set(`${prefix}o_proj.weight`, [D, H * E]);
  if (cfg.attnBiases) for (const [p, n] of Object.entries(rows)) out.set(`${prefix}${p}_proj.bias`, [n]);
  if (cfg.attnBiases === 'qkvo') out.set(`${prefix}o_proj.bias`, [D]);
}

/** The gated MLP's tensors of one layer (`prefix` is e.g. 'layers.3.mlp.'). */
export function gatedMlpTensors(cfg: ModelConfig, prefix: string, out: Shapes): void {
  const { dModel: D, dMlp: M } = cfg;
  out.set(`${prefix}gate_proj.weight`, [M, D]);
  out.set(`${prefix}up_proj.weight`, [M, D]);
  out.set(`${prefix}down_proj.weight`, [D, M]);
}

/** An nn.Linear weight [out, in] as the [in, out] matrix the graphs multiply by. */
function inOut(w: Tensor32): Tensor32 {
  const [rows, cols] = w.shape as [number, number];
  const data = new Float32Array(rows * cols);
  transposeInto(w.data, rows, cols, data, rows);
  return { shape: [cols, rows], data };
}

/** q, k and v fused side by side ([D, (H + 2K)·E], each head-major) with their biases (zeros when absent). */
export function assembleAttention(cfg: ModelConfig, prefix: string, get: Get): Pick<BlockWeights, 'wQkv' | 'bQkv' | 'wO' | 'bO'> {
  const { dModel: D, nHeads: H, nKvHeads: K, dHead: E } = cfg;
  const cols = (H + 2 * K) * E;
  const wQkv = new Float32Array(D * cols);
  const bQkv = new Float32Array(cols);
  let at = 0;
  for (const p of ['q', 'k', 'v']) {
    const w = must(get, `${prefix}${p}_proj.weight`);
    const n = w.shape[0]!;
    transposeInto(w.data, n, D, wQkv, cols, at);
    if (cfg.attnBiases) bQkv.set(must(get, `${prefix}${p}_proj.bias`).data, at);
    at += n;
  }
  return {
    wQkv: { shape: [D, cols], data: wQkv },
    bQkv: { shape: [cols], data: bQkv },
    wO: inOut(must(get, `${prefix}o_proj.weight`)),
    bO: cfg.attnBiases === 'qkvo' ? must(get, `${prefix}o_proj.bias`) : { shape: [D], data: new Float32Array(D) },
  };
}

/** SwiGLU's matrices in the engine's layout: gate_proj is W_gate, up_proj W_in, down_proj W_out; no biases. */
export function assembleGatedMlp(cfg: ModelConfig, prefix: string, get: Get): Pick<BlockWeights, 'wGate' | 'wIn' | 'bIn' | 'wOut' | 'bOut'> {
  return {
    wGate: inOut(must(get, `${prefix}gate_proj.weight`)),
    wIn: inOut(must(get, `${prefix}up_proj.weight`)),
    bIn: { shape: [cfg.dMlp], data: new Float32Array(cfg.dMlp) },
    wOut: inOut(must(get, `${prefix}down_proj.weight`)),
    bOut: { shape: [cfg.dModel], data: new Float32Array(cfg.dModel) },
  };
}

/** The block weights a family's RMSNorm gains become. */
type NormWeight = 'ln1W' | 'ln1PostW' | 'ln2W' | 'ln2PostW';

/**
 * Where a Llama-layout family keeps its norms: each layer's RMSNorm gains by name (under `layers.{l}.`) and
 * the block weight each becomes; q/k norms (`self_attn.{q,k}_norm`) follow the config's qkNorm. Gemma
 * stores w for a gain of (1 + w), formed in float32 as its RMSNorm does.
 */
export interface NormLayout {
  readonly norms: readonly (readonly [name: string, weight: NormWeight])[];
  readonly gainPlusOne: boolean;
}

/** Llama, Mistral, Qwen2 and Qwen3: RMSNorm before attention and before the MLP. */
export const PRE_NORMS: NormLayout = {
  norms: [
    ['input_layernorm', 'ln1W'],
    ['post_attention_layernorm', 'ln2W'],
  ],
  gainPlusOne: false,
};

/** A Llama-layout family's checkpoint reading: its tensors and their conversion, with its norms where `layout` says. */
export function llamaLayout(layout: NormLayout): Pick<Architecture, 'weightFormat' | 'namePrefixes' | 'tensors' | 'assemble'> {
  const qkNormShapes = (cfg: ModelConfig): [number, number] | undefined =>
    cfg.qkNorm === 'head' ? [cfg.dHead, cfg.dHead] : cfg.qkNorm === 'full' ? [cfg.nHeads * cfg.dHead, cfg.nKvHeads * cfg.dHead] : undefined;
  const gain = (get: Get, name: string): Tensor32 => {
    const t = must(get, name);
    if (layout.gainPlusOne) for (let i = 0; i < t.data.length; i++) t.data[i] = 1 + t.data[i]!;
    return t;
  };
  return {
    weightFormat: 'safetensors',
    namePrefixes: ['model.'],
    tensors(cfg) {
      const { dModel: D, dVocab: V } = cfg;
      const qk = qkNormShapes(cfg);
      const required: Shapes = new Map();
      for (let l = 0; l < cfg.nLayers; l++) {
        const p = `layers.${l}.`;
        for (const [name] of layout.norms) required.set(`${p}${name}.weight`, [D]);
        attentionTensors(cfg, `${p}self_attn.`, required);
        if (qk) {
          required.set(`${p}self_attn.q_norm.weight`, [qk[0]]);
          required.set(`${p}self_attn.k_norm.weight`, [qk[1]]);
        }
        gatedMlpTensors(cfg, `${p}mlp.`, required);
      }
      required.set('embed_tokens.weight', [V, D]);
      required.set('norm.weight', [D]);
      // A tied checkpoint may still carry a copy of lm_head; Hugging Face ignores it, and so it is not read.
      if (!cfg.tiedEmbeddings) required.set('lm_head.weight', [V, D]);
      return { required, optional: new Map() };
    },
    assemble(cfg, get) {
      const blocks = Array.from({ length: cfg.nLayers }, (_, l): BlockWeights => {
        const p = `layers.${l}.`;
        const norms = Object.fromEntries(layout.norms.map(([name, weight]) => [weight, gain(get, `${p}${name}.weight`)])) as Record<NormWeight, Tensor32>;
        return {
          ...norms,
          ...assembleAttention(cfg, `${p}self_attn.`, get),
          ...(cfg.qkNorm ? { qNormW: gain(get, `${p}self_attn.q_norm.weight`), kNormW: gain(get, `${p}self_attn.k_norm.weight`) } : {}),
          ...assembleGatedMlp(cfg, `${p}mlp.`, get),
        };
      });
      const wte = must(get, 'embed_tokens.weight');
      return { wte, blocks, lnfW: gain(get, 'norm.weight'), unembed: cfg.tiedEmbeddings ? wte : must(get, 'lm_head.weight') };
    },
  };
}
