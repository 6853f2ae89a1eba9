import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { readJsonFile } from '../../common/fileRead';
import { UserError } from '../../common/userError';
import type { ModelConfig } from './config';
import { buildGpt2TokenizerJson, GPT2_VOCAB_SIZE, gpt2TokenizerConfig } from './gpt2Tokenizer';
import { TOKENIZER_CONFIG, TOKENIZER_JSON } from './modelFiles';
import type { EncodedText, TextTokenizer } from './tokenizer';

/** GPT-2's byte-level alphabet: token characters back to the bytes they stand for. */
function byteLevelDecoder(): Map<string, number> {
  const bs: number[] = [];
  const push = (a: number, b: number) => {
    for (let i = a; i <= b; i++) bs.push(i);
  };
  push(0x21, 0x7e);
  push(0xa1, 0xac);
  push(0xae, 0xff);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return new Map(bs.map((b, i) => [String.fromCharCode(cs[i]!), b]));
}

function utf8Length(codePoint: number): number {
  // Lone surrogates count as 3: UTF-8 encoding replaces them with U+FFFD.
  return codePoint < 0x80 ? 1 : codePoint < 0x800 ? 2 : codePoint < 0x10000 ? 3 : 4;
}

/**
 * For each UTF-8 byte offset of `text`, the UTF-16 range of the character that byte belongs to; offset
 * `byteLength` maps to [text.length, text.length].
 */
function byteToCharRanges(text: string): { start: Int32Array; end: Int32Array } {
  let total = 0;
  for (const ch of text) total += utf8Length(ch.codePointAt(0)!);
  const start = new Int32Array(total + 1);
  const end = new Int32Array(total + 1);
  let b = 0;
  let u = 0;
  for (const ch of text) {
    const n = utf8Length(ch.codePointAt(0)!);
    for (let k = 0; k < n; k++) {
      start[b + k] = u;
      end[b + k] = u + ch.length;
    }
    b += n;
    u += ch.length;
  }
  start[total] = end[total] = text.length;
  return { start, end };
}

/** Added (special) tokens by id: their content is raw text, not spelled in the byte-level alphabet. */
function addedTokens(json: unknown): Map<number, string> {
  const out = new Map<number, string>();
  const list = (json as { added_tokens?: unknown }).added_tokens;
  if (Array.isArray(list)) {
    for (const t of list as { id?: unknown; content?: unknown }[]) {
      if (typeof t?.id === 'number' && typeof t.content === 'string') out.set(t.id, t.content);
    }
  }
  return out;
}

function isByteLevel(json: unknown): boolean {
  const has = (node: unknown): boolean => {
    if (typeof node !== 'object' || node === null) return false;
    const n = node as { type?: unknown; pretokenizers?: unknown; decoders?: unknown };
    if (n.type === 'ByteLevel') return true;
    const subs = n.pretokenizers ?? n.decoders;
    return Array.isArray(subs) && subs.some(has);
  };
  const j = json as { pre_tokenizer?: unknown; decoder?: unknown };
  return has(j.pre_tokenizer) || has(j.decoder);
}

/**
 * Loads the tokenizer of the checkpoint in `dir`: its tokenizer.json, read by @huggingface/tokenizers (the
 * pure-JS tokenizer library that @huggingface/transformers itself uses, without its 160 MB of runtimes).
 * GPT-2-shaped models without one get GPT-2's own tokenizer.
 */
/** What a tokenizer needs of the model's config. */
export type TokenizerModelInfo = Pick<ModelConfig, 'architecture' | 'dVocab' | 'bosTokenId'>;

export async function loadTokenizer(dir: string, cfg: TokenizerModelInfo): Promise<TextTokenizer> {
  const tokPath = join(dir, 'tokenizer.json');
  let tokenizerJson: unknown;
  let tokenizerConfig: Record<string, unknown>;
  if (existsSync(tokPath)) {
    tokenizerJson = readJsonFile(tokPath, TOKENIZER_JSON);
    const configPath = join(dir, 'tokenizer_config.json');
    const c = existsSync(configPath) ? readJsonFile(configPath, TOKENIZER_CONFIG) : {};
    tokenizerConfig = typeof c === 'object' && c !== null && !Array.isArray(c) ? (c as Record<string, unknown>) : {};
  } else if (cfg.architecture === 'gpt2' && cfg.dVocab === GPT2_VOCAB_SIZE) {
    // Built in memory rather than written into the folder: a user's checkpoint folder is never modified.
    tokenizerJson = buildGpt2TokenizerJson();
    tokenizerConfig = gpt2TokenizerConfig();
  } else {
    return new IdOnlyTokenizer(cfg, tokPath);
  }

  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tokenizerJson as object, tokenizerConfig);
  } catch (e) {
    throw new UserError(`cannot build a tokenizer from ${tokPath} (${(e as Error).message}); the file is not a Hugging Face tokenizer.json`);
  }
  return new HfTextTokenizer(tok, cfg, isByteLevel(tokenizerJson), addedTokens(tokenizerJson), tokPath);
}

class HfTextTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number;
  private idToToken: (string | undefined)[] | undefined;
  private readonly byteOf: Map<string, number> | undefined;

  constructor(
    private readonly tok: Tokenizer,
    cfg: TokenizerModelInfo,
    byteLevel: boolean,
    private readonly added: Map<number, string>,
    private readonly file: string,
  ) {
    this.vocabSize = cfg.dVocab;
    this.bosTokenId = cfg.bosTokenId;
    this.byteOf = byteLevel ? byteLevelDecoder() : undefined;
  }

  private tokenText(id: number): string {
    if (!this.idToToken) {
      const arr: (string | undefined)[] = [];
      for (const [t, i] of this.tok.get_vocab()) arr[i] = t;
      this.idToToken = arr;
    }
    return this.idToToken[id] ?? '';
  }

  encode(text: string): EncodedText {
    const { ids } = this.tok.encode(text, { add_special_tokens: false });
    for (const id of ids) {
      if (id >= this.vocabSize) {
        throw new UserError(
          `the text tokenizes to id ${id}, outside the model's vocabulary of ${this.vocabSize}; ${this.file} does not belong to this model`,
        );
      }
    }
    return { ids, ranges: this.byteOf ? this.byteLevelRanges(text, ids, this.byteOf) : this.searchRanges(text, ids) };
  }

  // Byte-level BPE tokens are spelled in a 256-character alphabet, one character per UTF-8 byte of the
  // input, so summing token byte lengths gives exact byte offsets. A character split across tokens
  // (an emoji is 4 bytes) maps each of those tokens to the whole character.
  private byteLevelRanges(text: string, ids: number[], byteOf: Map<string, number>): [number, number][] {
    const map = byteToCharRanges(text);
    const totalBytes = map.start.length - 1;
    const ranges: [number, number][] = [];
    let b = 0;
    for (const id of ids) {
      const raw = this.added.get(id);
      let n = 0;
      if (raw !== undefined) n = Buffer.byteLength(raw, 'utf8');
      else for (const ch of this.tokenText(id)) n += byteOf.has(ch) ? 1 : utf8Length(ch.codePointAt(0)!);
      const b0 = Math.min(b, totalBytes);
      const b1 = Math.min(b + n, totalBytes);
      const start = map.start[b0]!;
      ranges.push([start, b1 > b0 ? map.end[b1 - 1]! : start]);
      b += n;
    }
    return ranges;
  }

  // Other tokenizers (SentencePiece-style): find each token's decoded text in the input, in order.
  private searchRanges(text: string, ids: number[]): [number, number][] {
    const ranges: [number, number][] = [];
    let cursor = 0;
    for (const id of ids) {
      const piece = this.decode([id]).trim();
      const at = piece.length > 0 ? text.indexOf(piece, cursor) : -1;
      if (at >= 0) {
        ranges.push([at, at + piece.length]);
        cursor = at + piece.length;
      } else ranges.push([cursor, cursor]);
    }
    return ranges;
  }

  tokenString(id: number): string {
    return this.decode([id]);
  }

  decode(ids: readonly number[]): string {
    if (ids.length === 0) return '';
    return this.tok.decode([...ids], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }
}

/**
 * A model without a tokenizer.json can still run prompts given as token ids (test checkpoints, the
 * golden model); text prompts get a message that says what is missing.
 */
class IdOnlyTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number;

  constructor(
    cfg: TokenizerModelInfo,
    private readonly missing: string,
  ) {
    this.vocabSize = cfg.dVocab;
    this.bosTokenId = cfg.bosTokenId;
  }

  encode(): never {
    throw new UserError(
      `${this.missing} does not exist and the model (vocab ${this.vocabSize}) is not GPT-2's, so text prompts cannot be tokenized; put the model's Hugging Face tokenizer.json in that folder, or give prompts as token ids (clean_ids, corrupted_ids, answer_id, wrong_id)`,
    );
  }

  tokenString(id: number): string {
    return `<${id}>`;
  }

  decode(ids: readonly number[]): string {
    return ids.map((id) => this.tokenString(id)).join('');
  }
}
