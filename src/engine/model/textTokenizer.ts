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

/** Whether some node of the tokenizer's pipeline (normalizer, pre-tokenizer or decoder tree) satisfies `test`. */
function anyNode(json: unknown, test: (node: Record<string, unknown>) => boolean): boolean {
  const has = (node: unknown): boolean => {
    if (typeof node !== 'object' || node === null) return false;
    const n = node as Record<string, unknown>;
    if (test(n)) return true;
    const subs = n.normalizers ?? n.pretokenizers ?? n.decoders;
    return Array.isArray(subs) && subs.some(has);
  };
  const j = json as { normalizer?: unknown; pre_tokenizer?: unknown; decoder?: unknown };
  return has(j.normalizer) || has(j.pre_tokenizer) || has(j.decoder);
}

function isByteLevel(json: unknown): boolean {
  return anyNode(json, (n) => n.type === 'ByteLevel');
}

/**
 * SentencePiece-style tokenizers (Llama 2, TinyLlama, Mistral): spaces become '▁' and a '▁' is put before
 * the text, either by a Metaspace pre-tokenizer or by Prepend and Replace normalizers.
 */
function isMetaspace(json: unknown): boolean {
  return anyNode(json, (n) => n.type === 'Metaspace' || (n.type === 'Prepend' && n.prepend === META) || (n.type === 'Replace' && n.content === META));
}

const META = '\u2581';
/** A byte-fallback token: one UTF-8 byte of a character the vocabulary lacks. */
const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;

/** A special token as tokenizer_config.json names it: a string, or an AddedToken object with `content`. */
function specialTokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  const content = (v as { content?: unknown } | null)?.content;
  return typeof content === 'string' ? content : undefined;
}

/** The special token a TemplateProcessing post-processor puts before a single sequence (Llama 3's <|begin_of_text|>). */
function templateBos(json: unknown): string | undefined {
  const find = (node: unknown): string | undefined => {
    const n = node as { type?: unknown; single?: unknown; processors?: unknown } | null;
    if (n?.type === 'TemplateProcessing' && Array.isArray(n.single)) {
      const id = (n.single[0] as { SpecialToken?: { id?: unknown } } | undefined)?.SpecialToken?.id;
      return typeof id === 'string' ? id : undefined;
    }
    if (n?.type === 'Sequence' && Array.isArray(n.processors)) for (const p of n.processors) if (find(p) !== undefined) return find(p);
    return undefined;
  };
  return find((json as { post_processor?: unknown }).post_processor);
}

/**
 * The BOS token id a tokenizer's files give, as TransformerLens resolves it: tokenizer_config.json's
 * bos_token, else the token the tokenizer's template prepends, else the EOS token (TransformerLens sets
 * bos_token to eos_token when a tokenizer has none: Qwen's), else the model config's bos_token_id.
 * TransformerLens loads every tokenizer with add_bos_token=True and strips or adds BOS itself, so that
 * flag does not change which ids a prompt gets and is not read here.
 */
function tokenizerBos(tok: Tokenizer, json: unknown, config: Record<string, unknown>, cfg: TokenizerModelInfo, files: string): number {
  const named = specialTokenText(config.bos_token) ?? templateBos(json) ?? specialTokenText(config.eos_token);
  if (named === undefined) return cfg.bosTokenId;
  const id = tok.token_to_id(named);
  if (id === undefined) throw new UserError(`the BOS token ${JSON.stringify(named)} named by ${files} is not in the tokenizer; fix or re-download the tokenizer files`);
  return id;
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
  const style = isByteLevel(tokenizerJson) ? 'byteLevel' : isMetaspace(tokenizerJson) ? 'metaspace' : 'other';
  const bos = tokenizerBos(tok, tokenizerJson, tokenizerConfig, cfg, `${tokPath} and tokenizer_config.json`);
  return new HfTextTokenizer(tok, cfg.dVocab, bos, style, addedTokens(tokenizerJson), tokPath);
}

class HfTextTokenizer implements TextTokenizer {
  private idToToken: (string | undefined)[] | undefined;
  private readonly byteOf: Map<string, number> | undefined;

  constructor(
    private readonly tok: Tokenizer,
    readonly vocabSize: number,
    readonly bosTokenId: number,
    private readonly style: 'byteLevel' | 'metaspace' | 'other',
    private readonly added: Map<number, string>,
    private readonly file: string,
  ) {
    this.byteOf = style === 'byteLevel' ? byteLevelDecoder() : undefined;
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
        throw new UserError(`the text tokenizes to id ${id}, outside the model's vocabulary of ${this.vocabSize}; ${this.file} does not belong to this model`);
      }
    }
    return { ids, ranges: this.byteOf ? this.byteLevelRanges(text, ids, this.byteOf) : this.pieceRanges(text, ids) };
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

  /**
   * Other tokenizers: each token's piece is matched against the text where the previous one ended. In a
   * SentencePiece-style piece a '▁' stands for a space, or for nothing where the tokenizer put it before
   * the text; a byte-fallback token (<0xE2>) is one UTF-8 byte of the character at hand, which every such
   * token maps to whole. A piece that does not match (a tokenizer that normalises the text) is searched
   * for, decoded, further on.
   */
  private pieceRanges(text: string, ids: number[]): [number, number][] {
    const ranges: [number, number][] = [];
    let cursor = 0;
    let bytesLeft = 0;
    for (const id of ids) {
      const raw = this.added.get(id);
      const piece = raw ?? this.tokenText(id);
      if (raw === undefined && BYTE_PIECE.test(piece) && cursor < text.length) {
        const cp = text.codePointAt(cursor)!;
        const width = cp > 0xffff ? 2 : 1;
        if (bytesLeft === 0) bytesLeft = utf8Length(cp);
        ranges.push([cursor, cursor + width]);
        if (--bytesLeft === 0) cursor += width;
        continue;
      }
      bytesLeft = 0;
      const matched = this.matchPiece(text, cursor, piece, raw === undefined && this.style === 'metaspace');
      if (matched) {
        ranges.push(matched);
        cursor = matched[1];
        continue;
      }
      const decoded = this.decode([id]).trim();
      const at = decoded.length > 0 ? text.indexOf(decoded, cursor) : -1;
      if (at >= 0) {
        ranges.push([at, at + decoded.length]);
        cursor = at + decoded.length;
      } else ranges.push([cursor, cursor]);
    }
    return ranges;
  }

  /** The range `piece` spells in `text` from `from`, or undefined where they differ. */
  private matchPiece(text: string, from: number, piece: string, metaspace: boolean): [number, number] | undefined {
    let at = from;
    let start: number | undefined;
    for (const ch of piece) {
      if (metaspace && ch === META) {
        if (text[at] !== ' ') continue;
        start ??= at;
        at++;
      } else if (text.startsWith(ch, at)) {
        start ??= at;
        at += ch.length;
      } else return undefined;
    }
    return [start ?? from, at];
  }

  /** The token as a person reads it: SentencePiece's '▁' shown as the space it stands for, like GPT-2's 'Ġ'. */
  tokenString(id: number): string {
    if (this.style === 'metaspace' && !this.added.has(id)) {
      const piece = this.tokenText(id);
      if (!BYTE_PIECE.test(piece)) return piece.replaceAll(META, ' ');
    }
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
