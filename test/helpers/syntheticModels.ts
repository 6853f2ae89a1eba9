/**
 * Synthetic models for every mechanism a ModelConfig can switch on: configs that combine them the way the
 * families do (and some ways no family does), random weights built directly in the engine's layout, and
 * the same weights converted to the float64 reference's per-head form.
 */
import type { ModelConfig } from '../../src/engine/model/config';
import { blockWeightShapes, type BlockWeights, type ModelWeights } from '../../src/engine/model/weights';
import { uniform } from '../../src/engine/random';
import type { Tensor32 } from '../../src/engine/tensor';
import { gpt2Config } from './configs';
import type { RefBlock, RefModel } from './reference';
import { splitHeadColumns, transpose } from './referenceModels';

const invFreq = (dim: number, base: number) => Array.from({ length: dim / 2 }, (_, i) => base ** (-(2 * i) / dim));

export function syntheticConfig(over: Partial<ModelConfig>): ModelConfig {
  const base = gpt2Config({ nLayers: 3, nHeads: 4, dModel: 16, dMlp: 24, dVocab: 50, nCtx: 16 });
  const c = { ...base, ...over };
  return { ...c, attnScale: over.attnScale ?? new Array<number>(c.nLayers).fill(Math.sqrt(c.dHead)), window: over.window ?? new Array<number>(c.nLayers).fill(0) };
}

/** Synthetic configs: each family's combination of mechanisms, and a few no family has. */
export const SYNTHETIC_CASES: [string, ModelConfig][] = [
  [
    'NeoX-like: parallel, partial rotary, exact GELU',
    syntheticConfig({ positional: 'rotary', rotary: { dim: 2, invFreq: invFreq(2, 10000) }, parallelAttnMlp: true, activation: 'gelu' }),
  ],
  [
    'Llama-like: RMSNorm, rotary, GQA 4/2, SwiGLU, untied',
    syntheticConfig({
      norm: 'rmsnorm',
      positional: 'rotary',
      rotary: { dim: 4, invFreq: invFreq(4, 500000) },
      nKvHeads: 2,
      gatedMlp: true,
      activation: 'silu',
      tiedEmbeddings: false,
    }),
  ],
  [
    'Gemma 2-like: pre+post norms, soft-caps, local even layers, scaled embeddings, GeGLU, GQA 4/1',
    syntheticConfig({
      norm: 'rmsnorm',
      normPlacement: 'pre_post',
      positional: 'rotary',
      rotary: { dim: 4, invFreq: invFreq(4, 10000) },
      nKvHeads: 1,
      gatedMlp: true,
      attnSoftcap: 1.5,
      finalSoftcap: 2,
      window: [3, 0, 3],
      embedScale: 4,
      attnScale: [3, 3, 3],
    }),
  ],
  [
    'Gemma 3-like: per-head q/k norms, local rope base, window',
    syntheticConfig({
      norm: 'rmsnorm',
      normPlacement: 'pre_post',
      positional: 'rotary',
      rotary: { dim: 4, invFreq: invFreq(4, 1e6), localInvFreq: invFreq(4, 1e4) },
      qkNorm: 'head',
      window: [2, 2, 0],
      gatedMlp: true,
    }),
  ],
  [
    'Qwen3-like: q/k norms per head, d_head 6 != d_model / heads',
    syntheticConfig({
      norm: 'rmsnorm',
      positional: 'rotary',
      rotary: { dim: 6, invFreq: invFreq(6, 1e6) },
      dHead: 6,
      nKvHeads: 2,
      qkNorm: 'head',
      gatedMlp: true,
      activation: 'silu',
    }),
  ],
  [
    'OLMo 2-like: norms after the sublayers, q/k norm over all heads',
    syntheticConfig({
      norm: 'rmsnorm',
      normPlacement: 'post',
      positional: 'rotary',
      rotary: { dim: 4, invFreq: invFreq(4, 5e5) },
      qkNorm: 'full',
      gatedMlp: true,
      activation: 'silu',
    }),
  ],
  ['attention-only, shortformer positions', syntheticConfig({ attnOnly: true, positional: 'shortformer' })],
  ['SoLU with its LayerNorm, unembedding bias, GPT-2 layer-scaled attention', syntheticConfig({ activation: 'solu_ln', unembedBias: true, attnScale: [2, 4, 6] })],
];

