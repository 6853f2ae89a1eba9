/**
 * tokenizer.json and tokenizer_config.json files in the formats the Llama-layout families' hub repos
 * ship, with small vocabularies built here: Llama 2 / TinyLlama's SentencePiece BPE (byte fallback, '▁'
 * for spaces, either as Prepend + Replace normalizers or as a Metaspace pre-tokenizer), Gemma's (<pad>
 * <eos> <bos> <unk> first, spaces replaced without a '▁' put before the text), Llama 3's byte-level BPE
 * with <|begin_of_text|>, Qwen2's and Qwen3's byte-level BPE whose tokenizer has no BOS token, OLMo 2's
 * byte-level BPE whose BOS is <|endoftext|>.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildGpt2TokenizerJson } from '../../src/engine/model/gpt2Tokenizer';

const META = '\u2581';

const added = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });

const addedTokenObject = (content: string) => ({ __type: 'AddedToken', content, lstrip: false, normalized: false, rstrip: false, single_word: false });

const LLAMA2_SPECIALS = ['<unk>', '<s>', '</s>'];
const GEMMA_SPECIALS = ['<pad>', '<eos>', '<bos>', '<unk>'];

/** Words of the SentencePiece vocabulary (each becomes one token through a chain of merges). */
const SP_WORDS = ['Hello', 'world', 'Alice', 'Bob', 'Mary', 'John', 'went', 'to', 'the', 'store', 'and', 'gave', 'a', 'drink'];

/**
 * A SentencePiece-style BPE vocabulary: the special tokens (Llama 2's <unk> <s> </s>), the 256 byte tokens <0x00>…<0xFF>, single
 * characters (ASCII letters, ',', '.', 'ü', '▁'), then '▁'+word for each word with the merges that build
 * it left to right. Characters outside it ('ï', emoji, '\n') fall back to bytes, as in Llama 2. Returned
 * as tokenizer.json's `model` section, the same in Llama 2's and Gemma's files.
 */
function sentencePieceModel(specials: readonly string[] = LLAMA2_SPECIALS): { vocab: Record<string, number>; merges: string[] } & Record<string, unknown> {
  const vocab: Record<string, number> = Object.fromEntries(specials.map((t, i) => [t, i]));
  let next = specials.length;
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = next++;
  const add = (piece: string) => {
    if (!(piece in vocab)) vocab[piece] = next++;
  };
  for (const ch of `${META},.ü${'abcdefghijklmnopqrstuvwxyz'}${'ABCDEFGHIJKLMNOPQRSTUVWXYZ'}`) add(ch);
  const merges: string[] = [];
  for (const word of SP_WORDS) {
    let piece = META;
    for (const ch of word) {
      const merged = piece + ch;
      if (!(merged in vocab)) {
        merges.push(`${piece} ${ch}`);
        add(merged);
      }
      piece = merged;
    }
  }
  return {
    type: 'BPE',
    dropout: null,
    unk_token: '<unk>',
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: true,
    byte_fallback: true,
    ignore_merges: false,
    vocab,
    merges,
  };
}

/**
 * Llama 2's tokenizer.json. 'legacy' is the layout of TinyLlama and Llama 2's own repos (Prepend and
 * Replace normalizers); 'metaspace' that of newer exports (a Metaspace pre-tokenizer, prepend_scheme first).
 */
export function llama2TokenizerJson(style: 'legacy' | 'metaspace'): object {
  const model = sentencePieceModel();
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [added(0, '<unk>'), added(1, '<s>'), added(2, '</s>')],
    normalizer:
      style === 'legacy'
        ? {
            type: 'Sequence',
            normalizers: [
              { type: 'Prepend', prepend: META },
              { type: 'Replace', pattern: { String: ' ' }, content: META },
            ],
          }
        : null,
    pre_tokenizer: style === 'legacy' ? null : { type: 'Metaspace', replacement: META, prepend_scheme: 'first', split: false },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: META }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    model,
  };
}

/** Llama 2's tokenizer_config.json: BOS as an AddedToken object. */
export function llama2TokenizerConfig(): object {
  return {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: addedTokenObject('<s>'),
    clean_up_tokenization_spaces: false,
    eos_token: addedTokenObject('</s>'),
    legacy: false,
    model_max_length: 2048,
    pad_token: null,
    sp_model_kwargs: {},
    tokenizer_class: 'LlamaTokenizer',
    unk_token: addedTokenObject('<unk>'),
  };
}

