/**
 * Resolving a checked `.patch.json` spec against a model's tokenizer and config into the token ids the
 * engine runs: BOS prepended to text prompts (ids are taken as given), answers checked to be single
 * tokens, lengths and ids checked against the model, the induction batch generated. Errors are
 * SpecErrors pointing into the spec's text when there is one.
 */
import { basename, dirname, resolve } from 'node:path';
import {
  INDUCTION_DEFAULTS,
  type InductionSpec,
  type PairSpec,
  type PatchSpec,
  type ResolvedPair,
  type ResolvedSpec,
  type ResolvedTarget,
  SPEC_FILE_SUFFIX,
  type SourceText,
  toDocumentRange,
} from '../../protocol/spec';
import { literalOffsets, locateNearest, type NodePos, scanNodes } from '../../spec/jsonc';
import { parseMarks, tokensCovering } from '../../spec/positionMarks';
import { errorAt, formatPath, type PathSeg, quote, SpecError, stripBom, type TextInfo } from '../../spec/specError';
import { validateSpecValue } from '../../spec/specSchema';
import { isUserError } from '../../common/userError';
import { type Dataset, readDataset } from './dataset';
import type { ModelConfig } from '../model/config';
import type { TextTokenizer } from '../model/tokenizer';
import { mulberry32 } from '../random';

export interface PairSources {
  clean?: SourceText;
  corrupted?: SourceText;
}

export interface ResolveOptions {
  /** The spec's file (or a label such as 'selection'), for messages and the default name. */
  file: string;
  /** The spec's text, if it came from one: gives positions for errors and source ranges for tokens. */
  text?: string;
  /** Where `text` starts in the editor document (a selection); default 0. */
  textOffset?: number;
  /** Per pair, where its prompts came from when not from `text` (a two-line selection). */
  sources?: (PairSources | undefined)[];
}

// Far above the characters per token of any text (about 4 for English, at most 2 for most scripts).
const PROMPT_PROBE_CHARS_PER_TOKEN = 16;
const ANSWER_PROBE_CHARS = 256;

function defaultName(file: string): string {
  const base = basename(file);
  const lower = base.toLowerCase();
  const stem = lower.endsWith(SPEC_FILE_SUFFIX) ? base.slice(0, -SPEC_FILE_SUFFIX.length) : lower.endsWith('.json') ? base.slice(0, -'.json'.length) : base;
  return stem === '' ? 'patch' : stem;
}

/**
 * The induction demo's token batch. A, B and C are always drawn in that order (all rows of A, then
 * of B, then of C), so one seed gives the same clean tokens whatever the corruption pattern, and the
 * AB/BA/BB/BC specs of one seed are comparable.
 */
export function generateInduction(ind: InductionSpec, bos: number | undefined): ResolvedPair[] {
  const [lo, hi] = ind.token_range ?? INDUCTION_DEFAULTS.token_range;
  const length = ind.length ?? INDUCTION_DEFAULTS.length;
  const batch = ind.batch ?? INDUCTION_DEFAULTS.batch;
  const next = mulberry32(ind.seed);
  const span = hi - lo;
  // span < 2^32 and next() < 2^32: the product is below 2^64 but may round; floor of a correctly
  // rounded IEEE product is still identical everywhere, and span is small in practice (< 2^21).
  const draw = () => Array.from({ length: batch }, () => Array.from({ length }, () => lo + Math.floor((next() * span) / 4294967296)));
  const A = draw();
  const B = draw();
  const C = draw();
  const head = bos === undefined ? [] : [bos];
  const off = head.length;
  return A.map((a, r) => {
    const b = B[r]!;
    const c = C[r]!;
    const corrupted = { AB: [a, b], BA: [b, a], BB: [b, b], BC: [b, c] }[ind.corrupted];
    const clean = [...head, ...a, ...a];
    const targets: ResolvedTarget[] = [];
    // Second half: positions off+length … off+2·length−1; each but the last predicts the next clean token.
    for (let p = off + length; p <= off + 2 * length - 2; p++) targets.push({ pos: p, token: clean[p + 1]! });
    return { clean, corrupted: [...head, ...corrupted[0]!, ...corrupted[1]!], targets };
  });
}

