/**
 * Editor text → patch request: a selection (two prompts, or a JSON object in the spec's shape) or a
 * `.patch.json` document. Pure: offsets are UTF-16 document offsets, as vscode's TextDocument.offsetAt
 * gives them, and every prompt keeps its document range so a token maps back to its characters.
 */
import { basename } from 'node:path';
import type { SelectionSource } from '../protocol/engineRpc';
import { LOGIT_DIFF_METRICS, type MetricName, type PatchSpec, SPEC_FILE_SUFFIX, type SourceText, type SweepName } from '../protocol/spec';
import { parseSelection } from '../spec/selection';

export type SelectionRequest =
  | { readonly kind: 'prompts'; readonly clean: SourceText; readonly corrupted: SourceText }
  /** A JSON object: run as a spec whose text is the document with everything else blanked (see maskOutside). */
  | { readonly kind: 'spec'; readonly spec: PatchSpec; readonly specText: string };

/**
 * The document's text with every character outside [start, end) replaced by a space, line breaks
 * kept: parsed as a spec, its offsets are document offsets and its error lines are document lines.
 */
export function maskOutside(text: string, start: number, end: number): string {
  const blank = (s: string) => s.replace(/[^\r\n]/g, ' ');
  return blank(text.slice(0, start)) + text.slice(start, end) + blank(text.slice(end));
}

/** Reads the selection [start, end) of a document; throws a one-line SpecError when it is neither form. */
export function readSelection(docText: string, start: number, end: number): SelectionRequest {
  const parsed = parseSelection(docText.slice(start, end), start);
  if ('spec' in parsed) return { kind: 'spec', spec: parsed.spec, specText: maskOutside(docText, parsed.offset, parsed.offset + parsed.text.length) };
  return { kind: 'prompts', clean: parsed.clean, corrupted: parsed.corrupted };
}

/** A run name for a selection: the document's name and the selection's first line (1-based). */
export function selectionRunName(document: string, line: number): string {
  const base = basename(document.replace(/^[a-z]+:/i, '')) || 'selection';
  return `${base}-L${line}`;
}

export interface SelectionAnswers {
  readonly model: string;
  readonly answer: string;
  readonly wrong: string;
  readonly sweeps: SweepName[];
  readonly metric?: MetricName;
  readonly name: string;
}

/** The spec and per-prompt sources of a two-prompt selection, as RunParams.selection wants them. */
export function selectionSource(document: string, clean: SourceText, corrupted: SourceText, a: SelectionAnswers): SelectionSource {
  const metric = a.metric ?? 'logit_diff';
  const spec: PatchSpec = {
    name: a.name,
    model: a.model,
    metric,
    sweeps: [...a.sweeps],
    pairs: [
      {
        clean: clean.text,
        corrupted: corrupted.text,
        answer: a.answer,
        ...(LOGIT_DIFF_METRICS.includes(metric) ? { wrong: a.wrong } : {}),
      },
    ],
  };
  return { spec, document, sources: [{ clean, corrupted }] };
}

const WORD = /\s?[\p{L}\p{N}_'’-]+/gu;

/**
 * Likely answers for a pair: the words where the two prompts differ (" Alice" in the clean prompt,
 * " Bob" in the corrupted one), each with its leading space, since that is how the model sees a word
 * after a space. The clean prompt's words come first: the first is the usual answer, the second the
 * usual wrong one.
 */
export function answerCandidates(clean: string, corrupted: string): string[] {
  const words = (s: string) => [...s.matchAll(WORD)].map((m) => (m[0].startsWith(' ') ? m[0] : ` ${m[0].trimStart()}`));
  const a = words(clean);
  const b = words(corrupted);
  const inA = new Set(a);
  const inB = new Set(b);
  const out: string[] = [];
  const add = (w: string) => {
    if (!out.includes(w)) out.push(w);
  };
  // Words of one prompt that the other lacks are the swapped names; a swap (Alice↔Bob) leaves none
  // missing, so position-wise differences are the fallback.
  for (const w of a) if (!inB.has(w)) add(w);
  for (const w of b) if (!inA.has(w)) add(w);
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) {
      add(a[i]!);
      add(b[i]!);
    }
  }
  return out.slice(0, 8);
}

/** `" Alice" → 1 token [14862]`, or with several tokens, their strings: `" Alicia" → 2 tokens " Al" "icia" [978, 24970]`. */
/**
 * The candidates in the form the model's tokenizer has as one token: ' Mary' is one token of GPT-2 or
 * Llama 3, but two of a SentencePiece vocabulary (Llama 2, TinyLlama), which marks a word's start itself
 * and has 'Mary' as one. A candidate that cannot be tokenized is kept; the answer box reports why.
 */
export async function singleTokenForms(candidates: string[], tokenize: (text: string) => Promise<{ ids: number[] }>): Promise<string[]> {
  const single = async (t: string) => (await tokenize(t).catch(() => undefined))?.ids.length === 1;
  return Promise.all(
    candidates.map(async (c) => {
      const bare = c.trimStart();
      return bare !== c && !(await single(c)) && (await single(bare)) ? bare : c;
    }),
  );
}

export function describeTokens(text: string, tokens: { ids: number[]; strings: string[] }): string {
  const n = tokens.ids.length;
  const head = `${JSON.stringify(text)} → ${n} token${n === 1 ? '' : 's'}`;
  const strings = n > 1 ? ` ${tokens.strings.map((s) => JSON.stringify(s)).join(' ')}` : '';
  return `${head}${strings} [${tokens.ids.join(', ')}]`;
}

/** The run name the engine gives a spec without "name" (its file name without .patch.json), for the failure record. */
export function specDefaultName(file: string): string {
  const base = basename(file);
  const lower = base.toLowerCase();
  const stem = lower.endsWith(SPEC_FILE_SUFFIX) ? base.slice(0, -SPEC_FILE_SUFFIX.length) : lower.endsWith('.json') ? base.slice(0, -'.json'.length) : base;
  return stem === '' ? 'patch' : stem;
}
