/**
 * How a sweep's flat values become 2-D heatmaps, shared by the webview (bundled for the browser) and the
 * PNG export (Node), so that both show the same cells under the same labels. Pure: no Node or DOM imports.
 *
 * The conventions follow TransformerLens's "Activation Patching" notebook:
 *   [L, P]           rows layers 'L0'..,            cols positions
 *   [L, H]           rows layers,                   cols heads 'H0'..
 *   [L, P, H]        rows 'LxHy' (layer-major),     cols positions
 *   [L, H, dest]     rows 'LxHy',                   cols dest positions
 *   [L, H, dest, src] one facet per 'LxHy',         rows dest positions, cols src positions
 *   [component, ...]  one facet per component, each laid out as above.
 *
 * A labelled spec's sweeps have 'label' axes in place of the position axes ('dest_label', 'src_label'):
 * laid out as positions are, with the labels as names (each pair was patched at its own positions).
 *
 * Position labels are `tok_i` as in the notebook, with whitespace made visible (see tokenLabel). With
 * grouped-query attention, query heads carry their KV group ('H5 (KV1)') and KV-head axes say 'KV1'.
 */
import type { SweepResult } from '../protocol/result';
import { type HeadGroups, isKvComponent, kvHeadLabel, queryHeadLabel } from './heads';
import { tokenText } from './resultText';

export interface FacetCell {
  /** The full index into the sweep (one entry per axis) of this cell. */
  readonly index: number[];
}

export interface Facet {
  readonly title: string;
  readonly rowAxis: string;
  readonly colAxis: string;
  readonly rowLabels: string[];
  readonly colLabels: string[];
  /** [row][col]; null where the model has no such index (drawn blank). */
  readonly values: (number | null)[][];
  readonly cells: FacetCell[][];
  /** Which axis is token positions, so hovering it can light up a token; for dest×src facets, 'col' (src). */
  readonly posAxis: 'col' | 'row' | null;
  /** Set on dest×src facets, whose rows (dest) are token positions too. */
  readonly rowsArePositions?: boolean;
}

export interface LayoutLabels {
  /** Clean token strings of pair 0, one per position. */
  readonly tokens: string[];
  /** Set for a grouped-query model (see headGroups). */
  readonly heads?: HeadGroups;
}

const MAX_TOKEN_CHARS = 16;

/**
 * A token as an axis label. Spaces become '␣' (U+2423) because GPT-2 tokens mostly start with one and
 * ' Mary' vs 'Mary' is exactly the difference a reader needs to see; newlines and tabs become '↵' and
 * '⇥'; other control characters are escaped; long tokens are shortened with '…'.
 */
export function tokenLabel(token: string | undefined, index: number): string {
  if (token === undefined) return `_${index}`;
  let s = tokenText(token);
  const chars = Array.from(s);
  if (chars.length > MAX_TOKEN_CHARS) s = chars.slice(0, MAX_TOKEN_CHARS - 1).join('') + '…';
  return `${s}_${index}`;
}

const layerLabels = (n: number): string[] => Array.from({ length: n }, (_, i) => `L${i}`);
const tokenPosLabels = (n: number, tokens: string[]): string[] => Array.from({ length: n }, (_, i) => tokenLabel(tokens[i], i));
/** The position axis a label axis stands for, and back. */
const LABEL_AXIS: Readonly<Record<string, string>> = { label: 'pos', dest_label: 'dest_pos', src_label: 'src_pos' };
const POS_TO_LABEL: Readonly<Record<string, string>> = { pos: 'label', dest_pos: 'dest_label', src_pos: 'src_label' };
/** 'H3', 'H3 (KV1)' or 'KV1' (an empty label for a stacked sweep's padding), by what the head axis counts. */
type HeadName = (h: number) => string;
const headLabels = (n: number, name: HeadName): string[] => Array.from({ length: n }, (_, i) => name(i));
const layerHeadLabels = (l: number, h: number, name: HeadName): string[] =>
  Array.from({ length: l * h }, (_, i) => (name(i % h) === '' ? '' : `L${Math.floor(i / h)}${name(i % h)}`));

