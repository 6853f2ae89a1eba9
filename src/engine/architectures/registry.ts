import { formatBytes, type ModelConfig } from '../model/config';
import { ConfigFields } from '../model/configFields';
import { modelParamCount } from '../model/weights';
import { UserError } from '../../common/userError';
import type { Architecture } from './architecture';
import { gpt2 } from './gpt2';
import { gptNeox } from './gptNeox';
import { gemma2, gemma3 } from './gemma';
import { llama, mistral, qwen2 } from './llama';
import { olmo2 } from './olmo2';
import { qwen3 } from './qwen3';
import { transformerLens } from './transformerLens';

/** Every family PatchLens reads, in the order a config.json is offered to them. */
export const ARCHITECTURES: readonly Architecture[] = [gpt2, gptNeox, transformerLens, llama, mistral, qwen2, qwen3, gemma2, gemma3, olmo2];

const describeConfig = (c: Readonly<Record<string, unknown>>): string => {
  if (typeof c.model_type === 'string') return `model_type '${c.model_type}'`;
  if (Array.isArray(c.architectures) && typeof c.architectures[0] === 'string') return `architecture '${c.architectures[0]}'`;
  return 'no model_type';
};

/** The family of a parsed config.json, or a message listing what PatchLens supports. */
export function architectureOf(json: unknown, file: string): Architecture {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UserError(`${file} is not a JSON object; a model config.json must be an object like Hugging Face's`);
  }
  const c = json as Record<string, unknown>;
  const arch = ARCHITECTURES.find((a) => a.recognizes(c));
  if (!arch) {
    throw new UserError(`unknown architecture (${describeConfig(c)}) in ${file}; PatchLens supports ${ARCHITECTURES.map((a) => a.label).join(', ')} checkpoints`);
  }
  return arch;
}

// Far above any model PatchLens can run; a config beyond it is corrupt or hostile, refused before any
// size computed from it is allocated.
const MAX_WEIGHT_BYTES = 64 * 2 ** 30;

/** A config.json's family and validated config (without the weights' dtype, which the weights file tells). */
export function parseModelConfig(json: unknown, file: string): { architecture: Architecture; config: Omit<ModelConfig, 'weightsDtype'> } {
  const architecture = architectureOf(json, file);
  const config = architecture.parseConfig(new ConfigFields(json as Record<string, unknown>, file, `a ${architecture.label} model`));
  const bytes = modelParamCount({ ...config, weightsDtype: 'F32' }) * 4;
  if (bytes > MAX_WEIGHT_BYTES) {
    throw new UserError(
      `${file} describes a model of ${formatBytes(bytes)} of float32 weights (d_model ${config.dModel}, n_layers ${config.nLayers}, d_vocab ${config.dVocab}), above PatchLens's ${formatBytes(MAX_WEIGHT_BYTES)} limit; use a smaller model`,
    );
  }
  return { architecture, config };
}
