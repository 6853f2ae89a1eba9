/**
 * The strongest effects of a sweep: the k cells furthest from "no effect" (the scale's neutral value,
 * the corrupted baseline when known), each named as a reader says it: `L1H2 · pos 33 "␣oded" · 0.92
 * (92% of clean)`. Cells the model does not have (null) and NaN take no part.
 */
import type { SweepResult } from '../protocol/result';
import { type ColorScale, fractionText } from './colorScale';
import type { Facet } from './heatmapLayout';
import { type HeadGroups, isKvComponent, kvHeadLabel, queryHeadLabel } from './heads';
import { shortValue, tokenText } from './resultText';

export interface Effect {
  /** The cell's full index into the sweep. */
  readonly index: readonly number[];
  readonly value: number;
  /** `L1H2 · pos 33 "␣oded"` */
  readonly name: string;
  /** `0.92 (92% of clean)` */
  readonly amount: string;
  /** Where the heatmap draws it. */
  readonly facet: number;
  readonly row: number;
  readonly col: number;
  /** The token position the cell lights up in the source, as hovering it in the heatmap does. */
  readonly pos: number | null;
}

export const TOP_EFFECTS = 10;

/** A cell's name: its component, layer and head together ('L1H2', 'L0KV1'), then its positions with their tokens. */
export function cellName(sweep: SweepResult, index: readonly number[], tokens: readonly string[], heads: HeadGroups | undefined): string {
  const at = (axis: string): number | undefined => {
    const k = sweep.axes.indexOf(axis);
    return k < 0 ? undefined : index[k];
  };
  const component = at('component') === undefined ? undefined : (sweep.components?.[at('component')!] ?? `component ${at('component')}`);
  const head = at('head');
  const kv = at('kv_head');
  const layer = at('layer');
  let unit = layer === undefined ? '' : `L${layer}`;
  if (kv !== undefined) unit += kvHeadLabel(kv, undefined);
  else if (head !== undefined) unit += heads && isKvComponent(component) ? kvHeadLabel(head, heads) : queryHeadLabel(head, heads);
  const token = (i: number): string => (tokens[i] === undefined ? '' : ` "${tokenText(tokens[i]!)}"`);
  const parts = [component, unit];
  for (const [axis, word] of [
    ['pos', 'pos'],
    ['dest_pos', 'dest'],
    ['src_pos', 'src'],
  ] as const) {
    const p = at(axis);
    if (p !== undefined) parts.push(`${word} ${p}${token(p)}`);
  }
  // A labelled sweep's columns are labels, each pair at its own positions: named, not tied to a token.
  for (const [axis, word] of [
    ['label', ''],
    ['dest_label', 'dest '],
    ['src_label', 'src '],
  ] as const) {
    const k = at(axis);
    if (k !== undefined) parts.push(`${word}${sweep.labels?.[k] ?? `label ${k}`}`);
  }
  const known = new Set(['component', 'layer', 'head', 'kv_head', 'pos', 'dest_pos', 'src_pos', 'label', 'dest_label', 'src_label']);
  sweep.axes.forEach((axis, k) => {
    if (!known.has(axis)) parts.push(`${axis} ${index[k]}`);
  });
  return parts.filter(Boolean).join(' · ');
}

/** The k cells with the largest |value − neutral|, largest first (ties in index order). */
export function topEffects(sweep: SweepResult, facets: readonly Facet[], scale: ColorScale, tokens: readonly string[], heads: HeadGroups | undefined, k = TOP_EFFECTS): Effect[] {
  // A running top-k: a dest×src sweep has hundreds of thousands of cells and needs only ten of them.
  const best: { size: number; facet: number; row: number; col: number; value: number }[] = [];
  facets.forEach((f, fi) => {
    f.values.forEach((rowValues, r) => {
      rowValues.forEach((v, c) => {
        if (v === null || !Number.isFinite(v)) return;
        const size = Math.abs(v - scale.neutral);
        if (size === 0 || (best.length === k && size <= best[k - 1]!.size)) return;
        let i = best.length;
        while (i > 0 && best[i - 1]!.size < size) i--;
        best.splice(i, 0, { size, facet: fi, row: r, col: c, value: v });
        if (best.length > k) best.pop();
      });
    });
  });
  return best.map((b) => {
    const f = facets[b.facet]!;
    const index = f.cells[b.row]![b.col]!.index;
    const fraction = fractionText(scale, b.value);
    return {
      index,
      value: b.value,
      name: cellName(sweep, index, tokens, heads),
      amount: `${shortValue(b.value)}${fraction ? ` (${fraction})` : ''}`,
      facet: b.facet,
      row: b.row,
      col: b.col,
      pos: f.posAxis === 'col' ? b.col : f.posAxis === 'row' ? b.row : null,
    };
  });
}
