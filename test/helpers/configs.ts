import type { ModelConfig } from '../../src/engine/model/config';

/** GPT-2 small's configuration, as parseGpt2Config reads openai-community/gpt2's config.json. */
export const GPT2_SMALL_CONFIG: ModelConfig = {
  architecture: 'gpt2',
  nLayers: 12,
  nHeads: 12,
  dModel: 768,
  dHead: 64,
  dMlp: 3072,
  dVocab: 50257,
  nCtx: 1024,
  layerNormEps: 1e-5,
  activation: 'gelu_new',
  bosTokenId: 50256,
  eosTokenId: 50256,
};