function strides(shape: number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

/** A facet whose cell [r][c] sits at the full index `at(r, c)`. */
function buildFacet(sweep: SweepResult, base: Omit<Facet, 'values' | 'cells'>, at: (r: number, c: number) => number[]): Facet {
  const st = strides(sweep.shape);
  const values: (number | null)[][] = [];
  const cells: FacetCell[][] = [];
  for (let r = 0; r < base.rowLabels.length; r++) {
    const vr: (number | null)[] = [];
    const cr: FacetCell[] = [];
    for (let c = 0; c < base.colLabels.length; c++) {
      const index = at(r, c);
      let flat = 0;
      for (let k = 0; k < index.length; k++) flat += index[k] * st[k];
      // A result file that is short of values shows the gap as NaN (grey) rather than reading garbage.
      const v = flat < sweep.values.length ? sweep.values[flat] : undefined;
      vr.push(v === undefined ? NaN : v);
      cr.push({ index });
    }
    values.push(vr);
    cells.push(cr);
  }
  return { ...base, values, cells };
}

/** Lays out the axes after an optional leading prefix (the component index of *_every sweeps). */
function layoutAxes(sweep: SweepResult, axes: string[], shape: number[], prefix: number[], titlePrefix: string, labels: LayoutLabels, kvPadded: boolean): Facet[] {
  const tokens = labels.tokens;
  // Label axes are laid out as the position axes they stand for, named by their labels.
  const labelled = axes.some((a) => LABEL_AXIS[a] !== undefined);
  const posLabels = (n: number, toks: string[]): string[] => (labelled ? Array.from({ length: n }, (_, i) => sweep.labels?.[i] ?? `label ${i}`) : tokenPosLabels(n, toks));
  const posAxisOf = (axis: 'col' | 'row' | null) => (labelled ? null : axis);
  const name = (a: string) => (labelled ? (POS_TO_LABEL[a] ?? a) : a);
  // A k/v sweep of a grouped-query model counts KV heads; the stacked sweeps pad them to query heads.
  const kv = kvPadded || axes.includes('kv_head');
  const headName: HeadName = kv ? (h) => kvHeadLabel(h, kvPadded ? labels.heads : undefined) : (h) => queryHeadLabel(h, labels.heads);
  const headAxis = kv ? 'kv_head' : 'head';
  const key = axes.map((a) => (a === 'kv_head' ? 'head' : (LABEL_AXIS[a] ?? a))).join(',');
  const title = (t: string): string => (titlePrefix && t ? `${titlePrefix} ${t}` : titlePrefix || t);
  switch (key) {
    case 'layer,pos':
      return [
        buildFacet(
          sweep,
          { title: title(''), rowAxis: 'layer', colAxis: name('pos'), rowLabels: layerLabels(shape[0]), colLabels: posLabels(shape[1], tokens), posAxis: posAxisOf('col') },
          (r, c) => [...prefix, r, c],
        ),
      ];
    case 'layer,head':
      return [
        buildFacet(
          sweep,
          { title: title(''), rowAxis: 'layer', colAxis: headAxis, rowLabels: layerLabels(shape[0]), colLabels: headLabels(shape[1], headName), posAxis: null },
          (r, c) => [...prefix, r, c],
        ),
      ];
    case 'layer,pos,head': {
      const h = shape[2];
      return [
        buildFacet(
          sweep,
          {
            title: title(''),
            rowAxis: `layer·${headAxis}`,
            colAxis: name('pos'),
            rowLabels: layerHeadLabels(shape[0], h, headName),
            colLabels: posLabels(shape[1], tokens),
            posAxis: posAxisOf('col'),
          },
          (r, c) => [...prefix, Math.floor(r / h), c, r % h],
        ),
      ];
    }
    case 'layer,head,dest_pos': {
      const h = shape[1];
      return [
        buildFacet(
          sweep,
          {
            title: title(''),
            rowAxis: 'layer·head',
            colAxis: name('dest_pos'),
            rowLabels: layerHeadLabels(shape[0], h, headName),
            colLabels: posLabels(shape[2], tokens),
            posAxis: posAxisOf('col'),
          },
          (r, c) => [...prefix, Math.floor(r / h), r % h, c],
        ),
      ];
    }
    case 'layer,head,dest_pos,src_pos': {
      const out: Facet[] = [];
      for (let l = 0; l < shape[0]; l++) {
        for (let h = 0; h < shape[1]; h++) {
          out.push(
            buildFacet(
              sweep,
              {
                title: title(`L${l}${headName(h)}`),
                rowAxis: name('dest_pos'),
                colAxis: name('src_pos'),
                rowLabels: posLabels(shape[2], tokens),
                colLabels: posLabels(shape[3], tokens),
                posAxis: posAxisOf('col'),
                ...(labelled ? {} : { rowsArePositions: true }),
              },
              (r, c) => [...prefix, l, h, r, c],
            ),
          );
        }
      }
      return out;
    }
    default:
      return [genericFacet(sweep, axes, shape, prefix, title(''), labels)];
  }
}

/**
 * Shapes the catalogue does not know (a newer engine, a hand-edited file): rows are all leading axes
 * flattened row-major, columns the last axis, so nothing is hidden even if the picture is not ideal.
 */
function genericFacet(sweep: SweepResult, axes: string[], shape: number[], prefix: number[], title: string, labels: LayoutLabels): Facet {
  const axisLabels = (name: string, n: number): string[] =>
    name === 'layer'
      ? layerLabels(n)
      : name === 'head'
        ? headLabels(n, (h) => queryHeadLabel(h, labels.heads))
        : name === 'kv_head'
          ? headLabels(n, (h) => kvHeadLabel(h, undefined))
          : /pos/.test(name)
            ? tokenPosLabels(n, labels.tokens)
            : Array.from({ length: n }, (_, i) => `${i}`);
  if (shape.length === 0) {
    return buildFacet(sweep, { title, rowAxis: '', colAxis: '', rowLabels: [''], colLabels: [''], posAxis: null }, () => [...prefix]);
  }
  const last = shape.length - 1;
  const lead = shape.slice(0, last);
  const rowsN = lead.reduce((a, b) => a * b, 1);
  const leadStrides = strides(lead);
  const unflatten = (r: number): number[] => lead.map((n, k) => Math.floor(r / leadStrides[k]) % n);
  const rowLabels =
    lead.length === 1
      ? axisLabels(axes[0], lead[0])
      : Array.from({ length: rowsN }, (_, r) =>
          unflatten(r)
            .map((v, k) => `${axes[k] ?? k}${v}`)
            .join(' '),
        );
  const colName = axes[last] ?? '';
  return buildFacet(
    sweep,
    {
      title,
      rowAxis: lead.length === 0 ? '' : axes.slice(0, last).join('·'),
      colAxis: colName,
      rowLabels: lead.length === 0 ? [''] : rowLabels,
      colLabels: axisLabels(colName, shape[last]),
      posAxis: /pos/.test(colName) ? 'col' : null,
    },
    (r, c) => [...prefix, ...unflatten(r), c],
  );
}

/** The heatmaps of one sweep, in reading order. */
export function layoutSweep(sweep: SweepResult, labels: LayoutLabels): Facet[] {
  const axes = sweep.axes;
  if (axes[0] === 'component') {
    const n = sweep.shape[0] ?? 0;
    const out: Facet[] = [];
    for (let k = 0; k < n; k++) {
      const name = sweep.components?.[k] ?? `component ${k}`;
      const kvPadded = labels.heads !== undefined && isKvComponent(sweep.components?.[k]) && axes.includes('head');
      out.push(...layoutAxes(sweep, axes.slice(1), sweep.shape.slice(1), [k], name, labels, kvPadded));
    }
    return out;
  }
  return layoutAxes(sweep, axes, sweep.shape, [], '', labels, false);
}

/**
 * How many facets go side by side: the components of *_every sweeps in one row (as the notebook's
 * facet_col), dest×src facets with one row per layer and one column per head.
 */
export function facetColumns(sweep: SweepResult, facetCount: number): number {
  const axes = (sweep.axes[0] === 'component' ? sweep.axes.slice(1) : sweep.axes).map((a) => LABEL_AXIS[a] ?? a);
  const shape = sweep.axes[0] === 'component' ? sweep.shape.slice(1) : sweep.shape;
  if (axes.join(',') === 'layer,head,dest_pos,src_pos' && sweep.axes[0] !== 'component') return Math.max(1, Math.min(facetCount, shape[1]));
  return Math.max(1, facetCount);
}

export interface Placement {
  readonly row: number;
  readonly col: number;
  /** Whether the facet carries its row labels: the first of its grid row, or its labels differ from its left neighbour's. */
  readonly showY: boolean;
  /** Whether it carries its column labels: nothing sits below it, or the facet below is labelled differently. */
  readonly showX: boolean;
}

const sameLabels = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** Facets in a grid of `cols` columns, reading order; shared axis labels only where they stay true. */
export function placeFacets(facets: readonly Facet[], cols: number): Placement[] {
  return facets.map((f, i) => {
    const below = facets[i + cols];
    const left = i % cols === 0 ? undefined : facets[i - 1];
    return {
      row: Math.floor(i / cols),
      col: i % cols,
      showY: !left || !sameLabels(left.rowLabels, f.rowLabels),
      showX: !below || !sameLabels(below.colLabels, f.colLabels),
    };
  });
}

/**
 * Every `step`-th label is drawn when a label (`labelPx` along the axis) is longer than a cell: an even
 * subset, starting at the first. Each label stays readable on hover.
 */
export const labelStep = (cellPx: number, labelPx: number): number => Math.max(1, Math.ceil(labelPx / Math.max(1e-9, cellPx)));
