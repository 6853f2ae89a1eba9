import type { Tensor32 } from '../tensor';
import type { ModelConfig } from './config';

/**
 * A model's weights in the one layout the graphs read, whatever the checkpoint's family: every matrix is
 * [in, out] (so `x @ W + b` is the layer) and heads are blocks of d_head columns, head-major. Each family's
 * architecture converts its checkpoint to this. Absent biases are zeros, so one graph serves every family.
 */
export interface BlockWeights {
  /** The first sublayer's norm: before attention ('pre', 'pre_post'), or on the attention output ('post'). */
  readonly ln1W: Tensor32; // [dModel]
  readonly ln1B?: Tensor32; // [dModel], LayerNorm only
  /** [dModel, (nHeads + 2·nKvHeads)·dHead]: columns are q | k | v, each head-major. */
  readonly wQkv: Tensor32;
  readonly bQkv: Tensor32;
  /** q/k RMSNorm gains: [dHead] per head, or [n·dHead] over all heads. */
  readonly qNormW?: Tensor32;
  readonly kNormW?: Tensor32;
  readonly wO: Tensor32; // [nHeads·dHead, dModel], rows head-major
  readonly bO: Tensor32; // [dModel]
  readonly ln1PostW?: Tensor32; // 'pre_post' only
  readonly ln1PostB?: Tensor32;
  /** The MLP's norm and weights: absent on attention-only models. */
  readonly ln2W?: Tensor32;
  readonly ln2B?: Tensor32;
  readonly ln2PostW?: Tensor32;
  readonly ln2PostB?: Tensor32;
  readonly wIn?: Tensor32; // [dModel, dMlp]
  readonly bIn?: Tensor32; // [dMlp]
  readonly wGate?: Tensor32; // [dModel, dMlp], gated MLPs
  readonly mlpLnW?: Tensor32; // [dMlp], SoLU's LayerNorm
  readonly mlpLnB?: Tensor32;
  readonly wOut?: Tensor32; // [dMlp, dModel]
  readonly bOut?: Tensor32; // [dModel]
}

export type BlockWeightName = keyof BlockWeights;

export interface ModelWeights {
  readonly wte: Tensor32; // [dVocab, dModel]
  readonly wpe?: Tensor32; // [nCtx, dModel], learned and shortformer positions
  readonly blocks: readonly BlockWeights[];
  readonly lnfW: Tensor32; // [dModel]
  readonly lnfB?: Tensor32; // LayerNorm only
  /** [dVocab, dModel]; the same tensor as wte when the checkpoint ties its embeddings. */
  readonly unembed: Tensor32;
  readonly bU?: Tensor32; // [dVocab]
}

/** Every block weight the config implies, with its shape, in a fixed order (the graph's inputs). */
export function blockWeightShapes(cfg: ModelConfig): [BlockWeightName, number[]][] {
  const { dModel: D, dHead: E, nHeads: H, nKvHeads: K, dMlp: M } = cfg;
  const ln = cfg.norm === 'layernorm';
  const qkv = (H + 2 * K) * E;
  const out: [BlockWeightName, number[]][] = [['ln1W', [D]]];
  if (ln) out.push(['ln1B', [D]]);
  out.push(['wQkv', [D, qkv]], ['bQkv', [qkv]]);
  if (cfg.qkNorm) out.push(['qNormW', [cfg.qkNorm === 'head' ? E : H * E]], ['kNormW', [cfg.qkNorm === 'head' ? E : K * E]]);
  out.push(['wO', [H * E, D]], ['bO', [D]]);
  if (cfg.normPlacement === 'pre_post') {
    out.push(['ln1PostW', [D]]);
    if (ln) out.push(['ln1PostB', [D]]);
  }
  if (!cfg.attnOnly) {
    out.push(['ln2W', [D]]);
    if (ln) out.push(['ln2B', [D]]);
    out.push(['wIn', [D, M]], ['bIn', [M]]);
    if (cfg.gatedMlp) out.push(['wGate', [D, M]]);
    if (cfg.activation === 'solu_ln') out.push(['mlpLnW', [M]], ['mlpLnB', [M]]);
    out.push(['wOut', [M, D]], ['bOut', [D]]);
    if (cfg.normPlacement === 'pre_post') {
      out.push(['ln2PostW', [D]]);
      if (ln) out.push(['ln2PostB', [D]]);
    }
  }
  return out;
}

/** The model's float32 parameter count (a tied unembedding counted once): what the memory check weighs. */
export function modelParamCount(cfg: ModelConfig): number {
  const { dModel: D, dVocab: V, nCtx: C } = cfg;
  const perBlock = blockWeightShapes(cfg).reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0);
  const pos = cfg.positional === 'rotary' ? 0 : C * D;
  const final = D * (cfg.norm === 'layernorm' ? 2 : 1) + (cfg.unembedBias ? V : 0);
  return V * D * (cfg.tiedEmbeddings ? 1 : 2) + pos + cfg.nLayers * perBlock + final;
}