export function randomWeights(cfg: ModelConfig, seed: number): ModelWeights {
  const u = uniform(seed);
  const t = (shape: number[], around = 0, spread = 0.5): Tensor32 => {
    const n = shape.reduce((a, b) => a * b, 1);
    return { shape, data: Float32Array.from({ length: n }, () => around + spread * (2 * u() - 1)) };
  };
  const blocks = Array.from({ length: cfg.nLayers }, () => {
    const b: Record<string, Tensor32> = {};
    for (const [name, shape] of blockWeightShapes(cfg)) b[name] = /W$/.test(name) && !name.startsWith('w') ? t(shape, 1, 0.3) : t(shape);
    return b as unknown as BlockWeights;
  });
  const D = cfg.dModel;
  const wte = t([cfg.dVocab, D], 0, 1);
  return {
    wte,
    ...(cfg.positional !== 'rotary' ? { wpe: t([cfg.nCtx, D], 0, 1) } : {}),
    blocks,
    lnfW: t([D], 1, 0.3),
    ...(cfg.norm === 'layernorm' ? { lnfB: t([D]) } : {}),
    unembed: cfg.tiedEmbeddings ? wte : t([cfg.dVocab, D], 0, 1),
    ...(cfg.unembedBias ? { bU: t([cfg.dVocab]) } : {}),
  };
}

/** The same weights in the reference's per-head form. */
export function toReference(cfg: ModelConfig, w: ModelWeights): RefModel {
  const f = (x: Tensor32 | undefined) => (x ? Float64Array.from(x.data) : undefined);
  const { dModel: D, nHeads: H, nKvHeads: K, dHead: E, dVocab: V } = cfg;
  const blocks: RefBlock[] = w.blocks.map((b) => {
    const qkv = b.wQkv.data;
    const cols = (H + 2 * K) * E;
    const part = (from: number, n: number) => {
      const m = new Float64Array(D * n);
      for (let d = 0; d < D; d++) for (let c = 0; c < n; c++) m[d * n + c] = qkv[d * cols + from + c]!;
      return m;
    };
    const bias = f(b.bQkv)!;
    return {
      ln1W: f(b.ln1W)!,
      ln1B: f(b.ln1B),
      W_Q: splitHeadColumns(part(0, H * E), D, H, E),
      b_Q: bias.slice(0, H * E),
      W_K: splitHeadColumns(part(H * E, K * E), D, K, E),
      b_K: bias.slice(H * E, (H + K) * E),
      W_V: splitHeadColumns(part((H + K) * E, K * E), D, K, E),
      b_V: bias.slice((H + K) * E),
      W_O: f(b.wO)!,
      b_O: f(b.bO)!,
      qNorm: f(b.qNormW),
      kNorm: f(b.kNormW),
      ln1PostW: f(b.ln1PostW),
      ln1PostB: f(b.ln1PostB),
      ln2W: f(b.ln2W),
      ln2B: f(b.ln2B),
      ln2PostW: f(b.ln2PostW),
      ln2PostB: f(b.ln2PostB),
      W_in: f(b.wIn),
      b_in: f(b.bIn),
      W_gate: f(b.wGate),
      mlpLnW: f(b.mlpLnW),
      mlpLnB: f(b.mlpLnB),
      W_out: f(b.wOut),
      b_out: f(b.bOut),
    };
  });
  const act = cfg.activation;
  return {
    cfg: {
      nLayers: cfg.nLayers,
      nHeads: H,
      nKvHeads: K,
      dModel: D,
      dHead: E,
      dMlp: cfg.dMlp,
      dVocab: V,
      nCtx: cfg.nCtx,
      norm: cfg.norm === 'layernorm' ? 'LN' : 'RMS',
      eps: cfg.normEps,
      normPlacement: cfg.normPlacement,
      positional: cfg.positional === 'learned' ? 'standard' : cfg.positional,
      rotaryDim: cfg.rotary?.dim ?? 0,
      rotaryInvFreq: Array.from({ length: cfg.nLayers }, (_, l) => [...((cfg.window[l]! > 0 ? cfg.rotary?.localInvFreq : undefined) ?? cfg.rotary?.invFreq ?? [])]),
      parallel: cfg.parallelAttnMlp,
      attnOnly: cfg.attnOnly,
      gated: cfg.gatedMlp,
      act,
      attnScale: [...cfg.attnScale],
      attnSoftcap: cfg.attnSoftcap ?? 0,
      finalSoftcap: cfg.finalSoftcap ?? 0,
      qkNorm: cfg.qkNorm ?? null,
      window: [...cfg.window],
    },
    W_E: f(w.wte)!,
    // The reference scales in float64; the engine multiplies by the float32 factor, which the family rounds.
    embedScale: cfg.embedScale ?? 1,
    W_pos: f(w.wpe),
    blocks,
    lnfW: f(w.lnfW)!,
    lnfB: f(w.lnfB),
    W_U: transpose(f(w.unembed)!, V, D),
    b_U: f(w.bU) ?? new Float64Array(V),
  };
}