function tokenList(tok: TextTokenizer, ids: readonly number[], from: number, max = 8): string {
  const shown = ids.slice(from, from + max).map((id) => quote(tok.tokenString(id), 20));
  return `[${from > 0 ? '… ' : ''}${shown.join(' ')}${from + max < ids.length ? ' …' : ''}]`;
}

interface Located extends NodePos {
  value: unknown;
}

/** Positions of the pairs' members in the spec text (one parse), for errors and source ranges. */
function pairNodes(info: TextInfo): Map<string, Located> {
  const nodes = new Map<string, Located>();
  // Text edited since the spec was parsed gives no positions past the edit.
  scanNodes(info, (v) => {
    if (v.path.length === 3 && v.path[0] === 'pairs') nodes.set(`${String(v.path[1])}/${String(v.path[2])}`, { start: v.start, end: v.end, keyStart: v.keyStart, value: v.value });
  });
  return nodes;
}

/**
 * Turns a validated spec into token ids for `tok` and `cfg`: BOS prepended to text prompts (ids are
 * taken as given), answers checked to be single tokens, lengths and ids checked against the model.
 */
export function resolveSpec(spec: PatchSpec, tok: TextTokenizer, cfg: ModelConfig, opts: ResolveOptions): ResolvedSpec {
  const file = opts.file;
  const info: TextInfo | undefined = opts.text === undefined ? undefined : { text: stripBom(opts.text), base: opts.textOffset ?? 0 };
  validateSpecValue(spec, file, info);
  const dataset = spec.dataset === undefined ? undefined : loadDataset(spec, file, info);
  const nodes = info && !dataset ? pairNodes(info) : new Map<string, Located>();
  const fail = (path: PathSeg[], message: string, useKey = false): never => {
    // A dataset's pair is found by its line; the spec's by its place in the text.
    if (dataset && path[0] === 'pairs' && typeof path[1] === 'number') throw new SpecError(`${dataset.path}:${dataset.lines[path[1]]}: ${message}`);
    const node = path.length >= 3 && path[0] === 'pairs' ? nodes.get(`${path[1]}/${path[2]}`) : info ? locateNearest(info, path) : undefined;
    throw errorAt(file, info, node ? (useKey ? (node.keyStart ?? node.start) : node.start) : undefined, node?.end, message);
  };
  // The default and the BOS token are the model's, as TransformerLens has them: Qwen prepends nothing by
  // default, and each tokenizer names its own BOS (<|begin_of_text|>, <s>, <|endoftext|>).
  const prependBos = spec.prepend_bos ?? cfg.defaultPrependBos;
  const vocab = cfg.dVocab;
  const bos = (): number => {
    const id = tok.bosTokenId;
    if (!(id >= 0 && id < vocab)) {
      fail(
        ['prepend_bos'],
        `the tokenizer's BOS token is id ${id}, outside the model's vocabulary [0, ${vocab}): its tokenizer files do not belong to this model; fix them, or set "prepend_bos": false`,
      );
    }
    return id;
  };

  const checkLength = (path: PathSeg[], n: number) => {
    if (n > cfg.nCtx) {
      fail(path, `${formatPath(path)} is ${n} tokens${prependBos ? ' (with BOS)' : ''}, but the model's context is ${cfg.nCtx} (n_ctx); shorten the prompt`);
    }
  };
  const checkId = (path: PathSeg[], id: number, label = formatPath(path)) => {
    if (!(Number.isInteger(id) && id >= 0 && id < vocab)) {
      fail(path, `${label} is token id ${id}, outside the model's vocabulary [0, ${vocab}); use ids below ${vocab}`);
    }
  };

  function sourceFor(i: number, which: 'clean' | 'corrupted', text: string): SourceText | undefined {
    const given = opts.sources?.[i]?.[which];
    if (given) return given.text === text ? given : undefined;
    const node = nodes.get(`${i}/${which}`);
    if (!info || !node || node.value !== text) return undefined;
    const src: SourceText = { text, offset: info.base + node.start + 1 };
    const offsets = literalOffsets(info.text, node.start, info.base);
    if (offsets) src.offsets = offsets;
    return src;
  }

  function textPrompt(i: number, which: 'clean' | 'corrupted', marked: string) {
    const parsed = parseMarks(marked);
    const text = parsed?.text ?? marked;
    // BPE time grows with the square of a word's length, so a runaway prompt (a megabyte pasted by
    // mistake) is measured on its start first: if that alone is past the context, the rest is moot.
    const probe = PROMPT_PROBE_CHARS_PER_TOKEN * (cfg.nCtx + 1);
    if (text.length > probe) {
      const head = tok.encode(text.slice(0, probe)).ids.length + (prependBos ? 1 : 0);
      if (head > cfg.nCtx) {
        fail(
          ['pairs', i, which],
          `pairs[${i}].${which} is ${text.length} characters, and its first ${probe} alone are ${head} tokens${prependBos ? ' (with BOS)' : ''}, but the model's context is ${cfg.nCtx} (n_ctx); shorten the prompt`,
        );
      }
    }
    const enc = tok.encode(text);
    if (enc.ids.length === 0 && !prependBos) fail(['pairs', i, which], `pairs[${i}].${which} gives no tokens; write some text, or set prepend_bos to true`);
    const source = sourceFor(i, which, marked);
    // Ranges of the unmarked text, mapped back to the text as written (marks included), then into the document.
    const written = (r: readonly [number, number]): [number, number] =>
      parsed ? [parsed.original[r[0]]!, r[1] > r[0] ? parsed.original[r[1] - 1]! + 1 : parsed.original[r[0]]!] : [r[0], r[1]];
    const ranges = enc.ranges.map((r) => (source ? toDocumentRange(source, written(r)) : written(r)));
    const off = prependBos ? 1 : 0;
    const labels: Record<string, number[]> = {};
    for (const [label, spans] of parsed?.marks ?? []) {
      const covered = tokensCovering(enc.ranges, spans);
      if (covered.length === 0)
        fail(['pairs', i, which], `pairs[${i}].${which} marks [${label}] around no text; put the mark around the word it labels, e.g. [${label}]Mary[/${label}]`);
      labels[label] = covered.map((t) => t + off);
    }
    return {
      ids: prependBos ? [bos(), ...enc.ids] : enc.ids,
      ranges: prependBos ? [null, ...ranges] : ranges,
      source,
      labels,
    };
  }

  function answerToken(i: number, pair: PairSpec, which: 'answer' | 'wrong'): number | undefined {
    const text = pair[which];
    const id = pair[`${which}_id`];
    if (id !== undefined) {
      checkId(['pairs', i, `${which}_id`], id);
      return id;
    }
    if (text === undefined) return undefined;
    // Judged on its start when long, for the same reason as prompts: no real token is that long.
    const long = text.length > ANSWER_PROBE_CHARS;
    let ids = tok.encode(long ? text.slice(0, ANSWER_PROBE_CHARS) : text).ids;
    let judgedOnStart = long;
    if (judgedOnStart && ids.length <= 1) {
      ids = tok.encode(text).ids;
      judgedOnStart = false;
    }
    if (ids.length === 1) return ids[0];
    const spaced = !/^\s/.test(text) && !long ? tok.encode(` ${text}`).ids : [];
    // SentencePiece tokenizers (Llama 2) put the word-start marker before the text themselves, so there the
    // word without its space is the one token.
    const bare = /^\s/.test(text) && !long ? tok.encode(text.trimStart()).ids : [];
    const hint =
      spaced.length === 1
        ? `add a leading space: ${quote(` ${text}`)} is one token (the model sees the space before a word as part of it)`
        : bare.length === 1
          ? `drop the leading space: ${quote(text.trimStart())} is one token (this tokenizer marks the start of a word itself)`
          : `use a single word, usually with a leading space (e.g. " Alice"), or give ${which}_id`;
    const count = judgedOnStart ? `${text.length} characters (its first ${ANSWER_PROBE_CHARS} alone are ${ids.length} tokens)` : `${ids.length} tokens`;
    fail(['pairs', i, which], `pairs[${i}].${which} ${quote(text)} is ${count} ${tokenList(tok, ids, 0)}, but an answer must be exactly one token; ${hint}`);
  }

  function resolvePair(pair: PairSpec, i: number): ResolvedPair {
    const out: ResolvedPair = { clean: [], corrupted: [] };
    let marked: Record<string, number[]> = {};
    // An ablation runs the clean prompt only: its corrupted side is the clean prompt, never run.
    const ablate = spec.ablation !== undefined;
    if (pair.clean !== undefined) {
      const c = textPrompt(i, 'clean', pair.clean);
      const k = ablate ? undefined : textPrompt(i, 'corrupted', pair.corrupted!);
      marked = markedLabels(i, c.labels, k?.labels ?? {});
      out.clean = c.ids;
      out.corrupted = k?.ids ?? c.ids;
      out.cleanRanges = c.ranges;
      if (c.source) out.cleanSource = c.source;
      if (k) {
        out.corruptedRanges = k.ranges;
        if (k.source) out.corruptedSource = k.source;
      }
    } else {
      const cleanIds = pair.clean_ids ?? [];
      const corruptedIds = ablate ? cleanIds : (pair.corrupted_ids ?? []);
      cleanIds.forEach((id, j) => checkId(['pairs', i, 'clean_ids', j], id, `pairs[${i}].clean_ids[${j}] (position ${j})`));
      corruptedIds.forEach((id, j) => checkId(['pairs', i, 'corrupted_ids', j], id, `pairs[${i}].corrupted_ids[${j}] (position ${j})`));
      out.clean = [...cleanIds];
      out.corrupted = [...corruptedIds];
    }
    const textForm = pair.clean !== undefined;
    if (out.clean.length !== out.corrupted.length) {
      let d = 0;
      while (d < out.clean.length && d < out.corrupted.length && out.clean[d] === out.corrupted[d]) d++;
      const from = Math.max(0, d - 2);
      fail(
        ['pairs', i, textForm ? 'corrupted' : 'corrupted_ids'],
        `pairs[${i}]: clean has ${out.clean.length} tokens, corrupted has ${out.corrupted.length}; position-wise patching needs the clean and corrupted prompts to have the same number of tokens — make them tokenize to the same length (e.g. swap names rather than remove them); from token ${from}: clean ${tokenList(tok, out.clean, from)} vs corrupted ${tokenList(tok, out.corrupted, from)}`,
      );
    }
    checkLength(['pairs', i, textForm ? 'clean' : 'clean_ids'], out.clean.length);
    const answer = answerToken(i, pair, 'answer');
    const wrong = answerToken(i, pair, 'wrong');
    if (answer !== undefined) out.answer = answer;
    if (wrong !== undefined) out.wrong = wrong;
    const labels = pairLabels(i, pair, marked, out.clean.length, textForm);
    if (Object.keys(labels).length > 0) out.labels = labels;
    if (pair.targets !== undefined) {
      const n = out.clean.length;
      out.targets = pair.targets.map((t, j) => {
        if (t.pos >= n) {
          fail(
            ['pairs', i, 'targets'],
            `pairs[${i}].targets[${j}].pos is ${t.pos}, but the sequence has ${n} tokens${prependBos && textForm ? ' (BOS included)' : ''}, so positions go 0…${n - 1}; the logits at pos predict the token after it`,
          );
        }
        checkId(['pairs', i, 'targets'], t.token_id, `pairs[${i}].targets[${j}].token_id`);
        return { pos: t.pos, token: t.token_id };
      });
    }
    return out;
  }

  /** The labels the marks give: the clean prompt's; the corrupted prompt may mark the same tokens, or nothing. */
  function markedLabels(i: number, clean: Record<string, number[]>, corrupted: Record<string, number[]>): Record<string, number[]> {
    for (const [label, at] of Object.entries(corrupted)) {
      if (clean[label]?.join() !== at.join()) {
        fail(
          ['pairs', i, 'corrupted'],
          `pairs[${i}].corrupted marks [${label}] at token${at.length > 1 ? 's' : ''} ${at.join(', ')}, ${clean[label] ? `but the clean prompt marks it at ${clean[label]!.join(', ')}` : 'which the clean prompt does not mark'}; a label names the same positions in both prompts — mark the clean prompt only, or the same tokens in both`,
        );
      }
    }
    return clean;
  }

  /** A pair's labels: its marks and its `positions` (each label once), checked against its length. */
  function pairLabels(i: number, pair: PairSpec, marked: Record<string, number[]>, n: number, textForm: boolean): Record<string, number[]> {
    const labels: Record<string, number[]> = { ...marked };
    for (const [label, at] of Object.entries(pair.positions ?? {})) {
      if (labels[label]) fail(['pairs', i, 'positions'], `pairs[${i}] labels ${label} both with a mark in the prompt and in "positions"; keep one`, true);
      const list = (Array.isArray(at) ? at : [at]).slice().sort((a, b) => a - b);
      const bad = list.find((p) => p >= n);
      if (bad !== undefined) {
        fail(
          ['pairs', i, 'positions'],
          `pairs[${i}].positions.${label} is ${bad}, but the pair has ${n} tokens${prependBos && textForm ? ' (BOS included)' : ''}, so positions go 0…${n - 1}`,
          true,
        );
      }
      labels[label] = list;
    }
    return labels;
  }

  let pairs: ResolvedPair[];
  if (spec.induction !== undefined) {
    const ind = spec.induction;
    const [lo, hi] = ind.token_range ?? INDUCTION_DEFAULTS.token_range;
    if (hi > vocab) fail(['induction', 'token_range'], `induction.token_range [${lo}, ${hi}] goes past the model's vocabulary of ${vocab} tokens; use hi ≤ ${vocab}`);
    const length = ind.length ?? INDUCTION_DEFAULTS.length;
    const total = 2 * length + (prependBos ? 1 : 0);
    if (total > cfg.nCtx)
      fail(
        ['induction', 'length'],
        `induction.length ${length} gives ${total} tokens, but the model's context is ${cfg.nCtx} (n_ctx); use length ≤ ${Math.floor((cfg.nCtx - (prependBos ? 1 : 0)) / 2)}`,
      );
    pairs = generateInduction(ind, prependBos ? bos() : undefined);
  } else {
    pairs = (dataset?.pairs ?? spec.pairs ?? []).map((pair, i) => resolvePair(pair, i));
  }
  const labels = commonLabels(pairs, fail);
  return {
    name: spec.name ?? defaultName(file),
    model: spec.model,
    metric: spec.metric,
    sweeps: [...(spec.sweeps ?? [])],
    prependBos,
    pairs,
    ...(labels ? { labels } : {}),
    ...(spec.method !== undefined ? { method: spec.method } : {}),
    ...(spec.verify_top !== undefined ? { verifyTop: spec.verify_top } : {}),
    ...(spec.direction ? { direction: spec.direction } : {}),
    ...(spec.ablation ? { ablation: spec.ablation } : {}),
    ...(spec.patch_sets ? { patchSets: spec.patch_sets } : {}),
    ...(spec.path_patching ? { pathPatching: spec.path_patching } : {}),
  };
}

