/** The architecture-independent shape of a model, in TransformerLens's names. */
export interface ModelConfig {
  readonly architecture: 'gpt2';
  readonly nLayers: number;
  readonly nHeads: number;
  readonly dModel: number;
  readonly dHead: number;
  readonly dMlp: number;
  readonly dVocab: number;
  readonly nCtx: number;
  readonly layerNormEps: number;
  readonly activation: 'gelu_new' | 'gelu' | 'relu';
  readonly bosTokenId: number;
  readonly eosTokenId: number;
}
