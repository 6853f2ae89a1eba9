import type { ModelConfig } from '../model/config';
import type { ConfigFields } from '../model/configFields';
import type { ModelWeights } from '../model/weights';
import type { Tensor32 } from '../tensor';

/**
 * A model family behind the architecture seam: how to recognise and read its checkpoint, and how to turn
 * it into the engine's one description of a transformer (ModelConfig + ModelWeights). Everything after
 * that (graphs with every hook point, FLOPs, memory per row, patching) reads only the description, so a
 * new family is one folder here plus one entry in registry.ts. docs/ARCHITECTURE.md says how to add one.
 */
export interface Architecture {
  /** Registry id, written into result files ('gpt2', 'gpt_neox', ...). */
  readonly id: string;
  /** The family as a person names it ('GPT-2'). */
  readonly label: string;
  /** Hub ids offered by Select Model, with a line saying what each is. */
  readonly examples: readonly { readonly id: string; readonly description: string }[];
  /** Whether a config.json (parsed) belongs to this family: its model_type, architectures or keys. */
  recognizes(config: Readonly<Record<string, unknown>>): boolean;
  /** The config, validated field by field; weightsDtype is filled in by the loader from the weights file. */
  parseConfig(fields: ConfigFields): Omit<ModelConfig, 'weightsDtype'>;
  /**
   * The checkpoint's weight files. 'safetensors': model.safetensors or the shards an index names.
   * 'pth': a PyTorch state dict (TransformerLens-native checkpoints), read without executing pickle code.
   */
  readonly weightFormat: 'safetensors' | 'pth';
  /** Short names people type for the family's hub repos ('gpt2' -> 'openai-community/gpt2'). */
  readonly aliases?: Readonly<Record<string, string>>;
  /** A hub repo that holds the tokenizer when the model's own repo does not (TransformerLens-native models). */
  tokenizerRepo?(config: Readonly<Record<string, unknown>>): string | undefined;
  /** Prefixes some exports put before every tensor name ('transformer.', 'model.'); stripped on load. */
  readonly namePrefixes: readonly string[];
  /** Every tensor the family reads, by its name in the checkpoint, with the shape the config implies. */
  tensors(cfg: ModelConfig): CheckpointTensors;
  /**
   * Converts the checkpoint's tensors (checked against `tensors`) to the engine's layout. `get` hands each
   * tensor over once (a second call returns undefined), so converted originals are freed as it goes.
   */
  assemble(cfg: ModelConfig, get: (name: string) => Tensor32 | undefined): ModelWeights;
}

export interface CheckpointTensors {
  readonly required: ReadonlyMap<string, readonly number[]>;
  /** Tensors a checkpoint may leave out (a tied unembedding, biases some variants lack). */
  readonly optional: ReadonlyMap<string, readonly number[]>;
}

/** A tensor the checkpoint must have: `get` returns it after the loader's checks, or the family's code is wrong. */
export function must(get: (name: string) => Tensor32 | undefined, name: string): Tensor32 {
  const t = get(name);
  if (!t) throw new Error(`tensor '${name}' was not loaded; the architecture's tensor list misses it`);
  return t;
}