/**
 * The labels every pair names, in the first pair's order; undefined when no pair names any. Pairs that
 * name different labels cannot share a heatmap's columns, so that is an error naming the first of them.
 */
function commonLabels(pairs: readonly ResolvedPair[], fail: (path: PathSeg[], message: string, useKey?: boolean) => never): string[] | undefined {
  const names = (p: ResolvedPair) => Object.keys(p.labels ?? {});
  if (pairs.every((p) => names(p).length === 0)) return undefined;
  const first = names(pairs[0]!);
  pairs.forEach((p, i) => {
    const own = names(p);
    if (own.length !== first.length || own.some((l) => !first.includes(l))) {
      const list = (l: string[]) => (l.length === 0 ? 'no labels' : l.join(', '));
      fail(
        ['pairs', i],
        `pairs[${i}] labels ${list(own)}, but pairs[0] labels ${list(first)}; every pair must name the same labels (their positions may differ), so that each label is one column of the heatmaps`,
      );
    }
  });
  return first;
}

/**
 * Reads a spec's dataset and checks its pairs as the schema checks `pairs`, each error at its line. A
 * file that cannot be read at all is the spec's "dataset" to fix: that message points there.
 */
function loadDataset(spec: PatchSpec, file: string, info: TextInfo | undefined): Dataset & { path: string } {
  const path = resolve(dirname(file), spec.dataset!);
  let data: Dataset;
  try {
    data = readDataset(path);
  } catch (e) {
    if (!isUserError(e) || e.message.startsWith(`${path}:`)) throw e;
    const node = info ? locateNearest(info, ['dataset']) : undefined;
    throw errorAt(file, info, node?.start, node?.end, e.message);
  }
  const { dataset: _, ...rest } = spec;
  try {
    validateSpecValue({ ...rest, pairs: data.pairs }, path, undefined);
  } catch (e) {
    const at = e instanceof SpecError && e.path?.[0] === 'pairs' && typeof e.path[1] === 'number' ? data.lines[e.path[1]] : undefined;
    if (at === undefined) throw e;
    throw new SpecError(`${path}:${at}: ${(e as Error).message.slice(path.length + 2)}`);
  }
  return { ...data, path };
}
