import type { Tensor32 } from '../tensor';

/**
 * One transformer block's weights, in the Hugging Face GPT-2 (Conv1D) layout: every matrix is
 * [in, out], so `x @ W + b` is the layer. Architecture adapters convert other checkpoints to this.
 */
export interface BlockWeights {
  readonly ln1W: Tensor32; // [dModel]
  readonly ln1B: Tensor32; // [dModel]
  /** [dModel, 3*dModel]: columns are q | k | v, each split head-major into nHeads blocks of dHead. */
  readonly wQkv: Tensor32;
  readonly bQkv: Tensor32; // [3*dModel]
  readonly wO: Tensor32; // [dModel, dModel], rows head-major
  readonly bO: Tensor32; // [dModel]
  readonly ln2W: Tensor32; // [dModel]
  readonly ln2B: Tensor32; // [dModel]
  readonly wIn: Tensor32; // [dModel, dMlp]
  readonly bIn: Tensor32; // [dMlp]
  readonly wOut: Tensor32; // [dMlp, dModel]
  readonly bOut: Tensor32; // [dModel]
}

export interface ModelWeights {
  readonly wte: Tensor32; // [dVocab, dModel]
  readonly wpe: Tensor32; // [nCtx, dModel]
  readonly blocks: readonly BlockWeights[];
  readonly lnfW: Tensor32; // [dModel]
  readonly lnfB: Tensor32; // [dModel]
  /** [dVocab, dModel]; the same tensor as wte when the checkpoint ties its embeddings (GPT-2 does). */
  readonly unembed: Tensor32;
}