/** Gemma's tokenizer.json: <bos> is id 2; spaces become '▁' (a Replace normalizer) and nothing is put before the text. */
export function gemmaTokenizerJson(): object {
  const model = sentencePieceModel(GEMMA_SPECIALS);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: GEMMA_SPECIALS.map((t, i) => added(i, t)),
    normalizer: { type: 'Replace', pattern: { String: ' ' }, content: META },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<bos>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<bos>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<bos>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<bos>': { id: '<bos>', ids: [2], tokens: ['<bos>'] } },
    },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: META }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }] },
    model,
  };
}

/** Ids after GPT-2's 50257 for the added tokens of the byte-level tokenizers below. */
export const BYTE_LEVEL_SPECIALS = { first: 50257, second: 50258 } as const;

/** GPT-2's byte-level vocabulary with Llama 3's pre-tokenizer and template: <|begin_of_text|> 50257, <|end_of_text|> 50258. */
export function llama3TokenizerJson(): object {
  const gpt2 = buildGpt2TokenizerJson() as { model: object };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [added(BYTE_LEVEL_SPECIALS.first, '<|begin_of_text|>'), added(BYTE_LEVEL_SPECIALS.second, '<|end_of_text|>')],
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" },
          behavior: 'Isolated',
          invert: false,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [BYTE_LEVEL_SPECIALS.first], tokens: ['<|begin_of_text|>'] } },
        },
      ],
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { ...gpt2.model, ignore_merges: true },
  };
}

/** GPT-2's byte-level vocabulary with Qwen2's normalizer and pre-tokenizer; <|endoftext|> 50257, <|im_start|> 50258; no BOS. */
export function qwen2TokenizerJson(): object {
  const gpt2 = buildGpt2TokenizerJson() as { model: object };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [added(BYTE_LEVEL_SPECIALS.first, '<|endoftext|>'), added(BYTE_LEVEL_SPECIALS.second, '<|im_start|>')],
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" },
          behavior: 'Isolated',
          invert: false,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: gpt2.model,
  };
}

export type FamilyTokenizer = 'llama2' | 'llama2-metaspace' | 'llama3' | 'qwen2' | 'gemma' | 'olmo2';

/** Writes one family's tokenizer.json and tokenizer_config.json into `dir`. */
export function writeFamilyTokenizer(dir: string, kind: FamilyTokenizer): void {
  const files: Record<FamilyTokenizer, [object, object]> = {
    llama2: [llama2TokenizerJson('legacy'), llama2TokenizerConfig()],
    'llama2-metaspace': [llama2TokenizerJson('metaspace'), llama2TokenizerConfig()],
    llama3: [
      llama3TokenizerJson(),
      { bos_token: '<|begin_of_text|>', eos_token: '<|end_of_text|>', clean_up_tokenization_spaces: true, model_max_length: 131072, tokenizer_class: 'PreTrainedTokenizerFast' },
    ],
    qwen2: [
      qwen2TokenizerJson(),
      {
        add_prefix_space: false,
        bos_token: null,
        clean_up_tokenization_spaces: false,
        eos_token: '<|endoftext|>',
        errors: 'replace',
        model_max_length: 131072,
        pad_token: '<|endoftext|>',
        split_special_tokens: false,
        tokenizer_class: 'Qwen2Tokenizer',
      },
    ],
    gemma: [
      gemmaTokenizerJson(),
      {
        add_bos_token: true,
        add_eos_token: false,
        bos_token: '<bos>',
        eos_token: '<eos>',
        pad_token: '<pad>',
        unk_token: '<unk>',
        spaces_between_special_tokens: false,
        tokenizer_class: 'GemmaTokenizer',
      },
    ],
    // OLMo 2's tokenizer names <|endoftext|> as both BOS and EOS but does not add it; TransformerLens prepends it.
    olmo2: [
      qwen2TokenizerJson(),
      { add_bos_token: false, add_eos_token: false, bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', model_max_length: 4096, tokenizer_class: 'GPT2Tokenizer' },
    ],
  };
  const [json, config] = files[kind];
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2));
}

/** The vocabulary size a model needs for each kind. */
export function familyTokenizerVocab(kind: FamilyTokenizer): number {
  if (kind === 'gemma') return Object.keys(sentencePieceModel(GEMMA_SPECIALS).vocab).length;
  return kind.startsWith('llama2') ? Object.keys(sentencePieceModel().vocab).length : BYTE_LEVEL_SPECIALS.second + 1;
}
