import type { ModelConfig } from '../../src/engine/model/config';

/** A GPT-2-family config as the gpt2 architecture reads a Hugging Face config.json with these sizes. */
export function gpt2Config(o: { nLayers: number; nHeads: number; dModel: number; dMlp?: number; dVocab: number; nCtx: number }): ModelConfig {
  const dHead = o.dModel / o.nHeads;
  return {
    architecture: 'gpt2',
    nLayers: o.nLayers,
    nHeads: o.nHeads,
    nKvHeads: o.nHeads,
    dModel: o.dModel,
    dHead,
    dMlp: o.dMlp ?? 4 * o.dModel,
    dVocab: o.dVocab,
    nCtx: o.nCtx,
    norm: 'layernorm',
    normEps: 1e-5,
    normPlacement: 'pre',
    positional: 'learned',
    parallelAttnMlp: false,
    attnOnly: false,
    gatedMlp: false,
    activation: 'gelu_new',
    attnScale: new Array<number>(o.nLayers).fill(Math.sqrt(dHead)),
    window: new Array<number>(o.nLayers).fill(0),
    tiedEmbeddings: true,
    unembedBias: false,
    bosTokenId: o.dVocab - 1,
    eosTokenId: o.dVocab - 1,
    defaultPrependBos: true,
    weightsDtype: 'F32',
  };
}

/** GPT-2 small's configuration, as the gpt2 architecture reads openai-community/gpt2's config.json. */
export const GPT2_SMALL_CONFIG: ModelConfig = gpt2Config({ nLayers: 12, nHeads: 12, dModel: 768, dVocab: 50257, nCtx: 1024 });
