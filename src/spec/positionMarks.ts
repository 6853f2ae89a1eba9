/**
 * Position marks in prompt text: `When [IO]Mary[/IO] and [S1]John[/S1] went…` labels the tokens the
 * marked text covers. The marks are removed before tokenising; what remains is the prompt the model
 * sees. Only a matched pair `[NAME]…[/NAME]` (NAME a label: letters, digits, _) is a mark, so brackets
 * that are part of a prompt stay text. A label may mark several stretches. Browser-safe.
 */
import { LABEL_PATTERN } from '../protocol/spec';

export interface MarkedText {
  /** The text without its marks. */
  readonly text: string;
  /** Per label, in order of first appearance: the [start, end) ranges of `text` it marks. */
  readonly marks: ReadonlyMap<string, readonly [number, number][]>;
  /** For each index of `text` (and its end), the index of the same character in the marked text. */
  readonly original: readonly number[];
}

const TAG = /\[(\/?)([A-Za-z_][A-Za-z0-9_]*)\]/g;

/** Splits marks from text; undefined when the text has none (the common case costs one scan). */
export function parseMarks(marked: string): MarkedText | undefined {
  const tags: { at: number; end: number; close: boolean; label: string }[] = [];
  for (const m of marked.matchAll(TAG)) tags.push({ at: m.index, end: m.index + m[0].length, close: m[1] === '/', label: m[2]! });
  if (tags.length === 0) return undefined;
  // An opening tag is a mark when a closing tag of its label follows before the label opens again.
  const used = new Set<number>();
  const pairs: [number, number][] = [];
  tags.forEach((t, k) => {
    if (t.close || !LABEL_PATTERN.test(t.label)) return;
    for (let j = k + 1; j < tags.length; j++) {
      const u = tags[j]!;
      if (u.label !== t.label) continue;
      if (u.close && !used.has(j)) {
        used.add(k).add(j);
        pairs.push([k, j]);
      }
      break;
    }
  });
  if (pairs.length === 0) return undefined;
  let text = '';
  const original: number[] = [];
  const startOf = new Map<number, number>();
  let from = 0;
  tags.forEach((t, k) => {
    if (!used.has(k)) return;
    for (let i = from; i < t.at; i++) original.push(i);
    text += marked.slice(from, t.at);
    from = t.end;
    startOf.set(k, text.length);
  });
  for (let i = from; i < marked.length; i++) original.push(i);
  text += marked.slice(from);
  original.push(marked.length);
  const marks = new Map<string, [number, number][]>();
  for (const [open, close] of pairs.sort((a, b) => a[0] - b[0])) {
    const label = tags[open]!.label;
    if (!marks.has(label)) marks.set(label, []);
    marks.get(label)!.push([startOf.get(open)!, startOf.get(close)!]);
  }
  return { text, marks, original };
}

/** The indices of the tokens (given by their [start, end) character ranges) that overlap any of `ranges`. */
export function tokensCovering(tokenRanges: readonly (readonly [number, number])[], ranges: readonly (readonly [number, number])[]): number[] {
  const out: number[] = [];
  tokenRanges.forEach(([s, e], t) => {
    if (ranges.some(([a, b]) => a < b && s < b && e > a)) out.push(t);
  });
  return out;
}
